// The Model glue: embedding -> layers (RMSNorm, attention, residual, RMSNorm, MLP or MoE,
// residual) -> final RMSNorm, then the fused LM head + cross-entropy, and the same in reverse for
// backward; all through the op interface. The layer internals are in layers.cpp; the parameter
// layout in parameters.cpp.
#include "model/model.hpp"

#include <algorithm>
#include <random>
#include <unordered_map>

#include "core/error.hpp"
#include "io/dtype.hpp"
#include "model/layers.hpp"
#include "model/paged_forward.hpp"
#include "model/parameters.hpp"
#include "tensor/cpu_ops.hpp"

namespace dsk::model {

using tensor::DType;

namespace {

// The activations of one layer.
struct LayerActs {
  Buf norm1, rstd1, x_mid, norm2, rstd2;
  AttentionActs attention;
  MlpActs mlp;
  MoeActs moe;
};

// What a batch shape needs, carved from one arena. Training keeps every layer's activations
// (x[0..L], acts[0..L-1]); inference reuses one set (x ping-pongs between two buffers). With
// recompute, training keeps x[0..L] and the MoE routing decisions of every layer, and the layers
// share one set of the rest (full) or of attention's internals (attention), recomputed in backward.
struct Activations {
  int B = 0, T = 0, max_keys = 0, logit_rows = 0;
  int expert_ranks = 1;  // of the expert parallelism the MoE layers were carved for
  bool training = false;
  Recompute recompute = Recompute::none;
  std::unique_ptr<tensor::Arena> arena;
  Buf tokens, targets, positions, losses, aux_loss;
  Buf segment_start;     // i32 [N]: Model::set_segment_starts' rows, uploaded with the batch
  bool packed = false;   // the batch in the buffers is packed rows
  std::vector<Buf> x;
  std::vector<LayerActs> layers;
  Buf norm_final, rstd_final, branch_out;
  Buf dhidden, dx, dnorm;  // training only
  LayerGradients grads;
  Buf logits;  // inference only, when logits are asked for: f32 [logit_rows, V]

  Buf layer_input(int l) { return x[training ? l : l % 2]; }
  Buf layer_output(int l) { return x[training ? l + 1 : (l + 1) % 2]; }
  LayerActs& layer(int l) { return layers[training ? l : 0]; }
};

}  // namespace

struct Model::Impl {
  std::shared_ptr<tensor::Ops> ops;
  Architecture arch;
  ParameterLayout layout;
  std::unordered_map<std::string, size_t> view_index;
  tensor::RopeTables rope;
  tensor::Arena param_arena, grad_arena;
  std::vector<FlatSpan> dropped_gradients;  // drop_gradients: not in weights.grads
  std::vector<FlatSpan> dropped_weights;    // drop_weights: not in weights.master, weights.working
  Weights weights;
  Buf expert_load;  // i64 [moe layers, E]
  // Training and inference plans are kept apart, so evaluating between steps reallocates nothing.
  Activations training_plan, inference_plan;
  Activations* current = &training_plan;
  Activations& acts_ref() { return *current; }

  int ignore_index = -100;
  bool backward_ready = false;
  std::vector<int32_t> segment_starts;  // set_segment_starts: empty, or [B*T] of the batches to come
  ExpertLoad load;
  float aux_alpha = 0;
  float loss_scale = 1.0f;  // of the backward under way (gradient accumulation folds 1/k in here)
  Recompute recompute_mode = Recompute::none;
  RowExchange* expert_exchange = nullptr;  // expert parallelism (expert_dispatch.hpp), or none
  ModelOptions options;
  Model::BackwardHook backward_hook;

  int expert_rank() const { return expert_exchange ? expert_exchange->rank() : 0; }
  int expert_ranks() const { return expert_exchange ? expert_exchange->ranks() : 1; }

  Impl(const Architecture& a, std::shared_ptr<tensor::Ops> backend, ModelOptions model_options)
      : ops(backend ? std::move(backend) : std::shared_ptr<tensor::Ops>(tensor::make_cpu_ops())),
        arch(a),
        layout(layout_parameters(a)),
        param_arena(*ops, "parameters"),
        grad_arena(*ops, "gradients"),
        options(model_options) {
    for (size_t i = 0; i < layout.views.size(); i++) view_index[layout.views[i].name] = i;
    kernels::cpu::Rope host_rope = compute_rope(arch.rope_scaling, arch.rope_dim(), arch.max_position_embeddings);
    host_rope.interleaved = arch.mla() && arch.rope_interleave;
    rope = ops->prepare_rope(host_rope);
    for (int l = 0; l < arch.layers; l++) {
      if (!layout.layers[l].moe) continue;
      load.layers.push_back(l);
      load.counts.emplace_back(arch.n_routed, 0);
    }
    hold_expert_share();
    carve_parameters(param_arena);
    param_arena.commit();
    carve_parameters(param_arena);
    if (expert_load.numel > 0) ops->zero(expert_load);
    allocate_gradients();
  }

