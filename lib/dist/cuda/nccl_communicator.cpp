// The CUDA backend's collectives through NCCL, enqueued on the backend's stream so that they run
// in order with the ops around them (no host synchronisation). One rank per GPU; rank 0 makes the
// NCCL unique id and the rendezvous (TCP, or MPI under mpirun) hands it to the others.
#ifdef DSK_DIST_NCCL

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>

#include "core/error.hpp"
#include "dist/communicator.hpp"
#include "dist/rendezvous.hpp"

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
  }
  ~NcclCommunicator() override {
    ops_.release(scalar_);
    if (comm_) ncclCommDestroy(comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return str("nccl, ", size_, " ranks"); }

  void all_reduce_sum(Buf values) override {
    check(ncclAllReduce(values.data, values.data, size_t(values.numel), nccl_type(values.dtype), ncclSum, comm_,
                        stream_),
          "ncclAllReduce");
  }

  void reduce_scatter_sum(Buf whole, int64_t shard) override {
    // NCCL's in-place reduce-scatter writes rank r's result at whole + r * shard.
    char* base = static_cast<char*>(whole.data);
    void* out = base + size_t(rank_) * size_t(shard) * tensor::dtype_size(whole.dtype);
    check(ncclReduceScatter(whole.data, out, size_t(shard), nccl_type(whole.dtype), ncclSum, comm_, stream_),
          "ncclReduceScatter");
  }

  void all_gather(Buf whole, int64_t shard) override {
    char* base = static_cast<char*>(whole.data);
    const void* in = base + size_t(rank_) * size_t(shard) * tensor::dtype_size(whole.dtype);
    check(ncclAllGather(in, whole.data, size_t(shard), nccl_type(whole.dtype), comm_, stream_), "ncclAllGather");
  }

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
    int64_t send_offset = 0, receive_offset = 0;
    check(ncclGroupStart(), "ncclGroupStart");
    for (int q = 0; q < size_; ++q) {
      if (send_counts[q] > 0)
        check(ncclSend(out + size_t(send_offset) * element, size_t(send_counts[q]), type, q, comm_, stream_),
              "ncclSend");
      if (recv_counts[q] > 0)
        check(ncclRecv(in + size_t(receive_offset) * element, size_t(recv_counts[q]), type, q, comm_, stream_),
              "ncclRecv");
      send_offset += send_counts[q];
      receive_offset += recv_counts[q];
    }
    check(ncclGroupEnd(), "ncclGroupEnd");
  }

  double all_reduce_sum(double value) override {
    if (cudaMemcpyAsync(scalar_, &value, sizeof value, cudaMemcpyHostToDevice, stream_) != cudaSuccess)
      throw InternalError("cudaMemcpyAsync of a scalar failed");
    check(ncclAllReduce(scalar_, scalar_, 1, ncclFloat64, ncclSum, comm_, stream_), "ncclAllReduce");
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
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, tensor::Ops& ops,
                                                     double timeout_seconds) {
  return std::make_unique<NcclCommunicator>(launch, ops, timeout_seconds);
}

}  // namespace dsk::dist

#endif
