// The Model glue: embedding -> layers (RMSNorm, attention, residual, RMSNorm, MLP or MoE,
// residual) -> final RMSNorm -> LM head -> cross-entropy, and the same in reverse for backward.
// The layer internals are in layers.cpp; the parameter layout in parameters.cpp.
#include "model/model.hpp"

#include <random>
#include <unordered_map>

#include "core/error.hpp"
#include "model/layers.hpp"
#include "model/parameters.hpp"

namespace dsk::model {

namespace cpu = kernels::cpu;

struct Model::Impl {
  Architecture arch;
  ParameterLayout layout;
  std::vector<float> params, grads;
  std::unordered_map<std::string, size_t> view_index;
  cpu::Rope rope;

  // The last forward's inputs and saved activations. x[l] is layer l's input, x[L] the final
  // hidden state; x_mid[l] is the residual stream between attention and MLP.
  int B = 0, T = 0, ignore_index = -100, counted = 0;
  bool backward_ready = false;
  std::vector<int32_t> tokens, targets, positions;
  std::vector<Tensor> x, x_mid, norm1, rstd1, norm2, rstd2;
  std::vector<AttentionActs> attention;
  std::vector<MlpActs> mlp;
  std::vector<MoeActs> moe;
  Tensor branch_out, norm_final, rstd_final, logits, probs;

  ExpertLoad load;
  float aux_alpha = 0;

  explicit Impl(const Architecture& a) : arch(a), layout(layout_parameters(a)) {
    params.assign(layout.total, 0.0f);
    grads.assign(layout.total, 0.0f);
    for (size_t i = 0; i < layout.views.size(); i++) view_index[layout.views[i].name] = i;
    rope = compute_rope(arch.rope_scaling, arch.rope_dim(), arch.max_position_embeddings);
    rope.interleaved = arch.mla() && arch.rope_interleave;
    int L = arch.layers;
    x.resize(L + 1);
    for (auto* v : {&x_mid, &norm1, &rstd1, &norm2, &rstd2}) v->resize(L);
    attention.resize(L);
    mlp.resize(L);
    moe.resize(L);
    for (int l = 0; l < L; l++) {
      if (!layout.layers[l].moe) continue;
      load.layers.push_back(l);
      load.counts.emplace_back(arch.n_routed, 0);
    }
  }

  const float* P() const { return params.data(); }