  // ModelOptions' expert share: the other ranks' experts are never allocated.
  void hold_expert_share() {
    const int ranks = options.expert_ranks;
    if (ranks <= 1 || arch.n_routed == 0) return;
    if (arch.n_routed % ranks != 0 || options.expert_rank < 0 || options.expert_rank >= ranks)
      throw UsageError(str("expert parallelism over ", ranks, " ranks needs a MoE model whose n_routed_experts (",
                           arch.n_routed, ") is a multiple of it"));
    dropped_weights = other_ranks_experts(layout, options.expert_rank, ranks);
    dropped_gradients = dropped_weights;
  }

  // The gradients (f32, none for a frozen base) less the dropped ones, zeroed, in an arena of
  // their own, so that dropping some reallocates nothing else.
  void allocate_gradients() {
    weights.grads = Buf{};
    grad_arena = tensor::Arena(*ops, "gradients");
    if (options.frozen_base) return;
    auto carve = [&](tensor::Arena& arena) {
      weights.grads = arena.take(DType::f32, int64_t(layout.total - total_numel(dropped_gradients)));
    };
    carve(grad_arena);
    grad_arena.commit();
    carve(grad_arena);
    weights.dropped_grads = dropped_gradients;
    ops->zero(weights.grads);
  }

  // Master f32; the working copy is the master itself when activations are f32. A frozen base has
  // no master where the working copy alone will do.
  void carve_parameters(tensor::Arena& arena) {
    const int64_t total = int64_t(layout.total - total_numel(dropped_weights));
    weights.dropped_weights = dropped_weights;
    const DType working = ops->activation_dtype();
    const bool master_needed = !options.frozen_base || working == DType::f32 || !load.layers.empty();
    weights.master = master_needed ? arena.take(DType::f32, total) : Buf{};
    weights.working = working == DType::f32 ? weights.master : arena.take(working, total);
    expert_load = arena.take(DType::i64, int64_t(load.layers.size()) * arch.n_routed);
  }

  void refresh_working() {
    if (!weights.master.empty() && weights.working.data != weights.master.data) ops->cast(weights.working, weights.master);
  }

  // A frozen base without a master copy: the host values go straight into the working dtype.
  void upload_working(std::span<const float> values) {
    std::vector<char> bytes(weights.working.bytes());
    io::from_float(values.data(), values.size(), io::DType::BF16, bytes.data());
    ops->copy_from_host(weights.working, bytes.data());
  }

  // One stream of draws over the whole layout, the dropped tensors' drawn and thrown away, so that
  // a held tensor gets the values it has in a whole model of the same seed.
  void initialize(uint64_t seed, float std) {
    std::vector<float> held(layout.total - total_numel(dropped_weights), 0.0f);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, std);
    size_t at = 0;  // in held
    for (const ParamView& v : layout.views) {
      const bool is_norm = v.name.ends_with("norm.weight");
      const bool is_zero = v.name.ends_with(".bias") || !v.trainable;
      if (is_dropped(dropped_weights, v.offset, v.numel)) {
        for (size_t i = 0; !is_norm && !is_zero && i < v.numel; i++) normal(rng);
        continue;
      }
      float* p = held.data() + at;
      for (size_t i = 0; i < v.numel; i++) p[i] = is_norm ? 1.0f : is_zero ? 0.0f : normal(rng);
      at += v.numel;
    }
    store_held(held);
  }

  void store(std::span<const float> all_values) {
    if (dropped_weights.empty()) {
      store_held(all_values);
      return;
    }
    store_held(without(all_values, dropped_weights));
  }

  // The values of the held weights only, in order.
  void store_held(std::span<const float> values) {
    if (values.size() != layout.total - total_numel(dropped_weights))
      throw InternalError(str("model: ", values.size(), " values for ", layout.total - total_numel(dropped_weights),
                              " held weights"));
    if (weights.master.empty()) {
      upload_working(values);
      return;
    }
    ops->copy_from_host(weights.master, values.data());
    refresh_working();
  }

  // The weights without `dropped` from now on (their values kept), and the expert loads reset.
  void drop_weights(std::vector<FlatSpan> dropped) {
    const std::vector<float> values = copy_all_parameters();
    dropped_weights = std::move(dropped);
    weights.master = weights.working = Buf{};
    param_arena = tensor::Arena(*ops, "parameters");
    carve_parameters(param_arena);
    param_arena.commit();
    carve_parameters(param_arena);
    if (expert_load.numel > 0) ops->zero(expert_load);
    store(values);
  }

  std::vector<float> copy_all_parameters() const {
    const Buf held = weights.master.empty() ? weights.working : weights.master;
    std::vector<float> out(size_t(held.numel));
    if (weights.master.empty()) {  // a frozen base kept in bf16 only
      std::vector<char> bytes(held.bytes());
      ops->copy_to_host(bytes.data(), held);
      io::to_float(bytes.data(), io::DType::BF16, out.size(), out.data());
    } else if (!out.empty()) {
      ops->copy_to_host(out.data(), held);
    }
    return with_zeros(out, dropped_weights, layout.total);
  }

