#include "train/expert_ownership.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include "core/error.hpp"

namespace dsk::train {
namespace {

// Appends [begin, begin + length) to ranges, merged with the last one when they touch.
void append(std::vector<FlatRange>& ranges, std::int64_t begin, std::int64_t length) {
  if (!ranges.empty() && ranges.back().begin + ranges.back().length == begin)
    ranges.back().length += length;
  else
    ranges.push_back({begin, length});
}

}  // namespace

ExpertOwnership::ExpertOwnership(const model::Model& model, dist::Communicator& comm, int group)
    : comm_(comm), group_(group), first_(comm.rank() / group * group) {
  const int experts = model.architecture().n_routed;
  if (group < 2 || experts % group != 0 || comm.size() % group != 0)
    throw InternalError("ExpertOwnership: the experts or the ranks do not split into groups of " + std::to_string(group));
  // The views of "model.layers.L.mlp.experts.E.<tensor>", by layer, in the layout's order.
  std::map<int, std::vector<std::pair<int, const model::ParamView*>>> by_layer;
  for (const model::ParamView& view : model.parameter_views()) {
    int layer = 0, expert = 0, consumed = 0;
    if (std::sscanf(view.name.c_str(), "model.layers.%d.mlp.experts.%d.%n", &layer, &expert, &consumed) == 2 &&
        consumed > 0)
      by_layer[layer].emplace_back(expert, &view);
  }
  if (by_layer.empty()) throw InternalError("ExpertOwnership: the model has no routed-expert tensors");
  const int per_rank = experts / group;
  for (auto& [layer, views] : by_layer) {
    std::sort(views.begin(), views.end(),
              [](const auto& a, const auto& b) { return a.second->offset < b.second->offset; });
    std::vector<std::vector<FlatRange>> ranks(static_cast<size_t>(group_));
    for (const auto& [expert, view] : views)
      append(ranks[size_t(expert / per_rank)], std::int64_t(view->offset), std::int64_t(view->numel));
    for (const auto& ranges : ranks)
      if (total_length(ranges) != total_length(ranks[0]))
        throw InternalError("ExpertOwnership: the ranks' experts differ in size in layer " + std::to_string(layer));
    owned_.push_back(std::move(ranks));
  }
  const int member = comm.rank() - first_;
  for (const auto& ranks : owned_)
    for (int r = 0; r < group_; ++r)
      for (const FlatRange& range : ranks[size_t(r)]) {
        (r == member ? owned_here_ : foreign_).push_back(range);
        routed_.push_back(range);
      }
  for (auto* ranges : {&foreign_, &owned_here_, &routed_})
    std::sort(ranges->begin(), ranges->end(), [](const FlatRange& a, const FlatRange& b) { return a.begin < b.begin; });
  replicas_ = comm.split(member, comm.rank());
}

std::vector<FlatRange> ExpertOwnership::local(std::int64_t count) const { return complement(foreign_, count); }

GatherSteps ExpertOwnership::first_group_experts() const {
  GatherSteps steps;
  for (const auto& ranks : owned_) {
    std::vector<std::vector<FlatRange>>& step = steps.emplace_back(size_t(comm_.size()));
    for (int r = 1; r < group_; ++r) step[size_t(r)] = ranks[size_t(r)];
  }
  return steps;
}

}  // namespace dsk::train