  void initialize(uint64_t seed, float std) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, std);
    for (const ParamView& v : layout.views) {
      float* p = params.data() + v.offset;
      bool is_norm = v.name.ends_with("norm.weight");
      bool is_zero = v.name.ends_with(".bias") || !v.trainable;
      for (size_t i = 0; i < v.numel; i++) p[i] = is_norm ? 1.0f : is_zero ? 0.0f : normal(rng);
    }
  }

  // Runs the network on B x T tokens at `positions`, filling the activations and logits.
  // With caches (one per layer) the new keys/values are appended and attention sees them all.
  void run(const int32_t* input, std::vector<LayerCache>* caches) {
    const Architecture& a = arch;
    int N = B * T, C = a.hidden;
    Dims d{B, T, positions.data()};
    x[0].resize({N, C});
    cpu::embedding_forward(x[0].data(), input, P() + layout.embed, N, C);
    for (int l = 0; l < a.layers; l++) {
      const LayerParams& p = layout.layers[l];
      norm1[l].resize({N, C});
      rstd1[l].resize({N});
      cpu::rmsnorm_forward(norm1[l].data(), rstd1[l].data(), x[l].data(), P() + p.input_norm, N, C, a.rms_eps);
      attention_forward(branch_out, attention[l], norm1[l], P(), p, a, rope, d, caches ? &(*caches)[l] : nullptr);
      add(x_mid[l], x[l], branch_out);
      norm2[l].resize({N, C});
      rstd2[l].resize({N});
      cpu::rmsnorm_forward(norm2[l].data(), rstd2[l].data(), x_mid[l].data(), P() + p.post_norm, N, C, a.rms_eps);
      if (p.moe) {
        moe_forward(branch_out, moe[l], norm2[l], P(), p, a);
      } else {
        branch_out.resize({N, C});
        mlp_forward(branch_out.data(), mlp[l], norm2[l].data(), N, P(), p.mlp);
      }
      add(x[l + 1], x_mid[l], branch_out);
    }
    norm_final.resize({N, C});
    rstd_final.resize({N});
    cpu::rmsnorm_forward(norm_final.data(), rstd_final.data(), x[a.layers].data(), P() + layout.final_norm, N, C,
                         a.rms_eps);
    logits.resize({B, T, a.vocab});
    cpu::matmul_forward(logits.data(), norm_final.data(), P() + layout.lm_head.weight, nullptr, N, C, a.vocab);
  }

  static void add(Tensor& out, const Tensor& a, const Tensor& b) {
    out.resize(a.shape());
    for (int64_t i = 0; i < a.numel(); i++) out.data()[i] = a.data()[i] + b.data()[i];
  }

  void count_expert_load() {
    for (size_t i = 0; i < load.layers.size(); i++)
      for (int32_t e : moe[load.layers[i]].experts) load.counts[i][e]++;
  }

  float aux_loss() const {
    if (aux_alpha <= 0) return 0.0f;
    Dims d{B, T, positions.data()};
    float total = 0;
    for (int l : load.layers) total += sequence_aux_loss(moe[l], arch, d, aux_alpha);
    return total;
  }

  void backward() {
    const Architecture& a = arch;
    int N = B * T, C = a.hidden, V = a.vocab;
    Dims d{B, T, positions.data()};
    float* G = grads.data();
    Tensor dlogits({N, V}), dnorm({N, C}), dx({N, C});
    cpu::cross_entropy_backward(dlogits.data(), probs.data(), targets.data(), N, V, ignore_index, counted, 1.0f);
    cpu::matmul_backward(dnorm.data(), G + layout.lm_head.weight, nullptr, dlogits.data(), norm_final.data(),
                         P() + layout.lm_head.weight, N, C, V);
    cpu::rmsnorm_backward(dx.data(), G + layout.final_norm, dnorm.data(), x[a.layers].data(), P() + layout.final_norm,
                          rstd_final.data(), N, C);
    for (int l = a.layers - 1; l >= 0; l--) {
      const LayerParams& p = layout.layers[l];
      // dx holds d(x[l+1]); the residual passes it to x_mid unchanged, the MLP branch adds to it.
      dnorm.zero();
      if (p.moe)
        moe_backward(dnorm.data(), G, dx, moe[l], norm2[l], P(), p, a, d, aux_alpha);
      else
        mlp_backward(dnorm.data(), G, dx.data(), mlp[l], norm2[l].data(), N, P(), p.mlp);
      cpu::rmsnorm_backward(dx.data(), G + p.post_norm, dnorm.data(), x_mid[l].data(), P() + p.post_norm,
                            rstd2[l].data(), N, C);
      dnorm.zero();
      attention_backward(dnorm.data(), G, dx, attention[l], norm1[l], P(), p, a, rope, d);
      cpu::rmsnorm_backward(dx.data(), G + p.input_norm, dnorm.data(), x[l].data(), P() + p.input_norm,
                            rstd1[l].data(), N, C);
    }
    cpu::embedding_backward(G + layout.embed, dx.data(), tokens.data(), N, C);
  }

  void check_tokens(const int32_t* input, int n) const {
    for (int i = 0; i < n; i++)
      if (input[i] < 0 || input[i] >= arch.vocab)
        throw UsageError(str("model: token id ", input[i], " at position ", i, " is outside the vocabulary [0, ",
                             arch.vocab, ")"));
  }
};

Model::Model(const Architecture& arch, uint64_t seed, float init_std) : impl_(std::make_unique<Impl>(arch)) {
  impl_->initialize(seed, init_std);
}
Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const Architecture& Model::architecture() const { return impl_->arch; }
std::span<float> Model::parameters() { return impl_->params; }
std::span<const float> Model::parameters() const { return impl_->params; }
std::span<float> Model::gradients() { return impl_->grads; }
const std::vector<ParamView>& Model::parameter_views() const { return impl_->layout.views; }
size_t Model::parameter_count() const { return impl_->layout.total; }

const ParamView& Model::view(const std::string& name) const {
  auto it = impl_->view_index.find(name);
  if (it == impl_->view_index.end()) throw UsageError(str("model: no parameter named \"", name, "\""));
  return impl_->layout.views[it->second];
}
std::span<float> Model::parameter(const std::string& name) {
  const ParamView& v = view(name);
  return {impl_->params.data() + v.offset, v.numel};
}
std::span<float> Model::gradient(const std::string& name) {
  const ParamView& v = view(name);
  return {impl_->grads.data() + v.offset, v.numel};
}

