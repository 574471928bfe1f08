// Times every candidate tile configuration of the bf16 flash-attention kernels
// (kernels/cuda/attention_flash.cuh: ForwardConfig, KeyConfig, QueryConfig) on the shapes of
// attention_bench.cu, and checks each one's result against the baseline configuration (all 0: the
// heuristics the kernels had before they took configurations), so that attention.cu's TileChoice
// can be set to the fastest correct one per head-dim pair.
//
// Build (no CMake target; from the repository root, on a machine with nvcc), one line:
//   nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -Ikernels -Ilib
//        scripts/bench/attention_sweep.cu kernels/cuda/attention.cu kernels/cuda/common.cu -o attention_sweep
// Run: ./attention_sweep [--no-ordered-dq] (scripts/device/attention-sweep-gpu.sh runs it with the
// GPU tests; --no-ordered-dq leaves out the one-pass candidates, KeyConfig's ORDERED_DQ).
//
// For every shape and candidate, one row: the candidate's kernel alone (median of 20 runs after 3
// warm-ups, each between two CUDA events), forward+backward with that candidate in place of the
// baseline's (same timing), and the relative L2 error of what it computes (out and lse; dK and
// dV; dQ) against the baseline's; above 1e-2 the row says FAIL (the configurations differ only in
// the order of fp32 sums and, one-pass, in dQ's bf16 rounding of dS, so correct ones agree far
// closer). Then, per shape, forward+backward of the production choice (cuda::attention_forward /
// backward, i.e. TileChoice) and of the fastest passing candidate of each kernel together; last,
// per head-dim pair, the TileChoice specializations to paste into attention.cu (the candidates
// with the least kernel time summed over the pair's shapes). Only plain causal launches are
// compiled here (no packed rows): the device script runs the parity tests, packed rows included,
// built with the printed choice.
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "attention_tensors.cuh"
#include "cuda/attention.cuh"
#include "cuda/attention_flash_launch.cuh"
#include "cuda_timing.cuh"

