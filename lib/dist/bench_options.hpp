// dsk-bench-nccl's settings and the pure logic around them: names of collectives, dtypes and
// reduction ops, the size sweep, element counts, the bus-bandwidth factors, and the signature
// that every rank exchanges so that ranks started with different flags are caught.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dist/collectives.hpp"

namespace dsk::dist {

struct BenchOptions {
  std::vector<Collective> collectives{Collective::all_reduce};
  std::vector<DataType> data_types{DataType::float32};
  std::vector<ReduceOp> ops{ReduceOp::sum};
  uint64_t min_bytes = 32ull << 20;  // -b
  uint64_t max_bytes = 32ull << 20;  // -e
  uint64_t step_bytes = 1ull << 20;  // -i, used when step_factor is 0
  uint64_t step_factor = 0;          // -f
  int gpus_per_process = 1;          // -g
  int iterations = 20;               // -n
  int warmup_iterations = 5;         // -w
  bool check = true;                 // -c
  bool blocking = false;             // -z
  int root = 0;                      // -r
  int average = 1;                   // -a: 0 rank 0's time, 1 mean, 2 min, 3 max over ranks

  // UsageError naming the flag when a value is out of range.
  void validate() const;
  // The flags that must agree on every rank, as one canonical line.
  std::string signature() const;
};

const char* collective_name(Collective c);
const char* op_name(ReduceOp op);
const char* type_name(DataType t);  // nccl-tests' names: float, half, bfloat16, f8e4m3, f8e5m2, int32, int64
int type_size(DataType t);
bool is_low_precision(DataType t);

// "all_reduce,broadcast" or "all"; UsageError listing the valid names otherwise.
std::vector<Collective> parse_collectives(const std::string& text);
// "float", "f32", "half", "f16", "bf16", "fp8_e4m3", "int32", ... or "all".
std::vector<DataType> parse_data_types(const std::string& text);
std::vector<ReduceOp> parse_ops(const std::string& text);

// The sizes of a sweep: min, then *factor (factor > 1) or +step, while <= max.
std::vector<uint64_t> size_sweep(uint64_t min_bytes, uint64_t max_bytes, uint64_t step_bytes, uint64_t step_factor);

// Elements of the whole vector for a size: bytes / type size, rounded down to a multiple of the
// rank count where the vector is split into per-rank blocks. 0 means the size is too small.
uint64_t element_count(Collective c, DataType t, uint64_t bytes, int ranks);

// busbw = algbw * factor (nccl-tests' PERFORMANCE.md): all_reduce 2(n-1)/n; all_gather,
// reduce_scatter, alltoall (n-1)/n; broadcast, reduce, sendrecv 1.
double bus_bandwidth_factor(Collective c, int ranks);

bool has_in_place(Collective c);  // alltoall and sendrecv are measured out-of-place only

}  // namespace dsk::dist
