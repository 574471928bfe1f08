#include "model/expert_dispatch.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace dsk::model {

using tensor::Buf;
using tensor::DType;

ExpertSlice local_experts(const Architecture& a, int rank, int ranks) {
  const int count = a.n_routed / ranks;
  return ExpertSlice{rank * count, count};
}

// A token's K experts are distinct, so it sends one rank at most min(K, experts per rank) rows.
int64_t dispatch_capacity(const Architecture& a, int N, int ranks) {
  return int64_t(N) * std::min(a.top_k, a.n_routed / ranks) * ranks;
}

void carve_dispatch_plan(tensor::Arena& arena, DispatchPlan& plan, const Architecture& a, int N, int rank, int ranks) {
  plan.ranks = ranks;
  plan.local = local_experts(a, rank, ranks);
  plan.capacity = dispatch_capacity(a, N, ranks);
  plan.local_offsets = arena.take(DType::i32, plan.local.count + 1);
  plan.expert_major = arena.take(DType::i32, plan.capacity);
  plan.source_major = arena.take(DType::i32, plan.capacity);
  plan.counts_sent = arena.take(DType::i64, a.n_routed);
  plan.counts_received = arena.take(DType::i64, a.n_routed);
}

namespace {

std::vector<int64_t> times(const std::vector<int64_t>& rows, int C) {
  std::vector<int64_t> elements(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) elements[i] = rows[i] * C;
  return elements;
}

// received[p * L + e]: rows of local expert e from rank p, which arrive source-major. Fills the
// expert-major order (rank order within an expert) and its inverse, and the local offsets.
void order_expert_major(tensor::Ops& ops, DispatchPlan& plan, const std::vector<int64_t>& received) {
  const int P = plan.ranks, L = plan.local.count;
  std::vector<int64_t> block_start(size_t(P) * L);  // of (p, e) in the received rows
  int64_t at = 0;
  for (int p = 0; p < P; ++p)
    for (int e = 0; e < L; ++e) {
      block_start[size_t(p) * L + e] = at;
      at += received[size_t(p) * L + e];
    }
  std::vector<int32_t> offsets(L + 1, 0), expert_major(size_t(plan.received)), source_major(size_t(plan.received));
  int32_t row = 0;
  for (int e = 0; e < L; ++e) {
    offsets[e] = row;
    for (int p = 0; p < P; ++p)
      for (int64_t i = 0; i < received[size_t(p) * L + e]; ++i, ++row) {
        const int64_t from = block_start[size_t(p) * L + e] + i;
        expert_major[size_t(row)] = int32_t(from);
        source_major[size_t(from)] = row;
      }
  }
  offsets[L] = row;
  ops.copy_from_host(plan.local_offsets, offsets.data());
  if (plan.received == 0) return;
  ops.copy_from_host(plan.expert_major.slice(0, plan.received), expert_major.data());
  ops.copy_from_host(plan.source_major.slice(0, plan.received), source_major.data());
}

}  // namespace

void plan_dispatch(tensor::Ops& ops, RowExchange& exchange, DispatchPlan& plan, Buf offsets, const Architecture& a) {
  const int E = a.n_routed, P = plan.ranks, L = plan.local.count;
  std::vector<int32_t> routed(size_t(E) + 1);
  ops.copy_to_host(routed.data(), offsets);
  // Sorted by expert, so rank q's rows are one block: those of experts [q*L, (q+1)*L).
  std::vector<int64_t> counts(E);
  plan.send_rows.assign(P, 0);
  for (int e = 0; e < E; ++e) {
    counts[e] = routed[e + 1] - routed[e];
    plan.send_rows[e / L] += counts[e];
  }
  ops.copy_from_host(plan.counts_sent, counts.data());
  const std::vector<int64_t> per_rank(P, L);
  exchange.all_to_all(plan.counts_sent, per_rank, plan.counts_received, per_rank);
  std::vector<int64_t> received(E);
  ops.copy_to_host(received.data(), plan.counts_received);
  plan.receive_rows.assign(P, 0);
  plan.received = 0;
  for (int p = 0; p < P; ++p)
    for (int e = 0; e < L; ++e) plan.receive_rows[p] += received[size_t(p) * L + e];
  for (int64_t rows : plan.receive_rows) plan.received += rows;
  if (plan.received > plan.capacity)
    throw InternalError(str("expert parallelism: ", plan.received, " rows for rank ", exchange.rank(),
                            "'s experts, more than the ", plan.capacity, " planned (do the ranks run batches of "
                            "different shapes?)"));
  order_expert_major(ops, plan, received);
}

void dispatch_rows(tensor::Ops& ops, RowExchange& exchange, const DispatchPlan& plan, Buf out, Buf rows, Buf scratch,
                   int C) {
  exchange.all_to_all(rows, times(plan.send_rows, C), scratch, times(plan.receive_rows, C));
  if (plan.received > 0) ops.moe_gather(out, scratch, plan.expert_major, int(plan.received), 1, C);
}

void return_rows(tensor::Ops& ops, RowExchange& exchange, const DispatchPlan& plan, Buf out, Buf rows, Buf scratch,
                 int C) {
  if (plan.received > 0) ops.moe_gather(scratch, rows, plan.source_major, int(plan.received), 1, C);
  exchange.all_to_all(scratch, times(plan.receive_rows, C), out, times(plan.send_rows, C));
}

}  // namespace dsk::model