namespace {

namespace cuda = dsk::kernels::cuda;
namespace flash = dsk::kernels::cuda::flash;
using cuda::bf16;
using dsk::bench::BenchShape;
using dsk::bench::device_random;
using dsk::bench::kAttentionShapes;
using dsk::bench::median_ms;
using flash::ForwardConfig;
using flash::KeyConfig;
using flash::QueryConfig;

constexpr double kMaxError = 1e-2;
bool g_skip_ordered_dq = false;  // --no-ordered-dq

template <class... Configs>
struct List {};

// The candidates per padded head-dim pair; each list starts with the baseline. Every one but the
// baselines compiles without register spills (-Xptxas -v when the list was written; of the
// baselines, ForwardConfig<4> at 128/128 spills 20 bytes and QueryConfig<4> at 96/64 12 bytes);
// MIN_BLOCKS 1 where that lets ptxas take the registers it needs not to spill.
template <int DKP, int DVP>
struct Candidates;
template <>
struct Candidates<64, 64> {
  using Forward = List<ForwardConfig<4>, ForwardConfig<4, 2, 32>, ForwardConfig<4, 1, 64>, ForwardConfig<4, 1, 128>,
                       ForwardConfig<8, 1, 64>, ForwardConfig<8, 2, 64>, ForwardConfig<8, 1, 128>,
                       ForwardConfig<4, 1, 64, 1>, ForwardConfig<8, 1, 64, 1>>;
  using Key = List<KeyConfig<4>, KeyConfig<4, 0, 0, 1>, KeyConfig<4, 1, 32>, KeyConfig<8, 1, 64>, KeyConfig<8, 1, 32>,
                   KeyConfig<4, 2, 16>, KeyConfig<8, 2, 16>, KeyConfig<4, 1, 32, 1>, KeyConfig<8, 1, 32, 1>,
                   KeyConfig<4, 1, 64, 0, true>, KeyConfig<4, 1, 32, 1, true>, KeyConfig<8, 1, 32, 0, true>>;
  using Query = List<QueryConfig<4>, QueryConfig<4, 1, 64>, QueryConfig<4, 1, 32>, QueryConfig<8, 2, 32>,
                     QueryConfig<8, 1, 64>, QueryConfig<8, 1, 32>, QueryConfig<4, 2, 16>, QueryConfig<8, 2, 16>,
                     QueryConfig<4, 0, 0, 1>, QueryConfig<4, 1, 32, 1>>;
};
template <>
struct Candidates<96, 64> {
  using Forward = List<ForwardConfig<4>, ForwardConfig<4, 2, 32, 1>, ForwardConfig<4, 1, 64>, ForwardConfig<8, 1, 64>,
                       ForwardConfig<8, 2, 64>>;
  using Key = List<KeyConfig<4>, KeyConfig<4, 0, 0, 1>, KeyConfig<4, 1, 64>, KeyConfig<8, 1, 32>, KeyConfig<8, 1, 64>,
                   KeyConfig<4, 1, 32, 0, true>>;
  using Query = List<QueryConfig<4>, QueryConfig<4, 1, 64>, QueryConfig<4, 1, 32>, QueryConfig<8, 1, 64>,
                     QueryConfig<8, 1, 32>, QueryConfig<8, 2, 16>, QueryConfig<4, 1, 32, 1>>;
};
template <>
struct Candidates<128, 128> {
  using Forward = List<ForwardConfig<4>, ForwardConfig<4, 1, 64>, ForwardConfig<8, 1, 64>, ForwardConfig<8, 1, 32, 1>>;
  using Key = List<KeyConfig<4>, KeyConfig<4, 1, 16>, KeyConfig<8, 1, 32>, KeyConfig<8, 1, 16>,
                   KeyConfig<4, 1, 16, 0, true>, KeyConfig<8, 1, 16, 0, true>>;
  using Query = List<QueryConfig<4>, QueryConfig<4, 1, 32>, QueryConfig<8, 1, 64>, QueryConfig<8, 1, 32>,
                     QueryConfig<4, 1, 32, 1>>;
};

// Written as the type to paste into attention.cu.
template <class C>
std::string config_name(const char* kind, int third, bool ordered_dq = false) {
  char text[96];
  std::snprintf(text, sizeof text, "flash::%s<%d, %d, %d, %d%s>", kind, C::kWarps, C::kWarpTiles, third,
                C::kMinBlocks, ordered_dq ? ", true" : "");
  return text;
}
template <class C>
std::string name_of(ForwardConfig<C::kWarps, C::kWarpTiles, C::kBlockN, C::kMinBlocks>*) {
  return config_name<C>("ForwardConfig", C::kBlockN);
}
template <class C>
std::string name_of(KeyConfig<C::kWarps, C::kWarpTiles, C::kBlockM, C::kMinBlocks, C::kOrderedDq>*) {
  return config_name<C>("KeyConfig", C::kBlockM, C::kOrderedDq);
}
template <class C>
std::string name_of(QueryConfig<C::kWarps, C::kWarpTiles, C::kBlockN, C::kMinBlocks>*) {
  return config_name<C>("QueryConfig", C::kBlockN);
}

// The device tensors of one shape. The gradients are accumulated (+=) by the kernels: a checked
// run starts from zeros, timed runs just keep adding.
struct Tensors {
  cuda::AttentionShape s;
  size_t qk_size, v_size;
  bf16 *q, *k, *v, *dout, *out, *dq, *dk, *dv;
  float *lse, *dsum, *scratch, *workspace;  // workspace: ORDERED_DQ's, for head dims up to 128

