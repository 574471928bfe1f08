// Which rank updates which routed expert under expert parallelism (dist.expert_parallel: N; with
// ZeRO-1 and int8 gradients too), so that the AdamW state of an expert is held only by the
// ranks that run it: in each group of N consecutive ranks, the group's rank r owns the experts
// [r*E/N, (r+1)*E/N) of every MoE layer (as model/expert_dispatch.hpp splits the compute), and the
// same-index ranks of the other groups own them too (their copies stay equal: their gradients are
// summed over those ranks, replicas()).
//
// AdamW (adamw.hpp) keeps m and v only outside foreign() and leaves the weights there alone; the
// trainer does not even hold them (Model::drop_weights: the forward runs only the local experts),
// and a checkpoint takes them from their owners, to rank 0 alone (first_group_experts).
// With ZeRO-1, AdamW shards the state of everything but routed() over all ranks and keeps the
// owned() experts' whole.
//
// The gradients follow (gradient_sync.hpp): an expert's gradient is summed only over the ranks
// that own it, through replicas(), and the foreign ones are not even held (Model::drop_gradients,
// expert_parallel.hpp): the all-reduce (or int8 all-gather) of the data-parallel part leaves the
// routed experts out.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dist/communicator.hpp"
#include "model/model.hpp"
#include "train/first_rank_gather.hpp"
#include "train/flat_range.hpp"

namespace dsk::train {

class ExpertOwnership {
 public:
  // model: the model whose flat parameters AdamW updates; group: dist.expert_parallel (> 1,
  // dividing comm.size(); the model has routed experts).
  ExpertOwnership(const model::Model& model, dist::Communicator& comm, int group);

  // The ranges, in order, of the experts the other ranks of this rank's group own.
  const std::vector<FlatRange>& foreign() const { return foreign_; }
  // Those of the experts this rank owns, and of all the routed experts, in order.
  const std::vector<FlatRange>& owned() const { return owned_here_; }
  const std::vector<FlatRange>& routed() const { return routed_; }
  // All the ranks (the communicator given), and the ranks that own the same experts as this one
  // (the same place in every group), by rank.
  dist::Communicator& communicator() const { return comm_; }
  dist::Communicator& replicas() const { return *replicas_; }
  // [0, count) without foreign(): what this rank updates, in order.
  std::vector<FlatRange> local(std::int64_t count) const;

  // How rank 0 gets the experts it does not own (a checkpoint's weights and moments), one MoE
  // layer a step (first_rank_gather.hpp): the other ranks of the first group send their own, the
  // rest (whose experts are the same ones again) nothing.
  GatherSteps first_group_experts() const;

 private:
  dist::Communicator& comm_;
  int group_, first_;
  // Per MoE layer, per rank of the group: the ranges of its experts there, merged and in order.
  std::vector<std::vector<std::vector<FlatRange>>> owned_;
  std::vector<FlatRange> foreign_, owned_here_, routed_;
  std::unique_ptr<dist::Communicator> replicas_;
};

}  // namespace dsk::train
