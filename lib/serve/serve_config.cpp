#include "serve/serve_config.hpp"

#include <set>

#include "core/error.hpp"
#include "core/units.hpp"
#include "registry/fetch_cache.hpp"

namespace dsk::serve {
namespace {

Schema make_schema() {
  Schema schema;
  schema.string("host", "127.0.0.1", "address to listen on (0.0.0.0: every interface)");
  schema.integer("port", 8080, "TCP port; 0 picks a free one").maximum = 65535;
  schema.path("api_key_file", std::nullopt, "file of API keys, one per line; unset: DSK_SERVE_API_KEY, else no keys");
  schema.string("drain_grace", "30s", "SIGTERM: how long running requests may take to finish");
  schema.tree("models", "the models served: a list of {name, source, fallback, max_queue_wait, max_time_to_first_token, recover, min_engaged}");
  schema.choice("engine.device", "auto", {"auto", "cpu", "cuda"}, "where the engines run");
  schema.choice("engine.precision", "bf16", {"bf16", "fp32"}, "weights and activations on CUDA (the CPU computes in fp32)");
  schema.integer("engine.max_batch", 64, "sequences in a running batch at most").minimum = 1;
  schema.integer("engine.max_batch_tokens", 2048, "tokens one engine step may process (prefill chunks + decodes)").minimum = 1;
  schema.integer("engine.block_size", 16, "positions per KV cache block").minimum = 1;
  schema.integer("engine.kv_blocks", 0, "KV cache blocks per model; 0: as many as kv_memory_fraction of free memory holds").minimum = 0;
  KeySpec& fraction = schema.number("engine.kv_memory_fraction", 0.9, "share of free device memory for the KV cache");
  fraction.minimum = 0.01;
  fraction.maximum = 1;
  schema.integer("engine.max_queue", 1024, "waiting requests per model at most; more are answered 503").minimum = 1;
  schema.boolean("engine.prefix_sharing", true, "share the KV blocks of identical prompt prefixes");
  schema.boolean("engine.cuda_graphs", true, "CUDA: replay greedy decode steps of llama/qwen2 as CUDA graphs");
  schema.boolean("engine.fused_decode", true,
                 "CUDA: decode steps of 1-4 sequences (llama/qwen2) run their layers as one persistent kernel");
  KeySpec& threads = schema.integer("http.threads", 512, "connections served at once (a streaming client holds one)");
  threads.minimum = 1;
  threads.maximum = 65536;
  schema.string("http.max_body", "8MiB", "largest request body; larger ones are answered 413");
  schema.string("http.read_timeout", "30s", "a client that sends nothing for this long is disconnected");
  schema.string("http.write_timeout", "30s", "a client that reads nothing for this long is disconnected");
  schema.string("http.keep_alive_timeout", "5s", "an idle keep-alive connection is closed after this");
  KeySpec& retry = schema.integer("http.retry_after", 1, "Retry-After seconds of a 503 (queue full, draining)");
  retry.minimum = 1;
  retry.maximum = 3600;
  schema.string("registry.root", std::nullopt, "registry root s3://bucket[/prefix] for registry:// sources; unset: DSK_REGISTRY");
  schema.string("registry.refresh", "30s", "how often registry aliases are re-read (weights, new versions)");
  schema.path("registry.cache_dir", std::nullopt, "where registry versions are downloaded; unset: DSK_CACHE_DIR, else ~/.cache/dsk/registry");
  schema.string("s3.endpoint_url", std::nullopt, "S3 endpoint URL; unset: AWS_ENDPOINT_URL, else AWS");
  schema.string("s3.region", std::nullopt, "S3 region; unset: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1");
  schema.string("s3.profile", std::nullopt, "profile of the shared credentials file; unset: AWS_PROFILE, else default");
  return schema;
}

std::chrono::milliseconds duration_key(const Config& config, const std::string& key) {
  double seconds = parse_duration(config.get_string(key), str(config.where(key), ": ", key));
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

std::string optional_string(const Config& config, const std::string& key) {
  return config.has(key) ? config.get_string(key) : std::string();
}

// One entry of the models list; `where` names it in errors.
ModelSpec model_spec(const YAML::Node& node, const std::string& where, const std::filesystem::path& base) {
  if (!node.IsMap()) throw UsageError(str(where, ": expected {name, source, ...}"));
  static const std::set<std::string> known = {"name", "source", "fallback", "max_queue_wait", "max_time_to_first_token",
                                              "recover", "min_engaged"};
  for (const auto& item : node) {
    std::string key = item.first.as<std::string>();
    if (!known.count(key))
      throw UsageError(str(where, ": unknown key '", key, "' (expected name, source, fallback, max_queue_wait, ",
                           "max_time_to_first_token, recover, min_engaged)"));
  }
  auto text = [&](const char* key) -> std::string {
    const YAML::Node value = node[key];
    if (!value || value.IsNull()) return "";
    if (!value.IsScalar()) throw UsageError(str(where, ".", key, ": expected a string"));
    return value.as<std::string>();
  };
  auto seconds = [&](const char* key) -> double {
    std::string value = text(key);
    return value.empty() ? 0 : parse_duration(value, str(where, ".", key));
  };
  ModelSpec spec;
  spec.name = text("name");
  spec.source = text("source");
  if (spec.source.empty()) throw UsageError(str(where, ".source: required (a checkpoint directory or registry://name@alias)"));
  if (!registry::is_model_url(spec.source)) spec.source = std::filesystem::absolute(base / spec.source).lexically_normal().string();
  if (spec.name.empty()) {
    spec.name = registry::is_model_url(spec.source) ? spec.source : std::filesystem::path(spec.source).filename().string();
    if (spec.source.rfind("registry://", 0) == 0) {
      spec.name = spec.source.substr(11);
      spec.name = spec.name.substr(0, spec.name.find('@'));
    }
  }
  spec.fallback.fallback = text("fallback");
  spec.fallback.max_queue_wait = seconds("max_queue_wait");
  spec.fallback.max_time_to_first_token = seconds("max_time_to_first_token");
  if (std::string recover = text("recover"); !recover.empty()) {
    try {
      spec.fallback.recover = std::stod(recover);
    } catch (const std::exception&) {
      throw UsageError(str(where, ".recover: expected a number in (0, 1], got '", recover, "'"));
    }
    if (!(spec.fallback.recover > 0 && spec.fallback.recover <= 1))
      throw UsageError(str(where, ".recover: expected a number in (0, 1], got '", recover, "'"));
  }
  if (std::string held = text("min_engaged"); !held.empty())
    spec.fallback.min_engaged = std::chrono::milliseconds(static_cast<int64_t>(parse_duration(held, where + ".min_engaged") * 1000));
  if (!spec.fallback.fallback.empty() && spec.fallback.max_queue_wait <= 0 && spec.fallback.max_time_to_first_token <= 0)
    throw UsageError(str(where, ": fallback '", spec.fallback.fallback, "' needs max_queue_wait or max_time_to_first_token"));
  return spec;
}

}  // namespace

const Schema& serve_schema() {
  static const Schema schema = make_schema();
  return schema;
}

ServeSettings serve_settings(const Config& config) {
  ServeSettings settings;
  settings.http.host = config.get_string("host");
  settings.http.port = static_cast<int>(config.get_int("port"));
  if (config.has("api_key_file")) settings.api_key_file = config.get_string("api_key_file");
  settings.drain_grace = duration_key(config, "drain_grace");

  std::string where = config.where("models");
  // A relative source in a file is relative to the file; from a flag, to the working directory.
  std::filesystem::path base;
  if (size_t colon = where.rfind(':'); colon != std::string::npos && where.rfind("--", 0) != 0 &&
                                       std::filesystem::exists(where.substr(0, colon)))
    base = std::filesystem::path(where.substr(0, colon)).parent_path();
  YAML::Node models = config.has("models") ? config.get_tree("models") : YAML::Node();
  if (models && !models.IsNull()) {
    if (!models.IsSequence()) throw UsageError(str(where, ": models: expected a list of {name, source, ...}"));
    std::set<std::string> names;
    for (size_t i = 0; i < models.size(); ++i) {
      ModelSpec spec = model_spec(models[i], str(where, ": models[", i, "]"), base);
      if (!names.insert(spec.name).second) throw UsageError(str(where, ": models[", i, "]: the name '", spec.name, "' is used twice"));
      settings.models.push_back(std::move(spec));
    }
    for (const ModelSpec& spec : settings.models)
      if (!spec.fallback.fallback.empty() && !names.count(spec.fallback.fallback))
        throw UsageError(str(where, ": model '", spec.name, "' falls back to '", spec.fallback.fallback, "', which is not in models"));
  }

  EngineOptions& engine = settings.engine;
  engine.device = config.get_string("engine.device");
  engine.precision = config.get_string("engine.precision");
  engine.max_batch = static_cast<int>(config.get_int("engine.max_batch"));
  engine.max_batch_tokens = static_cast<int>(config.get_int("engine.max_batch_tokens"));
  engine.block_size = static_cast<int>(config.get_int("engine.block_size"));
  engine.kv_blocks = static_cast<int>(config.get_int("engine.kv_blocks"));
  engine.kv_memory_fraction = config.get_double("engine.kv_memory_fraction");
  engine.max_queue = static_cast<int>(config.get_int("engine.max_queue"));
  engine.prefix_sharing = config.get_bool("engine.prefix_sharing");
  engine.cuda_graphs = config.get_bool("engine.cuda_graphs");
  engine.fused_decode = config.get_bool("engine.fused_decode");

  HttpOptions& http = settings.http;
  http.threads = static_cast<int>(config.get_int("http.threads"));
  http.max_body_bytes = parse_size(config.get_string("http.max_body"), str(config.where("http.max_body"), ": http.max_body"));
  auto whole_seconds = [&](const std::string& key) {
    return std::chrono::seconds(std::max<int64_t>(1, duration_key(config, key).count() / 1000));
  };
  http.read_timeout = whole_seconds("http.read_timeout");
  http.write_timeout = whole_seconds("http.write_timeout");
  http.keep_alive_timeout = whole_seconds("http.keep_alive_timeout");
  http.retry_after_seconds = static_cast<int>(config.get_int("http.retry_after"));

  RegistrySettings& registry = settings.registry;
  registry.root = optional_string(config, "registry.root");
  registry.refresh = duration_key(config, "registry.refresh");
  if (config.has("registry.cache_dir")) registry.cache_dir = config.get_string("registry.cache_dir");
  registry.endpoint_url = optional_string(config, "s3.endpoint_url");
  registry.region = optional_string(config, "s3.region");
  registry.profile = optional_string(config, "s3.profile");
  return settings;
}

std::string models_yaml_from_flags(const std::vector<std::string>& models) {
  YAML::Node list(YAML::NodeType::Sequence);
  for (const std::string& flag : models) {
    YAML::Node entry;
    size_t equals = flag.find('=');
    // NAME=SOURCE, unless the '=' belongs to the source (a URL query, a path holding '=').
    bool named = equals != std::string::npos && equals > 0 && flag.find('/') > equals && flag.find(':') > equals;
    if (named) entry["name"] = flag.substr(0, equals);
    entry["source"] = named ? flag.substr(equals + 1) : flag;
    list.push_back(entry);
  }
  YAML::Emitter out;
  out << YAML::Flow << list;
  return out.c_str();
}

}  // namespace dsk::serve
