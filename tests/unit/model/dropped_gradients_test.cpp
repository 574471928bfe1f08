// Model::drop_gradients and drop_weights (expert parallelism: a rank holds no gradients or
// weights of the other ranks' experts): the flat offsets close up over the dropped ranges, the
// backward stages tile the smaller buffer, copy_gradients() and copy_parameters() give 0 there,
// and a pass that would reach a dropped one (an expert run here after all) is an InternalError,
// not an access past its place. A model built with an expert share (ModelOptions) never holds
// the others' experts: random init and an HF load give its own the whole model's values.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "model/model.hpp"
#include "model/parameters.hpp"
#include "tiny_models.hpp"

using namespace dsk::model;
using namespace dsk::model::testing;

TEST_CASE("offset_without: offsets close up over the dropped ranges; reaching into one is an error") {
  const std::vector<FlatSpan> dropped = {{10, 5}, {30, 10}};
  CHECK(offset_without(dropped, 0) == 0);
  CHECK(offset_without(dropped, 9, 1) == 9);
  CHECK(offset_without(dropped, 10) == 10);  // where a dropped range starts: a boundary
  CHECK(offset_without(dropped, 15, 15) == 10);
  CHECK(offset_without(dropped, 40) == 25);
  CHECK(offset_without(dropped, 50, 2) == 35);
  CHECK_THROWS_AS(offset_without(dropped, 12), dsk::InternalError);
  CHECK_THROWS_AS(offset_without(dropped, 8, 3), dsk::InternalError);
  CHECK_THROWS_AS(offset_without(dropped, 20, 11), dsk::InternalError);
}

namespace {

// The ranges of routed expert 0 of every MoE layer.
std::vector<FlatSpan> first_experts(const Model& model) {
  std::vector<FlatSpan> out;
  for (const ParamView& v : model.parameter_views())
    if (v.name.find(".mlp.experts.0.") != std::string::npos) out.push_back({v.offset, v.numel});
  return out;
}

}  // namespace

TEST_CASE("drop_weights: smaller weights, the others' values kept, the dropped read as 0 and skipped when set") {
  Model model(tiny_deepseek(8), 3);
  const std::vector<float> before = model.copy_parameters();
  const std::vector<FlatSpan> dropped = first_experts(model);
  model.drop_weights(dropped);
  CHECK(size_t(model.master().numel) == model.parameter_count() - total_numel(dropped));
  std::vector<float> expected = before;
  for (const FlatSpan& span : dropped) std::fill_n(expected.begin() + int64_t(span.offset), span.numel, 0.0f);
  CHECK(model.copy_parameters() == expected);
  std::vector<float> doubled = before;
  for (float& x : doubled) x *= 2;
  model.set_parameters(doubled);
  for (float& x : expected) x *= 2;
  CHECK(model.copy_parameters() == expected);
  const ParamView& norm = model.view("model.norm.weight");
  CHECK(model.weight_offset(norm.offset) == norm.offset - total_numel(dropped));
  CHECK(model.parameter("model.norm.weight")[0] == doubled[norm.offset]);
  // Every expert runs on one rank: the forward reaches expert 0's weights, which are not there.
  TinyBatch batch;
  CHECK_THROWS_AS(model.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T), dsk::InternalError);
}

