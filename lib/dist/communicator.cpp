#include "dist/communicator.hpp"

#include "core/error.hpp"

namespace dsk::dist {

#ifdef DSK_DIST_MPI
std::unique_ptr<Communicator> make_mpi_communicator(int expected_ranks, double timeout_seconds);  // mpi_communicator.cpp
#endif
#ifdef DSK_DIST_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, tensor::Ops& ops,  // cuda/
                                                     double timeout_seconds);
#endif

namespace {

class SingleCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "single process"; }
  void all_reduce_sum(tensor::Buf) override {}
  void reduce_scatter_sum(tensor::Buf, int64_t) override {}
  void all_gather(tensor::Buf, int64_t) override {}
  double all_reduce_sum(double value) override { return value; }
  void barrier() override {}
};

}  // namespace

std::unique_ptr<Communicator> make_single_communicator() { return std::make_unique<SingleCommunicator>(); }

std::unique_ptr<Communicator> make_communicator(const LaunchInfo& launch, tensor::Ops& ops, double timeout_seconds) {
  if (launch.world_size == 1) return make_single_communicator();
  if (ops.device() == tensor::Device::cuda) {
#ifdef DSK_DIST_NCCL
    return make_nccl_communicator(launch, ops, timeout_seconds);
#else
    throw UsageError("several CUDA ranks need NCCL, and this dsk was built without it");
#endif
  }
  // The CPU backend's ranks exchange gradients through MPI's collectives: they must be MPI's.
  if (launch.launcher != "mpi")
    throw UsageError(str(launch.world_size, " ranks (from the ", launch.launcher,
                         " launcher) on the CPU backend: CPU ranks communicate through MPI, start them with "
                         "mpirun -np N (or train on GPUs)"));
#ifdef DSK_DIST_MPI
  return make_mpi_communicator(launch.world_size, timeout_seconds);
#else
  throw UsageError("several CPU ranks need MPI, and this dsk was built without it (install OpenMPI, rebuild)");
#endif
}

}  // namespace dsk::dist
