#include "finetune/prefix.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "io/dtype.hpp"
#include "io/safetensors.hpp"
#include "model/parameters.hpp"

namespace dsk::finetune {

using nlohmann::json;
using tensor::Buf;
using tensor::DType;
namespace fs = std::filesystem;

namespace {

const char* const kGqaType = "PREFIX_TUNING";
const char* const kMlaType = "MLA_PREFIX_TUNING";
const char* const kTensorName = "prompt_embeddings";

// o_proj's weight offset of each layer: how the layer code names a layer to an AttentionPrefix.
std::unordered_map<size_t, int> layers_by_o_weight(const model::Model& model) {
  std::unordered_map<size_t, int> out;
  for (int l = 0; l < model.architecture().layers; l++)
    out[model.view(str("model.layers.", l, ".self_attn.o_proj.weight")).offset] = l;
  return out;
}

}  // namespace

PrefixSettings prefix_settings_from(const Config& config) {
  PrefixSettings s;
  s.virtual_tokens = int(config.get_int("prefix.num_virtual_tokens"));
  s.projection = config.get_bool("prefix.projection");
  if (config.has("prefix.encoder_hidden_size")) s.encoder_hidden_size = int(config.get_int("prefix.encoder_hidden_size"));
  return s;
}

PrefixGeometry prefix_geometry(const model::Architecture& a) {
  PrefixGeometry g;
  g.mla = a.mla();
  g.layers = a.layers;
  g.heads = a.mla() ? a.heads : a.kv_heads;
  g.key_dim = a.qk_head_dim();
  g.value_dim = a.mla() ? a.v_head_dim : a.head_dim;
  g.token_dim = a.mla() ? a.hidden : g.key_row();
  return g;
}

namespace {

// Where each part of the trainable set lives (prefix.hpp's PrefixLayout); UsageError for P < 1 or
// an encoder size < 0.
PrefixLayout layout_of(const PrefixSettings& s, const PrefixGeometry& g) {
  if (s.virtual_tokens < 1) throw UsageError(str("prefix: num_virtual_tokens must be at least 1 (got ", s.virtual_tokens, ")"));
  if (s.encoder_hidden_size < 0)
    throw UsageError(str("prefix: encoder_hidden_size must be at least 1 (got ", s.encoder_hidden_size, ")"));
  PrefixLayout l;
  const size_t P = size_t(s.virtual_tokens), W = size_t(g.width());
  if (!s.projection) {
    l.total = P * W;
    return l;
  }
  const size_t D = size_t(g.token_dim), E = size_t(s.encoder_hidden_size > 0 ? s.encoder_hidden_size : g.token_dim);
  l.w1 = P * D;
  l.b1 = l.w1 + E * D;
  l.w2 = l.b1 + E;
  l.b2 = l.w2 + W * E;
  l.total = l.b2 + W;
  return l;
}

}  // namespace

PrefixAdapter::PrefixAdapter(model::Model& model, PrefixSettings settings, uint64_t seed)
    : model_(model),
      settings_(settings),
      geometry_(prefix_geometry(model.architecture())),
      layer_of_(layers_by_o_weight(model)),
      layout_(layout_of(settings_, geometry_)),
      parameters_(model.ops(), layout_.total, "prefix tuning") {
  const PrefixLayout& l = layout_;
  std::vector<float> values(l.total);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const size_t embedding_end = settings_.projection ? l.w1 : l.total;
  std::generate_n(values.begin(), embedding_end, [&] { return normal(rng); });
  if (settings_.projection) {
    auto uniform_fill = [&](size_t from, size_t to, int fan_in) {
      std::uniform_real_distribution<float> uniform(-1.0f / std::sqrt(float(fan_in)), 1.0f / std::sqrt(float(fan_in)));
      std::generate(values.begin() + int64_t(from), values.begin() + int64_t(to), [&] { return uniform(rng); });
    };
    uniform_fill(l.w1, l.w2, geometry_.token_dim);  // W1 and b1
    uniform_fill(l.w2, l.total, encoder());         // W2 and b2
  }
  parameters_.set(values);

  tensor::Ops& ops = model.ops();
  fixed_ = std::make_unique<tensor::Arena>(ops, "prefix tuning");
  carve_fixed(*fixed_);
  fixed_->commit();
  carve_fixed(*fixed_);
  std::vector<int32_t> rows(size_t(settings_.virtual_tokens));
  std::iota(rows.begin(), rows.end(), 0);
  ops.copy_from_host(rows_, rows.data());
  ops.zero(dtable_);
  prepare();
  model_.set_attention_prefix(this);
}

PrefixAdapter::~PrefixAdapter() { model_.set_attention_prefix(nullptr); }

void PrefixAdapter::carve_fixed(tensor::Arena& arena) {
  const DType t = model_.ops().activation_dtype();
  const int64_t P = settings_.virtual_tokens, W = geometry_.width();
  rows_ = arena.take(DType::i32, P);
  dtable_ = arena.take(t, P * W);
  if (!settings_.projection) {
    table_ = w(0, P * W);
    return;
  }
  const int64_t D = geometry_.token_dim, E = encoder();
  embedded_ = arena.take(t, P * D);
  hidden_ = arena.take(t, P * E);
  activated_ = arena.take(t, P * E);
  table_ = arena.take(t, P * W);
  dactivated_ = arena.take(t, P * E);
  dhidden_ = arena.take(t, P * E);
  dembedded_ = arena.take(t, P * D);
}

std::string PrefixAdapter::describe() const {
  return str("prefix tuning, ", settings_.virtual_tokens, " virtual tokens on ", geometry_.layers, " layers",
             settings_.projection ? str(" (reparameterised through an MLP of ", encoder(), ")") : "");
}

// table = W2 tanh(W1 E + b1) + b2 (PEFT's PrefixEncoder with prefix_projection).
void PrefixAdapter::prepare() {
  if (!settings_.projection) return;  // the table is the working copy of the trainable set itself
  tensor::Ops& ops = model_.ops();
  const PrefixLayout& l = layout_;
  const int P = settings_.virtual_tokens, D = geometry_.token_dim, E = encoder(), W = geometry_.width();
  ops.embedding_forward(embedded_, rows_, w(l.embedding, int64_t(P) * D), P, D);
  ops.matmul_forward(hidden_, embedded_, w(l.w1, int64_t(E) * D), w(l.b1, E), P, D, E, false);
  ops.tanh_forward(activated_, hidden_);
  ops.matmul_forward(table_, activated_, w(l.w2, int64_t(W) * E), w(l.b2, W), P, E, W, false);
}

// dtable holds the pass's d(loss)/d(table): through the MLP when there is one, into the f32
// gradients (+=), and cleared for the next pass.
void PrefixAdapter::finish_backward() {
  tensor::Ops& ops = model_.ops();
  const PrefixLayout& l = layout_;
  const int P = settings_.virtual_tokens, D = geometry_.token_dim, E = encoder(), W = geometry_.width();
  if (!settings_.projection) {
    ops.embedding_backward(g(0, int64_t(P) * W), dtable_, rows_, P, W, P);
  } else {
    for (Buf b : {dactivated_, dhidden_, dembedded_}) ops.zero(b);
    ops.matmul_backward(dactivated_, g(l.w2, int64_t(W) * E), g(l.b2, W), dtable_, activated_, w(l.w2, int64_t(W) * E),
                        P, E, W);
    ops.tanh_backward(dhidden_, dactivated_, activated_);
    ops.matmul_backward(dembedded_, g(l.w1, int64_t(E) * D), g(l.b1, E), dhidden_, embedded_, w(l.w1, int64_t(E) * D),
                        P, D, E);
    ops.embedding_backward(g(l.embedding, int64_t(P) * D), dembedded_, rows_, P, D, P);
  }
  ops.zero(dtable_);
}

void PrefixAdapter::forward(tensor::Ops&, size_t, Buf, Buf, int) {
  throw InternalError("prefix tuning extends no Linear");
}
Buf PrefixAdapter::backward(tensor::Ops&, size_t, Buf, Buf, Buf, int) {
  throw InternalError("prefix tuning extends no Linear");
}

void PrefixAdapter::plan(tensor::Ops& ops, int B, int T, bool training) {
  const int rows = B * (settings_.virtual_tokens + T);
  if (training && !planned_training_) {  // the gradient buffers join the plan: carve it anew
    extended_arena_.reset();
    planned_training_ = true;
  }
  plan_rows(ops, extended_arena_, planned_rows_, rows, "prefix-extended keys and values", [&](tensor::Arena& arena) {
    carve_rows(arena, rows, planned_training_);
  });
}

void PrefixAdapter::carve_rows(tensor::Arena& arena, int rows, bool training) {
  const DType t = model_.ops().activation_dtype();
  k_all_ = arena.take(t, int64_t(rows) * geometry_.key_row());
  v_all_ = arena.take(t, int64_t(rows) * geometry_.value_row());
  if (!training) return;
  dk_all_ = arena.take(t, int64_t(rows) * geometry_.key_row());
  dv_all_ = arena.take(t, int64_t(rows) * geometry_.value_row());
}

void PrefixAdapter::copy_prefix(tensor::Ops& ops, Buf out, int B, int S, int layer, bool values) const {
  const int row = values ? geometry_.value_row() : geometry_.key_row();
  const int column = layer * geometry_.layer_width() + (values ? geometry_.key_row() : 0);
  const int P = settings_.virtual_tokens;
  for (int b = 0; b < B; b++)
    ops.copy_columns(out.slice(int64_t(b) * S * row, int64_t(P) * row), row, 0, table_, geometry_.width(), column, P,
                     row, false);
}

std::pair<Buf, Buf> PrefixAdapter::extend(tensor::Ops& ops, size_t layer, Buf k, Buf v, int B, int T) {
  const int P = settings_.virtual_tokens, S = P + T, l = layer_index(layer);
  Buf k_all = k_all_.slice(0, int64_t(B) * S * geometry_.key_row());
  Buf v_all = v_all_.slice(0, int64_t(B) * S * geometry_.value_row());
  copy_prefix(ops, k_all, B, S, l, false);
  copy_prefix(ops, v_all, B, S, l, true);
  // Each sequence's own T rows after its P prefix rows: one strided copy of B "rows" of T rows each.
  for (auto [all, own, row] : {std::tuple{k_all, k, geometry_.key_row()}, std::tuple{v_all, v, geometry_.value_row()}})
    ops.copy_columns(all, S * row, P * row, own, T * row, 0, B, T * row, false);
  return {k_all, v_all};
}

std::pair<Buf, Buf> PrefixAdapter::gradients(tensor::Ops& ops, int B, int T) {
  const int S = settings_.virtual_tokens + T;
  Buf dk_all = dk_all_.slice(0, int64_t(B) * S * geometry_.key_row());
  Buf dv_all = dv_all_.slice(0, int64_t(B) * S * geometry_.value_row());
  ops.zero(dk_all);
  ops.zero(dv_all);
  return {dk_all, dv_all};
}

void PrefixAdapter::backward(tensor::Ops& ops, size_t layer, Buf dk, Buf dv, int B, int T) {
  const int P = settings_.virtual_tokens, S = P + T, l = layer_index(layer);
  for (auto [all, own, row, column] :
       {std::tuple{dk_all_, dk, geometry_.key_row(), l * geometry_.layer_width()},
        std::tuple{dv_all_, dv, geometry_.value_row(), l * geometry_.layer_width() + geometry_.key_row()}}) {
    ops.copy_columns(own, T * row, 0, all, S * row, P * row, B, T * row, true);
    for (int b = 0; b < B; b++)  // the prefix rows of every sequence, summed
      ops.copy_columns(dtable_, geometry_.width(), column, all.slice(int64_t(b) * S * row, int64_t(P) * row), row, 0, P,
                       row, true);
  }
}

void PrefixAdapter::write_cache(tensor::Ops& ops, size_t layer, Buf k_cache, Buf v_cache, int B, int max_length) {
  const int l = layer_index(layer);
  copy_prefix(ops, k_cache, B, max_length, l, false);
  copy_prefix(ops, v_cache, B, max_length, l, true);
}

std::vector<float> PrefixAdapter::folded_table() const {
  if (!settings_.projection) return parameters_.copy();
  tensor::Ops& ops = model_.ops();
  const_cast<PrefixAdapter*>(this)->prepare();  // from the current weights (an update may have come since)
  std::vector<float> out(size_t(table_.numel));
  if (table_.dtype == DType::f32) {
    ops.copy_to_host(out.data(), table_);
  } else {
    std::vector<char> bytes(table_.bytes());
    ops.copy_to_host(bytes.data(), table_);
    io::to_float(bytes.data(), io::DType::BF16, out.size(), out.data());
  }
  return out;
}

void PrefixAdapter::save(const fs::path& dir, const model::Model& /*model*/, const std::string& base_model) const {
  const PrefixGeometry& g = geometry_;
  const bool mla = g.mla;
  json config = {{"peft_type", mla ? kMlaType : kGqaType},
                 {"task_type", "CAUSAL_LM"},
                 {"base_model_name_or_path", base_model},
                 {"inference_mode", true},
                 {"num_virtual_tokens", settings_.virtual_tokens},
                 {"num_layers", g.layers},
                 {"num_attention_heads", g.heads},
                 {"num_transformer_submodules", 1},
                 {"encoder_hidden_size", encoder()},
                 {"prefix_projection", false}};  // the MLP is folded away: what is saved is its output
  if (mla) {
    config["key_dim"] = g.key_dim;
    config["value_dim"] = g.value_dim;
  } else {
    config["token_dim"] = g.key_row();
  }
  const std::vector<float> table = folded_table();
  fs::create_directories(dir);
  io::write_safetensors(dir / "adapter_model.safetensors",
                        {{kTensorName, io::DType::F32, {settings_.virtual_tokens, g.width()}, table.data()}},
                        {{"format", "pt"}});
  write_file_atomic(dir / "adapter_config.json", config.dump(2) + "\n");
}

bool is_prefix_config(const std::string& config_text) {
  return config_text.find(str("\"", kGqaType, "\"")) != std::string::npos ||
         config_text.find(str("\"", kMlaType, "\"")) != std::string::npos;
}

namespace {

// The adapter's config against the model's geometry: DataError naming the key that does not fit.
int checked_virtual_tokens(const json& config, const PrefixGeometry& g, const fs::path& file) {
  const std::string type = config.at("peft_type").get<std::string>();
  const bool mla_file = type == kMlaType;
  const bool mla_model = g.mla;
  if (mla_file != mla_model)
    throw DataError(str(file.string(), ": peft_type ", type, " is for ", mla_file ? "MLA (deepseek_v3)" : "llama/qwen2",
                        " models, not this one"));
  auto expect = [&](const char* key, int wanted) {
    const int given = config.at(key).get<int>();
    if (given != wanted)
      throw DataError(str(file.string(), ": \"", key, "\" is ", given, " but the base model has ", wanted));
  };
  expect("num_layers", g.layers);
  expect("num_attention_heads", g.heads);
  if (mla_file) {
    expect("key_dim", g.key_dim);
    expect("value_dim", g.value_dim);
  } else {
    expect("token_dim", g.key_row());
  }
  if (config.value("num_transformer_submodules", 1) != 1)
    throw DataError(str(file.string(), ": \"num_transformer_submodules\" is not 1 (an encoder-decoder adapter)"));
  const int P = config.at("num_virtual_tokens").get<int>();
  if (P < 1) throw DataError(str(file.string(), ": \"num_virtual_tokens\" must be at least 1"));
  return P;
}

}  // namespace

std::unique_ptr<PrefixAdapter> load_prefix(const fs::path& dir, model::Model& model) {
  const fs::path config_file = dir / "adapter_config.json";
  const PrefixGeometry g = prefix_geometry(model.architecture());
  int P = 0;
  try {
    P = checked_virtual_tokens(json::parse(read_file(config_file)), g, config_file);
  } catch (const json::exception& e) {
    throw DataError(str(config_file.string(), ": not a prefix-tuning adapter config (", e.what(), ")"));
  }
  const fs::path weights_file = dir / "adapter_model.safetensors";
  if (!fs::exists(weights_file)) throw DataError(str(weights_file.string(), ": no such file"));
  io::SafetensorsFile weights(weights_file);
  if (!weights.contains(kTensorName)) throw DataError(str(weights_file.string(), ": missing tensor \"", kTensorName, "\""));
  const io::TensorView view = weights.at(kTensorName);
  const std::vector<int64_t> shape = {P, g.width()};
  if (view.shape() != shape)
    throw DataError(str(weights_file.string(), ": tensor \"", kTensorName, "\" has shape ", json(view.shape()).dump(),
                        ", expected ", json(shape).dump()));
  if (view.dtype() != io::DType::F32 && view.dtype() != io::DType::BF16 && view.dtype() != io::DType::F16)
    throw DataError(str(weights_file.string(), ": tensor \"", kTensorName, "\" has dtype ", io::dtype_name(view.dtype()),
                        " (F32, BF16 or F16 expected)"));
  std::vector<float> values(size_t(P) * size_t(g.width()));
  io::to_float(view.data, view.dtype(), values.size(), values.data());
  PrefixSettings settings;
  settings.virtual_tokens = P;
  auto adapter = std::make_unique<PrefixAdapter>(model, settings, 0);
  adapter->parameters().set(values);
  return adapter;
}

}  // namespace dsk::finetune
