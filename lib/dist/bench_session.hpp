// What the ranks of one dsk-bench-nccl run tell each other through the rendezvous, and how this
// process's GPUs are driven. Every process:
//   1. exchanges its flag signature and the result of probing its GPUs (hello_blob):
//      different flags are a UsageError (exit 2) naming both ranks; a rank without a usable GPU
//      or NCCL makes every rank stop with that rank's reason (exit 4);
//   2. runs the sweep (nccl_runner.cu), exchanging per-size timings so that rank 0 prints the
//      table with -a's combination of ranks and the straggler report.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "dist/bench_options.hpp"
#include "dist/bench_report.hpp"
#include "dist/launch.hpp"
#include "dist/rendezvous.hpp"

namespace dsk::dist {

std::string hello_blob(const std::string& signature, const std::string& probe_error);
// Throws UsageError when two ranks' signatures differ, then ResourceError for the first rank
// whose probe failed.
void check_hellos(const std::vector<std::string>& blobs);

// Per-size exchange: this process's time per iteration of each of its GPUs and its wrong-element
// count. decode_timings concatenates every process's GPU times in rank order.
std::string encode_timings(const std::vector<double>& gpu_times_us, int64_t wrong);
void decode_timings(const std::vector<std::string>& blobs, std::vector<double>& times_us, int64_t& wrong);

// Empty when this process can drive gpus_per_process GPUs starting at local_rank * gpus_per_process
// with NCCL; else why not ("no CUDA device", "built without CUDA and NCCL", ...).
std::string probe_gpus(const LaunchInfo& launch, int gpus_per_process);

// Runs every collective x type x op x size on this process's GPUs. Rank 0 calls print with
// each piece of the table as it is measured (topology, header, rows, stragglers, average).
std::vector<Row> run_nccl_benchmark(const BenchOptions& options, const LaunchInfo& launch, Rendezvous& rendezvous,
                                    Topology& topology, const std::function<void(const std::string&)>& print);

}  // namespace dsk::dist
