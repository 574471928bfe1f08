// dsk-bench-nccl: NCCL collective bandwidth and latency, in the nccl-tests tradition (same flags,
// same table), plus exact checking, JSON/CSV, a straggler report and a topology summary.
// Parses flags and calls lib/dist; every rank runs this same main().
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/units.hpp"
#include "dist/bench_session.hpp"
#include "dist/launch.hpp"
#include "dist/local_launch.hpp"
#include "dist/rendezvous.hpp"

namespace {

using namespace dsk;
using namespace dsk::dist;

struct ToolFlags {
  std::string collectives = "all_reduce";
  std::string min_bytes = "32M", max_bytes = "32M", step_bytes = "1M";
  uint64_t step_factor = 0;
  std::string data_types = "float", ops = "sum";
  int check = 1, blocking = 0;
  std::string json_path, csv_path;
  int nproc_per_node = 0;
  double rendezvous_timeout = 120;
};

void add_bench_flags(CLI::App& app, ToolFlags& flags, BenchOptions& options) {
  app.add_option("collectives", flags.collectives,
                 "Comma-separated: all_reduce all_gather reduce_scatter broadcast reduce alltoall sendrecv, or all")
      ->capture_default_str();
  app.add_option("-b,--minbytes", flags.min_bytes, "Smallest size (8, 64K, 1M, 8G)")->capture_default_str();
  app.add_option("-e,--maxbytes", flags.max_bytes, "Largest size")->capture_default_str();
  app.add_option("-i,--stepbytes", flags.step_bytes, "Add this many bytes per step (when -f is not given)")
      ->capture_default_str();
  app.add_option("-f,--stepfactor", flags.step_factor, "Multiply the size by this per step")
      ->check(cli::numeric<uint64_t>());
  app.add_option("-g,--ngpus", options.gpus_per_process, "GPUs driven by each process")
      ->capture_default_str()->check(cli::numeric<int>(1));
  app.add_option("-n,--iters", options.iterations, "Timed iterations per size")
      ->capture_default_str()->check(cli::numeric<int>(1));
  app.add_option("-w,--warmup_iters", options.warmup_iterations, "Untimed iterations first")
      ->capture_default_str()->check(cli::numeric<int>(0));
  app.add_option("-c,--check", flags.check, "1: verify every element against its exact expected value")
      ->capture_default_str()->check(cli::numeric<int>(0, 1));
  app.add_option("-z,--blocking", flags.blocking, "1: wait for each collective to finish before the next")
      ->capture_default_str()->check(cli::numeric<int>(0, 1));
  app.add_option("-d,--datatype", flags.data_types,
                 "float half bfloat16 f8e4m3 f8e5m2 int32 int64 (or f32 f16 bf16 ...), comma-separated, or all")
      ->capture_default_str();
  app.add_option("-o,--op", flags.ops, "sum prod max min avg, comma-separated, or all")->capture_default_str();
  app.add_option("-r,--root", options.root, "Root rank of broadcast and reduce")
      ->capture_default_str()->check(cli::numeric<int>(0));
  app.add_option("-a,--average", options.average, "Time across ranks: 0 rank 0, 1 mean, 2 min, 3 max")
      ->capture_default_str()->check(cli::numeric<int>(0, 3));
  app.add_option("--json", flags.json_path, "Also write the results as JSON to FILE");
  app.add_option("--csv", flags.csv_path, "Also write the results as CSV to FILE");
  app.add_option("--nproc-per-node", flags.nproc_per_node,
                 "Start N processes on this host (one GPU each unless -g), with a TCP rendezvous")
      ->check(cli::numeric<int>(1));
  app.add_option("--rendezvous-timeout", flags.rendezvous_timeout,
                 "Seconds to wait for the other ranks (and for each exchange)")
      ->capture_default_str()->check(cli::numeric<double>());
}

BenchOptions resolve(const ToolFlags& flags, BenchOptions options) {
  options.collectives = parse_collectives(flags.collectives);
  options.data_types = parse_data_types(flags.data_types);
  options.ops = parse_ops(flags.ops);
  options.min_bytes = parse_size(flags.min_bytes, "-b/--minbytes");
  options.max_bytes = parse_size(flags.max_bytes, "-e/--maxbytes");
  options.step_bytes = parse_size(flags.step_bytes, "-i/--stepbytes");
  options.step_factor = flags.step_factor;
  if (flags.check != 0 && flags.check != 1) throw UsageError("-c/--check: expected 0 or 1");
  if (flags.blocking != 0 && flags.blocking != 1) throw UsageError("-z/--blocking: expected 0 or 1");
  options.check = flags.check == 1;
  options.blocking = flags.blocking == 1;
  if (flags.rendezvous_timeout <= 0) throw UsageError("--rendezvous-timeout: must be more than 0 seconds");
  options.validate();
  return options;
}

void print_out(const std::string& text) {
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
}

int run_rank(const ToolFlags& flags, const BenchOptions& options) {
  LaunchInfo launch = detect_launch(process_environment());
  log_debug("launch: ", launch.launcher, " rank ", launch.rank, " of ", launch.world_size, ", local rank ",
            launch.local_rank, ", rendezvous ", launch.master_addr, ":", launch.master_port);
  std::unique_ptr<Rendezvous> rendezvous = connect_rendezvous(launch, flags.rendezvous_timeout);
  std::string probe = probe_gpus(launch, options.gpus_per_process);
  check_hellos(rendezvous->all_gather(hello_blob(options.signature(), probe)));

  Topology topology;
  auto print = launch.rank == 0 ? print_out : [](const std::string&) {};
  std::vector<Row> rows = run_nccl_benchmark(options, launch, *rendezvous, topology, print);
  if (launch.rank != 0) return 0;
  int ranks = launch.world_size * options.gpus_per_process;
  if (!flags.json_path.empty()) write_file_atomic(flags.json_path, to_json(rows, topology, options, ranks));
  if (!flags.csv_path.empty()) write_file_atomic(flags.csv_path, to_csv(rows));
  int64_t wrong = 0;
  for (const Row& row : rows)
    for (const Measurement* m : {&row.out_of_place, &row.in_place})
      if (m->measured && m->wrong > 0) wrong += m->wrong;
  if (wrong > 0) throw DataError(str("check failed: ", wrong, " elements differ from their expected values (#wrong)"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"NCCL collective bandwidth and latency, nccl-tests style", "dsk-bench-nccl"};
  cli::CommonOptions common;
  cli::add_common_flags(app, common);
  ToolFlags flags;
  BenchOptions options;
  add_bench_flags(app, flags, options);
  cli::set_examples(app, {
      "dsk-bench-nccl all_reduce -b 8 -e 8G -f 2 -g 2",
      "dsk-bench-nccl all -b 8 -e 1G -f 2 --nproc-per-node 8 --json results.json",
      "mpirun -np 16 dsk-bench-nccl all_gather -b 1M -e 4G -f 4 -d bf16",
      "srun --ntasks-per-node 8 dsk-bench-nccl reduce_scatter -b 8 -e 8G -f 2 --csv out.csv",
  });
  return cli::run(app, argc, argv, common, [&] {
    BenchOptions resolved = resolve(flags, options);
    if (flags.nproc_per_node < 0) throw UsageError("--nproc-per-node: must be at least 1");
    if (flags.nproc_per_node > 0) return run_local_processes(flags.nproc_per_node, child_arguments(argc, argv));
    return run_rank(flags, resolved);
  });
}
