// libFuzzer target: any text as a checkpoint's config.json, read both ways dsk reads one: the
// typed io::ModelConfig and the model's Architecture. Each must succeed or throw DataError; an
// accepted config has sizes within io/model_config.hpp's bounds, and the config.json dsk writes
// for an Architecture reads back as the same Architecture.
#include <cstdlib>
#include <string>

#include "core/error.hpp"
#include "core/json.hpp"
#include "io/model_config.hpp"
#include "model/hf_config.hpp"

namespace {

void check_bounds(const dsk::model::Architecture& a) {
  using namespace dsk::io;
  if (a.vocab <= 0 || a.vocab > kMaxVocabSize || a.hidden <= 0 || a.hidden > kMaxWidth || a.layers <= 0 ||
      a.layers > kMaxLayers || a.heads <= 0 || a.heads > kMaxHeads || a.n_routed < 0 || a.n_routed > kMaxExperts ||
      !(a.rms_eps > 0) || !(a.max_position_embeddings > 0))
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    dsk::io::ModelConfig config = dsk::io::parse_model_config(text, "config.json");
    if (config.vocab_size > dsk::io::kMaxVocabSize || config.num_hidden_layers > dsk::io::kMaxLayers) std::abort();
    dsk::io::parse_model_config(dsk::io::model_config_json(config), "written config.json");
  } catch (const dsk::DataError&) {
  }
  try {
    auto arch = dsk::model::architecture_from_hf_config(dsk::parse_json(text, "config.json"), "config.json");
    check_bounds(arch);
    auto written = dsk::model::hf_config_of(arch, "BF16");
    auto again = dsk::model::architecture_from_hf_config(written, "written config.json");
    if (dsk::model::hf_config_of(again, "BF16") != written) std::abort();
  } catch (const dsk::DataError&) {
  }
  return 0;
}
