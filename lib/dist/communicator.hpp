// The collectives of data-parallel training, over Bufs in the model backend's memory: NCCL for the
// CUDA backend (cuda/nccl_communicator.cpp, enqueued on the backend's stream), OpenMPI's
// collectives for the CPU backend (mpi_communicator.cpp: how CI tests the data-parallel and
// ZeRO-1 logic without a GPU), and nothing at all for one rank. Every rank must call the same
// collectives in the same order, as with NCCL and MPI themselves.
//
// Sums are in place. The sharded forms follow the layout NCCL and MPI call "in place": rank r's
// shard of a buffer is elements [r * shard, (r + 1) * shard).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dist/launch.hpp"
#include "tensor/ops.hpp"

namespace dsk::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;  // "nccl, 4 ranks", "mpi, 2 ranks", "single process"

  // values (f32, bf16 or i64) = the sum over ranks of values.
  virtual void all_reduce_sum(tensor::Buf values) = 0;
  // whole has size() * shard elements; afterwards this rank's shard holds the sum over ranks of
  // that shard (the rest of whole is left undefined).
  virtual void reduce_scatter_sum(tensor::Buf whole, int64_t shard) = 0;
  // whole has size() * shard elements; each rank's shard goes to every rank.
  virtual void all_gather(tensor::Buf whole, int64_t shard) = 0;
  // A host scalar summed over ranks (losses, squared norms).
  virtual double all_reduce_sum(double value) = 0;
  virtual void barrier() = 0;
  // Every rank leaves at this point (a stop they agreed on). An exception that unwinds past a
  // communicator without this is taken for this rank's alone: the communicator then leaves
  // without waiting for the others (MPI_Finalize would wait for ranks that wait for this one), so
  // that the launcher sees a rank exit and stops them all instead of hanging.
  virtual void leaving_together() {}
};

// One rank: every collective is the identity.
std::unique_ptr<Communicator> make_single_communicator();

// The communicator of this process for the backend `ops`: single for a world of one; MPI for the
// CPU backend under mpirun; NCCL for CUDA (rank 0's unique id through the rendezvous). With
// several ranks, timeout_seconds (dist.timeout) bounds the start and every collective: a rank that
// does not come by then stops the job (dist/watchdog.hpp). UsageError
// when the combination cannot work (CPU ranks not started by mpirun, a build without MPI or NCCL).
// Call before anything else uses MPI; with CUDA, after select_cuda_device(launch.local_rank).
std::unique_ptr<Communicator> make_communicator(const LaunchInfo& launch, tensor::Ops& ops, double timeout_seconds);

// How a flat buffer of `count` elements is shared out for ZeRO-1: equal shards of
// count / ranks elements (what NCCL's reduce-scatter and all-gather need), the first `ranks *
// shard` elements; the `count % ranks` tail elements are all-reduced and updated by every rank
// (fewer than `ranks` elements: not worth a collective of their own shape).
struct ShardLayout {
  int64_t count = 0;
  int ranks = 1;
  int rank = 0;
  int64_t shard() const { return count / ranks; }
  int64_t sharded() const { return shard() * ranks; }  // elements covered by the shards
  int64_t begin() const { return shard() * rank; }      // this rank's shard
  int64_t tail() const { return count - sharded(); }    // the all-reduced rest, at sharded()
};

}  // namespace dsk::dist
