// The collectives of data-parallel training, over Bufs in the model backend's memory: NCCL for the
// CUDA backend (cuda/nccl_communicator.cpp, enqueued on the backend's stream), OpenMPI's
// collectives for the CPU backend (mpi_communicator.cpp: how CI tests the data-parallel and
// ZeRO-1 logic without a GPU), and nothing at all for one rank. Every rank must call the same
// collectives in the same order, as with NCCL and MPI themselves.
//
// Sums are in place. The sharded forms follow the layout NCCL and MPI call "in place": rank r's
// shard of a buffer is elements [r * shard, (r + 1) * shard) (the reduce-scatter's blocks may
// also differ in length: rank r's then follows rank r - 1's).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "dist/launch.hpp"
#include "tensor/ops.hpp"

namespace dsk::dist {

// A collective under way (Communicator::start_*). wait() returns once the backend's next ops may
// read the result: MPI: the data is in place (MPI_Wait); NCCL: the backend's stream is ordered
// after the collective, which runs on the communicator's own stream (the host does not block).
// Wait for every started collective before its buffer is touched again; a destructor waits for
// one that was not waited for.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  virtual void wait() = 0;
  // Lets the collective advance while the caller computes: MPI moves a non-blocking collective
  // on only inside MPI calls (a test, here); NCCL needs nothing.
  virtual void progress() {}
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;  // "nccl, 4 ranks", "mpi, 2 ranks", "single process"

  // values (f32, bf16 or i64) = the sum over ranks of values.
  virtual void all_reduce_sum(tensor::Buf values) = 0;
  // whole has size() * shard elements; each rank's shard goes to every rank.
  virtual void all_gather(tensor::Buf whole, int64_t shard) = 0;
  // Variable all-to-all (expert parallelism's token dispatch): send holds size() blocks one after
  // another, block q (send_counts[q] elements) for rank q; recv gets block p from rank p
  // (recv_counts[p] elements), in rank order. Counts are host values; rank p's send_counts[q] must
  // equal rank q's recv_counts[p]. send and recv must not overlap.
  virtual void all_to_all(tensor::Buf send, std::span<const int64_t> send_counts, tensor::Buf recv,
                          std::span<const int64_t> recv_counts) = 0;
  // A host scalar summed over ranks (losses, squared norms).
  virtual double all_reduce_sum(double value) = 0;
  virtual void barrier() = 0;

  // Non-blocking forms of all_reduce_sum and all_gather (u8 too: raw bytes), for overlapping
  // communication with computation: started in the same order on every rank like any collective,
  // finished by the PendingCollective's wait(). This base runs the blocking form at once.
  virtual std::unique_ptr<PendingCollective> start_all_reduce_sum(tensor::Buf values);
  virtual std::unique_ptr<PendingCollective> start_all_gather(tensor::Buf whole, int64_t shard);
  // values (f32 or bf16) holds size() blocks one after another, block q of counts[q] elements
  // (host values, the same on every rank; some may be 0); once finished, this rank's block holds,
  // in place, the sum over ranks of that block (the rest of values is left undefined). Equal
  // counts are the sharded layout above; unequal ones are a ZeRO-1 gradient bucket's share of the
  // ranks' shards (train/zero_split.hpp), reduce-scattered while the backward goes on.
  virtual std::unique_ptr<PendingCollective> start_reduce_scatter_sum(tensor::Buf values,
                                                                      std::span<const int64_t> counts) = 0;

  // Seconds this rank waited on collectives (blocking ones and wait()s) since the last call: the
  // communication that computation did not hide, with the time spent waiting for slower ranks.
  // MPI: host time inside MPI's calls; NCCL: the time the backend's stream stalled on the
  // communication stream (CUDA events, read once the backend's stream has passed them).
  virtual double take_wait_seconds() { return 0; }

  // Every rank leaves at this point (a stop they agreed on). An exception that unwinds past a
  // communicator without this is taken for this rank's alone: the communicator then leaves
  // without waiting for the others (MPI_Finalize would wait for ranks that wait for this one), so
  // that the launcher sees a rank exit and stops them all instead of hanging.
  virtual void leaving_together() {}

  // The ranks that pass the same color form a communicator of their own, ranked by key (ties by
  // this communicator's rank): MPI_Comm_split, ncclCommSplit. Every rank calls it at once. The
  // new one's collectives are ordered with this one's (NCCL: on the same communication stream),
  // its waits count in this one's take_wait_seconds(), and it must go before this one does.
  // Expert parallelism sums each routed expert's gradient over the ranks that hold it this way.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
};

// One rank: every collective is the identity (all_to_all copies send to recv through `ops`, the
// CPU reference when null).
std::unique_ptr<Communicator> make_single_communicator(tensor::Ops* ops = nullptr);

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
