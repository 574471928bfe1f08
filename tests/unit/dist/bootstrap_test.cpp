// Launcher detection from the environment, and the TCP rendezvous between real local processes
// on loopback: an all-gather, mismatched flags, a missing rank (timeout) and a rank that dies.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <map>

#include "core/error.hpp"
#include "dist/bench_session.hpp"
#include "dist/launch.hpp"
#include "dist/local_launch.hpp"
#include "dist/rendezvous.hpp"

using namespace dsk;
using namespace dsk::dist;

namespace {

EnvLookup fake_env(std::map<std::string, std::string> values) {
  return [values](const std::string& name) -> std::optional<std::string> {
    auto found = values.find(name);
    return found == values.end() ? std::nullopt : std::optional<std::string>(found->second);
  };
}

// Runs body(rank) in `ranks` forked processes; returns each one's exit status (0: body returned
// normally, 1: it threw; 2: DSK error of the expected kind recorded by the body itself).
std::vector<int> in_processes(int ranks, const std::function<int(int)>& body) {
  std::vector<pid_t> children;
  for (int rank = 0; rank < ranks; ++rank) {
    pid_t pid = fork();
    if (pid == 0) {
      int code = 0;
      try {
        code = body(rank);
      } catch (const Error& e) {
        code = 10 + static_cast<int>(e.code());
      } catch (...) {
        code = 99;
      }
      _exit(code);
    }
    children.push_back(pid);
  }
  std::vector<int> codes;
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : 128);
  }
  return codes;
}

}  // namespace

TEST_CASE("no launcher: one process") {
  LaunchInfo info = detect_launch(fake_env({}));
  CHECK(info.launcher == "single");
  CHECK(info.world_size == 1);
}

TEST_CASE("torchrun-style environment") {
  LaunchInfo info = detect_launch(fake_env({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                                            {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "1234"}}));
  CHECK(info.launcher == "env");
  CHECK(info.rank == 3);
  CHECK(info.world_size == 8);
  CHECK(info.local_rank == 1);
  CHECK(info.local_size == 2);
  CHECK(info.master_addr == "node7");
  CHECK(info.master_port == 1234);
}

TEST_CASE("OpenMPI's mpirun") {
  LaunchInfo info = detect_launch(fake_env({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                                            {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}));
  CHECK(info.launcher == "mpi");
  CHECK(info.rank == 1);
  CHECK(info.master_addr == "127.0.0.1");
  LaunchInfo hosts = detect_launch(fake_env({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                                             {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}));
  CHECK(hosts.master_addr.empty());  // several hosts: MASTER_ADDR is needed
  CHECK_THROWS_WITH_AS(TcpRendezvous(hosts.master_addr, 29500, 1, 4, 1), doctest::Contains("MASTER_ADDR"), UsageError);
}

TEST_CASE("Slurm's srun: rank 0 on the first host of the step") {
  LaunchInfo info = detect_launch(fake_env({{"SLURM_PROCID", "5"}, {"SLURM_STEP_NUM_TASKS", "16"},
                                            {"SLURM_LOCALID", "1"}, {"SLURM_STEP_TASKS_PER_NODE", "4(x4)"},
                                            {"SLURM_STEP_NODELIST", "gpu[003-006]"}, {"SLURM_JOB_ID", "123456"}}));
  CHECK(info.launcher == "slurm");
  CHECK(info.rank == 5);
  CHECK(info.world_size == 16);
  CHECK(info.local_rank == 1);
  CHECK(info.local_size == 4);
  CHECK(info.master_addr == "gpu003");
  CHECK(info.master_port == 20000 + 123456 % 20000);
  // A batch script's own environment (no srun step) is one process.
  CHECK(detect_launch(fake_env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "16"}})).launcher == "single");
}

TEST_CASE("Slurm hostlists") {
  CHECK(first_host("node1") == "node1");
  CHECK(first_host("node1,node2") == "node1");
  CHECK(first_host("gpu[03-05,07],cpu1") == "gpu03");
  CHECK(first_host("a-b[7]") == "a-b7");
  CHECK_THROWS_AS(first_host("gpu[03"), UsageError);
}

