#include "finetune/peft_format.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "io/safetensors.hpp"

namespace dsk::finetune {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kPrefix = "base_model.model.";
const char* const kConfigName = "adapter_config.json";
const char* const kWeightsName = "adapter_model.safetensors";

// Every Linear module of the model as HF names it (dense or not), for checking what a target
// spelling would pick in PEFT's hands.
std::vector<std::string> linear_modules(const model::Model& model) {
  std::vector<std::string> modules;
  for (const model::ParamView& v : model.parameter_views())
    if (v.shape.size() == 2 && v.name.ends_with(".weight") && v.name.starts_with("model.layers."))
      modules.push_back(v.name.substr(0, v.name.size() - 7));
  return modules;
}

std::string escape_regex(const std::string& text) {
  static const std::regex special(R"([.^$|()\[\]{}*+?\\])");
  return std::regex_replace(text, special, R"(\$&)");
}

bool picks_exactly(const std::vector<std::string>& modules, const std::set<std::string>& wanted,
                   const std::function<bool(const std::string&)>& picks) {
  for (const std::string& m : modules)
    if (picks(m) != (wanted.count(m) > 0)) return false;
  return true;
}

json target_modules_of(const model::Model& model, const std::vector<LoraSite>& sites) {
  std::set<std::string> wanted;
  for (const LoraSite& s : sites) wanted.insert(s.module);
  const std::vector<std::string> modules = linear_modules(model);
  const std::vector<std::string> names = adapted_module_names(sites);
  auto by_name = [&](const std::string& m) {
    const std::string last = m.substr(m.rfind('.') + 1);
    return std::find(names.begin(), names.end(), last) != names.end();
  };
  if (picks_exactly(modules, wanted, by_name)) return names;
  // The same module kinds in every layer: one pattern over the layer number.
  std::set<std::string> suffixes;
  const std::regex layer_prefix(R"(model\.layers\.\d+\.)");
  for (const std::string& m : wanted) suffixes.insert(std::regex_replace(m, layer_prefix, "", std::regex_constants::format_first_only));
  std::string alternatives;
  for (const std::string& s : suffixes) alternatives += (alternatives.empty() ? "" : "|") + escape_regex(s);
  std::string pattern = R"(model\.layers\.\d+\.(?:)" + alternatives + ")";
  const std::regex compiled(pattern);
  if (picks_exactly(modules, wanted, [&](const std::string& m) { return std::regex_match(m, compiled); })) return pattern;
  alternatives.clear();
  for (const std::string& m : wanted) alternatives += (alternatives.empty() ? "" : "|") + escape_regex(m);
  return "(?:" + alternatives + ")";
}

json read_config(const fs::path& file) {
  if (!fs::exists(file)) throw DataError(str(file.string(), ": no such file (not a PEFT adapter directory)"));
  try {
    json config = json::parse(read_file(file));
    if (!config.is_object()) throw DataError(str(file.string(), ": expected a JSON object"));
    return config;
  } catch (const json::parse_error& e) {
    throw DataError(str(file.string(), ": not valid JSON (", e.what(), ")"));
  }
}

template <typename T>
T field(const json& config, const char* key, T fallback, const fs::path& file) {
  if (!config.contains(key) || config[key].is_null()) return fallback;
  try {
    return config[key].get<T>();
  } catch (const json::exception&) {
    throw DataError(str(file.string(), ": \"", key, "\" has the wrong type"));
  }
}

// PEFT options that change what the adapter computes and that dsk does not implement.
void refuse_unsupported(const json& config, const fs::path& file) {
  auto refuse = [&](const char* key, const std::string& why) {
    throw DataError(str(file.string(), ": \"", key, "\" ", why, " is not supported by dsk-finetune"));
  };
  if (field<std::string>(config, "peft_type", "", file) != "LORA")
    throw DataError(str(file.string(), ": peft_type \"", field<std::string>(config, "peft_type", "", file),
                        "\" is not LORA"));
  if (field<bool>(config, "use_dora", false, file)) refuse("use_dora", "true (DoRA)");
  if (field<std::string>(config, "bias", "none", file) != "none") refuse("bias", "other than \"none\"");
  if (field<bool>(config, "fan_in_fan_out", false, file)) refuse("fan_in_fan_out", "true");
  for (const char* key : {"rank_pattern", "alpha_pattern"})
    if (config.contains(key) && config[key].is_object() && !config[key].empty()) refuse(key, "(per-module ranks)");
  if (config.contains("modules_to_save") && !config["modules_to_save"].is_null() && !config["modules_to_save"].empty())
    refuse("modules_to_save", "(fully trained extra modules)");
}

// A float setting as JSON: its shortest decimal (0.1, not 0.10000000149011612); whole numbers
// as integers (lora_alpha is an int in PEFT's LoraConfig).
json float_setting(float value) {
  if (value == float(int64_t(value))) return int64_t(value);
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, value).ptr;
  return std::strtod(std::string(text, end).c_str(), nullptr);
}

}  // namespace

std::string peft_target_modules_json(const model::Model& model, const std::vector<LoraSite>& sites) {
  return target_modules_of(model, sites).dump();
}

