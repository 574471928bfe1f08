// AdamW over one flat fp32 parameter buffer (llm.c style): fp32 master weights, first and second
// moments m and v of the same length in the backend's memory, bias correction, weight decay
// decoupled from the gradient (Loshchilov & Hutter) and applied only where the decay mask is 1
// (not on norms, biases and embeddings by default: the caller builds the mask from the parameter
// names). One fused op per step (tensor::Ops::adamw_step), which also refreshes the working copy
// of the weights the model reads.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dist/communicator.hpp"
#include "tensor/arena.hpp"
#include "tensor/ops.hpp"
#include "train/expert_ownership.hpp"

namespace dsk::train {

struct AdamWSettings {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
};

//
// ZeRO-1 (zero != null, more than one rank): the moments are sharded over the ranks
// (dist::ShardLayout): this rank keeps and updates m and v of its shard and of the small tail
// only, so optimizer memory falls as 1/ranks; after the update the ranks' shards of the master
// weights are all-gathered, so every rank holds all the weights again. The gradients handed to
// step() must then be reduced for this rank's shard and the tail (GradientSync does that).
//
// Expert parallelism (experts != null): this rank keeps m and v of, and updates, only what is
// not another rank's routed expert (expert_ownership.hpp), so the routed experts' optimizer memory
// falls as 1/dist.expert_parallel. The weights and gradients step() gets may each hold only what
// is not another rank's expert, in order (Model::drop_weights, drop_gradients), or everything
// (the other experts' weights there then go stale); either way a checkpoint's host copy, on rank
// 0 alone, takes the other experts from their owners (gather_state_to_first_rank). With ZeRO-1
// too, the state of everything but the routed experts is sharded over all ranks, each
// data-parallel piece (the ranges between two MoE layers' routed experts, at the same place of
// every rank's held buffers) on its own, while this rank's own experts' state stays whole with
// it; after the update each piece's shards are all-gathered, and a checkpoint's moments go whole
// to rank 0 alone to write (sharded() is false), each rank sending its shards and experts.
class AdamW {
 public:
  // decay_mask: empty (decay everything) or one flag per parameter. ops: the model's backend.
  AdamW(tensor::Ops& ops, std::size_t parameter_count, AdamWSettings settings,
        std::span<const std::uint8_t> decay_mask = {}, dist::Communicator* zero = nullptr,
        const ExpertOwnership* experts = nullptr);

  // One update at learning rate lr: params -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * params);
  // working (may be empty or alias params) receives the updated weights in its dtype.
  void step(tensor::Buf params, tensor::Buf working, tensor::Buf grads, float lr);

  std::int64_t steps_taken() const { return step_; }
  // The whole moments. Sharded: every rank calls gather_moments() (a collective) first. Not with
  // foreign experts (gather_state_to_first_rank).
  std::vector<float> copy_first_moment() const;
  std::vector<float> copy_second_moment() const;
  void gather_moments();
  // Frees what gather_moments() gathered (host memory the size of the model, twice).
  void release_gathered_moments();
  // For resuming from saved state: the moments and the step count (any number of ranks may have
  // written them: each rank takes its shard). given: the flat ranges m and v hold, packed in
  // order (empty: all of them); they must hold what this rank keeps (local_ranges()).
  void restore(std::span<const float> m, std::span<const float> v, std::int64_t steps,
               std::span<const FlatRange> given = {});
  // What this rank keeps m and v of and updates, in order.
  const std::vector<FlatRange>& local_ranges() const { return local_; }
  // Whether the ranks write their own parts of a checkpoint's optimizer state (ZeRO-1 without
  // expert parallelism; with it rank 0 writes the whole state, gathered).
  bool sharded() const { return zero_ != nullptr && experts_ == nullptr; }
  // How the state is shared out (one shard of everything without ZeRO-1), and this rank's first
  // `length` elements of m and v (its shard, then the tail: what its part of a checkpoint holds).
  const dist::ShardLayout& layout() const { return layout_; }
  void copy_own_moments(std::int64_t length, std::vector<float>& m, std::vector<float>& v) const;
  // Whether other ranks update some of the parameters (expert parallelism).
  bool has_foreign() const { return experts_ != nullptr; }
  // Every rank at once when has_foreign(), for a checkpoint that rank 0 writes: rank 0's host
  // copies of the whole flat parameters and moments. There `master` (its copy of the parameters,
  // 0 or stale at the other ranks' experts) takes those experts' values from their owners, and m
  // and v are filled. The other ranks send their parts straight from the backend (params: the
  // weights step() gets) and build no copy of the model: master, m and v stay empty there.
  void gather_state_to_first_rank(tensor::Buf params, std::vector<float>& master, std::vector<float>& m,
                                  std::vector<float>& v) const;
  // Bytes of optimizer state this rank keeps (m, v and the decay mask).
  std::int64_t state_bytes() const;

 private:
  void update(tensor::Buf params, tensor::Buf working, tensor::Buf grads, tensor::Buf m, tensor::Buf v,
              tensor::Buf mask, float lr);
  std::vector<float> whole(tensor::Buf moment);
  std::vector<float> own_ranges_on_host(tensor::Buf moment) const;
  // Where `range` (of the flat layout) is in b: all of it, or what this rank holds (held_).
  std::int64_t held_offset(tensor::Buf b, const FlatRange& range) const;
  void put_local(tensor::Buf moment, std::span<const float> packed, std::span<const FlatRange> given);

  tensor::Ops& ops_;
  AdamWSettings settings_;
  std::size_t count_;
  dist::Communicator* zero_ = nullptr;
  dist::ShardLayout layout_;
  const ExpertOwnership* experts_ = nullptr;
  std::vector<FlatRange> local_;  // what this rank updates, in order: m_, v_ and mask_ hold these
  std::vector<FlatRange> held_;   // expert parallelism: all but the other ranks' experts
  // ZeRO-1: the pieces sharded each on its own (zero_split.hpp): the whole layout, or with expert
  // parallelism the ranges between the routed experts.
  std::vector<FlatRange> data_parallel_;
  tensor::Arena arena_;
  tensor::Buf m_, v_, mask_;  // sharded: [shard, then tail]
  std::vector<float> gathered_m_, gathered_v_;
  std::int64_t step_ = 0;
};

// Global L2 norm of grads; if it exceeds max_norm (> 0), scale grads down to max_norm.
// Returns the norm before clipping (what metrics.jsonl logs).
float clip_grad_norm(tensor::Ops& ops, tensor::Buf grads, float max_norm);

}  // namespace dsk::train