  // ---- planning: the arena of one batch shape
  void carve_activations(tensor::Arena& arena, Activations& a, int B, int T, int max_keys, bool training,
                         int logit_rows) {
    const DType t = ops->activation_dtype();
    const int N = B * T, C = arch.hidden, L = arch.layers;
    Dims d{B, T, Buf{}};
    a.tokens = arena.take(DType::i32, N);
    a.targets = arena.take(DType::i32, N);
    a.positions = arena.take(DType::i32, N);
    a.segment_start = arena.take(DType::i32, N);
    a.losses = arena.take(DType::f32, N);
    a.aux_loss = arena.take(DType::f32, 1);
    a.x.resize(training ? L + 1 : 2);
    for (Buf& x : a.x) x = arena.take(t, int64_t(N) * C);
    a.layers.resize(training ? L : 1);
    const Recompute recompute = training ? recompute_mode : Recompute::none;
    for (size_t i = 0; i < a.layers.size(); i++) {
      LayerActs& la = a.layers[i];
      const bool shared = i > 0 && recompute == Recompute::full;
      if (shared) {
        la = a.layers[0];  // the same memory, except the routing decisions below
      } else {
        la.norm1 = arena.take(t, int64_t(N) * C);
        la.rstd1 = arena.take(DType::f32, N);
        la.x_mid = arena.take(t, int64_t(N) * C);
        la.norm2 = arena.take(t, int64_t(N) * C);
        la.rstd2 = arena.take(DType::f32, N);
        if (i > 0 && recompute == Recompute::attention)
          la.attention = a.layers[0].attention;
        else
          carve_attention(arena, la.attention, *ops, arch, d, max_keys);
      }
      // Inference and shared sets serve every layer: carve both kinds of feed-forward where both exist.
      const bool any_layer = !training || recompute == Recompute::full;
      const bool dense = any_layer ? arch.first_k_dense > 0 || arch.n_routed == 0 : !layout.layers[i].moe;
      const bool moe = any_layer ? arch.n_routed > 0 && arch.layers > arch.first_k_dense : layout.layers[i].moe;
      if (dense && !shared) carve_mlp(arena, la.mlp, t, N, arch.intermediate);
      if (moe && !shared) carve_moe(arena, la.moe, t, arch, N, expert_rank(), expert_ranks());
      if (shared && layout.layers[i].moe) carve_routing(arena, la.moe, arch, N, expert_rank(), expert_ranks());
    }
    if (expert_ranks() > 1 && !a.layers.empty()) {
      MoeActs scratch;
      carve_dispatch_scratch(arena, scratch, t, arch, N, expert_ranks());
      for (LayerActs& la : a.layers) {
        la.moe.scratch_a = scratch.scratch_a;
        la.moe.scratch_b = scratch.scratch_b;
      }
    }
    a.norm_final = arena.take(t, int64_t(N) * C);
    a.rstd_final = arena.take(DType::f32, N);
    a.branch_out = arena.take(t, int64_t(N) * C);
    if (training) {
      a.dhidden = arena.take(t, int64_t(N) * C);
      a.dx = arena.take(t, int64_t(N) * C);
      a.dnorm = arena.take(t, int64_t(N) * C);
      carve_gradients(arena, a.grads, t, arch, N, expert_ranks());
    } else {
      a.logits = arena.take(DType::f32, int64_t(logit_rows) * arch.vocab);
    }
  }

  // Makes the plan for this shape current, carving a new arena only when the shape changed.
  void plan(int B, int T, int max_keys, bool training, int logit_rows = 0) {
    Activations& a = training ? training_plan : inference_plan;
    current = &a;
    if (weights.extension) weights.extension->plan(*ops, B * T, training);
    if (weights.prefix) weights.prefix->plan(*ops, B, T, training);
    const Recompute recompute = training ? recompute_mode : Recompute::none;
    if (a.arena && a.B == B && a.T == T && a.max_keys == max_keys && a.logit_rows >= logit_rows &&
        a.recompute == recompute && a.expert_ranks == expert_ranks())
      return;
    a.arena.reset();  // the old plan's memory goes back before the new one is taken
    logit_rows = std::max(logit_rows, a.arena ? 0 : a.logit_rows);
    auto arena = std::make_unique<tensor::Arena>(*ops, str("activations for ", B, " x ", T, " tokens"));
    Activations fresh;
    carve_activations(*arena, fresh, B, T, max_keys, training, logit_rows);
    arena->commit();
    carve_activations(*arena, fresh, B, T, max_keys, training, logit_rows);
    fresh.arena = std::move(arena);
    fresh.B = B;
    fresh.T = T;
    fresh.max_keys = max_keys;
    fresh.logit_rows = logit_rows;
    fresh.training = training;
    fresh.recompute = recompute;
    fresh.expert_ranks = expert_ranks();
    a = std::move(fresh);
  }

