#include "train/model_source.hpp"

#include <charconv>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "core/error.hpp"
#include "core/log.hpp"
#include "model/hf_config.hpp"
#include "registry/fetch_cache.hpp"

namespace dsk::train {
namespace {

// A YAML 1.2 core-schema number spelled by the whole scalar: 64, -3, 0x40, 1.0e-5, .inf.
// Not YAML::convert: it also takes "16" followed by form feeds, which prints back quoted and
// then reads as a string (found by tests/fuzz/config_fuzz.cpp).
std::optional<nlohmann::json> number_of(std::string_view text) {
  if (text.starts_with('+')) text.remove_prefix(1);
  if (text.empty() || text[0] == '+' || std::isspace(static_cast<unsigned char>(text.back()))) return std::nullopt;
  auto whole = [&](auto result, std::string_view digits) {
    return result.ec == std::errc() && result.ptr == digits.data() + digits.size();
  };
  int64_t integer = 0;
  if (whole(std::from_chars(text.data(), text.data() + text.size(), integer), text)) return integer;
  for (auto [prefix, base] : {std::pair{"0x", 16}, std::pair{"0o", 8}}) {
    std::string_view digits = text.substr(std::min<size_t>(2, text.size()));
    if (text.starts_with(prefix) && !digits.empty() &&
        whole(std::from_chars(digits.data(), digits.data() + digits.size(), integer, base), digits))
      return integer;
  }
  std::string_view unsigned_text = text.starts_with('-') ? text.substr(1) : text;
  if (unsigned_text == ".inf" || unsigned_text == ".Inf" || unsigned_text == ".INF")
    return text[0] == '-' ? -INFINITY : INFINITY;
  if (text == ".nan" || text == ".NaN" || text == ".NAN") return NAN;
  double number = 0;
  bool numeric = !unsigned_text.empty() && (std::isdigit(static_cast<unsigned char>(unsigned_text[0])) || unsigned_text[0] == '.');
  if (numeric && whole(std::from_chars(text.data(), text.data() + text.size(), number), text)) return number;
  return std::nullopt;
}

nlohmann::json scalar_to_json(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted in the YAML: a string, whatever it spells
  if (text == "null" || text == "~" || text.empty()) return nullptr;
  if (text == "true" || text == "True") return true;
  if (text == "false" || text == "False") return false;
  if (auto number = number_of(text)) return *number;
  return text;
}

}  // namespace

// A registry://name@ref or s3:// URL is fetched (verified) into the local cache, once.
std::filesystem::path local_checkpoint(const std::string& source) {
  if (!registry::is_model_url(source)) return source;
  auto getenv = [](const char* name) -> std::optional<std::string> {
    const char* value = std::getenv(name);
    return value ? std::optional<std::string>(value) : std::nullopt;
  };
  registry::OpenedModel opened = registry::open_model(registry::resolve_connection({}, getenv), source);
  log_info("model: ", source, " is ", opened.name, "@", opened.version, opened.cached ? ", cached in " : ", fetched into ",
           opened.directory.string());
  return opened.directory;
}

nlohmann::json yaml_to_json(const YAML::Node& node, const std::string& source) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& entry : node) {
        if (!entry.first.IsScalar())
          throw UsageError(str(yaml_location(source, entry.first), ": a key must be a plain name, not a ",
                               entry.first.IsMap() ? "mapping" : "list"));
        object[entry.first.Scalar()] = yaml_to_json(entry.second, source);
      }
      return object;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json array = nlohmann::json::array();
      for (const auto& item : node) array.push_back(yaml_to_json(item, source));
      return array;
    }
    case YAML::NodeType::Scalar:
      return scalar_to_json(node);
    default:
      return nullptr;
  }
}

model::Model model_from_config(const Config& config, uint64_t seed, std::shared_ptr<tensor::Ops> ops,
                               model::ModelOptions options) {
  const int sources = int(config.has("model.config_json")) + int(config.has("model.config")) +
                      int(config.has("model.init_from"));
  if (sources != 1)
    throw UsageError(str(config.source(), ": give exactly one of model.config_json, model.config and model.init_from (",
                         sources, " given)"));
  if (config.has("model.init_from")) {
    const std::filesystem::path directory = local_checkpoint(config.get_string("model.init_from"));
    log_info("model: weights of ", directory.string());
    return model::Model::load_hf_checkpoint(directory, ops, options);
  }
  model::Architecture arch;
  if (config.has("model.config_json")) {
    arch = model::read_hf_config(config.get_string("model.config_json"));
  } else {
    arch = model::architecture_from_hf_config(yaml_to_json(config.get_tree("model.config"), config.source()),
                                              str(config.source(), ": model.config"));
  }
  return model::Model(arch, seed, 0.02f, ops, options);
}

}  // namespace dsk::train
