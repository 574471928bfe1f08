// Expert parallelism's half inside the model (dist.expert_parallel): the routed experts of every
// MoE layer are split over the P ranks of the run, rank r computing experts [r*E/P, (r+1)*E/P).
// Each rank routes its own tokens as before; its (token, expert) rows, already sorted by expert
// (moe_permute), go to the ranks of their experts in one all-to-all, each rank runs its experts
// over the rows it received from everyone, and a second all-to-all brings the outputs back to the
// tokens' ranks, where they are combined as on one rank. Backward runs the same two exchanges the
// other way round. The per-expert row counts travel first (a small all-to-all), so that every
// rank knows what it will receive; that costs one host round trip per MoE layer and pass.
//
// Rows arrive grouped by source rank, then by expert: they are reordered expert-major (rank
// order within an expert, as one rank would see its micro-batches one after another) so that the
// grouped matmul sees each expert's rows contiguously.
//
// The model knows nothing of communicators: a RowExchange does the all-to-all
// (lib/train/expert_parallel.cpp implements it over dist::Communicator).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/architecture.hpp"
#include "tensor/arena.hpp"
#include "tensor/ops.hpp"

namespace dsk::model {

class RowExchange {
 public:
  virtual ~RowExchange() = default;
  virtual int rank() const = 0;
  virtual int ranks() const = 0;
  // Variable all-to-all over backend Bufs, as dist::Communicator::all_to_all: send holds ranks()
  // blocks (block q, send_counts[q] elements, for rank q); recv gets rank p's block for us at
  // the sum of recv_counts[0..p). Counts are elements.
  virtual void all_to_all(tensor::Buf send, std::span<const int64_t> send_counts, tensor::Buf recv,
                          std::span<const int64_t> recv_counts) = 0;
};

// The local experts of a rank: [first, first + count).
struct ExpertSlice {
  int first = 0, count = 0;
};
ExpertSlice local_experts(const Architecture& a, int rank, int ranks);

// One MoE layer's exchange, decided when it routes (kept for backward and recomputation). At
// most `capacity` rows arrive: from every rank, N tokens with as many rows for this rank's
// experts as a token can have (min(K, E/ranks): its K experts are distinct).
struct DispatchPlan {
  int ranks = 1;
  ExpertSlice local;
  int64_t capacity = 0;
  std::vector<int64_t> send_rows, receive_rows;  // per rank
  int64_t received = 0;                          // rows this rank's experts run
  tensor::Buf local_offsets;                     // i32 [local.count + 1]: expert e's rows, expert-major
  tensor::Buf expert_major;                      // i32 [capacity]: received row of each expert-major row
  tensor::Buf source_major;                      // i32 [capacity]: the inverse
  tensor::Buf counts_sent, counts_received;      // i64 [E]: rows per (rank, local expert), exchanged
};

int64_t dispatch_capacity(const Architecture& a, int N, int ranks);
void carve_dispatch_plan(tensor::Arena& arena, DispatchPlan& plan, const Architecture& a, int N, int rank, int ranks);

// From the layer's routing (offsets i32 [E+1] of moe_permute, rows sorted by global expert):
// exchanges the counts and fills the plan. Every rank calls it for the same layer.
void plan_dispatch(tensor::Ops& ops, RowExchange& exchange, DispatchPlan& plan, tensor::Buf offsets,
                   const Architecture& a);
// rows [N*K, C] sorted by global expert -> out [received, C], this rank's experts' rows expert-major
// (through scratch).
void dispatch_rows(tensor::Ops& ops, RowExchange& exchange, const DispatchPlan& plan, tensor::Buf out,
                   tensor::Buf rows, tensor::Buf scratch, int C);
// The way back: rows [received, C] expert-major -> out [N*K, C] in the order dispatch_rows read them.
void return_rows(tensor::Ops& ops, RowExchange& exchange, const DispatchPlan& plan, tensor::Buf out,
                 tensor::Buf rows, tensor::Buf scratch, int C);

}  // namespace dsk::model