  void upload_batch(const int32_t* tokens, int N, int first_position, int T) {
    std::vector<int32_t> positions(N);
    for (int n = 0; n < N; n++) positions[n] = first_position + n % T;
    Activations& a = acts_ref();
    a.packed = !segment_starts.empty();
    if (a.packed) {
      check_segment_starts(N, T);
      for (int n = 0; n < N; n++) positions[n] -= segment_starts[size_t(n)];  // each example from 0
      ops->copy_from_host(a.segment_start.slice(0, N), segment_starts.data());
    }
    ops->copy_from_host(a.tokens.slice(0, N), tokens);
    ops->copy_from_host(a.positions.slice(0, N), positions.data());
  }

  // Packed rows as set_segment_starts documents them: each example on consecutive positions.
  void check_segment_starts(int N, int T) const {
    if (segment_starts.size() != size_t(N))
      throw UsageError(str("model: ", segment_starts.size(), " segment starts set for a batch of ", N, " positions"));
    for (int n = 0; n < N; n++) {
      const int t = n % T, start = segment_starts[size_t(n)];
      const bool same_example = t > 0 && start == segment_starts[size_t(n) - 1];
      if (start < 0 || start > t || !(same_example || start == t))
        throw UsageError(str("model: segment start ", start, " at position ", t, " of row ", n / T,
                             " (want the position where the example began: its own, or its predecessor's start)"));
    }
  }

  Dims dims(int B, int T) {
    Activations& s = acts_ref();
    const int N = B * T;
    return Dims{B, T, s.positions.slice(0, N), s.packed ? s.segment_start.slice(0, N) : Buf{}};
  }

  // ---- forward: the network on B x T tokens to the final normed hidden state. With caches (one
  // per layer) the new keys and values are appended and attention sees them all.
  void run(int B, int T, std::vector<LayerCache>* caches) {
    const Architecture& a = arch;
    Activations& s = acts_ref();
    const int N = B * T, C = a.hidden;
    const Dims d = dims(B, T);
    ops->embedding_forward(s.layer_input(0), s.tokens.slice(0, N), weights.w(layout.embed, int64_t(a.vocab) * C), N, C);
    for (int l = 0; l < a.layers; l++) layer_forward(l, d, caches ? &(*caches)[l] : nullptr, false);
    ops->rmsnorm_forward(s.norm_final, s.rstd_final, s.layer_input(a.layers), weights.w(layout.final_norm, C), N, C,
                         a.rms_eps);
  }

  // One decoder layer: x[l] -> x[l+1]. replay recomputes the activations of a layer for its
  // backward (train.recompute: full): the same ops on the same input, except that MoE routing is
  // not redone (the kept decisions are reused) and nothing is counted twice.
  void layer_forward(int l, const Dims& d, LayerCache* cache, bool replay) {
    const Architecture& a = arch;
    Activations& s = acts_ref();
    const int N = d.N(), C = a.hidden;
    const LayerParams& p = layout.layers[l];
    LayerActs& la = s.layer(l);
    Buf x = s.layer_input(l), out = s.layer_output(l);
    ops->rmsnorm_forward(la.norm1, la.rstd1, x, weights.w(p.input_norm, C), N, C, a.rms_eps);
    attention_forward(*ops, s.branch_out, la.attention, la.norm1, weights, p, a, rope, d, cache);
    ops->add(la.x_mid, x, s.branch_out);
    ops->rmsnorm_forward(la.norm2, la.rstd2, la.x_mid, weights.w(p.post_norm, C), N, C, a.rms_eps);
    if (p.moe) {
      // Generation (a cache) stays on this rank's own copy of every expert.
      moe_forward(*ops, s.branch_out, la.moe, la.norm2, weights, p, a, load_of(l), /*route=*/!replay,
                  cache ? nullptr : expert_exchange);
      if (aux_alpha > 0 && !replay)
        ops->moe_sequence_aux_loss(s.aux_loss, Buf{}, la.moe.scores, la.moe.experts, d.B, d.T, a.n_routed, a.top_k,
                                   aux_alpha);
    } else {
      mlp_forward(*ops, s.branch_out, la.mlp, la.norm2, N, weights, p.mlp);
    }
    ops->add(out, la.x_mid, s.branch_out);
  }

  // The expert-load counters of MoE layer l.
  Buf load_of(int l) {
    const int row = int(std::find(load.layers.begin(), load.layers.end(), l) - load.layers.begin());
    return expert_load.slice(int64_t(row) * arch.n_routed, arch.n_routed);
  }

  Buf lm_head() { return weights.w(layout.lm_head.weight, int64_t(arch.vocab) * arch.hidden); }
  Buf lm_head_grad() { return weights.g(layout.lm_head.weight, int64_t(arch.vocab) * arch.hidden); }

