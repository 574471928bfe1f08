// The pieces of data-parallel gradient synchronisation that need no second rank: how backward
// stages group into buckets, int8 quantization with and without error feedback (the kernels and
// Int8GradientCompression over one rank), and dist.grad_dtype's parsing. The ranks' side (MPI)
// is tests/cli/dsk-train-data-parallel.sh.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "cpu/kernels.hpp"
#include "dist/communicator.hpp"
#include "tensor/cpu_ops.hpp"
#include "train/gradient_buckets.hpp"
#include "train/gradient_compression.hpp"
#include "train/gradient_sync.hpp"

using namespace dsk::train;
namespace cpu = dsk::kernels::cpu;
using dsk::tensor::Buf;
using dsk::tensor::DType;

namespace {
Buf view(std::vector<float>& v) { return Buf{v.data(), int64_t(v.size()), DType::f32}; }
}  // namespace

TEST_CASE("buckets group consecutive backward stages up to the bucket size") {
  // A buffer of 100 floats: stages as backward finishes them, from the top down.
  const std::vector<GradientRange> stages = {{90, 10}, {60, 30}, {50, 10}, {10, 40}, {0, 10}};
  auto buckets = plan_buckets(stages, 0);
  REQUIRE(buckets.size() == 1);
  CHECK(buckets[0].offset == 0);
  CHECK(buckets[0].numel == 100);
  CHECK(buckets[0].last_stage == 4);

  buckets = plan_buckets(stages, 40 * 4);  // 40 floats a bucket
  REQUIRE(buckets.size() == 3);
  CHECK((buckets[0].offset == 60 && buckets[0].numel == 40 && buckets[0].last_stage == 1));
  CHECK((buckets[1].offset == 10 && buckets[1].numel == 50 && buckets[1].last_stage == 3));
  CHECK((buckets[2].offset == 0 && buckets[2].numel == 10 && buckets[2].last_stage == 4));

  buckets = plan_buckets(stages, 4);  // every stage alone
  CHECK(buckets.size() == stages.size());

  const std::vector<GradientRange> gap = {{90, 10}, {50, 30}};
  CHECK_THROWS_AS(plan_buckets(gap, 0), dsk::InternalError);
}

namespace {
// "[offset,+numel) ..." of ranges, to compare them in one CHECK.
std::string text(const std::vector<GradientRange>& ranges) {
  std::string out;
  for (const GradientRange& r : ranges) out += "[" + std::to_string(r.offset) + ",+" + std::to_string(r.numel) + ") ";
  return out;
}
}  // namespace

TEST_CASE("expert parallelism: the routed experts stay out of the shared pieces, this rank's own go apart") {
  // 100 floats: stages as above; routed experts at [20, 30) [30, 40) (this rank's) and [65, 85).
  const std::vector<GradientRange> stages = {{90, 10}, {60, 30}, {50, 10}, {10, 40}, {0, 10}};
  const std::vector<GradientRange> routed = {{20, 10}, {30, 10}, {65, 20}}, owned = {{30, 10}};
  auto buckets = plan_buckets(stages, 0, routed, owned);
  REQUIRE(buckets.size() == 1);
  CHECK(text(buckets[0].shared) == "[0,+20) [40,+25) [85,+15) ");
  CHECK(text(buckets[0].experts) == "[30,+10) ");

  // 30 floats of shared gradients a bucket: the stage [60, 90) carries only 10 of them, so the
  // first bucket takes [50, 60) too; [10, 50) has 20 and closes the bucket with [0, 10).
  buckets = plan_buckets(stages, 30 * 4, routed, owned);
  REQUIRE(buckets.size() == 2);
  CHECK((buckets[0].offset == 50 && buckets[0].numel == 50 && buckets[0].last_stage == 2));
  CHECK(text(buckets[0].shared) == "[50,+15) [85,+15) ");
  CHECK(buckets[0].experts.empty());
  CHECK((buckets[1].offset == 0 && buckets[1].numel == 50 && buckets[1].last_stage == 4));
  CHECK(text(buckets[1].shared) == "[0,+20) [40,+10) ");
  CHECK(text(buckets[1].experts) == "[30,+10) ");

  // Without experts a bucket is one shared piece, its whole range.
  buckets = plan_buckets(stages, 40 * 4);
  for (const GradientBucket& bucket : buckets)
    CHECK(text(bucket.shared) == text({GradientRange{bucket.offset, bucket.numel}}));

  const std::vector<GradientRange> unordered = {{65, 20}, {20, 10}};
  CHECK_THROWS_AS(plan_buckets(stages, 0, unordered), dsk::InternalError);
}

