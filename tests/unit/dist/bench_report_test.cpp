// The table, averaging across ranks, stragglers, JSON and CSV.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "dist/bench_report.hpp"

using namespace dsk::dist;

namespace {
Row example_row() {
  Row row{Collective::all_reduce, DataType::float32, ReduceOp::sum, -1, 1 << 20, 1 << 18, {}, {}};
  row.out_of_place = summarize({100.0, 120.0}, 1, row.bytes, bus_bandwidth_factor(Collective::all_reduce, 2), 0);
  row.in_place = summarize({90.0, 110.0}, 3, row.bytes, 1.0, -1);
  return row;
}
}  // namespace

TEST_CASE("summarize combines ranks as -a says and computes algbw and busbw") {
  Measurement mean = summarize({100, 300}, 1, 1000000, 1.5, 2);
  CHECK(mean.time_us == 200);
  CHECK(mean.algbw == doctest::Approx(5.0));  // 1e6 B / 200 us = 5 GB/s
  CHECK(mean.busbw == doctest::Approx(7.5));
  CHECK(mean.slowest_rank == 1);
  CHECK(mean.fastest_rank == 0);
  CHECK(summarize({100, 300}, 0, 1, 1, 0).time_us == 100);
  CHECK(summarize({100, 300}, 2, 1, 1, 0).time_us == 100);
  CHECK(summarize({100, 300}, 3, 1, 1, 0).time_us == 300);
}

TEST_CASE("table rows carry nccl-tests' columns") {
  Row row = example_row();
  std::string header = format_table_header(Collective::all_reduce, 2);
  for (const char* column : {"size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong",
                             "out-of-place", "in-place", "(GB/s)"})
    CHECK(header.find(column) != std::string::npos);
  std::string line = format_row(row);
  CHECK(line == "     1048576       262144    float    sum     -1   110.00    9.53    9.53      0   110.00    9.53    9.53    N/A\n");
  Row sendrecv{Collective::sendrecv, DataType::int32, ReduceOp::sum, -1, 8, 2, {}, {}};
  sendrecv.out_of_place = summarize({5.0}, 1, 8, 1, 0);
  CHECK(format_row(sendrecv).find(" none ") != std::string::npos);
  CHECK(format_row(sendrecv).find("N/A     N/A     N/A    N/A") != std::string::npos);
}

TEST_CASE("average bus bandwidth over measured cells, and the straggler report") {
  Row row = example_row();
  CHECK(average_bus_bandwidth({row}) == doctest::Approx(1048576 / 110e3));
  CHECK(format_average({row}).rfind("# Avg bus bandwidth    : ", 0) == 0);
  std::string stragglers = format_stragglers({row});
  CHECK(stragglers.find("out-of-place              1       120.00              0       100.00   20.0%") !=
        std::string::npos);
}

TEST_CASE("JSON and CSV hold the same numbers") {
  Row row = example_row();
  Topology topology{{{0, "node1", 0, "NVIDIA H200", "0000:19:00.0"}, {1, "node1", 1, "NVIDIA H200", "0000:3b:00.0"}},
                    {"rank 0 <-> rank 1: peer-to-peer"}, "2.28.9", {{"NCCL_NVLS_ENABLE", "0"}}};
  BenchOptions options;
  nlohmann::json json = nlohmann::json::parse(to_json({row}, topology, options, 2));
  CHECK(json["ranks"] == 2);
  CHECK(json["results"][0]["collective"] == "all_reduce");
  CHECK(json["results"][0]["out_of_place"]["time_us"] == 110.0);
  CHECK(json["results"][0]["out_of_place"]["wrong"] == 0);
  CHECK(json["results"][0]["in_place"]["wrong"].is_null());
  CHECK(json["nccl_environment"]["NCCL_NVLS_ENABLE"] == "0");
  CHECK(json["gpus"][1]["bus_id"] == "0000:3b:00.0");
  std::string csv = to_csv({row});
  CHECK(csv.find("all_reduce,1048576,262144,float,sum,-1,out-of-place,110.000,9.5325,9.5325,0,1,120.000,0,100.000\n") !=
        std::string::npos);
  CHECK(csv.find(",in-place,110.000,9.5325,9.5325,,1,") != std::string::npos);
  std::string summary = format_topology(topology);
  CHECK(summary.find("NCCL version 2.28.9") != std::string::npos);
  CHECK(summary.find("NCCL_NVLS_ENABLE=0") != std::string::npos);
}