  // ---- backward from d(final normed hidden) in acts.dhidden down to the embedding.
  void backward() {
    const Architecture& a = arch;
    Activations& s = acts_ref();
    const int N = s.B * s.T, C = a.hidden;
    const Dims d = dims(s.B, s.T);
    ops->zero(s.dx);
    ops->rmsnorm_backward(s.dx, weights.g(layout.final_norm, C), s.dhidden, s.layer_input(a.layers),
                          weights.w(layout.final_norm, C), s.rstd_final, N, C);
    stage_done(0);  // the LM head's gradient came from the loss, before this backward
    for (int l = a.layers - 1; l >= 0; l--) {
      const LayerParams& p = layout.layers[l];
      LayerActs& la = s.layer(l);
      if (s.recompute == Recompute::full) layer_forward(l, d, nullptr, true);
      if (s.recompute == Recompute::attention)
        attention_forward(*ops, s.branch_out, la.attention, la.norm1, weights, p, a, rope, d, nullptr);
      // dx holds d(x[l+1]); the residual passes it to x_mid unchanged, the MLP branch adds to it.
      ops->zero(s.dnorm);
      if (p.moe)
        moe_backward(*ops, s.dnorm, s.dx, la.moe, s.grads, la.norm2, weights, p, a, d, aux_alpha * loss_scale,
                     s.aux_loss, expert_exchange);
      else
        mlp_backward(*ops, s.dnorm, s.dx, la.mlp, s.grads.dact, s.grads.dgate, s.grads.dup, la.norm2, N, weights,
                     p.mlp);
      ops->rmsnorm_backward(s.dx, weights.g(p.post_norm, C), s.dnorm, la.x_mid, weights.w(p.post_norm, C), la.rstd2,
                            N, C);
      ops->zero(s.dnorm);
      attention_backward(*ops, s.dnorm, s.dx, la.attention, s.grads, la.norm1, weights, p, a, rope, d);
      ops->rmsnorm_backward(s.dx, weights.g(p.input_norm, C), s.dnorm, s.layer_input(l), weights.w(p.input_norm, C),
                            la.rstd1, N, C);
      stage_done(a.layers - l);
    }
    if (!weights.grads.empty())
      ops->embedding_backward(weights.g(layout.embed, int64_t(a.vocab) * C), s.dx, s.tokens.slice(0, N), N, C, a.vocab);
    stage_done(a.layers + 1);
  }

  void stage_done(int stage) {
    if (backward_hook) backward_hook(stage);
  }

  int prefix_length() const { return weights.prefix ? weights.prefix->length() : 0; }

  void check_tokens(const int32_t* input, int n) const {
    for (int i = 0; i < n; i++)
      if (input[i] < 0 || input[i] >= arch.vocab)
        throw UsageError(str("model: token id ", input[i], " at position ", i, " is outside the vocabulary [0, ",
                             arch.vocab, ")"));
  }

  // Uploads the targets and returns how many count (not ignore_index).
  int upload_targets(const int32_t* targets, int N) {
    int counted = 0;
    for (int n = 0; n < N; n++) {
      if (targets[n] == ignore_index) continue;
      if (targets[n] < 0 || targets[n] >= arch.vocab)
        throw UsageError(str("model: target ", targets[n], " at position ", n, " is outside the vocabulary"));
      counted++;
    }
    ops->copy_from_host(acts_ref().targets.slice(0, N), targets);
    return counted;
  }

  void start(const int32_t* tokens, int B, int T, bool training, int logit_rows = 0) {
    if (B <= 0 || T <= 0) throw UsageError(str("model: forward needs B, T > 0 (got ", B, ", ", T, ")"));
    check_tokens(tokens, B * T);
    const int P = prefix_length();  // the prefix's positions come first (layers.hpp: AttentionPrefix)
    plan(B, T, P + T, training, logit_rows);
    upload_batch(tokens, B * T, P, T);
    ops->zero(acts_ref().aux_loss);
  }

  // The mean loss of the batch (+ the aux loss when training with it); with backward, the
  // gradients of loss_scale * that loss.
  float loss(const int32_t* targets, bool backward, float loss_scale) {
    Activations& acts = acts_ref();
    const int N = acts.B * acts.T, C = arch.hidden;
    const int counted = upload_targets(targets, N);
    const float dscale = backward && counted > 0 ? loss_scale / float(counted) : 0.0f;
    if (backward) ops->zero(acts.dhidden);
    ops->lm_head_loss(acts.losses.slice(0, N), backward ? acts.dhidden : Buf{}, backward ? lm_head_grad() : Buf{},
                      acts.norm_final, lm_head(), acts.targets.slice(0, N), N, C, arch.vocab, ignore_index, dscale);
    const double total = ops->sum(acts.losses.slice(0, N));
    const double aux = aux_alpha > 0 ? ops->sum(acts.aux_loss) : 0.0;
    return counted ? float(total / counted + aux) : float(aux);
  }
};

