// The size sweep, element counts, bus-bandwidth factors, name parsing and flag validation.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "dist/bench_options.hpp"

using namespace dsk;
using namespace dsk::dist;

TEST_CASE("size sweep by factor and by step, like nccl-tests -f and -i") {
  CHECK(size_sweep(8, 64, 0, 2) == std::vector<uint64_t>{8, 16, 32, 64});
  CHECK(size_sweep(8, 100, 0, 2) == std::vector<uint64_t>{8, 16, 32, 64});
  CHECK(size_sweep(1000, 3500, 1000, 0) == std::vector<uint64_t>{1000, 2000, 3000});
  CHECK(size_sweep(32 << 20, 32 << 20, 1 << 20, 0) == std::vector<uint64_t>{32 << 20});
  std::vector<uint64_t> full = size_sweep(8, 8ull << 30, 0, 2);
  CHECK(full.size() == 31);  // 8 B .. 8 GiB
  CHECK(full.back() == 8ull << 30);
  CHECK(size_sweep(1ull << 63, ~0ull, 0, 2).size() == 1);  // no overflow loop
}

TEST_CASE("element counts round down to whole per-rank blocks where the vector is split") {
  CHECK(element_count(Collective::all_reduce, DataType::float32, 8, 3) == 2);
  CHECK(element_count(Collective::all_gather, DataType::float32, 8, 3) == 0);
  CHECK(element_count(Collective::all_gather, DataType::float32, 24, 3) == 6);
  CHECK(element_count(Collective::reduce_scatter, DataType::float16, 1000, 8) == 496);
  CHECK(element_count(Collective::alltoall, DataType::int64, 1024, 2) == 128);
  CHECK(element_count(Collective::sendrecv, DataType::float8_e4m3, 7, 4) == 7);
}

TEST_CASE("bus-bandwidth factors are nccl-tests'") {
  CHECK(bus_bandwidth_factor(Collective::all_reduce, 2) == doctest::Approx(1.0));
  CHECK(bus_bandwidth_factor(Collective::all_reduce, 8) == doctest::Approx(1.75));
  CHECK(bus_bandwidth_factor(Collective::all_gather, 8) == doctest::Approx(0.875));
  CHECK(bus_bandwidth_factor(Collective::reduce_scatter, 4) == doctest::Approx(0.75));
  CHECK(bus_bandwidth_factor(Collective::alltoall, 2) == doctest::Approx(0.5));
  CHECK(bus_bandwidth_factor(Collective::broadcast, 8) == 1);
  CHECK(bus_bandwidth_factor(Collective::reduce, 8) == 1);
  CHECK(bus_bandwidth_factor(Collective::sendrecv, 8) == 1);
  CHECK(bus_bandwidth_factor(Collective::all_reduce, 1) == 0);
}

TEST_CASE("names, aliases and all") {
  CHECK(parse_collectives("all").size() == collective_count);
  CHECK(parse_collectives("allreduce,broadcast") ==
        std::vector<Collective>{Collective::all_reduce, Collective::broadcast});
  CHECK(parse_data_types("bf16,float,fp8_e5m2,int64") ==
        std::vector<DataType>{DataType::bfloat16, DataType::float32, DataType::float8_e5m2, DataType::int64});
  CHECK(parse_ops("all").size() == reduce_op_count);
  CHECK_THROWS_AS(parse_collectives("allreduse"), UsageError);
  CHECK_THROWS_AS(parse_data_types("double"), UsageError);
  CHECK_THROWS_AS(parse_ops(","), UsageError);
  CHECK(std::string(type_name(DataType::float16)) == "half");
  CHECK(type_size(DataType::int64) == 8);
}

TEST_CASE("validation names the flag") {
  BenchOptions options;
  CHECK_NOTHROW(options.validate());
  options.min_bytes = 64, options.max_bytes = 8;
  CHECK_THROWS_WITH_AS(options.validate(), doctest::Contains("-e/--maxbytes"), UsageError);
  options = {};
  options.step_factor = 1;
  CHECK_THROWS_WITH_AS(options.validate(), doctest::Contains("-f/--stepfactor"), UsageError);
  options = {};
  options.average = 4;
  CHECK_THROWS_WITH_AS(options.validate(), doctest::Contains("-a/--average"), UsageError);
  options = {};
  options.iterations = 0;
  CHECK_THROWS_WITH_AS(options.validate(), doctest::Contains("-n/--iters"), UsageError);
}

TEST_CASE("the signature changes with every flag that must agree across ranks") {
  BenchOptions a, b;
  CHECK(a.signature() == b.signature());
  b.iterations = 21;
  CHECK(a.signature() != b.signature());
  b = a;
  b.data_types = {DataType::bfloat16};
  CHECK(a.signature() != b.signature());
  b = a;
  b.check = false;
  CHECK(a.signature() != b.signature());
}