TEST_CASE("malformed launcher variables are usage errors naming the variable") {
  CHECK_THROWS_WITH_AS(detect_launch(fake_env({{"RANK", "x"}, {"WORLD_SIZE", "2"}})), doctest::Contains("RANK='x'"),
                       UsageError);
  CHECK_THROWS_WITH_AS(detect_launch(fake_env({{"RANK", "2"}, {"WORLD_SIZE", "2"}})), doctest::Contains("outside"),
                       UsageError);
  CHECK_THROWS_WITH_AS(detect_launch(fake_env({{"MASTER_PORT", "70000"}})), doctest::Contains("MASTER_PORT"), UsageError);
}

TEST_CASE("rendezvous: four local processes all-gather, twice") {
  int port = free_tcp_port();
  std::vector<int> codes = in_processes(4, [port](int rank) {
    TcpRendezvous rendezvous("127.0.0.1", port, rank, 4, 20);
    for (int round = 0; round < 2; ++round) {
      std::vector<std::string> blobs = rendezvous.all_gather(std::string(rank * 1000 + round, 'a' + rank));
      for (int r = 0; r < 4; ++r)
        if (blobs[r] != std::string(r * 1000 + round, 'a' + r)) return 3;
    }
    return 0;
  });
  CHECK(codes == std::vector<int>{0, 0, 0, 0});
}

TEST_CASE("rendezvous: ranks with different flags all stop with a usage error") {
  int port = free_tcp_port();
  std::vector<int> codes = in_processes(3, [port](int rank) {
    TcpRendezvous rendezvous("127.0.0.1", port, rank, 3, 20);
    BenchOptions options;
    if (rank == 2) options.iterations = 50;
    check_hellos(rendezvous.all_gather(hello_blob(options.signature(), "")));
    return 0;
  });
  int usage = 10 + static_cast<int>(ExitCode::usage);
  CHECK(codes == std::vector<int>{usage, usage, usage});
}

TEST_CASE("check_hellos: the message names both ranks and the flag; a failed probe is a resource error") {
  BenchOptions a, b;
  b.warmup_iterations = 9;
  CHECK_THROWS_WITH_AS(check_hellos({hello_blob(a.signature(), ""), hello_blob(b.signature(), "")}),
                       doctest::Contains("rank 0 and rank 1 differ in 'w=5' vs 'w=9'"), UsageError);
  CHECK_THROWS_WITH_AS(check_hellos({hello_blob(a.signature(), ""), hello_blob(a.signature(), "no GPU")}),
                       doctest::Contains("rank 1: no GPU"), ResourceError);
  CHECK_NOTHROW(check_hellos({hello_blob(a.signature(), ""), hello_blob(a.signature(), "")}));
}

TEST_CASE("rendezvous: a missing rank 0 is a timeout, not a hang") {
  int port = free_tcp_port();
  CHECK_THROWS_WITH_AS(TcpRendezvous("127.0.0.1", port, 1, 2, 0.5), doctest::Contains("timed out"), RemoteError);
  CHECK_THROWS_WITH_AS(TcpRendezvous("127.0.0.1", port, 0, 3, 0.5), doctest::Contains("1 of 3 ranks joined"),
                       RemoteError);
}

TEST_CASE("rendezvous: a rank that dies is named by the others") {
  int port = free_tcp_port();
  std::vector<int> codes = in_processes(2, [port](int rank) {
    TcpRendezvous rendezvous("127.0.0.1", port, rank, 2, 20);
    if (rank == 1) _exit(7);  // gone before the exchange
    rendezvous.all_gather("x");
    return 0;
  });
  CHECK(codes[0] == 10 + static_cast<int>(ExitCode::remote));
  CHECK(codes[1] == 7);
}

TEST_CASE("timings travel through the rendezvous in rank order") {
  std::vector<double> times;
  int64_t wrong = 0;
  decode_timings({encode_timings({1.5, 2.5}, 0), encode_timings({3.5, 4.5}, 2)}, times, wrong);
  CHECK(times == std::vector<double>{1.5, 2.5, 3.5, 4.5});
  CHECK(wrong == 2);
  decode_timings({encode_timings({1}, -1), encode_timings({2}, 0)}, times, wrong);
  CHECK(wrong == -1);
  CHECK_THROWS_AS(decode_timings({"abc"}, times, wrong), RemoteError);
}