Model::Model(const Architecture& arch, uint64_t seed, float init_std, std::shared_ptr<tensor::Ops> ops,
             ModelOptions options)
    : impl_(std::make_unique<Impl>(arch, std::move(ops), options)) {
  impl_->initialize(seed, init_std);
}
Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model Model::unfilled(const Architecture& arch, std::shared_ptr<tensor::Ops> ops, ModelOptions options) {
  return Model(std::make_unique<Impl>(arch, std::move(ops), options));
}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const Architecture& Model::architecture() const { return impl_->arch; }
tensor::Ops& Model::ops() const { return *impl_->ops; }
const std::shared_ptr<tensor::Ops>& Model::shared_ops() const { return impl_->ops; }
tensor::Buf Model::master() { return impl_->weights.master; }
tensor::Buf Model::working() { return impl_->weights.working; }
tensor::Buf Model::gradient_buffer() { return impl_->weights.grads; }

std::vector<float> Model::copy_parameters() const { return impl_->copy_all_parameters(); }

void Model::set_parameters(std::span<const float> values) {
  if (values.size() != impl_->layout.total)
    throw InternalError(str("model: ", values.size(), " parameters given for ", impl_->layout.total));
  impl_->store(values);
}

std::vector<float> Model::copy_gradients() const {
  std::vector<float> held(size_t(impl_->weights.grads.numel));
  if (!held.empty()) impl_->ops->copy_to_host(held.data(), impl_->weights.grads);
  return with_zeros(held, impl_->dropped_gradients, impl_->layout.total);
}

namespace {
std::span<float> host_span(const tensor::Ops& ops, Buf b) {
  if (ops.device() != tensor::Device::cpu)
    throw InternalError("model: host views of the parameters exist on the CPU backend only (use copy_parameters)");
  return {b.as<float>(), size_t(b.numel)};
}
}  // namespace

std::span<float> Model::parameters() { return host_span(*impl_->ops, impl_->weights.master); }
std::span<const float> Model::parameters() const { return host_span(*impl_->ops, impl_->weights.master); }
std::span<float> Model::gradients() { return host_span(*impl_->ops, impl_->weights.grads); }
const std::vector<ParamView>& Model::parameter_views() const { return impl_->layout.views; }
size_t Model::parameter_count() const { return impl_->layout.total; }

const ParamView& Model::view(const std::string& name) const {
  auto it = impl_->view_index.find(name);
  if (it == impl_->view_index.end()) throw UsageError(str("model: no parameter named \"", name, "\""));
  return impl_->layout.views[it->second];
}
std::span<float> Model::parameter(const std::string& name) {
  const ParamView& v = view(name);
  return parameters().subspan(offset_without(impl_->dropped_weights, v.offset, v.numel), v.numel);
}
std::span<float> Model::gradient(const std::string& name) {
  const ParamView& v = view(name);
  return gradients().subspan(offset_without(impl_->dropped_gradients, v.offset, v.numel), v.numel);
}

float Model::forward(const int32_t* tokens, const int32_t* targets, int B, int T, int ignore_index) {
  Impl& m = *impl_;
  m.ignore_index = ignore_index;
  m.start(tokens, B, T, false);
  m.run(B, T, nullptr);
  m.backward_ready = false;
  return m.loss(targets, false, 1.0f);
}

float Model::forward_backward(const int32_t* tokens, const int32_t* targets, int B, int T, int ignore_index,
                              float loss_scale) {
  Impl& m = *impl_;
  m.ignore_index = ignore_index;
  m.start(tokens, B, T, true);
  m.run(B, T, nullptr);
  m.loss_scale = loss_scale;
  const float loss = m.loss(targets, true, loss_scale);
  m.backward();
  m.backward_ready = false;
  return loss;
}

std::vector<float> Model::logits(const int32_t* tokens, int B, int T) {
  Impl& m = *impl_;
  m.start(tokens, B, T, false, B * T);
  m.run(B, T, nullptr);
  const int N = B * T, V = m.arch.vocab;
  Buf out = m.acts_ref().logits.slice(0, int64_t(N) * V);
  m.ops->lm_head_logits(out, m.acts_ref().norm_final, m.lm_head(), N, m.arch.hidden, V);
  std::vector<float> host(size_t(N) * V);
  m.ops->copy_to_host(host.data(), out);
  return host;
}

void Model::set_segment_starts(std::span<const int32_t> segment_start) {
  impl_->segment_starts.assign(segment_start.begin(), segment_start.end());
}

void Model::forward_hidden(const int32_t* tokens, int B, int T, bool training) {
  Impl& m = *impl_;
  m.start(tokens, B, T, training);
  m.run(B, T, nullptr);
  m.backward_ready = training;
  if (training) m.ops->zero(m.acts_ref().dhidden);
}

tensor::Buf Model::hidden() {
  Activations& a = impl_->acts_ref();
  return a.norm_final.slice(0, int64_t(a.B) * a.T * impl_->arch.hidden);
}
tensor::Buf Model::hidden_gradient() {
  Activations& a = impl_->acts_ref();
  return a.dhidden.empty() ? Buf{} : a.dhidden.slice(0, int64_t(a.B) * a.T * impl_->arch.hidden);
}
void Model::backward_from_hidden() {
  if (!impl_->backward_ready) throw UsageError("model: backward_from_hidden() needs forward_hidden(training) first");
  impl_->backward();
  impl_->backward_ready = false;
}
tensor::Buf Model::lm_head_weight() { return impl_->lm_head(); }
tensor::Buf Model::lm_head_gradient() { return impl_->lm_head_grad(); }

