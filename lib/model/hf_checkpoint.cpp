// HF checkpoint directories: config.json plus model.safetensors, or shards listed by
// model.safetensors.index.json. The files are read through lib/io (mmap'd, every header checked)
// and every tensor's name, shape and dtype is matched against the architecture's layout before
// any weights are allocated; the tensors the model holds (ModelOptions' expert share leaves the
// other ranks' experts out) are then converted to the flat fp32 parameter buffer (F32, BF16 and
// F16 accepted). Saving writes the requested dtype, one tensor after another, with a
// shard boundary before a tensor that would overflow max_shard_bytes.
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "io/safetensors.hpp"
#include "model/hf_config.hpp"
#include "model/model.hpp"
#include "model/parameters.hpp"

namespace dsk::model {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The safetensors files of a checkpoint directory, with the tensors each should hold.
std::vector<fs::path> checkpoint_files(const fs::path& dir) {
  fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    json j;
    try {
      j = json::parse(read_file(index));
    } catch (const json::parse_error& e) {
      throw DataError(str(index.string(), ": not valid JSON (", e.what(), ")"));
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw DataError(str(index.string(), ": no \"weight_map\" object"));
    std::set<std::string> names;
    for (auto& [tensor, file] : j["weight_map"].items()) names.insert(file.get<std::string>());
    std::vector<fs::path> files;
    for (const std::string& name : names) files.push_back(dir / name);
    return files;
  }
  if (fs::exists(dir / "model.safetensors")) return {dir / "model.safetensors"};
  throw DataError(str(dir.string(), ": no model.safetensors or model.safetensors.index.json"));
}

// Tensors HF itself skips when loading: the multi-token-prediction layers DeepSeek-V3 checkpoints
// carry after the last decoder layer, lm_head.weight when the embeddings are tied, and the RoPE
// inv_freq buffers that old llama checkpoints saved.
bool ignored_tensor(const std::string& name, const Architecture& a) {
  if (a.tied_embeddings && name == "lm_head.weight") return true;
  if (name.ends_with("rotary_emb.inv_freq")) return true;
  const std::string prefix = "model.layers.";
  if (a.mla() && name.starts_with(prefix)) {
    size_t end = name.find('.', prefix.size());
    int layer = std::atoi(name.substr(prefix.size(), end - prefix.size()).c_str());
    return layer >= a.layers;
  }
  return false;
}

std::string list_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 5; i++) out += (i ? ", " : "") + names[i];
  if (names.size() > 5) out += str(" and ", names.size() - 5, " more");
  return out;
}

}  // namespace

