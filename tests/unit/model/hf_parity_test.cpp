// Parity with HF transformers 5.17: the checkpoints in tests/fixtures/models were saved by
// save_pretrained from random tiny models, with the logits, loss and every parameter gradient that
// transformers computed (float64, see tests/fixtures/make_model_fixtures.py). We load the very
// checkpoint directory, run forward + backward in fp32 and compare.
//
// Metric, per tensor: max_i |ours_i - hf_i| / max_i |hf_i| <= 1e-4 (logits, and each gradient);
// loss: |ours - hf| / |hf| <= 1e-5.
#include <doctest/doctest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/fs.hpp"
#include "f32_safetensors.hpp"
#include "model/model.hpp"

using namespace dsk::model;
using namespace dsk::model::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(DSK_SOURCE_DIR) / "tests/fixtures/models";

double max_relative_error(std::span<const float> ours, const std::vector<float>& hf) {
  REQUIRE(ours.size() == hf.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < hf.size(); i++) {
    diff = std::max(diff, (double)std::fabs(ours[i] - hf[i]));
    scale = std::max(scale, (double)std::fabs(hf[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

void check_parity(const std::string& name) {
  fs::path dir = kFixtures / name;
  json fixture = json::parse(dsk::read_file(dir / "fixture.json"));
  std::vector<int32_t> tokens, targets;
  for (auto& row : fixture["tokens"])
    for (auto& t : row) tokens.push_back(t.get<int32_t>());
  for (auto& row : fixture["targets"])
    for (auto& t : row) targets.push_back(t.get<int32_t>());
  int B = (int)fixture["tokens"].size(), T = (int)fixture["tokens"][0].size();
  auto reference = read_f32_safetensors(dir / "reference.safetensors");

  Model model = Model::load_hf_checkpoint(dir / "checkpoint");
  double logits_error = max_relative_error(model.logits(tokens.data(), B, T), reference.at("logits").values);
  float loss = model.forward_backward(tokens.data(), targets.data(), B, T, fixture["ignore_index"].get<int>());
  double hf_loss = fixture["loss"].get<double>();

  double worst_grad = 0;
  std::string worst_name;
  size_t compared = 0;
  for (const ParamView& v : model.parameter_views()) {
    if (!v.trainable) continue;
    auto it = reference.find("grad." + v.name);
    INFO(name << ": no reference gradient for " << v.name);
    REQUIRE(it != reference.end());
    double error = max_relative_error(model.gradient(v.name), it->second.values);
    INFO(name << ": gradient of " << v.name << " max relative error " << error);
    CHECK(error <= 1e-4);
    if (error > worst_grad) {
      worst_grad = error;
      worst_name = v.name;
    }
    compared++;
  }
  CHECK(compared + 1 == reference.size());  // every reference gradient was compared
  MESSAGE(name << ": loss " << loss << " (hf " << hf_loss << "), logits max rel err " << logits_error
               << ", worst gradient max rel err " << worst_grad << " (" << worst_name << ") over " << compared
               << " tensors");
  CHECK(std::fabs(loss - hf_loss) <= 1e-5 * std::fabs(hf_loss));
  CHECK(logits_error <= 1e-4);
}

}  // namespace

TEST_CASE("HF parity: llama with llama3 rope scaling, GQA, untied head") { check_parity("llama"); }
TEST_CASE("HF parity: qwen2 with tied embeddings, q/k/v biases, MQA") { check_parity("qwen2"); }
TEST_CASE("HF parity: deepseek_v3 with q_lora, yarn rope, MLA and MoE") { check_parity("deepseek_v3"); }
TEST_CASE("HF parity: deepseek_v3 without q_lora") { check_parity("deepseek_v3_no_q_lora"); }
