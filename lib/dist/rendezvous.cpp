#include "dist/rendezvous.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "core/error.hpp"

namespace dsk::dist {

namespace {

constexpr uint64_t hello_magic = 0x64736b2d72647a31;  // "dsk-rdz1"
constexpr uint64_t max_blob_bytes = 64ull << 20;

using Clock = std::chrono::steady_clock;

Clock::time_point deadline_after(double seconds) {
  return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
}

int milliseconds_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits until fd is readable (events POLLIN) or writable; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd entry{fd, events, 0};
    int ready = poll(&entry, 1, milliseconds_left(deadline));
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) return false;
  }
}

void send_all(int fd, const void* data, size_t size, const std::string& peer) {
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t sent = send(fd, bytes, size, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) throw RemoteError(str("rendezvous: lost ", peer, " (", std::strerror(errno), ")"));
    bytes += sent, size -= static_cast<size_t>(sent);
  }
}

void receive_all(int fd, void* data, size_t size, const std::string& peer, Clock::time_point deadline,
                 double timeout_seconds) {
  char* bytes = static_cast<char*>(data);
  while (size > 0) {
    if (!wait_for(fd, POLLIN, deadline))
      throw RemoteError(str("rendezvous: timed out after ", timeout_seconds, " s waiting for ", peer));
    ssize_t got = recv(fd, bytes, size, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got == 0) throw RemoteError(str("rendezvous: ", peer, " closed the connection (did it fail? see its error)"));
    if (got < 0) throw RemoteError(str("rendezvous: lost ", peer, " (", std::strerror(errno), ")"));
    bytes += got, size -= static_cast<size_t>(got);
  }
}

void send_u64(int fd, uint64_t value, const std::string& peer) { send_all(fd, &value, sizeof value, peer); }

uint64_t receive_u64(int fd, const std::string& peer, Clock::time_point deadline, double timeout_seconds) {
  uint64_t value = 0;
  receive_all(fd, &value, sizeof value, peer, deadline, timeout_seconds);
  return value;
}

std::string receive_blob(int fd, const std::string& peer, Clock::time_point deadline, double timeout_seconds) {
  uint64_t length = receive_u64(fd, peer, deadline, timeout_seconds);
  if (length > max_blob_bytes) throw RemoteError(str("rendezvous: ", peer, " sent a ", length, "-byte blob (corrupt?)"));
  std::string blob(length, '\0');
  receive_all(fd, blob.data(), length, peer, deadline, timeout_seconds);
  return blob;
}

void send_blob(int fd, const std::string& blob, const std::string& peer) {
  send_u64(fd, blob.size(), peer);
  send_all(fd, blob.data(), blob.size(), peer);
}

sockaddr_in resolve(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int status = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (status != 0 || !found)
    throw UsageError(str("MASTER_ADDR '", host, "': cannot resolve (", gai_strerror(status), ")"));
  sockaddr_in address = *reinterpret_cast<sockaddr_in*>(found->ai_addr);
  freeaddrinfo(found);
  address.sin_port = htons(static_cast<uint16_t>(port));
  return address;
}

void set_no_delay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string rank_name(int rank) { return str("rank ", rank); }

}  // namespace

TcpRendezvous::TcpRendezvous(const std::string& master_addr, int master_port, int rank, int world_size,
                             double timeout_seconds)
    : rank_(rank), world_size_(world_size), timeout_seconds_(timeout_seconds) {
  if (world_size_ == 1) return;
  if (master_addr.empty())
    throw UsageError("rendezvous: several hosts and no MASTER_ADDR: set MASTER_ADDR to rank 0's host name");
  if (rank_ == 0) listen_and_accept(master_addr, master_port);
  else connect_to_master(master_addr, master_port);
}

TcpRendezvous::~TcpRendezvous() {
  for (int fd : peer_fds_)
    if (fd >= 0) close(fd);
  if (listen_fd_ >= 0) close(listen_fd_);
}