TEST_CASE("ranges inside and outside a range") {
  const std::vector<GradientRange> holes = {{0, 5}, {12, 3}, {18, 10}};
  CHECK(text(ranges_outside({10, 10}, holes)) == "[10,+2) [15,+3) ");
  CHECK(text(ranges_inside({10, 10}, holes)) == "[12,+3) [18,+2) ");
  CHECK(text(ranges_outside({5, 7}, holes)) == "[5,+7) ");
  CHECK(ranges_outside({20, 5}, holes).empty());
}

TEST_CASE("int8 quantization: per-chunk scale, ties to even, the residual is what the levels missed") {
  std::vector<float> values = {1.0f, -0.5f, 0.25f, 0.0f, 2.0f, 0.3f};
  std::vector<float> residual(values.size(), 0.0f);
  std::vector<int8_t> q(values.size());
  std::vector<float> scales(cpu::quantize_chunks(int64_t(values.size()), 4));
  REQUIRE(scales.size() == 2);
  cpu::quantize_int8(q.data(), scales.data(), values.data(), residual.data(), int64_t(values.size()), 4);
  CHECK(scales[0] == 1.0f / 127.0f);
  CHECK(scales[1] == 2.0f / 127.0f);
  CHECK(q == std::vector<int8_t>{127, -64, 32, 0, 127, 19});  // -63.5 -> -64, 31.75 -> 32, 19.05 -> 19
  for (size_t i = 0; i < values.size(); i++) {
    CAPTURE(i);
    CHECK(residual[i] == values[i] - float(q[i]) * scales[i / 4]);
    CHECK(std::fabs(residual[i]) <= scales[i / 4] / 2);
  }

  // A chunk with a NaN or Inf: its scale is NaN (the sum becomes NaN: the step is skipped), its
  // levels and residual 0 (the next step starts clean); the other chunk is untouched.
  std::vector<float> bad = {1.0f, NAN, 0.0f, 0.0f, 2.0f, 0.3f};
  cpu::quantize_int8(q.data(), scales.data(), bad.data(), residual.data(), int64_t(bad.size()), 4);
  CHECK(std::isnan(scales[0]));
  CHECK((q[0] == 0 && q[1] == 0 && residual[0] == 0.0f && residual[1] == 0.0f));
  CHECK(scales[1] == 2.0f / 127.0f);

  // Zeros: scale 0, levels 0, nothing to carry.
  std::vector<float> zeros(5, 0.0f), zero_residual(5, 0.0f);
  std::vector<int8_t> zero_q(5, 1);
  std::vector<float> zero_scale(1, 1.0f);
  cpu::quantize_int8(zero_q.data(), zero_scale.data(), zeros.data(), zero_residual.data(), 5, 8);
  CHECK(zero_scale[0] == 0.0f);
  CHECK(zero_q == std::vector<int8_t>(5, 0));
}

TEST_CASE("dequantize_sum adds the ranks' dequantized levels in rank order") {
  // 2 ranks, 3 values, chunks of 2: rank 0 scales {0.5, 2}, rank 1 scales {1, 0.25}.
  const std::vector<int8_t> q = {2, -4, 1, /* rank 1 */ 3, 5, -8};
  const std::vector<float> scales = {0.5f, 2.0f, 1.0f, 0.25f};
  std::vector<float> out(3);
  cpu::dequantize_sum_int8(out.data(), q.data(), scales.data(), 3, 2, 2);
  CHECK(out == std::vector<float>{2 * 0.5f + 3 * 1.0f, -4 * 0.5f + 5 * 1.0f, 1 * 2.0f - 8 * 0.25f});
}

