// The CPU backend's collectives through OpenMPI. Buffers are host memory. MPI's own reductions
// are used (MPI_SUM over float, double, int64); OpenMPI's reduction order is fixed for a given
// number of ranks and message size, so a rerun gives the same bits. The non-blocking forms
// (MPI_Iallreduce, MPI_Iallgather, MPI_Ireduce_scatter) move on when the caller tests them (progress()) or waits.
#ifdef DSK_DIST_MPI

#include <mpi.h>

#include <chrono>
#include <cstring>
#include <utility>
#include <vector>
#include <exception>
#include <optional>

#include "core/error.hpp"
#include "dist/communicator.hpp"
#include "dist/watchdog.hpp"

namespace dsk::dist {
namespace {

using tensor::Buf;
using tensor::DType;

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return MPI_FLOAT;
    case DType::i64: return MPI_INT64_T;
    case DType::i32: return MPI_INT32_T;
    case DType::u8: return MPI_UINT8_T;
    default: throw InternalError(str("MPI collectives over ", tensor::dtype_name(dtype), " are not supported"));
  }
}

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw RemoteError(str(what, " failed: ", std::string(text, size_t(length))));
}

using Clock = std::chrono::steady_clock;

// Adds the time from construction to destruction to a counter (the time spent inside MPI).
class WaitTimer {
 public:
  explicit WaitTimer(double& total) : total_(total) {}
  ~WaitTimer() { total_ += std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  double& total_;
  Clock::time_point start_ = Clock::now();
};

// MPI's in-place reduce-scatters leave this rank's sum at the start of the buffer: `bytes` of it
// go to `offset` bytes in, where the communicator's layout keeps this rank's block.
struct MoveToBlock {
  void* base = nullptr;
  size_t offset = 0, bytes = 0;
  void operator()() const {
    if (offset > 0 && bytes > 0) std::memmove(static_cast<char*>(base) + offset, base, bytes);
  }
};

class MpiPending : public PendingCollective {
 public:
  // counts: arrays MPI reads until the collective completes; then: what wait() does after it.
  MpiPending(MPI_Request request, double& wait_seconds, Watchdog* watchdog, std::vector<int> counts = {},
             MoveToBlock then = {})
      : request_(request), wait_seconds_(wait_seconds), watchdog_(watchdog), counts_(std::move(counts)), then_(then) {}
  ~MpiPending() override {
    if (request_ != MPI_REQUEST_NULL) MPI_Wait(&request_, MPI_STATUS_IGNORE);
  }
  void wait() override {
    {
      WaitTimer timer(wait_seconds_);
      auto waiting = watchdog_ ? watchdog_->watch("MPI_Wait") : Watchdog::Wait();
      check(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait");
    }
    std::exchange(then_, MoveToBlock{})();
  }
  void progress() override {
    int done = 0;
    if (request_ != MPI_REQUEST_NULL) check(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), "MPI_Test");
  }