void TcpRendezvous::listen_and_accept(const std::string& master_addr, int master_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Listen on every interface: MASTER_ADDR is how the others reach us, which may be any of them.
  sockaddr_in address = resolve(master_addr, master_port);
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw ResourceError(str("rendezvous: cannot listen on port ", master_port, ": ", std::strerror(errno),
                            " (set MASTER_PORT to a free port)"));
  if (listen(listen_fd_, world_size_) != 0) throw ResourceError(str("rendezvous: listen: ", std::strerror(errno)));
  peer_fds_.assign(world_size_, -1);
  Clock::time_point deadline = deadline_after(timeout_seconds_);
  for (int joined = 1; joined < world_size_;) {
    if (!wait_for(listen_fd_, POLLIN, deadline))
      throw RemoteError(str("rendezvous: timed out after ", timeout_seconds_, " s: ", joined, " of ", world_size_,
                            " ranks joined on port ", master_port));
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    set_no_delay(fd);
    uint64_t hello[3] = {};
    receive_all(fd, hello, sizeof hello, "a joining rank", deadline, timeout_seconds_);
    if (hello[0] != hello_magic) {  // not one of ours (a port scanner, another program): ignore it
      close(fd);
      continue;
    }
    int peer = static_cast<int>(hello[1]);
    if (static_cast<int>(hello[2]) != world_size_)
      throw UsageError(str("rendezvous: rank ", peer, " has world size ", hello[2], " but rank 0 has ", world_size_));
    if (peer <= 0 || peer >= world_size_ || peer_fds_[peer] >= 0)
      throw UsageError(str("rendezvous: rank ", peer, " joined twice or is outside 1..", world_size_ - 1));
    peer_fds_[peer] = fd;
    ++joined;
  }
}

void TcpRendezvous::connect_to_master(const std::string& master_addr, int master_port) {
  sockaddr_in address = resolve(master_addr, master_port);
  Clock::time_point deadline = deadline_after(timeout_seconds_);
  for (;;) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
      set_no_delay(fd);
      peer_fds_.assign(1, fd);
      break;
    }
    close(fd);
    if (Clock::now() >= deadline)
      throw RemoteError(str("rendezvous: timed out after ", timeout_seconds_, " s: rank 0 is not listening on ",
                            master_addr, ":", master_port));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  uint64_t hello[3] = {hello_magic, static_cast<uint64_t>(rank_), static_cast<uint64_t>(world_size_)};
  send_all(peer_fds_[0], hello, sizeof hello, rank_name(0));
}

std::vector<std::string> TcpRendezvous::all_gather(const std::string& blob) {
  std::vector<std::string> blobs(world_size_);
  blobs[rank_] = blob;
  if (world_size_ == 1) return blobs;
  Clock::time_point deadline = deadline_after(timeout_seconds_);
  if (rank_ == 0) {
    for (int peer = 1; peer < world_size_; ++peer)
      blobs[peer] = receive_blob(peer_fds_[peer], rank_name(peer), deadline, timeout_seconds_);
    for (int peer = 1; peer < world_size_; ++peer)
      for (const std::string& each : blobs) send_blob(peer_fds_[peer], each, rank_name(peer));
  } else {
    send_blob(peer_fds_[0], blob, rank_name(0));
    for (int r = 0; r < world_size_; ++r) blobs[r] = receive_blob(peer_fds_[0], rank_name(0), deadline, timeout_seconds_);
  }
  return blobs;
}

}  // namespace dsk::dist

#ifdef DSK_DIST_MPI
#include "dist/mpi_rendezvous.hpp"
#endif

namespace dsk::dist {

std::unique_ptr<Rendezvous> connect_rendezvous(const LaunchInfo& launch, double timeout_seconds) {
#ifdef DSK_DIST_MPI
  if (launch.launcher == "mpi") return std::make_unique<MpiRendezvous>();
#endif
  return std::make_unique<TcpRendezvous>(launch.master_addr, launch.master_port, launch.rank, launch.world_size,
                                         timeout_seconds);
}

}  // namespace dsk::dist
