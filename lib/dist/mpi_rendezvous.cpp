#ifdef DSK_DIST_MPI

#include "dist/mpi_rendezvous.hpp"

#include <mpi.h>

#include "core/error.hpp"

namespace dsk::dist {

MpiRendezvous::MpiRendezvous() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    if (MPI_Init(nullptr, nullptr) != MPI_SUCCESS) throw RemoteError("MPI_Init failed");
    initialized_here_ = true;
  }
}

MpiRendezvous::~MpiRendezvous() {
  if (initialized_here_) MPI_Finalize();
}

std::vector<std::string> MpiRendezvous::all_gather(const std::string& blob) {
  int ranks = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  int length = static_cast<int>(blob.size());
  std::vector<int> lengths(ranks), offsets(ranks);
  MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD);
  int total = 0;
  for (int r = 0; r < ranks; ++r) offsets[r] = total, total += lengths[r];
  std::string all(total, '\0');
  MPI_Allgatherv(blob.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, MPI_COMM_WORLD);
  std::vector<std::string> blobs;
  for (int r = 0; r < ranks; ++r) blobs.push_back(all.substr(offsets[r], lengths[r]));
  return blobs;
}

}  // namespace dsk::dist

#endif
