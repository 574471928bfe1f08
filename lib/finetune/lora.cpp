#include "finetune/lora.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <regex>
#include <set>

#include "core/error.hpp"
#include "finetune/peft_format.hpp"

namespace dsk::finetune {

using tensor::Buf;
using tensor::DType;

float LoraSettings::scale() const {
  return rslora ? alpha / std::sqrt(float(rank)) : alpha / float(rank);
}

namespace {

// The dense Linears of the engine (model/layers.cpp's linear_forward sites) that LoRA may adapt:
// attention's projections and the dense and shared-expert MLPs; not the embeddings, the LM head
// (PEFT's all-linear leaves the output layer alone too), the MoE router or the routed experts.
bool adaptable(const model::ParamView& view) {
  if (view.shape.size() != 2 || !view.name.ends_with(".weight") || !view.name.starts_with("model.layers.")) return false;
  return !view.name.ends_with(".mlp.gate.weight") && view.name.find(".mlp.experts.") == std::string::npos;
}

// PEFT's rule for a list of targets: the module's name is a target or ends with "." + a target.
bool matches_target(const std::string& module, const std::string& target) {
  return module == target || (module.size() > target.size() && module.ends_with(target) &&
                              module[module.size() - target.size() - 1] == '.');
}

bool targeted(const std::string& module, const LoraSettings& settings, const std::optional<std::regex>& pattern) {
  if (pattern) return std::regex_match(module, *pattern);
  for (const std::string& target : settings.target_modules)
    if (target == "all-linear" || matches_target(module, target)) return true;
  return false;
}

std::string describe_targets(const LoraSettings& settings) {
  if (settings.target_regex) return "the pattern \"" + *settings.target_regex + "\"";
  std::string out;
  for (const std::string& t : settings.target_modules) out += (out.empty() ? "" : ", ") + t;
  return "target modules [" + out + "]";
}

}  // namespace

std::vector<LoraSite> lora_sites(const model::Model& model, const LoraSettings& settings) {
  if (settings.rank < 1) throw UsageError(str("lora: rank must be at least 1 (got ", settings.rank, ")"));
  if (!(settings.dropout >= 0 && settings.dropout < 1))
    throw UsageError(str("lora: dropout must be in [0, 1) (got ", settings.dropout, ")"));
  if (!settings.target_regex && settings.target_modules.empty())
    throw UsageError("lora: no target modules (give names such as q_proj, v_proj, or all-linear)");
  std::optional<std::regex> pattern;
  if (settings.target_regex) {
    try {
      pattern.emplace(*settings.target_regex);
    } catch (const std::regex_error& e) {
      throw UsageError(str("lora: target pattern \"", *settings.target_regex, "\" is not a regular expression: ",
                           e.what()));
    }
  }
  std::vector<LoraSite> sites;
  std::set<std::string> candidates;
  size_t offset = 0;
  for (const model::ParamView& view : model.parameter_views()) {
    if (!adaptable(view)) continue;
    const std::string module = view.name.substr(0, view.name.size() - std::string(".weight").size());
    candidates.insert(module.substr(module.rfind('.') + 1));
    if (!targeted(module, settings, pattern)) continue;
    LoraSite site{module, view.offset, int(view.shape[1]), int(view.shape[0]), 0, 0};
    site.a_offset = offset;
    offset += size_t(settings.rank) * site.in;
    site.b_offset = offset;
    offset += size_t(site.out) * settings.rank;
    sites.push_back(site);
  }
  if (sites.empty()) {
    std::string names;
    for (const std::string& c : candidates) names += (names.empty() ? "" : ", ") + c;
    throw UsageError(str("lora: ", describe_targets(settings), " match no Linear of this model (it has ", names, ")"));
  }
  return sites;
}

std::vector<std::string> adapted_module_names(const std::vector<LoraSite>& sites) {
  std::set<std::string> names;
  for (const LoraSite& s : sites) names.insert(s.module.substr(s.module.rfind('.') + 1));
  return {names.begin(), names.end()};
}

namespace {

size_t total_of(const std::vector<LoraSite>& sites, int rank) {
  return sites.back().b_offset + size_t(sites.back().out) * size_t(rank);
}

}  // namespace

LoraAdapter::LoraAdapter(model::Model& model, LoraSettings settings, uint64_t seed)
    : model_(model),
      settings_(std::move(settings)),
      sites_(lora_sites(model, settings_)),
      parameters_(model.ops(), total_of(sites_, settings_.rank), "LoRA adapter"),
      working_(parameters_.working()) {
  for (size_t i = 0; i < sites_.size(); i++) {
    site_of_[sites_[i].base_weight] = i;
    max_in_ = std::max(max_in_, sites_[i].in);
  }
  std::vector<float> values(parameters_.count(), 0.0f);
  std::mt19937_64 rng(seed);
  for (const LoraSite& s : sites_) {
    // torch's kaiming_uniform_(a=sqrt(5)) on A [r, in]: bound = sqrt(6 / ((1 + 5) * in)).
    std::uniform_real_distribution<float> uniform(-1.0f / std::sqrt(float(s.in)), 1.0f / std::sqrt(float(s.in)));
    std::generate_n(values.begin() + int64_t(s.a_offset), size_t(settings_.rank) * s.in, [&] { return uniform(rng); });
  }
  parameters_.set(values);
  model_.set_linear_extension(this);
}

LoraAdapter::~LoraAdapter() { model_.set_linear_extension(nullptr); }

std::string LoraAdapter::describe() const {
  return str("LoRA r=", settings_.rank, " alpha=", settings_.alpha, settings_.rslora ? " (rsLoRA)" : "", " on ",
             sites_.size(), " Linears");
}

void LoraAdapter::carve(tensor::Arena& arena, Plan& plan, int rows, bool training) const {
  const DType t = model_.ops().activation_dtype();
  const int64_t r = settings_.rank;
  plan.u.assign(training ? sites_.size() : 1, Buf{});
  for (Buf& u : plan.u) u = arena.take(t, rows * r);
  plan.dropped.clear();
  if (training && settings_.dropout > 0)
    for (const LoraSite& s : sites_) plan.dropped.push_back(arena.take(t, int64_t(rows) * s.in));
  if (!training) return;
  plan.du = arena.take(t, rows * r);
  plan.dscaled = arena.take(t, rows * r);
  if (settings_.dropout > 0) plan.ddropped = arena.take(t, int64_t(rows) * max_in_);
}

void LoraAdapter::plan(tensor::Ops& ops, int max_rows, bool training) {
  training_pass_ = training;
  Plan& plan = training ? training_ : inference_;
  current_ = &plan;
  plan_rows(ops, plan.arena, plan.rows, max_rows, "LoRA activations",
            [&](tensor::Arena& arena) { carve(arena, plan, max_rows, training); });
}

bool LoraAdapter::extends(size_t weight_offset) const { return site_of_.count(weight_offset) > 0; }

Buf LoraAdapter::a_working(const LoraSite& s) const {
  return working_.slice(int64_t(s.a_offset), int64_t(settings_.rank) * s.in);
}
Buf LoraAdapter::b_working(const LoraSite& s) const {
  return working_.slice(int64_t(s.b_offset), int64_t(s.out) * settings_.rank);
}

uint64_t LoraAdapter::site_seed(size_t site) const { return dropout_seed_ ^ ((uint64_t(site) + 1) << 40); }

// out += scale * dropout(x) A^T B^T. Without dropout (or outside training) the scale is applied
// to the rank-r intermediate: u = scale * x A^T is all backward keeps. With dropout, x's dropped
// and scaled copy is kept instead (as PEFT keeps it), u = that A^T.
void LoraAdapter::forward(tensor::Ops& ops, size_t weight_offset, Buf out, Buf x, int n) {
  const size_t i = site_of_.at(weight_offset);
  const LoraSite& s = sites_[i];
  const int r = settings_.rank;
  Buf u = current_->u[training_pass_ ? i : 0].slice(0, int64_t(n) * r);
  if (training_pass_ && settings_.dropout > 0) {
    Buf dropped = current_->dropped[i].slice(0, int64_t(n) * s.in);
    ops.dropout_forward(dropped, x, settings_.scale(), settings_.dropout, site_seed(i));
    ops.matmul_forward(u, dropped, a_working(s), Buf{}, n, s.in, r, false);
  } else {
    ops.matmul_forward(u, x, a_working(s), Buf{}, n, s.in, r, false);
    ops.dropout_forward(u, u, settings_.scale(), 0.0f, 0);
  }
  ops.matmul_forward(out, u, b_working(s), Buf{}, n, r, s.out, true);
}

Buf LoraAdapter::backward(tensor::Ops& ops, size_t weight_offset, Buf dx, Buf dout, Buf x, int n) {
  const size_t i = site_of_.at(weight_offset);
  const LoraSite& s = sites_[i];
  const int r = settings_.rank;
  Plan& p = training_;
  Buf u = p.u[i].slice(0, int64_t(n) * r), du = p.du.slice(0, int64_t(n) * r);
  Buf dA = parameters_.grads().slice(int64_t(s.a_offset), int64_t(r) * s.in);
  Buf dB = parameters_.grads().slice(int64_t(s.b_offset), int64_t(s.out) * r);
  ops.zero(du);
  ops.matmul_backward(du, dB, Buf{}, dout, u, b_working(s), n, r, s.out);  // du = dout B, dB += dout^T u
  if (settings_.dropout > 0) {
    Buf dropped = p.dropped[i].slice(0, int64_t(n) * s.in), ddropped = p.ddropped.slice(0, int64_t(n) * s.in);
    ops.zero(ddropped);
    ops.matmul_backward(ddropped, dA, Buf{}, du, dropped, a_working(s), n, s.in, r);
    ops.dropout_backward(dx, ddropped, settings_.scale(), settings_.dropout, site_seed(i));
    return dout;
  }
  Buf dscaled = p.dscaled.slice(0, int64_t(n) * r);  // d(x A^T) = scale * du
  ops.zero(dscaled);
  ops.dropout_backward(dscaled, du, settings_.scale(), 0.0f, 0);
  ops.matmul_backward(dx, dA, Buf{}, dscaled, x, a_working(s), n, s.in, r);
  return dout;  // the base Linear's output gets the same gradient: LoRA only adds beside it
}

void LoraAdapter::save(const std::filesystem::path& dir, const model::Model& model, const std::string& base_model) const {
  save_peft_lora(dir, model, *this, base_model);
}

}  // namespace dsk::finetune
