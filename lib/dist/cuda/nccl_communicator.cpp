// The CUDA backend's collectives through NCCL, enqueued on the backend's stream so that they run
// in order with the ops around them (no host synchronisation). One rank per GPU; rank 0 makes the
// NCCL unique id and the rendezvous (TCP, or MPI under mpirun) hands it to the others.
//
// A failing rank must not hang the others (NCCL kernels wait for peers forever): with several
// ranks a watchdog thread polls ncclCommGetAsyncError and, behind an event recorded after each
// collective, whether it finished; on an error, or a collective unfinished after dist.timeout, it
// says which rank and why, aborts the communicator (ncclCommAbort) and ends the process (exit 5),
// so that the launcher stops the job.
#ifdef DSK_DIST_NCCL

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.hpp"
#include "core/log.hpp"
#include "dist/communicator.hpp"
#include "dist/rendezvous.hpp"
#include "dist/watchdog.hpp"

namespace dsk::dist {
namespace {

using tensor::Buf;
using tensor::DType;

void check(ncclResult_t result, const char* what) {
  if (result != ncclSuccess) throw RemoteError(str(what, " failed: ", ncclGetErrorString(result)));
}

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return ncclFloat32;
    case DType::bf16: return ncclBfloat16;
    case DType::i64: return ncclInt64;
    case DType::i32: return ncclInt32;
    default: throw InternalError(str("NCCL collectives over ", tensor::dtype_name(dtype), " are not supported"));
  }
}