std::vector<Model::GradientStage> Model::gradient_stages() const {
  const ParameterLayout& layout = impl_->layout;
  const int L = impl_->arch.layers;
  // The flat layout is HF's order: embedding, layers 0..L-1, final norm, (untied) LM head.
  std::vector<size_t> layer_begin(size_t(L) + 1, layout.final_norm);
  for (const ParamView& v : layout.views) {
    if (!v.name.starts_with("model.layers.")) continue;
    const int l = std::stoi(v.name.substr(std::string("model.layers.").size()));
    layer_begin[size_t(l)] = std::min(layer_begin[size_t(l)], v.offset);
  }
  std::vector<GradientStage> stages;
  stages.push_back({"head", layout.final_norm, layout.total - layout.final_norm});
  for (int l = L - 1; l >= 0; l--) {
    const size_t begin = layer_begin[size_t(l)], end = layer_begin[size_t(l) + 1];
    stages.push_back({str("model.layers.", l), begin, end - begin});
  }
  stages.push_back({"embedding", 0, L > 0 ? layer_begin[0] : layout.final_norm});
  for (GradientStage& stage : stages) {  // into the gradient buffer, less what drop_gradients took out
    const size_t begin = gradient_offset(stage.offset), end = gradient_offset(stage.offset + stage.numel);
    stage.offset = begin;
    stage.numel = end - begin;
  }
  return stages;
}

void Model::set_backward_hook(BackwardHook hook) { impl_->backward_hook = std::move(hook); }

void Model::zero_grad() {
  if (!impl_->weights.grads.empty()) impl_->ops->zero(impl_->weights.grads);
}

void Model::drop_gradients(std::vector<FlatSpan> dropped) {
  check_spans(dropped, impl_->layout.total);
  impl_->dropped_gradients = std::move(dropped);
  impl_->allocate_gradients();
}

size_t Model::gradient_offset(size_t offset) const { return offset_without(impl_->dropped_gradients, offset); }

void Model::drop_weights(std::vector<FlatSpan> dropped) {
  check_spans(dropped, impl_->layout.total);
  impl_->drop_weights(std::move(dropped));
}

size_t Model::weight_offset(size_t offset) const { return offset_without(impl_->dropped_weights, offset); }
const std::vector<FlatSpan>& Model::dropped_weights() const { return impl_->dropped_weights; }
void Model::set_held_parameters(std::span<const float> held) { impl_->store_held(held); }

KvCache Model::new_kv_cache(int B, int max_length) const {
  const Architecture& a = impl_->arch;
  const int P = impl_->prefix_length();  // a prefix (prefix tuning) fills the first P positions
  max_length += P;
  const int heads = a.mla() ? a.heads : a.kv_heads;
  const int64_t k_row = int64_t(heads) * a.qk_head_dim(), v_row = int64_t(heads) * (a.mla() ? a.v_head_dim : a.head_dim);
  KvCache cache;
  cache.batch = B;
  cache.max_length = max_length;
  cache.arena = std::make_unique<tensor::Arena>(*impl_->ops, str("KV cache for ", B, " x ", max_length, " positions"));
  auto carve = [&](tensor::Arena& arena) {
    cache.k.clear();
    cache.v.clear();
    for (int l = 0; l < a.layers; l++) {
      cache.k.push_back(arena.take(impl_->ops->activation_dtype(), int64_t(B) * max_length * k_row));
      cache.v.push_back(arena.take(impl_->ops->activation_dtype(), int64_t(B) * max_length * v_row));
    }
    cache.k_all = arena.take(impl_->ops->activation_dtype(), int64_t(B) * max_length * k_row);
    cache.v_all = arena.take(impl_->ops->activation_dtype(), int64_t(B) * max_length * v_row);
  };
  carve(*cache.arena);
  cache.arena->commit();
  carve(*cache.arena);
  for (int l = 0; P > 0 && l < a.layers; l++)
    impl_->weights.prefix->write_cache(*impl_->ops, impl_->layout.layers[l].o.weight, cache.k[l], cache.v[l], B,
                                       max_length);
  cache.length = P;
  return cache;
}