 private:
  MPI_Request request_;
  double& wait_seconds_;
  Watchdog* watchdog_;  // null with one rank
  std::vector<int> counts_;
  MoveToBlock then_;
};

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(int expected_ranks, double timeout_seconds) : timeout_seconds_(timeout_seconds) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      check(MPI_Init(nullptr, nullptr), "MPI_Init");
      initialized_here_ = true;
    }
    // Errors come back as codes (and become RemoteError) instead of aborting the job silently.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    if (size_ != expected_ranks)
      throw InternalError(str("MPI reports ", size_, " ranks, the launcher ", expected_ranks));
    if (size_ > 1) watchdog_.emplace(timeout_seconds, rank_, size_);
  }
  // A split of `parent` (split()): owns `comm`, counts its waits in the parent's.
  MpiCommunicator(MPI_Comm comm, double timeout_seconds, MpiCommunicator& parent)
      : comm_(comm), timeout_seconds_(timeout_seconds), parent_(&parent) {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    if (size_ > 1) watchdog_.emplace(timeout_seconds, rank_, size_);
  }
  ~MpiCommunicator() override {
    watchdog_.reset();
    if (parent_) {
      // Freeing is collective: not on the way out of an error of this rank alone (see below).
      if (std::uncaught_exceptions() == 0) MPI_Comm_free(&comm_);
      return;
    }
    // An error of this rank alone: MPI_Finalize would wait for the others, which wait for this
    // rank in their next collective. Leaving without it makes mpirun stop the whole job.
    if (std::uncaught_exceptions() > 0 && !together_ && size_ > 1) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (initialized_here_ && !finalized) MPI_Finalize();
  }
  void leaving_together() override { together_ = true; }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return str("mpi, ", size_, " ranks"); }

  void all_reduce_sum(Buf values) override {
    WaitTimer timer(wait_seconds());
    auto waiting = watch("MPI_Allreduce");
    check(MPI_Allreduce(MPI_IN_PLACE, values.data, int_count(values.numel), mpi_type(values.dtype), MPI_SUM,
                        comm_),
          "MPI_Allreduce");
  }

  void all_gather(Buf whole, int64_t shard) override {
    WaitTimer timer(wait_seconds());
    auto waiting = watch("MPI_Allgather");
    check(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, whole.data, int_count(shard), mpi_type(whole.dtype),
                        comm_),
          "MPI_Allgather");
  }

  void all_to_all(Buf send, std::span<const int64_t> send_counts, Buf recv,
                  std::span<const int64_t> recv_counts) override {
    std::vector<int> sent(size_), send_at(size_), received(size_), receive_at(size_);
    int64_t send_offset = 0, receive_offset = 0;
    for (int q = 0; q < size_; ++q) {
      sent[q] = int_count(send_counts[q]);
      send_at[q] = int_count(send_offset);
      received[q] = int_count(recv_counts[q]);
      receive_at[q] = int_count(receive_offset);
      send_offset += send_counts[q];
      receive_offset += recv_counts[q];
    }
    if (send_offset > send.numel || receive_offset > recv.numel)
      throw InternalError("all_to_all: the counts exceed the buffers");
    WaitTimer timer(wait_seconds());
    auto waiting = watch("MPI_Alltoallv");
    check(MPI_Alltoallv(send.data, sent.data(), send_at.data(), mpi_type(send.dtype), recv.data, received.data(),
                        receive_at.data(), mpi_type(recv.dtype), comm_),
          "MPI_Alltoallv");
  }

  double all_reduce_sum(double value) override {
    WaitTimer timer(wait_seconds());
    double sum = 0;
    auto waiting = watch("MPI_Allreduce");
    check(MPI_Allreduce(&value, &sum, 1, MPI_DOUBLE, MPI_SUM, comm_), "MPI_Allreduce");
    return sum;
  }

  void barrier() override {
    auto waiting = watch("MPI_Barrier");
    check(MPI_Barrier(comm_), "MPI_Barrier");
  }

  std::unique_ptr<PendingCollective> start_all_reduce_sum(Buf values) override {
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Iallreduce(MPI_IN_PLACE, values.data, int_count(values.numel), mpi_type(values.dtype), MPI_SUM,
                         comm_, &request),
          "MPI_Iallreduce");
    return std::make_unique<MpiPending>(request, wait_seconds(), watchdog_ ? &*watchdog_ : nullptr);
  }

  std::unique_ptr<PendingCollective> start_all_gather(Buf whole, int64_t shard) override {
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, whole.data, int_count(shard), mpi_type(whole.dtype),
                         comm_, &request),
          "MPI_Iallgather");
    return std::make_unique<MpiPending>(request, wait_seconds(), watchdog_ ? &*watchdog_ : nullptr);
  }

  std::unique_ptr<PendingCollective> start_reduce_scatter_sum(Buf values, std::span<const int64_t> counts) override {
    if (int64_t(counts.size()) != size_) throw InternalError("reduce-scatter: one count per rank expected");
    std::vector<int> received(counts.size());
    int64_t before = 0, total = 0;  // before: the elements of the lower ranks' blocks
    for (int q = 0; q < size_; ++q) {
      received[size_t(q)] = int_count(counts[size_t(q)]);
      if (q < rank_) before += counts[size_t(q)];
      total += counts[size_t(q)];
    }
    if (total > values.numel) throw InternalError("reduce-scatter: the counts exceed the buffer");
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Ireduce_scatter(MPI_IN_PLACE, values.data, received.data(), mpi_type(values.dtype), MPI_SUM, comm_,
                              &request),
          "MPI_Ireduce_scatter");
    const size_t element = tensor::dtype_size(values.dtype);
    const MoveToBlock move{values.data, size_t(before) * element, size_t(counts[size_t(rank_)]) * element};
    return std::make_unique<MpiPending>(request, wait_seconds(), watchdog_ ? &*watchdog_ : nullptr,
                                        std::move(received), move);
  }

  double take_wait_seconds() override { return std::exchange(wait_seconds(), 0.0); }

  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm part = MPI_COMM_NULL;
    {
      auto waiting = watch("MPI_Comm_split");
      check(MPI_Comm_split(comm_, color, key, &part), "MPI_Comm_split");
    }
    return std::make_unique<MpiCommunicator>(part, timeout_seconds_, *this);
  }

 private:
  static int int_count(int64_t count) {
    if (count > int64_t(INT32_MAX)) throw InternalError("an MPI message of more than 2^31 elements");
    return int(count);
  }

  // Every collective is watched (dist.timeout): a rank that never comes stops the job, not hangs it.
  Watchdog::Wait watch(const char* what) { return watchdog_ ? watchdog_->watch(what) : Watchdog::Wait(); }

  double& wait_seconds() { return parent_ ? parent_->wait_seconds() : wait_seconds_; }

  MPI_Comm comm_ = MPI_COMM_WORLD;
  double timeout_seconds_ = 0;
  MpiCommunicator* parent_ = nullptr;  // a split's; null for the world
  int rank_ = 0, size_ = 1;
  bool initialized_here_ = false;
  double wait_seconds_ = 0;
  bool together_ = false;
  std::optional<Watchdog> watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(int expected_ranks, double timeout_seconds) {
  return std::make_unique<MpiCommunicator>(expected_ranks, timeout_seconds);
}

}  // namespace dsk::dist

#endif
