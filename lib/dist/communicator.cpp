#include "dist/communicator.hpp"

#include "core/error.hpp"
#include "tensor/cpu_ops.hpp"

namespace dsk::dist {

#ifdef DSK_DIST_MPI
std::unique_ptr<Communicator> make_mpi_communicator(int expected_ranks, double timeout_seconds);  // mpi_communicator.cpp
#endif
#ifdef DSK_DIST_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, tensor::Ops& ops,  // cuda/
                                                     double timeout_seconds);
#endif

namespace {

// A collective that was over when it was started: one rank's, or the blocking forms' below.
struct FinishedCollective : PendingCollective {
  void wait() override {}
};

std::unique_ptr<PendingCollective> finished() { return std::make_unique<FinishedCollective>(); }

class SingleCommunicator : public Communicator {
 public:
  explicit SingleCommunicator(tensor::Ops* ops) : ops_(ops) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "single process"; }
  void all_reduce_sum(tensor::Buf) override {}
  std::unique_ptr<PendingCollective> start_reduce_scatter_sum(tensor::Buf, std::span<const int64_t> counts) override {
    if (counts.size() != 1) throw InternalError("reduce-scatter on one rank: one block, the rank's own");
    return finished();
  }
  void all_gather(tensor::Buf, int64_t) override {}
  void all_to_all(tensor::Buf send, std::span<const int64_t> send_counts, tensor::Buf recv,
                  std::span<const int64_t> recv_counts) override {
    if (send_counts.size() != 1 || recv_counts.size() != 1 || send_counts[0] != recv_counts[0])
      throw InternalError("all_to_all on one rank: one block, received as sent");
    if (send_counts[0] == 0) return;
    if (!ops_) {
      cpu_ = tensor::make_cpu_ops();
      ops_ = cpu_.get();
    }
    ops_->copy(recv.slice(0, recv_counts[0]), send.slice(0, send_counts[0]));
  }
  double all_reduce_sum(double value) override { return value; }
  void barrier() override {}
  std::unique_ptr<Communicator> split(int, int) override { return std::make_unique<SingleCommunicator>(ops_); }

 private:
  tensor::Ops* ops_;
  std::unique_ptr<tensor::Ops> cpu_;
};

}  // namespace

std::unique_ptr<PendingCollective> Communicator::start_all_reduce_sum(tensor::Buf values) {
  all_reduce_sum(values);
  return finished();
}

std::unique_ptr<PendingCollective> Communicator::start_all_gather(tensor::Buf whole, int64_t shard) {
  all_gather(whole, shard);
  return finished();
}

std::unique_ptr<Communicator> make_single_communicator(tensor::Ops* ops) {
  return std::make_unique<SingleCommunicator>(ops);
}

std::unique_ptr<Communicator> make_communicator(const LaunchInfo& launch, tensor::Ops& ops, double timeout_seconds) {
  if (launch.world_size == 1) return make_single_communicator(&ops);
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
