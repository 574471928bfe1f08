// A small TCP rendezvous for processes that have no MPI: rank 0 listens on MASTER_ADDR:MASTER_PORT,
// every other rank connects (retrying until the timeout: rank 0 may start later) and says who it
// is; then all_gather() exchanges one small blob per rank through rank 0 (a star, fine for the
// few hundred bytes of an NCCL unique id, a flag signature or a timing per size).
//
// Wire format, all integers little-endian u64: hello = magic, rank, world size;
// a blob = length, bytes. Rank 0 answers an all_gather with every rank's blob in rank order.
// A peer that does not show up or goes away is a RemoteError naming it (exit 5).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dist/launch.hpp"

namespace dsk::dist {

// What the ranks of a job use to exchange small blobs before (and beside) NCCL.
class Rendezvous {
 public:
  virtual ~Rendezvous() = default;
  // Every rank's blob, indexed by rank.
  virtual std::vector<std::string> all_gather(const std::string& blob) = 0;
};

// Through MPI when mpirun started us and dsk was built with MPI (DSK_MPI), else TCP.
std::unique_ptr<Rendezvous> connect_rendezvous(const LaunchInfo& launch, double timeout_seconds);

class TcpRendezvous : public Rendezvous {
 public:
  // Blocks until every rank is connected, or throws after timeout_seconds.
  TcpRendezvous(const std::string& master_addr, int master_port, int rank, int world_size, double timeout_seconds);
  ~TcpRendezvous() override;
  TcpRendezvous(const TcpRendezvous&) = delete;
  TcpRendezvous& operator=(const TcpRendezvous&) = delete;

  // Every rank's blob, indexed by rank. Each call waits at most timeout_seconds for the others.
  std::vector<std::string> all_gather(const std::string& blob) override;

 private:
  void listen_and_accept(const std::string& master_addr, int master_port);
  void connect_to_master(const std::string& master_addr, int master_port);

  int rank_;
  int world_size_;
  double timeout_seconds_;
  int listen_fd_ = -1;
  std::vector<int> peer_fds_;  // rank 0: one per rank (index 0 unused); others: [0] is rank 0
};

}  // namespace dsk::dist
