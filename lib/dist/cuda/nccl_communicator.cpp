// The CUDA backend's collectives through NCCL, on a communication stream of their own (as
// PyTorch's ProcessGroupNCCL does): each waits for the backend's stream up to the point where it
// is started (a CUDA event), and wait() makes the backend's stream wait for it (another event),
// so the ops queued in between (the rest of the backward) run while it communicates, and no host
// synchronisation is needed. Every collective of the communicator goes through that one stream,
// so they run in the order they were started, the same on every rank. One rank per GPU; rank 0
// makes the NCCL unique id and the rendezvous (TCP, or MPI under mpirun) hands it to the others.
//
// A failing rank must not hang the others (NCCL kernels wait for peers forever): with several
// ranks a watchdog thread polls ncclCommGetAsyncError and, behind an event recorded after each
// collective, whether it finished; on an error, or a collective unfinished after dist.timeout, it
// says which rank and why, aborts the communicator (ncclCommAbort) and ends the process (exit 5),
// so that the launcher stops the job.
#ifdef DSK_DIST_NCCL

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>
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

void check(cudaError_t result, const char* what) {
  if (result != cudaSuccess) throw InternalError(str(what, " failed: ", cudaGetErrorString(result)));
}

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return ncclFloat32;
    case DType::bf16: return ncclBfloat16;
    case DType::i64: return ncclInt64;
    case DType::i32: return ncclInt32;
    case DType::u8: return ncclUint8;
    default: throw InternalError(str("NCCL collectives over ", tensor::dtype_name(dtype), " are not supported"));
  }
}

class NcclCommunicator;

// A collective queued on the communication stream; `done` is recorded after it there.
class NcclPending : public PendingCollective {
 public:
  NcclPending(NcclCommunicator& comm, cudaEvent_t done) : comm_(comm), done_(done) {}
  ~NcclPending() override;
  void wait() override;

