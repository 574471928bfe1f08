#include "finetune/bottleneck.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "io/dtype.hpp"
#include "io/safetensors.hpp"

namespace dsk::finetune {

using nlohmann::json;
using tensor::Buf;
using tensor::DType;
namespace fs = std::filesystem;

namespace {

const std::string kPrefix = "base_model.model.";

int bottleneck_size(const model::Model& model, const BottleneckSettings& s) {
  const int C = model.architecture().hidden;
  const int m = s.size > 0 ? s.size : (s.reduction_factor > 0 ? C / s.reduction_factor : 0);
  if (m < 1 || m > C)
    throw UsageError(str("bottleneck: the size must be in [1, ", C, "] (got ", m, s.size > 0 ? "" : " from the reduction factor",
                         ")"));
  return m;
}

// o_proj (attention) and the dense MLP's down_proj (mlp) of every layer, in parameter order.
std::vector<BottleneckSite> bottleneck_sites(const model::Model& model, const BottleneckSettings& s, int C, int m) {
  bool attention = false, mlp = false;
  for (const std::string& p : s.placement) {
    if (p == "attention") attention = true;
    else if (p == "mlp") mlp = true;
    else throw UsageError(str("bottleneck: placement \"", p, "\" is not attention or mlp"));
  }
  if (!attention && !mlp) throw UsageError("bottleneck: no placement (attention, mlp or both)");
  std::vector<BottleneckSite> sites;
  size_t offset = 0;
  for (const model::ParamView& v : model.parameter_views()) {
    const bool picked = (attention && v.name.ends_with(".self_attn.o_proj.weight")) ||
                        (mlp && v.name.ends_with(".mlp.down_proj.weight"));
    if (!picked || !v.name.starts_with("model.layers.")) continue;
    BottleneckSite site{v.name.substr(0, v.name.size() - 7), v.offset};
    site.down = offset;
    site.down_bias = site.down + size_t(m) * C;
    site.up = site.down_bias + size_t(m);
    site.up_bias = site.up + size_t(C) * m;
    offset = site.up_bias + size_t(C);
    sites.push_back(site);
  }
  if (sites.empty()) throw UsageError("bottleneck: the placements match no sublayer of this model");
  return sites;
}

size_t total_of(const std::vector<BottleneckSite>& sites, int C) { return sites.back().up_bias + size_t(C); }

}  // namespace

BottleneckSettings bottleneck_settings_from(const Config& config) {
  BottleneckSettings s;
  if (config.has("bottleneck.size")) s.size = int(config.get_int("bottleneck.size"));
  s.reduction_factor = int(config.get_int("bottleneck.reduction_factor"));
  s.placement = config.get_strings("bottleneck.placement");
  return s;
}

BottleneckAdapter::BottleneckAdapter(model::Model& model, BottleneckSettings settings, uint64_t seed)
    : model_(model),
      settings_(std::move(settings)),
      C_(model.architecture().hidden),
      m_(bottleneck_size(model, settings_)),
      sites_(bottleneck_sites(model, settings_, C_, m_)),
      parameters_(model.ops(), total_of(sites_, C_), "bottleneck adapter") {
  std::vector<float> values(parameters_.count(), 0.0f);
  std::mt19937_64 rng(seed);
  // down as torch initializes an nn.Linear (Kaiming-uniform, bias uniform, bound 1/sqrt(C)); up 0.
  std::uniform_real_distribution<float> uniform(-1.0f / std::sqrt(float(C_)), 1.0f / std::sqrt(float(C_)));
  for (size_t i = 0; i < sites_.size(); i++) {
    site_of_[sites_[i].base_weight] = i;
    std::generate_n(values.begin() + int64_t(sites_[i].down), size_t(m_) * (C_ + 1), [&] { return uniform(rng); });
  }
  parameters_.set(values);
  model_.set_linear_extension(this);
}

BottleneckAdapter::~BottleneckAdapter() { model_.set_linear_extension(nullptr); }

std::string BottleneckAdapter::describe() const {
  std::string placement;
  for (const std::string& p : settings_.placement) placement += (placement.empty() ? "" : "+") + p;
  return str("bottleneck adapters of size ", m_, " after ", placement, " (", sites_.size(), " sublayers)");
}

void BottleneckAdapter::carve(tensor::Arena& arena, Plan& plan, int rows, bool training) const {
  const DType t = model_.ops().activation_dtype();
  const size_t sets = training ? sites_.size() : 1;
  plan.z.clear();
  plan.h.clear();
  plan.a.clear();
  for (size_t i = 0; i < sets; i++) {
    if (training) plan.z.push_back(arena.take(t, int64_t(rows) * C_));
    plan.h.push_back(arena.take(t, int64_t(rows) * m_));
    plan.a.push_back(arena.take(t, int64_t(rows) * m_));
  }
  plan.ones = arena.take(t, int64_t(rows) * m_);
  if (!training) return;
  plan.dz = arena.take(t, int64_t(rows) * C_);
  plan.da = arena.take(t, int64_t(rows) * m_);
  plan.dh = arena.take(t, int64_t(rows) * m_);
  plan.dones = arena.take(t, int64_t(rows) * m_);
}

void BottleneckAdapter::plan(tensor::Ops& ops, int max_rows, bool training) {
  training_pass_ = training;
  Plan& plan = training ? training_ : inference_;
  current_ = &plan;
  if (!plan_rows(ops, plan.arena, plan.rows, max_rows, "bottleneck activations",
                 [&](tensor::Arena& arena) { carve(arena, plan, max_rows, training); }))
    return;
  // The second input of the SwiGLU op that computes silu: ones in the activation dtype.
  const std::vector<float> ones(size_t(plan.ones.numel), 1.0f);
  if (plan.ones.dtype == DType::f32) {
    ops.copy_from_host(plan.ones, ones.data());
  } else {
    std::vector<char> bytes(plan.ones.bytes());
    io::from_float(ones.data(), ones.size(), io::DType::BF16, bytes.data());
    ops.copy_from_host(plan.ones, bytes.data());
  }
}

// out = z + up(silu(down(z))) in place; z is kept (training) for backward.
void BottleneckAdapter::forward(tensor::Ops& ops, size_t weight_offset, Buf out, Buf /*x*/, int n) {
  const size_t i = site_of_.at(weight_offset);
  const BottleneckSite& s = sites_[i];
  const size_t set = training_pass_ ? i : 0;
  const Buf w = parameters_.working();
  Buf z = out;
  if (training_pass_) {
    z = current_->z[set].slice(0, int64_t(n) * C_);
    ops.copy(z, out);
  }
  Buf h = current_->h[set].slice(0, int64_t(n) * m_), a = current_->a[set].slice(0, int64_t(n) * m_);
  ops.matmul_forward(h, z, slice(w, s.down, int64_t(m_) * C_), slice(w, s.down_bias, m_), n, C_, m_, false);
  ops.swiglu_forward(a, h, current_->ones.slice(0, int64_t(n) * m_));
  ops.matmul_forward(out, a, slice(w, s.up, int64_t(C_) * m_), slice(w, s.up_bias, C_), n, m_, C_, true);
}

// d(z) = d(out) + down^T (silu'(h) * (up^T d(out))): what the base Linear's output gets.
Buf BottleneckAdapter::backward(tensor::Ops& ops, size_t weight_offset, Buf /*dx*/, Buf dout, Buf /*x*/, int n) {
  const size_t i = site_of_.at(weight_offset);
  const BottleneckSite& s = sites_[i];
  Plan& p = training_;
  const Buf w = parameters_.working(), g = parameters_.grads();
  const int64_t nm = int64_t(n) * m_;
  Buf z = p.z[i].slice(0, int64_t(n) * C_), h = p.h[i].slice(0, nm), a = p.a[i].slice(0, nm);
  Buf dz = p.dz.slice(0, int64_t(n) * C_), da = p.da.slice(0, nm), dh = p.dh.slice(0, nm), dones = p.dones.slice(0, nm);
  ops.copy(dz, dout);
  for (Buf b : {da, dh, dones}) ops.zero(b);
  ops.matmul_backward(da, slice(g, s.up, int64_t(C_) * m_), slice(g, s.up_bias, C_), dout, a,
                      slice(w, s.up, int64_t(C_) * m_), n, m_, C_);
  ops.swiglu_backward(dh, dones, da, h, p.ones.slice(0, nm));
  ops.matmul_backward(dz, slice(g, s.down, int64_t(m_) * C_), slice(g, s.down_bias, m_), dh, z,
                      slice(w, s.down, int64_t(m_) * C_), n, C_, m_);
  return dz;
}

void BottleneckAdapter::save(const fs::path& dir, const model::Model& /*model*/, const std::string& base_model) const {
  const json config = {{"peft_type", "BOTTLENECK"},        {"task_type", "CAUSAL_LM"},
                       {"base_model_name_or_path", base_model}, {"adapter_size", m_},
                       {"placement", settings_.placement},     {"non_linearity", "silu"}};
  const std::vector<float> values = parameters_.copy();
  std::vector<io::TensorToWrite> tensors;
  for (const BottleneckSite& s : sites_) {
    const std::string name = kPrefix + s.module;
    tensors.push_back({name + ".adapter_down.weight", io::DType::F32, {m_, C_}, values.data() + s.down});
    tensors.push_back({name + ".adapter_down.bias", io::DType::F32, {m_}, values.data() + s.down_bias});
    tensors.push_back({name + ".adapter_up.weight", io::DType::F32, {C_, m_}, values.data() + s.up});
    tensors.push_back({name + ".adapter_up.bias", io::DType::F32, {C_}, values.data() + s.up_bias});
  }
  fs::create_directories(dir);
  io::write_safetensors(dir / "adapter_model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomic(dir / "adapter_config.json", config.dump(2) + "\n");
}

std::unique_ptr<BottleneckAdapter> load_bottleneck(const fs::path& dir, model::Model& model) {
  const fs::path config_file = dir / "adapter_config.json";
  json config;
  try {
    config = json::parse(read_file(config_file));
    BottleneckSettings settings;
    settings.size = config.at("adapter_size").get<int>();
    settings.placement = config.at("placement").get<std::vector<std::string>>();
    if (config.value("non_linearity", "silu") != "silu")
      throw DataError(str(config_file.string(), ": non_linearity \"", config.value("non_linearity", ""),
                          "\" is not silu, the one dsk computes"));
    auto adapter = std::make_unique<BottleneckAdapter>(model, settings, 0);
    const fs::path weights_file = dir / "adapter_model.safetensors";
    io::SafetensorsFile weights(weights_file);
    std::vector<float> values(adapter->parameter_count());
    const int64_t C = model.architecture().hidden, m = adapter->size();
    size_t expected = 0;
    for (const BottleneckSite& s : adapter->sites()) {
      for (auto [part, shape, offset] : std::vector<std::tuple<std::string, std::vector<int64_t>, size_t>>{
               {"adapter_down.weight", {m, C}, s.down}, {"adapter_down.bias", {m}, s.down_bias},
               {"adapter_up.weight", {C, m}, s.up}, {"adapter_up.bias", {C}, s.up_bias}}) {
        const std::string name = kPrefix + s.module + "." + part;
        if (!weights.contains(name)) throw DataError(str(weights_file.string(), ": missing tensor \"", name, "\""));
        const io::TensorView view = weights.at(name);
        if (view.shape() != shape)
          throw DataError(str(weights_file.string(), ": tensor \"", name, "\" has shape ", json(view.shape()).dump(),
                              ", expected ", json(shape).dump()));
        size_t count = 1;
        for (int64_t d : shape) count *= size_t(d);
        io::to_float(view.data, view.dtype(), count, values.data() + offset);
        expected++;
      }
    }
    if (weights.tensors().size() != expected)
      throw DataError(str(weights_file.string(), ": ", weights.tensors().size() - expected,
                          " tensors for sublayers these placements do not adapt"));
    adapter->parameters().set(values);
    return adapter;
  } catch (const json::exception& e) {
    throw DataError(str(config_file.string(), ": not a bottleneck adapter config (", e.what(), ")"));
  } catch (const UsageError& e) {
    throw DataError(str(config_file.string(), ": ", e.what()));
  }
}

}  // namespace dsk::finetune