float Model::forward(const int32_t* tokens, const int32_t* targets, int B, int T, int ignore_index) {
  Impl& m = *impl_;
  if (B <= 0 || T <= 0) throw UsageError(str("model: forward needs B, T > 0 (got ", B, ", ", T, ")"));
  int N = B * T;
  m.check_tokens(tokens, N);
  m.B = B;
  m.T = T;
  m.ignore_index = ignore_index;
  m.tokens.assign(tokens, tokens + N);
  m.positions.resize(N);
  for (int n = 0; n < N; n++) m.positions[n] = n % T;
  m.run(tokens, nullptr);
  m.count_expert_load();
  m.backward_ready = targets != nullptr;
  if (!targets) return 0.0f;
  for (int n = 0; n < N; n++)
    if (targets[n] != ignore_index && (targets[n] < 0 || targets[n] >= m.arch.vocab))
      throw UsageError(str("model: target ", targets[n], " at position ", n, " is outside the vocabulary"));
  m.targets.assign(targets, targets + N);
  m.probs.resize({N, m.arch.vocab});
  float loss = cpu::cross_entropy_forward(m.probs.data(), m.logits.data(), targets, N, m.arch.vocab, ignore_index,
                                          &m.counted);
  return loss + m.aux_loss();
}

std::span<const float> Model::logits() const {
  return {impl_->logits.data(), (size_t)impl_->logits.numel()};
}

void Model::backward() {
  if (!impl_->backward_ready) throw UsageError("model: backward() needs a forward() with targets first");
  impl_->backward();
}

void Model::zero_grad() { std::fill(impl_->grads.begin(), impl_->grads.end(), 0.0f); }

KvCache Model::new_kv_cache(int B, int max_length) const {
  const Architecture& a = impl_->arch;
  int heads = a.mla() ? a.heads : a.kv_heads;
  int k_dim = a.qk_head_dim(), v_dim = a.mla() ? a.v_head_dim : a.head_dim;
  KvCache cache;
  cache.batch = B;
  cache.max_length = max_length;
  for (int l = 0; l < a.layers; l++) {
    cache.k.emplace_back((size_t)B * max_length * heads * k_dim, 0.0f);
    cache.v.emplace_back((size_t)B * max_length * heads * v_dim, 0.0f);
  }
  return cache;
}

std::span<const float> Model::forward_cached(KvCache& cache, const int32_t* tokens, int B, int T) {
  Impl& m = *impl_;
  if (B != cache.batch || T <= 0 || cache.length + T > cache.max_length)
    throw UsageError(str("model: KV cache holds ", cache.batch, " x ", cache.max_length, " positions with ",
                         cache.length, " used; cannot add ", B, " x ", T));
  m.check_tokens(tokens, B * T);
  m.B = B;
  m.T = T;
  m.positions.resize(B * T);
  for (int n = 0; n < B * T; n++) m.positions[n] = cache.length + n % T;
  std::vector<LayerCache> layers(m.arch.layers);
  for (int l = 0; l < m.arch.layers; l++)
    layers[l] = LayerCache{cache.k[l].data(), cache.v[l].data(), cache.max_length, cache.length};
  m.run(tokens, &layers);
  m.backward_ready = false;
  cache.length += T;
  return logits();
}

const ExpertLoad& Model::expert_load() const { return impl_->load; }

void Model::reset_expert_load() {
  for (auto& counts : impl_->load.counts) std::fill(counts.begin(), counts.end(), 0);
}

void Model::update_expert_bias(float speed) {
  Impl& m = *impl_;
  for (size_t i = 0; i < m.load.layers.size(); i++) {
    const std::vector<int64_t>& counts = m.load.counts[i];
    double mean = 0;
    for (int64_t c : counts) mean += (double)c;
    mean /= (double)counts.size();
    float* bias = m.params.data() + m.layout.layers[m.load.layers[i]].router_bias;
    for (size_t e = 0; e < counts.size(); e++) {
      double gap = mean - (double)counts[e];
      bias[e] += speed * (float)((gap > 0) - (gap < 0));
    }
  }
}

void Model::set_sequence_aux_loss(float alpha) { impl_->aux_alpha = alpha; }

}  // namespace dsk::model
