// The CPU build of dsk-bench-nccl: everything but the GPUs works (flags, rendezvous, the flag
// check across ranks), then every rank stops with exit 4 naming the reason.
#ifndef DSK_DIST_NCCL

#include "core/error.hpp"
#include "dist/bench_session.hpp"

namespace dsk::dist {

std::string probe_gpus(const LaunchInfo&, int) {
  return "this dsk-bench-nccl was built without CUDA and NCCL (configure with -DDSK_CUDA=ON on a machine with "
         "the CUDA toolkit and NCCL)";
}

std::vector<Row> run_nccl_benchmark(const BenchOptions&, const LaunchInfo&, Rendezvous&, Topology&,
                                    const std::function<void(const std::string&)>&) {
  throw ResourceError("this dsk-bench-nccl was built without CUDA and NCCL");
}

}  // namespace dsk::dist

#endif