std::vector<float> Model::forward_cached(KvCache& cache, const int32_t* tokens, int B, int T, bool all_positions) {
  Impl& m = *impl_;
  if (B != cache.batch || T <= 0 || cache.length + T > cache.max_length)
    throw UsageError(str("model: KV cache holds ", cache.batch, " x ", cache.max_length, " positions with ",
                         cache.length, " used; cannot add ", B, " x ", T));
  m.check_tokens(tokens, B * T);
  if (!m.segment_starts.empty()) throw UsageError("model: KV-cached generation of packed rows (set_segment_starts)");
  const int C = m.arch.hidden, V = m.arch.vocab, rows = all_positions ? B * T : B;
  m.plan(B, T, cache.max_length, false, rows);
  m.upload_batch(tokens, B * T, cache.length, T);
  std::vector<LayerCache> layers(m.arch.layers);
  for (int l = 0; l < m.arch.layers; l++)
    layers[l] = LayerCache{cache.k[l], cache.v[l], cache.k_all, cache.v_all, cache.max_length, cache.length};
  m.run(B, T, &layers);
  m.backward_ready = false;
  cache.length += T;

  Activations& acts = m.acts_ref();
  Buf hidden = acts.norm_final;
  if (!all_positions && T > 1) {
    // The last position of each sequence, gathered at the front of branch_out (free after run()).
    hidden = acts.branch_out.slice(0, int64_t(B) * C);
    m.ops->copy_columns(hidden, C, 0, acts.norm_final, T * C, (T - 1) * C, B, C, false);
  }
  Buf out = acts.logits.slice(0, int64_t(rows) * V);
  m.ops->lm_head_logits(out, hidden.slice(0, int64_t(rows) * C), m.lm_head(), rows, C, V);
  std::vector<float> host(size_t(rows) * V);
  m.ops->copy_to_host(host.data(), out);
  return host;
}

const ExpertLoad& Model::expert_load() const {
  Impl& m = *impl_;
  if (m.expert_load.numel == 0) return m.load;
  std::vector<int64_t> counts(size_t(m.expert_load.numel));
  m.ops->copy_to_host(counts.data(), m.expert_load);
  for (size_t i = 0; i < m.load.counts.size(); i++)
    std::copy_n(counts.begin() + int64_t(i) * m.arch.n_routed, m.arch.n_routed, m.load.counts[i].begin());
  return m.load;
}

tensor::Buf Model::expert_load_counts() { return impl_->expert_load; }

void Model::reset_expert_load() {
  if (impl_->expert_load.numel > 0) impl_->ops->zero(impl_->expert_load);
}

void Model::update_expert_bias(float speed) {
  Impl& m = *impl_;
  for (size_t i = 0; i < m.load.layers.size(); i++) {
    Buf bias = m.weights.m(m.layout.layers[m.load.layers[i]].router_bias, m.arch.n_routed);
    m.ops->moe_update_bias(bias, m.expert_load.slice(int64_t(i) * m.arch.n_routed, m.arch.n_routed), m.arch.n_routed,
                           speed);
  }
  // Routing reads the biases from the master weights, so the working copy needs no refresh.
}

void Model::set_sequence_aux_loss(float alpha) { impl_->aux_alpha = alpha; }

void Model::set_recompute(Recompute mode) { impl_->recompute_mode = mode; }

void Model::set_expert_exchange(RowExchange* exchange) {
  if (exchange && exchange->ranks() > 1 && (impl_->arch.n_routed == 0 || impl_->arch.n_routed % exchange->ranks() != 0))
    throw UsageError(str("expert parallelism over ", exchange->ranks(), " ranks needs a MoE model whose ",
                         "n_routed_experts (", impl_->arch.n_routed, ") is a multiple of it"));
  impl_->expert_exchange = exchange && exchange->ranks() > 1 ? exchange : nullptr;
}

void Model::set_linear_extension(LinearExtension* extension) { impl_->weights.extension = extension; }
void Model::set_attention_prefix(AttentionPrefix* prefix) { impl_->weights.prefix = prefix; }
bool Model::frozen_base() const { return impl_->options.frozen_base; }

Recompute parse_recompute(const std::string& name) {
  if (name == "none") return Recompute::none;
  if (name == "attention") return Recompute::attention;
  if (name == "full") return Recompute::full;
  throw UsageError(str("recompute \"", name, "\" is not one of none, attention, full"));
}

}  // namespace dsk::model

namespace dsk::model {

PagedWorkspace Model::new_paged_workspace(const PagedPlan& plan) const {
  const Impl& m = *impl_;
  if (m.weights.prefix)
    throw UsageError("serving: a model with a prefix-tuning adapter has no paged path (use dsk-finetune eval)");
  return make_paged_workspace(ModelParts{*m.ops, m.arch, m.layout, m.weights, m.rope}, plan);
}

std::vector<float> Model::forward_paged(PagedWorkspace& workspace, const PagedStep& step) {
  Impl& m = *impl_;
  m.backward_ready = false;
  return paged_forward(ModelParts{*m.ops, m.arch, m.layout, m.weights, m.rope}, workspace, step);
}

std::vector<int32_t> Model::forward_paged_tokens(PagedWorkspace& workspace, const PagedStep& step) {
  Impl& m = *impl_;
  m.backward_ready = false;
  return paged_forward_tokens(ModelParts{*m.ops, m.arch, m.layout, m.weights, m.rope}, workspace, step);
}

}  // namespace dsk::model