 private:
  NcclCommunicator& comm_;
  cudaEvent_t done_;
  bool waited_ = false;
};

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
      : ops_(ops), rank_(launch.rank), size_(launch.world_size), timeout_seconds_(timeout_seconds) {
    stream_ = static_cast<cudaStream_t>(ops.native_stream());
    std::unique_ptr<Rendezvous> rendezvous = connect_rendezvous(launch, timeout_seconds);
    ncclUniqueId id{};
    if (rank_ == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    const std::vector<std::string> blobs =
        rendezvous->all_gather(rank_ == 0 ? std::string(id.internal, sizeof id.internal) : std::string());
    if (blobs.at(0).size() != sizeof id.internal) throw RemoteError("rank 0 sent no NCCL unique id");
    std::memcpy(id.internal, blobs[0].data(), sizeof id.internal);
    check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    check(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    scalar_ = static_cast<double*>(ops_.allocate(sizeof(double), "NCCL scalar"));
    if (size_ > 1) watchdog_ = std::make_unique<NcclWatchdog>(comm_, comm_stream_, timeout_seconds, rank_, size_);
  }
  // A split of `parent` (split()): its collectives go on the parent's communication stream, so
  // that the two communicators' operations run in the order they were started, the same on every
  // rank (NCCL kernels of two communicators on two streams could wait on each other), and its
  // stalls are timed into the parent's.
  NcclCommunicator(NcclCommunicator& parent, ncclComm_t comm, double timeout_seconds)
      : ops_(parent.ops_),
        timeout_seconds_(timeout_seconds),
        stream_(parent.stream_), comm_stream_(parent.comm_stream_), comm_(comm), parent_(&parent) {
    check(ncclCommCount(comm_, &size_), "ncclCommCount");
    check(ncclCommUserRank(comm_, &rank_), "ncclCommUserRank");
    scalar_ = static_cast<double*>(ops_.allocate(sizeof(double), "NCCL scalar"));
    if (size_ > 1) watchdog_ = std::make_unique<NcclWatchdog>(comm_, comm_stream_, timeout_seconds, rank_, size_);
  }
  ~NcclCommunicator() override {
    watchdog_.reset();
    // An error of this rank alone: the others may never finish the collectives in flight, so
    // waiting for them (or ncclCommDestroy) could hang; abort them instead.
    if (comm_ && std::uncaught_exceptions() > 0 && !together_) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
    }
    cudaStreamSynchronize(comm_stream_);
    for (auto& [before, after] : stalls_) {
      cudaEventDestroy(before);
      cudaEventDestroy(after);
    }
    for (cudaEvent_t event : spare_timers_) cudaEventDestroy(event);
    ops_.release(scalar_);
    if (comm_) ncclCommDestroy(comm_);
    if (!parent_) cudaStreamDestroy(comm_stream_);
  }
  void leaving_together() override { together_ = true; }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return str("nccl, ", size_, " ranks"); }

  std::unique_ptr<PendingCollective> start_all_reduce_sum(Buf values) override {
    return enqueue("ncclAllReduce", [&](cudaStream_t stream) {
      check(ncclAllReduce(values.data, values.data, size_t(values.numel), nccl_type(values.dtype), ncclSum, comm_,
                          stream),
            "ncclAllReduce");
    });
  }

  std::unique_ptr<PendingCollective> start_all_gather(Buf whole, int64_t shard) override {
    char* base = static_cast<char*>(whole.data);
    const void* in = base + size_t(rank_) * size_t(shard) * tensor::dtype_size(whole.dtype);
    return enqueue("ncclAllGather", [&](cudaStream_t stream) {
      check(ncclAllGather(in, whole.data, size_t(shard), nccl_type(whole.dtype), comm_, stream), "ncclAllGather");
    });
  }

  void all_reduce_sum(Buf values) override { start_all_reduce_sum(values)->wait(); }

  // Equal blocks: NCCL's reduce-scatter, in place (rank r's sum at block r). Unequal ones (a ZeRO-1
  // bucket's share of the ranks' shards; NCCL has no reduce-scatter of its own for them): one
  // in-place reduce per block to the rank that owns it, grouped so that they run as one operation.
  std::unique_ptr<PendingCollective> start_reduce_scatter_sum(Buf values, std::span<const int64_t> counts) override {
    if (int64_t(counts.size()) != size_) throw InternalError("reduce-scatter: one count per rank expected");
    int64_t total = 0;
    for (int64_t count : counts) total += count;
    if (total > values.numel) throw InternalError("reduce-scatter: the counts exceed the buffer");
    char* base = static_cast<char*>(values.data);
    const size_t element = tensor::dtype_size(values.dtype);
    const ncclDataType_t type = nccl_type(values.dtype);
    if (std::all_of(counts.begin(), counts.end(), [&](int64_t count) { return count == counts[0]; })) {
      const size_t shard = size_t(counts[0]);
      void* out = base + size_t(rank_) * shard * element;
      return enqueue("ncclReduceScatter", [&](cudaStream_t stream) {
        check(ncclReduceScatter(values.data, out, shard, type, ncclSum, comm_, stream), "ncclReduceScatter");
      });
    }
    return enqueue("ncclReduce (reduce-scatter of unequal blocks)", [&](cudaStream_t stream) {
      size_t offset = 0;
      check(ncclGroupStart(), "ncclGroupStart");
      for (int q = 0; q < size_; ++q) {
        const size_t count = size_t(counts[size_t(q)]);
        if (count > 0) {
          char* block = base + offset * element;
          check(ncclReduce(block, block, count, type, ncclSum, q, comm_, stream), "ncclReduce");
        }
        offset += count;
      }
      check(ncclGroupEnd(), "ncclGroupEnd");
    });
  }

  void all_gather(Buf whole, int64_t shard) override { start_all_gather(whole, shard)->wait(); }

  // NCCL has no all-to-all of its own: one send and one receive per peer, grouped so that they
  // progress together (and a rank's block to itself is a send/receive pair too).
  void all_to_all(Buf send, std::span<const int64_t> send_counts, Buf recv,
                  std::span<const int64_t> recv_counts) override {
    const size_t element = tensor::dtype_size(send.dtype);
    const ncclDataType_t type = nccl_type(send.dtype);
    const char* out = static_cast<const char*>(send.data);
    char* in = static_cast<char*>(recv.data);
    int64_t send_total = 0, receive_total = 0;
    for (int q = 0; q < size_; ++q) {
      send_total += send_counts[q];
      receive_total += recv_counts[q];
    }
    if (send_total > send.numel || receive_total > recv.numel)
      throw InternalError("all_to_all: the counts exceed the buffers");
    // On the communication stream like every collective: one communicator used from two streams
    // could misorder NCCL's operations.
    enqueue("ncclSend/ncclRecv (all-to-all)", [&](cudaStream_t stream) {
      int64_t send_offset = 0, receive_offset = 0;
      check(ncclGroupStart(), "ncclGroupStart");
      for (int q = 0; q < size_; ++q) {
        if (send_counts[q] > 0)
          check(ncclSend(out + size_t(send_offset) * element, size_t(send_counts[q]), type, q, comm_, stream),
                "ncclSend");
        if (recv_counts[q] > 0)
          check(ncclRecv(in + size_t(receive_offset) * element, size_t(recv_counts[q]), type, q, comm_, stream),
                "ncclRecv");
        send_offset += send_counts[q];
        receive_offset += recv_counts[q];
      }
      check(ncclGroupEnd(), "ncclGroupEnd");
    })->wait();
  }

  double all_reduce_sum(double value) override {
    if (cudaMemcpyAsync(scalar_, &value, sizeof value, cudaMemcpyHostToDevice, stream_) != cudaSuccess)
      throw InternalError("cudaMemcpyAsync of a scalar failed");
    enqueue("ncclAllReduce", [&](cudaStream_t stream) {
      check(ncclAllReduce(scalar_, scalar_, 1, ncclFloat64, ncclSum, comm_, stream), "ncclAllReduce");
    })->wait();
    double sum = 0;
    if (cudaMemcpyAsync(&sum, scalar_, sizeof sum, cudaMemcpyDeviceToHost, stream_) != cudaSuccess ||
        cudaStreamSynchronize(stream_) != cudaSuccess)
      throw InternalError("reading back an all-reduced scalar failed");
    return sum;
  }

  void barrier() override { all_reduce_sum(0.0); }

  std::unique_ptr<Communicator> split(int color, int key) override {
    ncclComm_t part = nullptr;
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    check(ncclCommSplit(comm_, color, key, &part, &config), "ncclCommSplit");
    return std::unique_ptr<Communicator>(new NcclCommunicator(*this, part, timeout_seconds_));
  }

  // Reads the stalls the backend's stream has passed and leaves the rest for the next call, so
  // that measuring never makes the host wait for the GPU.
  double take_wait_seconds() override {
    double total = 0;
    size_t read = 0;
    for (; read < stalls_.size(); read++) {
      auto [before, after] = stalls_[read];
      const cudaError_t state = cudaEventQuery(after);
      if (state == cudaErrorNotReady) break;
      check(state, "cudaEventQuery");
      float ms = 0;
      check(cudaEventElapsedTime(&ms, before, after), "cudaEventElapsedTime");
      total += double(ms) / 1e3;
      spare_timers_.push_back(before);
      spare_timers_.push_back(after);
    }
    stalls_.erase(stalls_.begin(), stalls_.begin() + std::ptrdiff_t(read));
    return total;
  }

  // The backend's stream waits for `done`; the stall is timed between two events around it.
  void wait_on_stream(cudaEvent_t done) {
    if (parent_) {
      parent_->wait_on_stream(done);
      return;
    }
    cudaEvent_t before = timer(), after = timer();
    check(cudaEventRecord(before, stream_), "cudaEventRecord");
    check(cudaStreamWaitEvent(stream_, done, 0), "cudaStreamWaitEvent");
    check(cudaEventRecord(after, stream_), "cudaEventRecord");
    stalls_.emplace_back(before, after);
  }

 private:
  // Queues `issue` on the communication stream after what the backend's stream has queued so far.
  std::unique_ptr<PendingCollective> enqueue(const char* what, const std::function<void(cudaStream_t)>& issue) {
    cudaEvent_t ready = nullptr, done = nullptr;
    check(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventRecord(ready, stream_), "cudaEventRecord");
    check(cudaStreamWaitEvent(comm_stream_, ready, 0), "cudaStreamWaitEvent");
    cudaEventDestroy(ready);  // released once it has happened
    issue(comm_stream_);
    watch(what);
    check(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventRecord(done, comm_stream_), "cudaEventRecord");
    return std::make_unique<NcclPending>(*this, done);
  }

  cudaEvent_t timer() {
    if (!spare_timers_.empty()) {
      cudaEvent_t event = spare_timers_.back();
      spare_timers_.pop_back();
      return event;
    }
    cudaEvent_t event = nullptr;
    check(cudaEventCreate(&event), "cudaEventCreate");
    return event;
  }

  tensor::Ops& ops_;
  int rank_ = 0, size_ = 1;
  double timeout_seconds_ = 0;
  cudaStream_t stream_ = nullptr;       // the backend's
  cudaStream_t comm_stream_ = nullptr;  // every collective's
  std::vector<std::pair<cudaEvent_t, cudaEvent_t>> stalls_;  // waits not yet read
  std::vector<cudaEvent_t> spare_timers_;
  ncclComm_t comm_ = nullptr;
  double* scalar_ = nullptr;
  bool together_ = false;
  NcclCommunicator* parent_ = nullptr;  // a split's; null for the world
  std::unique_ptr<NcclWatchdog> watchdog_;

  void watch(const char* what) {
    if (watchdog_) watchdog_->enqueued(what);
  }
};

NcclPending::~NcclPending() {
  if (!waited_) {
    try {
      wait();
    } catch (...) {
    }
  }
  cudaEventDestroy(done_);  // released once it has happened
}

void NcclPending::wait() {
  if (waited_) return;
  waited_ = true;
  comm_.wait_on_stream(done_);
}

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, tensor::Ops& ops,
                                                     double timeout_seconds) {
  return std::make_unique<NcclCommunicator>(launch, ops, timeout_seconds);
}

}  // namespace dsk::dist

#endif