Model Model::load_hf_checkpoint(const fs::path& dir, std::shared_ptr<tensor::Ops> ops, ModelOptions options) {
  Architecture arch = read_hf_config(dir / "config.json");
  // Names and shapes only: nothing is allocated until every tensor has been found good.
  const ParameterLayout layout = layout_parameters(arch);
  std::map<std::string, const ParamView*> wanted;
  for (const ParamView& v : layout.views) wanted[v.name] = &v;
  std::vector<io::SafetensorsFile> files;
  for (const fs::path& file : checkpoint_files(dir)) files.emplace_back(file);
  std::vector<std::pair<const ParamView*, io::TensorView>> found;
  std::vector<std::string> unexpected;
  for (const io::SafetensorsFile& file : files) {
    for (const io::TensorInfo& t : file.tensors()) {
      if (ignored_tensor(t.name, arch)) continue;
      auto it = wanted.find(t.name);
      if (it == wanted.end()) {
        unexpected.push_back(t.name);
        continue;
      }
      const ParamView& v = *it->second;
      if (t.shape != v.shape)
        throw DataError(str(file.path().string(), ": tensor \"", t.name, "\" has shape ", json(t.shape).dump(),
                            ", expected ", json(v.shape).dump()));
      if (t.dtype != io::DType::F32 && t.dtype != io::DType::BF16 && t.dtype != io::DType::F16)
        throw DataError(str(file.path().string(), ": tensor \"", t.name, "\" has dtype ", io::dtype_name(t.dtype),
                            " (F32, BF16 or F16 expected)"));
      found.emplace_back(&v, file.view(t));
      wanted.erase(it);
    }
  }
  if (!unexpected.empty())
    throw DataError(str(dir.string(), ": unexpected tensors for this config: ", list_names(unexpected)));
  if (!wanted.empty()) {
    std::vector<std::string> missing;
    for (auto& [name, v] : wanted) missing.push_back(name);
    throw DataError(str(dir.string(), ": missing tensors: ", list_names(missing)));
  }
  // Only the tensors the model holds are converted (expert parallelism: this rank's experts); the
  // others' bytes are never read from the mapped files.
  Model model = unfilled(arch, std::move(ops), options);
  const std::vector<FlatSpan>& dropped = model.dropped_weights();
  std::vector<float> held(layout.total - total_numel(dropped), 0.0f);
  for (const auto& [view, tensor] : found) {
    if (is_dropped(dropped, view->offset, view->numel)) continue;
    io::to_float(tensor.data, tensor.dtype(), view->numel, held.data() + offset_without(dropped, view->offset, view->numel));
  }
  model.set_held_parameters(held);
  return model;
}

void Model::save_hf_checkpoint(const fs::path& dir, const std::string& dtype, size_t max_shard_bytes) const {
  save_hf_checkpoint(dir, copy_parameters(), dtype, max_shard_bytes);
}

void Model::save_hf_checkpoint(const fs::path& dir, std::span<const float> values, const std::string& dtype,
                               size_t max_shard_bytes) const {
  if (values.size() != parameter_count()) throw InternalError("save_hf_checkpoint: values of another model");
  const std::optional<io::DType> type = io::parse_dtype(dtype);
  if (dtype != "F32" && dtype != "BF16" && dtype != "F16")
    throw UsageError(str("save: dtype \"", dtype, "\" is not one of F32, BF16, F16"));
  fs::create_directories(dir);
  // Group the tensors into shards of at most max_shard_bytes (a bigger tensor gets its own).
  std::vector<std::vector<const ParamView*>> shards(1);
  size_t shard_bytes = 0;
  for (const ParamView& v : parameter_views()) {
    size_t bytes = v.numel * io::dtype_size(*type);
    if (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&v);
    shard_bytes += bytes;
  }
  json weight_map = json::object();
  size_t total = 0;
  for (size_t s = 0; s < shards.size(); s++) {
    std::string name = shards.size() == 1 ? "model.safetensors"
                                          : str("model-", std::string(5 - std::to_string(s + 1).size(), '0'), s + 1,
                                                "-of-", std::string(5 - std::to_string(shards.size()).size(), '0'),
                                                shards.size(), ".safetensors");
    std::vector<std::string> bytes(shards[s].size());
    std::vector<io::TensorToWrite> tensors;
    for (size_t i = 0; i < shards[s].size(); i++) {
      const ParamView& v = *shards[s][i];
      bytes[i].resize(v.numel * io::dtype_size(*type));
      io::from_float(values.data() + v.offset, v.numel, *type, bytes[i].data());
      tensors.push_back(io::TensorToWrite{v.name, *type, v.shape, bytes[i].data()});
      weight_map[v.name] = name;
      total += bytes[i].size();
    }
    io::write_safetensors(dir / name, tensors, {{"format", "pt"}});
  }
  if (shards.size() > 1) {
    json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_atomic(dir / "model.safetensors.index.json", index.dump(2) + "\n");
  } else {
    fs::remove(dir / "model.safetensors.index.json");  // a stale index would win over the new file
  }
  write_file_atomic(dir / "config.json", hf_config_of(architecture(), dtype).dump(2) + "\n");
}

}  // namespace dsk::model
