// libFuzzer target: a config file and --set values (YAML NUL key=value NUL key=value ...), read
// with dsk-train's schema, or dsk-scale's policy schema when the file starts with "#policy".
// Loading must succeed or throw UsageError (exit 2); an accepted config prints (--print-config)
// as YAML that loads back to the same config (the inline model.config to the same JSON); then what the tools build from it (the inline
// model.config's architecture, the scaling policy) must succeed or throw UsageError/DataError.
#include <cstdlib>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/error.hpp"
#include "fuzz_input.hpp"
#include "model/hf_config.hpp"
#include "scale/policy.hpp"
#include "train/model_source.hpp"
#include "tokenizer/utf8.hpp"
#include "train/train_schema.hpp"

namespace {

void build_from(const dsk::Config& config, bool policy) {
  try {
    if (policy) {
      dsk::scale::policy_from_config(config);
    } else if (config.has("model.config")) {
      auto arch = dsk::model::architecture_from_hf_config(
          dsk::train::yaml_to_json(config.get_tree("model.config"), config.source()), "model.config");
      if (arch.vocab <= 0 || arch.layers <= 0 || arch.hidden <= 0) std::abort();
    }
  } catch (const dsk::UsageError&) {
  } catch (const dsk::DataError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = dsk::fuzz::split_input(data, size, 6);
  const bool policy = parts[0].starts_with("#policy");
  const dsk::Schema& schema = policy ? dsk::scale::policy_schema() : dsk::train::train_schema();
  std::vector<std::string> overrides(parts.begin() + 1, parts.end());
  try {
    dsk::Config config = dsk::Config::from_text(schema, std::string(parts[0]), "config.yaml", overrides);
    std::string printed = config.to_yaml();
    dsk::Config again = dsk::Config::from_text(schema, printed, "printed config");
    if (again.to_yaml() != printed) std::abort();
    // The inline model.config means the same after printing ('123' stays a string), when the
    // input was UTF-8 (YAML's encoding: yaml-cpp replaces other bytes inside double quotes).
    bool utf8 = !dsk::tokenizer::first_invalid_utf8(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!policy && utf8 && config.has("model.config") &&
        dsk::train::yaml_to_json(config.get_tree("model.config"), "config.yaml") !=
            dsk::train::yaml_to_json(again.get_tree("model.config"), "printed config"))
      std::abort();
    build_from(config, policy);
  } catch (const dsk::UsageError&) {
  }
  return 0;
}