// Watches the collectives of one communicator from its own thread (see the top of the file).
class NcclWatchdog {
 public:
  NcclWatchdog(ncclComm_t comm, cudaStream_t stream, double timeout_seconds, int rank, int ranks)
      : comm_(comm), stream_(stream), timeout_(timeout_seconds), rank_(rank), ranks_(ranks) {
    if (cudaGetDevice(&device_) != cudaSuccess) throw InternalError("cudaGetDevice failed");
    thread_ = std::thread([this] { run(); });
  }
  ~NcclWatchdog() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    stopped_.notify_all();
    thread_.join();
    for (const Pending& pending : pending_) cudaEventDestroy(pending.done);
  }
  NcclWatchdog(const NcclWatchdog&) = delete;
  NcclWatchdog& operator=(const NcclWatchdog&) = delete;

  // After a collective is enqueued on the stream: watch it until the GPU has done it.
  void enqueued(const char* what) {
    cudaEvent_t done = nullptr;
    if (cudaEventCreateWithFlags(&done, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventRecord(done, stream_) != cudaSuccess)
      throw InternalError(str("recording a CUDA event after ", what, " failed"));
    std::lock_guard lock(mutex_);
    pending_.push_back({done, Clock::now(), what});
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    cudaEvent_t done;
    Clock::time_point since;
    const char* what;
  };

  [[noreturn]] void stop_job(const std::string& message) {
    log_error(message);
    ncclCommAbort(comm_);
    std::_Exit(int(ExitCode::remote));  // the main thread may be blocked on the aborted work
  }

  void run() {
    cudaSetDevice(device_);
    const auto tick = std::chrono::milliseconds(100);
    std::unique_lock lock(mutex_);
    auto last_wake = Clock::now();
    while (!stopped_.wait_for(lock, tick, [this] { return stopping_; })) {
      const auto now = Clock::now();
      // A much longer gap than the tick: this process itself was frozen, not the others' fault.
      if (now - last_wake > 30 * tick)
        for (Pending& pending : pending_) pending.since += now - last_wake - tick;
      last_wake = now;
      ncclResult_t state = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &state) == ncclSuccess && state != ncclSuccess && state != ncclInProgress)
        stop_job(str("rank ", rank_, ": NCCL reports ", ncclGetErrorString(state), " (", ncclGetLastError(comm_),
                     "): another rank failed or the link to it broke; stopping all ranks"));
      while (!pending_.empty() && cudaEventQuery(pending_.front().done) == cudaSuccess) {
        cudaEventDestroy(pending_.front().done);
        pending_.pop_front();
      }
      if (!pending_.empty() && now - pending_.front().since > timeout_)
        stop_job(Watchdog::timeout_message(rank_, ranks_, pending_.front().what, timeout_.count()));
    }
  }

  ncclComm_t comm_;
  cudaStream_t stream_;
  const std::chrono::duration<double> timeout_;
  const int rank_, ranks_;
  int device_ = 0;
  std::mutex mutex_;
  std::condition_variable stopped_;
  bool stopping_ = false;
  std::deque<Pending> pending_;
  std::thread thread_;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const LaunchInfo& launch, tensor::Ops& ops, double timeout_seconds)
      : ops_(ops), rank_(launch.rank), size_(launch.world_size) {
    stream_ = static_cast<cudaStream_t>(ops.native_stream());
    std::unique_ptr<Rendezvous> rendezvous = connect_rendezvous(launch, timeout_seconds);
    ncclUniqueId id{};
    if (rank_ == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    const std::vector<std::string> blobs =
        rendezvous->all_gather(rank_ == 0 ? std::string(id.internal, sizeof id.internal) : std::string());
    if (blobs.at(0).size() != sizeof id.internal) throw RemoteError("rank 0 sent no NCCL unique id");
    std::memcpy(id.internal, blobs[0].data(), sizeof id.internal);
    check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    scalar_ = static_cast<double*>(ops_.allocate(sizeof(double), "NCCL scalar"));
    if (size_ > 1) watchdog_ = std::make_unique<NcclWatchdog>(comm_, stream_, timeout_seconds, rank_, size_);
  }
  ~NcclCommunicator() override {
    watchdog_.reset();
    ops_.release(scalar_);
    if (!comm_) return;
    // An error of this rank alone: the others may never finish the collectives in flight, so
    // ncclCommDestroy could wait forever; abort them instead.
    if (std::uncaught_exceptions() > 0 && !together_) ncclCommAbort(comm_);
    else ncclCommDestroy(comm_);
  }
  void leaving_together() override { together_ = true; }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return str("nccl, ", size_, " ranks"); }

  void all_reduce_sum(Buf values) override {
    check(ncclAllReduce(values.data, values.data, size_t(values.numel), nccl_type(values.dtype), ncclSum, comm_,
                        stream_),
          "ncclAllReduce");
    watch("ncclAllReduce");
  }

  void reduce_scatter_sum(Buf whole, int64_t shard) override {
    // NCCL's in-place reduce-scatter writes rank r's result at whole + r * shard.
    char* base = static_cast<char*>(whole.data);
    void* out = base + size_t(rank_) * size_t(shard) * tensor::dtype_size(whole.dtype);
    check(ncclReduceScatter(whole.data, out, size_t(shard), nccl_type(whole.dtype), ncclSum, comm_, stream_),
          "ncclReduceScatter");
    watch("ncclReduceScatter");
  }

  void all_gather(Buf whole, int64_t shard) override {
    char* base = static_cast<char*>(whole.data);
    const void* in = base + size_t(rank_) * size_t(shard) * tensor::dtype_size(whole.dtype);
    check(ncclAllGather(in, whole.data, size_t(shard), nccl_type(whole.dtype), comm_, stream_), "ncclAllGather");
    watch("ncclAllGather");
  }

  double all_reduce_sum(double value) override {
    if (cudaMemcpyAsync(scalar_, &value, sizeof value, cudaMemcpyHostToDevice, stream_) != cudaSuccess)
      throw InternalError("cudaMemcpyAsync of a scalar failed");
    check(ncclAllReduce(scalar_, scalar_, 1, ncclFloat64, ncclSum, comm_, stream_), "ncclAllReduce");
    watch("ncclAllReduce");
    double sum = 0;
    if (cudaMemcpyAsync(&sum, scalar_, sizeof sum, cudaMemcpyDeviceToHost, stream_) != cudaSuccess ||
        cudaStreamSynchronize(stream_) != cudaSuccess)
      throw InternalError("reading back an all-reduced scalar failed");
    return sum;
  }

  void barrier() override { all_reduce_sum(0.0); }

 private:
  tensor::Ops& ops_;
  int rank_, size_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  double* scalar_ = nullptr;
  bool together_ = false;
  std::unique_ptr<NcclWatchdog> watchdog_;

  void watch(const char* what) {
    if (watchdog_) watchdog_->enqueued(what);
  }
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, tensor::Ops& ops,
                                                     double timeout_seconds) {
  return std::make_unique<NcclCommunicator>(launch, ops, timeout_seconds);
}

}  // namespace dsk::dist

#endif
