// The rendezvous through MPI, for processes started by mpirun in a dsk built with MPI (DSK_MPI):
// MPI already knows every rank and how to reach it, so no MASTER_ADDR is needed across hosts.
#pragma once

#include "dist/rendezvous.hpp"

namespace dsk::dist {

class MpiRendezvous : public Rendezvous {
 public:
  MpiRendezvous();  // MPI_Init, unless someone already did
  ~MpiRendezvous() override;  // MPI_Finalize, if we called MPI_Init
  std::vector<std::string> all_gather(const std::string& blob) override;

 private:
  bool initialized_here_ = false;
};

}  // namespace dsk::dist