// One rank through Int8GradientCompression: the gradients become their dequantized levels; over
// many steps of the same gradient, error feedback keeps the total within half a level of the true
// total, while without it the rounding error of every step adds up.
TEST_CASE("error feedback carries the quantization error; without it the residual is not kept") {
  auto ops = dsk::tensor::make_cpu_ops();
  auto comm = dsk::dist::make_single_communicator();
  const std::vector<float> gradient = {1.0f, 0.3f, -0.7f, 0.001f};
  const std::vector<GradientBucket> buckets = {{0, 4, 0, {{0, 4}}, {}}};
  for (const bool feedback : {true, false}) {
    CAPTURE(feedback);
    Int8GradientCompression compression(*comm, *ops, buckets, 4, feedback);
    CHECK(compression.residual().empty() == !feedback);
    std::vector<double> total(4, 0.0);
    const int steps = 200;
    for (int step = 0; step < steps; step++) {
      std::vector<float> grads = gradient;
      compression.start(0, view(grads));
      compression.finish(0, view(grads));
      for (size_t i = 0; i < 4; i++) total[i] += grads[i];
    }
    const double level = 1.0 / 127.0;  // max |g| is 1
    double worst = 0;
    for (size_t i = 0; i < 4; i++) worst = std::max(worst, std::fabs(total[i] - double(gradient[i]) * steps));
    if (feedback)
      CHECK(worst <= level);  // what is left in the residual: at most about a level
    else
      CHECK(worst > 20 * level);  // 0.3 * 127 = 38.1 -> 38: 0.1 level lost every step
  }
}

// Expert parallelism on one rank: a bucket's shared pieces are quantized each on its own (a
// chunk's scale never spans two pieces), and this rank's experts, with no other replica, are left
// exact, their residual untouched.
TEST_CASE("int8 quantizes a bucket's shared pieces apart and leaves experts without replicas exact") {
  auto ops = dsk::tensor::make_cpu_ops();
  auto comm = dsk::dist::make_single_communicator();
  auto replicas = dsk::dist::make_single_communicator();
  // [0, 2) and [4, 6) shared, [2, 4) this rank's experts.
  const std::vector<GradientBucket> buckets = {{0, 6, 0, {{0, 2}, {4, 2}}, {{2, 2}}}};
  Int8GradientCompression compression(*comm, *ops, buckets, 6, true, replicas.get());
  std::vector<float> grads = {1.0f, 0.3f, 0.3f, -0.25f, -0.7f, 0.001f};
  compression.start(0, view(grads));
  compression.finish(0, view(grads));
  // Piece [0, 2): scale 1/127, 0.3 -> 38 levels; piece [4, 6): scale 0.7/127, so -0.7 is whole
  // levels (one chunk of the whole bucket, scale 1/127, would make it -89/127) and 0.001 (0.18
  // of a level) rounds to 0, kept in the residual.
  CHECK(grads[0] == 1.0f);
  CHECK(grads[1] == doctest::Approx(38.0 / 127.0));
  CHECK(grads[2] == 0.3f);
  CHECK(grads[3] == -0.25f);
  CHECK(grads[4] == doctest::Approx(-0.7));
  CHECK(grads[5] == 0.0f);
  std::vector<float> residual(6);
  ops->copy_to_host(residual.data(), compression.residual());
  CHECK(residual[2] == 0.0f);
  CHECK(residual[3] == 0.0f);
  CHECK(residual[5] == 0.001f);
}

TEST_CASE("dist.grad_dtype: int8 on any backend, bf16 only where it is the activation dtype") {
  auto ops = dsk::tensor::make_cpu_ops();
  CHECK(parse_gradient_wire("auto", true, *ops).dtype == DType::f32);
  CHECK(parse_gradient_wire("fp32", true, *ops).dtype == DType::f32);
  const GradientWire int8 = parse_gradient_wire("int8", false, *ops);
  CHECK(int8.int8);
  CHECK(!int8.error_feedback);
  CHECK_THROWS_AS(parse_gradient_wire("bf16", true, *ops), dsk::UsageError);
  CHECK_THROWS_AS(parse_gradient_wire("fp8", true, *ops), dsk::UsageError);
}