TEST_CASE("drop_gradients: a smaller gradient buffer, the stages tile it, the dropped read as 0") {
  Model model(tiny_deepseek(8), 3);
  const std::vector<FlatSpan> dropped = first_experts(model);
  const size_t dropped_numel = total_numel(dropped);
  REQUIRE(!dropped.empty());
  model.drop_gradients(dropped);
  CHECK(size_t(model.gradient_buffer().numel) == model.parameter_count() - dropped_numel);
  // Backward order (head, layers from the last, embedding): each stage ends where the last began.
  size_t end = size_t(model.gradient_buffer().numel);
  for (const Model::GradientStage& stage : model.gradient_stages()) {
    CHECK(stage.offset + stage.numel == end);
    end = stage.offset;
  }
  CHECK(end == 0);
  const ParamView& norm = model.view("model.norm.weight");
  CHECK(model.gradient_offset(norm.offset) == norm.offset - dropped_numel);
  CHECK_THROWS_AS(model.gradient_offset(dropped.front().offset + 1), dsk::InternalError);
  CHECK_THROWS_AS(model.gradient("model.layers.1.mlp.experts.0.up_proj.weight"), dsk::InternalError);

  // Every expert runs on one rank: the backward reaches expert 0's gradient, which is not there.
  TinyBatch batch;
  model.zero_grad();
  CHECK_THROWS_AS(model.forward_backward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T),
                  dsk::InternalError);
  const std::vector<float> grads = model.copy_gradients();
  REQUIRE(grads.size() == model.parameter_count());
  for (const FlatSpan& span : dropped)
    for (size_t i = 0; i < span.numel; ++i) REQUIRE(grads[span.offset + i] == 0.0f);
}

namespace {

// The values of a whole model with the other ranks' experts set to 0, as a share model reads back.
std::vector<float> without_others(std::vector<float> whole, const std::vector<FlatSpan>& others) {
  for (const FlatSpan& span : others) std::fill_n(whole.begin() + int64_t(span.offset), span.numel, 0.0f);
  return whole;
}

}  // namespace

TEST_CASE("an expert share from the start: only this rank's experts allocated, with the whole model's values") {
  const Architecture arch = tiny_deepseek(8);
  Model whole(arch, 7);
  const std::vector<float> values = whole.copy_parameters();
  for (int rank = 0; rank < 2; ++rank) {
    ModelOptions options;
    options.expert_rank = rank;
    options.expert_ranks = 2;
    Model share(arch, 7, 0.02f, nullptr, options);
    // Rank 0 of 2 owns experts 0 and 1 of the 4 of every MoE layer.
    const std::vector<FlatSpan> others = other_ranks_experts(layout_parameters(arch), rank, 2);
    REQUIRE(!others.empty());
    CHECK(share.dropped_weights().size() == others.size());
    for (const ParamView& v : share.parameter_views()) {
      int layer = 0, expert = 0;
      const bool routed = std::sscanf(v.name.c_str(), "model.layers.%d.mlp.experts.%d.", &layer, &expert) == 2;
      CHECK_MESSAGE(is_dropped(share.dropped_weights(), v.offset, v.numel) == (routed && expert / 2 != rank), v.name);
    }
    CHECK(size_t(share.master().numel) == share.parameter_count() - total_numel(others));
    CHECK(size_t(share.gradient_buffer().numel) == share.parameter_count() - total_numel(others));
    CHECK(share.copy_parameters() == without_others(values, others));
    // Peak memory: the backend never held the others' experts (weights or gradients).
    CHECK(share.ops().peak_memory_in_use() <= whole.ops().peak_memory_in_use() - 2 * sizeof(float) * total_numel(others));
  }
  ModelOptions uneven;
  uneven.expert_ranks = 3;
  CHECK_THROWS_AS(Model(arch, 7, 0.02f, nullptr, uneven), dsk::UsageError);
}

TEST_CASE("an expert share loaded from an HF checkpoint: only this rank's experts' tensors, the same values") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("dsk-expert-share-" + std::to_string(::getpid()));
  const Architecture arch = tiny_deepseek(8);
  Model whole(arch, 11);
  whole.save_hf_checkpoint(dir, "F32");
  ModelOptions options;
  options.expert_rank = 1;
  options.expert_ranks = 2;
  Model share = Model::load_hf_checkpoint(dir, nullptr, options);
  const std::vector<FlatSpan> others = other_ranks_experts(layout_parameters(arch), 1, 2);
  CHECK(size_t(share.master().numel) == share.parameter_count() - total_numel(others));
  CHECK(share.copy_parameters() == without_others(whole.copy_parameters(), others));
  std::filesystem::remove_all(dir);
}