void save_peft_lora(const fs::path& dir, const model::Model& model, const LoraAdapter& adapter,
                    const std::string& base_model) {
  const LoraSettings& s = adapter.settings();
  json config = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", base_model},
      {"revision", nullptr},
      {"r", s.rank},
      {"lora_alpha", float_setting(s.alpha)},
      {"lora_dropout", float_setting(s.dropout)},
      {"use_rslora", s.rslora},
      {"target_modules", target_modules_of(model, adapter.sites())},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"modules_to_save", nullptr},
      {"layers_to_transform", nullptr},
      {"layers_pattern", nullptr},
      {"rank_pattern", json::object()},
      {"alpha_pattern", json::object()},
      {"use_dora", false},
  };
  const std::vector<float> values = adapter.copy_parameters();
  std::vector<io::TensorToWrite> tensors;
  for (const LoraSite& site : adapter.sites()) {
    tensors.push_back({kPrefix + site.module + ".lora_A.weight", io::DType::F32, {s.rank, site.in},
                       values.data() + site.a_offset});
    tensors.push_back({kPrefix + site.module + ".lora_B.weight", io::DType::F32, {site.out, s.rank},
                       values.data() + site.b_offset});
  }
  fs::create_directories(dir);
  io::write_safetensors(dir / kWeightsName, tensors, {{"format", "pt"}});
  write_file_atomic(dir / kConfigName, config.dump(2) + "\n");
}

PeftLoraAdapter load_peft_lora(const fs::path& dir, const model::Model& model) {
  const fs::path config_file = dir / kConfigName;
  const json config = read_config(config_file);
  refuse_unsupported(config, config_file);
  PeftLoraAdapter out;
  out.base_model = field<std::string>(config, "base_model_name_or_path", "", config_file);
  out.settings.rank = field<int>(config, "r", 8, config_file);
  out.settings.alpha = field<float>(config, "lora_alpha", 8.0f, config_file);
  out.settings.dropout = field<float>(config, "lora_dropout", 0.0f, config_file);
  out.settings.rslora = field<bool>(config, "use_rslora", false, config_file);
  if (out.settings.rank < 1) throw DataError(str(config_file.string(), ": \"r\" must be at least 1"));

  const fs::path weights_file = dir / kWeightsName;
  if (!fs::exists(weights_file)) throw DataError(str(weights_file.string(), ": no such file"));
  io::SafetensorsFile weights(weights_file);
  std::set<std::string> modules;
  for (const io::TensorInfo& t : weights.tensors()) {
    std::smatch match;
    static const std::regex lora_name(R"(base_model\.model\.(.+)\.lora_[AB]\.weight)");
    if (!std::regex_match(t.name, match, lora_name))
      throw DataError(str(weights_file.string(), ": tensor \"", t.name, "\" is not a LoRA A or B weight"));
    modules.insert(match[1].str());
  }
  if (modules.empty()) throw DataError(str(weights_file.string(), ": no LoRA tensors"));
  std::string alternatives;
  for (const std::string& m : modules) alternatives += (alternatives.empty() ? "" : "|") + escape_regex(m);
  out.settings.target_regex = "(?:" + alternatives + ")";
  std::vector<LoraSite> sites;
  try {
    sites = lora_sites(model, out.settings);
  } catch (const UsageError& e) {
    throw DataError(str(weights_file.string(), ": ", e.what()));
  }
  if (sites.size() != modules.size()) {
    for (const LoraSite& s : sites) modules.erase(s.module);
    throw DataError(str(weights_file.string(), ": LoRA on modules this model has no dense Linear for: ",
                        *modules.begin()));
  }
  const size_t total = sites.back().b_offset + size_t(sites.back().out) * out.settings.rank;
  out.values.assign(total, 0.0f);
  const int64_t r = out.settings.rank;
  for (const LoraSite& s : sites) {
    auto read = [&](const std::string& part, std::vector<int64_t> shape, size_t offset) {
      const std::string name = kPrefix + s.module + "." + part + ".weight";
      if (!weights.contains(name)) throw DataError(str(weights_file.string(), ": missing tensor \"", name, "\""));
      const io::TensorView view = weights.at(name);
      if (view.shape() != shape)
        throw DataError(str(weights_file.string(), ": tensor \"", name, "\" has shape ", json(view.shape()).dump(),
                            ", expected ", json(shape).dump(), " (r = ", r, ")"));
      if (view.dtype() != io::DType::F32 && view.dtype() != io::DType::BF16 && view.dtype() != io::DType::F16)
        throw DataError(str(weights_file.string(), ": tensor \"", name, "\" has dtype ", io::dtype_name(view.dtype()),
                            " (F32, BF16 or F16 expected)"));
      io::to_float(view.data, view.dtype(), size_t(shape[0] * shape[1]), out.values.data() + offset);
    };
    read("lora_A", {r, s.in}, s.a_offset);
    read("lora_B", {s.out, r}, s.b_offset);
  }
  return out;
}

}  // namespace dsk::finetune