  explicit Tensors(const BenchShape& shape) {
    const int B = shape.B, T = shape.T, H = shape.H;
    s = dsk::bench::causal_attention_shape(shape);
    qk_size = size_t(B) * T * H * shape.Dk;
    v_size = size_t(B) * T * H * shape.Dv;
    q = device_random<bf16>(qk_size, 1);
    k = device_random<bf16>(qk_size, 2);
    v = device_random<bf16>(v_size, 3);
    dout = device_random<bf16>(v_size, 4);
    for (bf16** p : {&out, &dv}) DSK_CUDA_CHECK(cudaMalloc(p, v_size * sizeof(bf16)));
    for (bf16** p : {&dq, &dk}) DSK_CUDA_CHECK(cudaMalloc(p, qk_size * sizeof(bf16)));
    DSK_CUDA_CHECK(cudaMalloc(&lse, size_t(B) * H * T * sizeof(float)));
    DSK_CUDA_CHECK(cudaMalloc(&dsum, size_t(B) * H * T * sizeof(float)));
    DSK_CUDA_CHECK(cudaMalloc(&scratch, cuda::attention_backward_scratch_floats(s) * sizeof(float)));
    DSK_CUDA_CHECK(cudaMalloc(&workspace, size_t(B) * H * T * (128 + 1) * sizeof(float)));
  }
  ~Tensors() {
    for (void* p : {(void*)q, (void*)k, (void*)v, (void*)dout, (void*)out, (void*)dq, (void*)dk, (void*)dv,
                    (void*)lse, (void*)dsum, (void*)scratch, (void*)workspace})
      cudaFree(p);
  }
  void zero_gradients() const {
    DSK_CUDA_CHECK(cudaMemset(dq, 0, qk_size * sizeof(bf16)));
    DSK_CUDA_CHECK(cudaMemset(dk, 0, qk_size * sizeof(bf16)));
    DSK_CUDA_CHECK(cudaMemset(dv, 0, v_size * sizeof(bf16)));
  }
};

std::vector<float> host_floats(const bf16* device, size_t n) {
  std::vector<bf16> host(n);
  DSK_CUDA_CHECK(cudaMemcpy(host.data(), device, n * sizeof(bf16), cudaMemcpyDeviceToHost));
  std::vector<float> values(n);
  for (size_t i = 0; i < n; i++) values[i] = __bfloat162float(host[i]);
  return values;
}

std::vector<float> host_floats(const float* device, size_t n) {
  std::vector<float> values(n);
  DSK_CUDA_CHECK(cudaMemcpy(values.data(), device, n * sizeof(float), cudaMemcpyDeviceToHost));
  return values;
}

// ||x - reference|| / ||reference||; NaN anywhere gives NaN (a FAIL).
double relative_error(const std::vector<float>& x, const std::vector<float>& reference) {
  double difference = 0, norm = 0;
  for (size_t i = 0; i < x.size(); i++) {
    difference += (double(x[i]) - reference[i]) * (double(x[i]) - reference[i]);
    norm += double(reference[i]) * reference[i];
  }
  return std::sqrt(difference / std::max(norm, 1e-30));
}

// The three launches of forward+backward (besides the dsum kernel), each swappable.
struct Pipeline {
  std::function<void()> forward, key, query;
};

struct Candidate {
  std::string kind, name;
  std::function<void()> launch;  // the kernel alone
  int part;                      // which of Pipeline's launches it replaces: 0 forward, 1 key, 2 query
  bool with_dq = false;          // a key candidate with ORDERED_DQ: computes dQ too (no query launch)
};

template <int DKP, int DVP, class C>
Candidate forward_candidate(const Tensors& t) {
  return {"forward", name_of<C>((C*)nullptr),
          [&t] { flash::launch_forward<DKP, DVP, C, false>(t.out, t.lse, t.q, t.k, t.v, t.s, nullptr); }, 0};
}
template <int DKP, int DVP, class C>
Candidate key_candidate(const Tensors& t) {
  if constexpr (C::kOrderedDq) {
    return {"dK,dV,dQ", name_of<C>((C*)nullptr),
            [&t] {
              flash::launch_backward<DKP, DVP, C, QueryConfig<4>, false>(t.dq, t.dk, t.dv, t.dout, t.lse, t.dsum, t.q,
                                                                         t.k, t.v, t.s, t.workspace, nullptr);
            },
            1, true};
  } else {
    return {"dK,dV", name_of<C>((C*)nullptr),
            [&t] {
              flash::launch_backward_key_blocks<DKP, DVP, C, false>(t.dk, t.dv, t.dout, t.lse, t.dsum, t.q, t.k, t.v,
                                                                    t.s, nullptr);
            },
            1};
  }
}
template <int DKP, int DVP, class C>
Candidate query_candidate(const Tensors& t) {
  return {"dQ", name_of<C>((C*)nullptr),
          [&t] {
            flash::launch_backward_q<DKP, DVP, C, false>(t.dq, t.dout, t.lse, t.dsum, t.q, t.k, t.v, t.s, nullptr);
          },
          2};
}

template <int DKP, int DVP, class... F, class... K, class... Q>
std::vector<Candidate> candidates(const Tensors& t, List<F...>, List<K...>, List<Q...>) {
  return {forward_candidate<DKP, DVP, F>(t)..., key_candidate<DKP, DVP, K>(t)..., query_candidate<DKP, DVP, Q>(t)...};
}

struct Row {
  std::string pair, kind, name;
  double kernel_ms;
  bool pass;
};

double time_pipeline(const Tensors& t, const Pipeline& p) {
  return median_ms([&] {
    p.forward();
    flash::launch_output_dot(t.dsum, t.dout, t.out, t.s, nullptr);
    p.key();
    p.query();
  });
}

template <int DKP, int DVP>
void sweep_shape(const BenchShape& shape, std::vector<Row>& rows) {
  using Lists = Candidates<DKP, DVP>;
  const Tensors t(shape);
  const std::vector<Candidate> all = candidates<DKP, DVP>(t, typename Lists::Forward{}, typename Lists::Key{},
                                                          typename Lists::Query{});
  // The baseline (first of each list): its results are the reference, its launches the pipeline.
  Pipeline baseline;
  for (const Candidate& c : all) {
    if (c.part == 0 && !baseline.forward) baseline.forward = c.launch;
    if (c.part == 1 && !baseline.key) baseline.key = c.launch;
    if (c.part == 2 && !baseline.query) baseline.query = c.launch;
  }
  auto results = [&t](int part) -> std::vector<std::vector<float>> {
    if (part == 0) return {host_floats(t.out, t.v_size), host_floats(t.lse, size_t(t.s.B) * t.s.H * t.s.Tq)};
    if (part == 1) return {host_floats(t.dk, t.qk_size), host_floats(t.dv, t.v_size)};
    return {host_floats(t.dq, t.qk_size)};
  };
  baseline.forward();
  flash::launch_output_dot(t.dsum, t.dout, t.out, t.s, nullptr);
  t.zero_gradients();
  baseline.key();
  baseline.query();
  DSK_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<std::vector<float>> expected[4] = {results(0), results(1), results(2), {}};
  expected[3] = {expected[1][0], expected[1][1], expected[2][0]};  // ORDERED_DQ: dk, dv, dq
  const double baseline_ms = time_pipeline(t, baseline);

  const std::string pair = std::to_string(DKP) + "/" + std::to_string(DVP);
  Pipeline best[4] = {baseline, baseline, baseline, baseline};  // per part (3: ORDERED_DQ), its fastest
  double best_ms[4] = {1e30, 1e30, 1e30, 1e30};
  for (const Candidate& c : all) {
    if (c.with_dq && g_skip_ordered_dq) continue;
    const int part = c.with_dq ? 3 : c.part;
    t.zero_gradients();
    c.launch();
    DSK_CUDA_CHECK(cudaDeviceSynchronize());
    auto got = results(c.part);
    if (c.with_dq) got.push_back(results(2)[0]);
    double error = 0;
    for (size_t i = 0; i < got.size(); i++) error = std::max(error, relative_error(got[i], expected[part][i]));
    const bool pass = error <= kMaxError;  // false for NaN too
    const double kernel_ms = median_ms(c.launch);
    Pipeline with = baseline;
    (c.part == 0 ? with.forward : c.part == 1 ? with.key : with.query) = c.launch;
    if (c.with_dq) with.query = [] {};
    const double total_ms = time_pipeline(t, with);
    std::printf("%-12s %-6s %-8s %-34s %9.3f %11.3f %7.2fx %9.2e %s\n", shape.name, pair.c_str(), c.kind.c_str(),
                c.name.c_str(), kernel_ms, total_ms, baseline_ms / total_ms, error, pass ? "ok" : "FAIL");
    std::fflush(stdout);
    rows.push_back({pair, c.kind, c.name, kernel_ms, pass});
    baseline.forward();  // the next candidates read the baseline's out, lse and D
    flash::launch_output_dot(t.dsum, t.dout, t.out, t.s, nullptr);
    if (pass && kernel_ms < best_ms[part]) {
      best_ms[part] = kernel_ms;
      best[part] = with;
    }
  }
  Pipeline together = {best[0].forward, best[1].key, best[2].query};
  if (best_ms[3] < best_ms[1] + best_ms[2]) together.key = best[3].key, together.query = best[3].query;

  // Production (attention.cu's TileChoice through the public API) and the best of each kernel.
  const double production_ms = median_ms([&] {
    cuda::attention_forward<bf16>(t.out, t.lse, t.q, t.k, t.v, t.s, nullptr);
    cuda::attention_backward<bf16>(t.dq, t.dk, t.dv, t.dout, t.out, t.lse, t.q, t.k, t.v, t.s, t.scratch, nullptr);
  });
  const double best_total_ms = time_pipeline(t, together);
  std::printf("%-12s %-6s fwd+bwd: baseline %.3f ms, production (TileChoice) %.3f ms, best candidates together %.3f ms "
              "(%.2fx the baseline)\n\n",
              shape.name, pair.c_str(), baseline_ms, production_ms, best_total_ms, baseline_ms / best_total_ms);
  std::fflush(stdout);
}

// Per head-dim pair and kernel: the passing candidate with the least kernel time summed over the
// pair's shapes (one that failed on any shape is out).
void print_choices(const std::vector<Row>& rows) {
  std::map<std::string, std::map<std::string, std::map<std::string, double>>> sums;  // pair, kind, name
  std::map<std::string, bool> failed;
  for (const Row& r : rows) {
    sums[r.pair][r.kind][r.name] += r.kernel_ms;
    if (!r.pass) failed[r.pair + r.kind + r.name] = true;
  }
  std::printf("Fastest passing candidates per head-dim pair (summed kernel ms over its shapes), as attention.cu's "
              "TileChoice:\n");
  for (const auto& [pair, kinds] : sums) {
    const std::string dkp = pair.substr(0, pair.find('/')), dvp = pair.substr(pair.find('/') + 1);
    std::map<std::string, std::pair<std::string, double>> best;  // kind: name, ms
    for (const auto& [kind, names] : kinds) {
      best[kind] = {"(none passed)", 1e30};
      for (const auto& [name, ms] : names)
        if (!failed.count(pair + kind + name) && ms < best[kind].second) best[kind] = {name, ms};
    }
    // One kernel for dK, dV and dQ (ORDERED_DQ) against the two kernels' best.
    const bool one_pass = best.count("dK,dV,dQ") &&
                          best["dK,dV,dQ"].second < best["dK,dV"].second + best["dQ"].second;
    if (one_pass) best["dK,dV"] = best["dK,dV,dQ"], best["dQ"] = {"flash::QueryConfig<4>", 0.0};
    std::printf("template <>\nstruct TileChoice<%s, %s> {\n", dkp.c_str(), dvp.c_str());
    for (const auto& [alias, kind] : {std::pair{"Forward", "forward"}, {"Key", "dK,dV"}, {"Query", "dQ"}})
      std::printf("  using %s = %s;  // %.3f ms%s\n", alias, best[kind].first.c_str(), best[kind].second,
                  one_pass && alias[0] != 'F' ? (alias[0] == 'K' ? " (dK, dV and dQ)" : " (not run)") : "");
    std::printf("};\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  g_skip_ordered_dq = argc == 2 && std::string(argv[1]) == "--no-ordered-dq";
  if (argc != 1 && !g_skip_ordered_dq) {
    std::fprintf(stderr, "usage: attention_sweep [--no-ordered-dq]\n");
    return 2;
  }
  try {
    cudaDeviceProp properties{};
    DSK_CUDA_CHECK(cudaGetDeviceProperties(&properties, 0));
    std::fprintf(stderr, "attention_sweep: %s, bf16 causal, median of 20; error: relative L2 against the baseline\n",
                 properties.name);
    std::printf("%-12s %-6s %-8s %-34s %9s %11s %8s %9s %s\n", "shape", "dims", "kernel", "config", "kernel_ms",
                "fwd+bwd_ms", "speedup", "rel_err", "check");
    std::vector<Row> rows;
    for (const BenchShape& shape : kAttentionShapes) {
      if (shape.Dk == 64 && shape.Dv == 64) sweep_shape<64, 64>(shape, rows);
      if (shape.Dk == 96 && shape.Dv == 64) sweep_shape<96, 64>(shape, rows);
      if (shape.Dk == 128 && shape.Dv == 128) sweep_shape<128, 128>(shape, rows);
    }
    print_choices(rows);
    for (const Row& r : rows)
      if (!r.pass) return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "attention_sweep: error: %s\n", error.what());
    return 4;
  }
  return 0;
}
