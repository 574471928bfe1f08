// dsk-bench-nccl's results and how they are printed: the nccl-tests table (stdout, for people
// who read nccl-tests tables without thinking), the straggler report, the topology summary,
// and the same numbers as JSON and CSV for scripts.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dist/bench_options.hpp"

namespace dsk::dist {

// One placement (out-of-place or in-place) of one size, over every rank.
struct Measurement {
  bool measured = false;  // false: not applicable (in-place alltoall, sendrecv)
  double time_us = 0;     // per iteration, combined over ranks as -a says
  double algbw = 0;       // GB/s (1e9 bytes), size / time
  double busbw = 0;       // algbw * bus_bandwidth_factor
  int64_t wrong = -1;     // elements that differ from the expected value, summed over ranks; -1: not checked
  int slowest_rank = 0, fastest_rank = 0;
  double slowest_us = 0, fastest_us = 0;
};

struct Row {
  Collective collective;
  DataType type;
  ReduceOp op;
  int root;  // -1 when the collective has none
  uint64_t bytes;
  uint64_t count;
  Measurement out_of_place, in_place;
};

// per_rank_us[r]: rank r's time per iteration; wrong: summed over ranks, or -1.
Measurement summarize(const std::vector<double>& per_rank_us, int average, uint64_t bytes, double bus_factor,
                      int64_t wrong);

struct GpuInfo {
  int rank;
  std::string host;
  int device;
  std::string name;
  std::string bus_id;
};
struct Topology {
  std::vector<GpuInfo> gpus;
  std::vector<std::string> links;  // "0-1 NVLink x18", one per pair of GPUs
  std::string nccl_version;
  std::vector<std::pair<std::string, std::string>> nccl_environment;  // the NCCL_* variables in effect
};

std::string format_topology(const Topology& topology);
std::string format_table_header(Collective c, int ranks);
std::string format_row(const Row& row);
// The mean bus bandwidth over every measured cell, as nccl-tests' "# Avg bus bandwidth" line.
double average_bus_bandwidth(const std::vector<Row>& rows);
std::string format_average(const std::vector<Row>& rows);
// "# size  placement  slowest rank (us)  fastest rank (us)  spread": one line per row.
std::string format_stragglers(const std::vector<Row>& rows);

std::string to_json(const std::vector<Row>& rows, const Topology& topology, const BenchOptions& options, int ranks);
std::string to_csv(const std::vector<Row>& rows);

}  // namespace dsk::dist
