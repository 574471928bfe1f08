// The collectives dsk-bench-nccl measures, each described by what differs between them (the
// nccl-tests shape: one harness, a small description per collective):
//   - how a benchmark size in bytes becomes element counts (per rank, in and out),
//   - the bus-bandwidth factor that turns algorithm bandwidth into link bandwidth,
//   - what each rank's input holds and what each rank's output must hold afterwards.
// Sizes follow nccl-tests: "size" is count * element size, where count is the whole vector
// (all_gather's output, reduce_scatter's input, alltoall's per-rank buffer).
//
// Values are small integers so that every reduction is exact in every dtype (fp8 included):
//   sum   inputs in {0,1} (fp8) or {0..3}: a sum over n ranks stays an exactly representable integer
//   prod  all ones but a single 2 per element: the product is 1 or 2
//   max/min inputs in {0..4}
//   avg   every rank holds the same value v in {0..2}: the mean is v
//   data movement (broadcast, all_gather, alltoall, sendrecv): (k + 3r) mod 7
// These functions are __host__ __device__: the unit tests check them on the CPU and the CUDA
// runner initialises and verifies buffers with the very same code.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define DSK_HOST_DEVICE __host__ __device__
#else
#define DSK_HOST_DEVICE
#endif

namespace dsk::dist {

enum class Collective : int { all_reduce, all_gather, reduce_scatter, broadcast, reduce, alltoall, sendrecv };
enum class ReduceOp : int { sum, prod, max, min, avg };
enum class DataType : int { float32, float16, bfloat16, float8_e4m3, float8_e5m2, int32, int64 };

inline constexpr int collective_count = 7;
inline constexpr int reduce_op_count = 5;
inline constexpr int data_type_count = 7;

// What a rank's buffers hold for one benchmark size.
struct Layout {
  Collective collective;
  ReduceOp op;
  bool low_precision;  // fp8: reductions must stay in {0..n}
  int ranks;
  int root;
  uint64_t count;  // elements of the whole vector (the table's "count")
};

DSK_HOST_DEVICE inline bool is_reduction(Collective c) {
  return c == Collective::all_reduce || c == Collective::reduce_scatter || c == Collective::reduce;
}

// Elements each rank sends and receives (the buffers' lengths).
DSK_HOST_DEVICE inline uint64_t input_count(const Layout& l) {
  return l.collective == Collective::all_gather ? l.count / l.ranks : l.count;
}
DSK_HOST_DEVICE inline uint64_t output_count(const Layout& l) {
  return l.collective == Collective::reduce_scatter ? l.count / l.ranks : l.count;
}

// The value rank r contributes at position k of the whole vector, for reductions.
DSK_HOST_DEVICE inline double contribution(const Layout& l, int r, uint64_t k) {
  switch (l.op) {
    case ReduceOp::sum: return static_cast<double>((k + r) % (l.low_precision ? 2 : 4));
    case ReduceOp::prod: return k % (l.ranks + 1) == static_cast<uint64_t>(r) ? 2.0 : 1.0;
    case ReduceOp::max:
    case ReduceOp::min: return static_cast<double>((k + 3 * static_cast<uint64_t>(r)) % 5);
    case ReduceOp::avg: return static_cast<double>(k % 3);
  }
  return 0;
}

DSK_HOST_DEVICE inline double moved_value(int r, uint64_t k) {
  return static_cast<double>((k + 3 * static_cast<uint64_t>(r)) % 7);
}

DSK_HOST_DEVICE inline double reduced(const Layout& l, uint64_t k) {
  double result = contribution(l, 0, k);
  for (int r = 1; r < l.ranks; ++r) {
    double v = contribution(l, r, k);
    switch (l.op) {
      case ReduceOp::sum:
      case ReduceOp::avg: result += v; break;
      case ReduceOp::prod: result *= v; break;
      case ReduceOp::max: result = v > result ? v : result; break;
      case ReduceOp::min: result = v < result ? v : result; break;
    }
  }
  return l.op == ReduceOp::avg ? result / l.ranks : result;
}

// Input element i of rank r (i < input_count).
DSK_HOST_DEVICE inline double input_value(const Layout& l, int r, uint64_t i) {
  switch (l.collective) {
    case Collective::all_reduce:
    case Collective::reduce:
    case Collective::reduce_scatter: return contribution(l, r, i);
    case Collective::broadcast:
    case Collective::sendrecv: return moved_value(r, i);
    case Collective::all_gather: return moved_value(r, r * input_count(l) + i);
    case Collective::alltoall: return moved_value(r, i);
  }
  return 0;
}

// Whether rank r's output is defined afterwards (reduce: only the root's).
DSK_HOST_DEVICE inline bool output_checked(const Layout& l, int r) {
  return l.collective != Collective::reduce || r == l.root;
}

// Output element i of rank r (i < output_count) as it must be after the collective.
DSK_HOST_DEVICE inline double expected_value(const Layout& l, int r, uint64_t i) {
  uint64_t chunk = l.count / l.ranks;  // per-peer block of all_gather, reduce_scatter, alltoall
  switch (l.collective) {
    case Collective::all_reduce:
    case Collective::reduce: return reduced(l, i);
    case Collective::reduce_scatter: return reduced(l, r * chunk + i);
    case Collective::broadcast: return moved_value(l.root, i);
    case Collective::all_gather: return moved_value(static_cast<int>(i / chunk), i);
    case Collective::alltoall: {  // block p of my output is block r of peer p's input
      int peer = static_cast<int>(i / chunk);
      return moved_value(peer, r * chunk + i % chunk);
    }
    case Collective::sendrecv: return moved_value((r + l.ranks - 1) % l.ranks, i);  // from the previous rank of the ring
  }
  return 0;
}

// Where an in-place run puts the input inside the output buffer, in elements (NCCL's convention:
// all_gather reads its input from its own block of the output; reduce_scatter writes its output
// into its own block of the input). in-place alltoall and sendrecv are not measured.
DSK_HOST_DEVICE inline uint64_t in_place_input_offset(const Layout& l, int r) {
  return l.collective == Collective::all_gather ? r * input_count(l) : 0;
}
DSK_HOST_DEVICE inline uint64_t in_place_output_offset(const Layout& l, int r) {
  return l.collective == Collective::reduce_scatter ? r * output_count(l) : 0;
}

}  // namespace dsk::dist
