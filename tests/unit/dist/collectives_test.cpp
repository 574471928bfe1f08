// The expected values of collectives.hpp: simulate each collective on the host from the inputs
// (the way NCCL defines it) and compare with expected_value() for every element; and check that
// the values stay exact in every dtype (small integers).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "dist/bench_options.hpp"
#include "dist/collectives.hpp"

using namespace dsk::dist;

namespace {

using Buffers = std::vector<std::vector<double>>;  // [rank][element]

Buffers inputs_of(const Layout& l) {
  Buffers in(l.ranks);
  for (int r = 0; r < l.ranks; ++r)
    for (uint64_t i = 0; i < input_count(l); ++i) in[r].push_back(input_value(l, r, i));
  return in;
}

double combine(ReduceOp op, double a, double b) {
  switch (op) {
    case ReduceOp::sum: case ReduceOp::avg: return a + b;
    case ReduceOp::prod: return a * b;
    case ReduceOp::max: return std::max(a, b);
    case ReduceOp::min: return std::min(a, b);
  }
  return 0;
}

// What NCCL computes, written from its documentation, independently of expected_value().
Buffers simulate(const Layout& l, const Buffers& in) {
  int n = l.ranks;
  uint64_t chunk = l.count / n;
  Buffers out(n, std::vector<double>(output_count(l)));
  auto reduce_at = [&](uint64_t k) {
    double v = in[0][k];
    for (int r = 1; r < n; ++r) v = combine(l.op, v, in[r][k]);
    return l.op == ReduceOp::avg ? v / n : v;
  };
  for (int r = 0; r < n; ++r)
    for (uint64_t i = 0; i < output_count(l); ++i) switch (l.collective) {
        case Collective::all_reduce: case Collective::reduce: out[r][i] = reduce_at(i); break;
        case Collective::reduce_scatter: out[r][i] = reduce_at(r * chunk + i); break;
        case Collective::broadcast: out[r][i] = in[l.root][i]; break;
        case Collective::all_gather: out[r][i] = in[i / chunk][i % chunk]; break;
        case Collective::alltoall: out[r][i] = in[i / chunk][r * chunk + i % chunk]; break;
        case Collective::sendrecv: out[r][i] = in[(r + n - 1) % n][i]; break;
      }
  return out;
}

bool exact_in_fp8_e5m2(double v) { return v == std::floor(v) && v >= 0 && (v <= 8 || (v <= 16 && std::fmod(v, 2) == 0)); }

}  // namespace

TEST_CASE("expected values match a host simulation of every collective and op") {
  for (int c = 0; c < collective_count; ++c)
    for (int o = 0; o < reduce_op_count; ++o)
      for (int ranks : {1, 2, 3, 8})
        for (bool low_precision : {false, true}) {
          Layout l{static_cast<Collective>(c), static_cast<ReduceOp>(o), low_precision, ranks, ranks - 1,
                   static_cast<uint64_t>(ranks * 37)};
          CAPTURE(c);
          CAPTURE(o);
          CAPTURE(ranks);
          Buffers out = simulate(l, inputs_of(l));
          for (int r = 0; r < ranks; ++r)
            if (output_checked(l, r))
              for (uint64_t i = 0; i < output_count(l); ++i) REQUIRE(expected_value(l, r, i) == out[r][i]);
        }
}

TEST_CASE("reductions stay exact small integers, within fp8 for up to 8 ranks") {
  for (int o = 0; o < reduce_op_count; ++o) {
    Layout l{Collective::all_reduce, static_cast<ReduceOp>(o), true, 8, 0, 8 * 64};
    for (uint64_t i = 0; i < l.count; ++i) {
      CAPTURE(o);
      CAPTURE(i);
      REQUIRE(exact_in_fp8_e5m2(expected_value(l, 0, i)));
      REQUIRE(exact_in_fp8_e5m2(input_value(l, 3, i)));
    }
  }
}

TEST_CASE("reductions are not trivially constant: a wrong rank or offset would be caught") {
  Layout sum{Collective::all_reduce, ReduceOp::sum, false, 2, 0, 64};
  CHECK(expected_value(sum, 0, 0) != expected_value(sum, 0, 1));
  Layout gather{Collective::all_gather, ReduceOp::sum, false, 4, 0, 64};
  CHECK(expected_value(gather, 0, 0) != expected_value(gather, 0, 16));  // blocks from different ranks differ
  Layout prod{Collective::reduce_scatter, ReduceOp::prod, false, 2, 0, 64};
  CHECK(expected_value(prod, 0, 0) == 2);
  CHECK(expected_value(prod, 0, 2) == 1);
}

TEST_CASE("in-place offsets follow NCCL's convention") {
  Layout gather{Collective::all_gather, ReduceOp::sum, false, 4, 0, 64};
  CHECK(in_place_input_offset(gather, 3) == 48);
  CHECK(in_place_output_offset(gather, 3) == 0);
  Layout scatter{Collective::reduce_scatter, ReduceOp::sum, false, 4, 0, 64};
  CHECK(in_place_output_offset(scatter, 2) == 32);
  CHECK(output_count(scatter) == 16);
  CHECK(input_count(gather) == 16);
}
