#include "distill/model_identity.hpp"

#include <algorithm>
#include <vector>

#include "core/error.hpp"
#include "core/sha256.hpp"

namespace dsk::distill {
namespace fs = std::filesystem;

std::string checkpoint_sha256(const fs::path& checkpoint) {
  if (!fs::is_regular_file(checkpoint / "config.json"))
    throw DataError(str(checkpoint.string(), ": not a checkpoint directory (no config.json)"));
  std::vector<std::string> names = {"config.json"};
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(checkpoint, error)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".safetensors") || name == "model.safetensors.index.json") names.push_back(name);
  }
  if (error) throw DataError(str(checkpoint.string(), ": cannot list the checkpoint: ", error.message()));
  if (names.size() == 1) throw DataError(str(checkpoint.string(), ": no model.safetensors in the checkpoint"));
  std::sort(names.begin() + 1, names.end());
  Sha256 digest;
  for (const std::string& name : names) digest.update(name + " " + sha256_file(checkpoint / name) + "\n");
  return digest.hex_digest();
}

std::string tokenizer_sha256(const fs::path& tokenizer_json) {
  if (tokenizer_json.empty() || !fs::is_regular_file(tokenizer_json)) return "none";
  return sha256_file(tokenizer_json);
}

}  // namespace dsk::distill
