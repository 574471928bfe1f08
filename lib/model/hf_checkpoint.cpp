// HF checkpoint directories: config.json plus model.safetensors, or shards listed by
// model.safetensors.index.json. safetensors = u64 header length, a JSON header {name: {dtype,
// shape, data_offsets}} padded to 8 bytes, then the raw little-endian tensors. Tensors are read one
// at a time into the flat fp32 parameter buffer (F32, BF16 and F16 accepted) and written in the
// requested dtype, one tensor after another, with a shard boundary before a tensor that would
// overflow max_shard_bytes.
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "model/hf_config.hpp"
#include "model/model.hpp"

namespace dsk::model {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

float bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {  // round to nearest even; NaN stays NaN
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  return (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000 | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    int shift = 0;
    while (!(mantissa & 0x400)) {
      mantissa <<= 1;
      shift++;
    }
    bits = sign | ((uint32_t)(113 - shift) << 23) | ((mantissa & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {  // round to nearest even, overflow to infinity
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint16_t sign = (bits >> 16) & 0x8000;
  int exponent = (int)((bits >> 23) & 0xff) - 127 + 15;
  uint32_t mantissa = bits & 0x7fffff;
  if (((bits >> 23) & 0xff) == 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  if (exponent >= 0x1f) return sign | 0x7c00;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    mantissa |= 0x800000;
    int shift = 14 - exponent;
    uint32_t half = mantissa >> shift, rest = mantissa & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1))) half++;
    return sign | (uint16_t)half;
  }
  uint32_t half = ((uint32_t)exponent << 10) | (mantissa >> 13), rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;  // may carry into the exponent: fine
  return sign | (uint16_t)half;
}

size_t dtype_size(const std::string& dtype) { return dtype == "F32" ? 4 : 2; }

// One safetensors file's header: name -> (dtype, shape, begin, end) relative to the data start.
struct TensorEntry {
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

struct SafetensorsHeader {
  uint64_t data_start = 0;
  std::map<std::string, TensorEntry> tensors;
};

SafetensorsHeader read_header(std::ifstream& in, const fs::path& path) {
  uint64_t length = 0;
  in.read(reinterpret_cast<char*>(&length), 8);
  in.seekg(0, std::ios::end);
  uint64_t file_size = (uint64_t)in.tellg();
  if (!in || length == 0 || length > file_size - 8)
    throw DataError(str(path.string(), ": not a safetensors file (bad header length)"));
  std::string text(length, '\0');
  in.seekg(8);
  in.read(text.data(), (std::streamsize)length);
  SafetensorsHeader header;
  header.data_start = 8 + length;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw DataError(str(path.string(), ": safetensors header is not valid JSON (", e.what(), ")"));
  }
  for (auto& [name, entry] : j.items()) {
    if (name == "__metadata__") continue;
    TensorEntry t;
    try {
      t.dtype = entry.at("dtype").get<std::string>();
      t.shape = entry.at("shape").get<std::vector<int64_t>>();
      t.begin = entry.at("data_offsets").at(0).get<uint64_t>();
      t.end = entry.at("data_offsets").at(1).get<uint64_t>();
    } catch (const json::exception&) {
      throw DataError(str(path.string(), ": tensor \"", name, "\" has no valid dtype/shape/data_offsets"));
    }
    if (t.end < t.begin || header.data_start + t.end > file_size)
      throw DataError(str(path.string(), ": tensor \"", name, "\" lies outside the file"));
    header.tensors[name] = std::move(t);
  }
  return header;
}

void convert_to_f32(float* out, const std::string& raw, const std::string& dtype, size_t n) {
  const char* p = raw.data();
  for (size_t i = 0; i < n; i++) {
    uint16_t h;
    if (dtype == "F32") {
      std::memcpy(out + i, p + 4 * i, 4);
      continue;
    }
    std::memcpy(&h, p + 2 * i, 2);
    out[i] = dtype == "BF16" ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

void append_converted(std::string& out, const float* values, size_t n, const std::string& dtype) {
  size_t at = out.size();
  out.resize(at + n * dtype_size(dtype));
  char* p = out.data() + at;
  for (size_t i = 0; i < n; i++) {
    if (dtype == "F32") {
      std::memcpy(p + 4 * i, values + i, 4);
      continue;
    }
    uint16_t h = dtype == "BF16" ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
    std::memcpy(p + 2 * i, &h, 2);
  }
}

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

Model Model::load_hf_checkpoint(const fs::path& dir, std::shared_ptr<tensor::Ops> ops) {
  Architecture arch = read_hf_config(dir / "config.json");
  Model model(arch, 0, 0.0f, std::move(ops));
  std::vector<float> values(model.parameter_count(), 0.0f);
  std::map<std::string, const ParamView*> wanted;
  for (const ParamView& v : model.parameter_views()) wanted[v.name] = &v;
  std::vector<std::string> unexpected;
  for (const fs::path& file : checkpoint_files(dir)) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw DataError(str(file.string(), ": cannot open"));
    SafetensorsHeader header = read_header(in, file);
    for (const auto& [name, t] : header.tensors) {
      if (ignored_tensor(name, arch)) continue;
      auto it = wanted.find(name);
      if (it == wanted.end()) {
        unexpected.push_back(name);
        continue;
      }
      const ParamView& v = *it->second;
      if (t.shape != v.shape)
        throw DataError(str(file.string(), ": tensor \"", name, "\" has shape ", json(t.shape).dump(), ", expected ",
                            json(v.shape).dump()));
      if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F16")
        throw DataError(str(file.string(), ": tensor \"", name, "\" has dtype ", t.dtype, " (F32, BF16 or F16 expected)"));
      if (t.end - t.begin != v.numel * dtype_size(t.dtype))
        throw DataError(str(file.string(), ": tensor \"", name, "\" has ", t.end - t.begin, " bytes for its shape"));
      std::string raw(t.end - t.begin, '\0');
      in.seekg((std::streamoff)(header.data_start + t.begin));
      in.read(raw.data(), (std::streamsize)raw.size());
      if (!in) throw DataError(str(file.string(), ": truncated while reading \"", name, "\""));
      convert_to_f32(values.data() + v.offset, raw, t.dtype, v.numel);
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
  model.set_parameters(values);
  return model;
}

void Model::save_hf_checkpoint(const fs::path& dir, const std::string& dtype, size_t max_shard_bytes) const {
  if (dtype != "F32" && dtype != "BF16" && dtype != "F16")
    throw UsageError(str("save: dtype \"", dtype, "\" is not one of F32, BF16, F16"));
  fs::create_directories(dir);
  // Group the tensors into shards of at most max_shard_bytes (a bigger tensor gets its own).
  std::vector<std::vector<const ParamView*>> shards(1);
  size_t shard_bytes = 0;
  for (const ParamView& v : parameter_views()) {
    size_t bytes = v.numel * dtype_size(dtype);
    if (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&v);
    shard_bytes += bytes;
  }
  const std::vector<float> values = copy_parameters();
  json weight_map = json::object();
  for (size_t s = 0; s < shards.size(); s++) {
    std::string name = shards.size() == 1 ? "model.safetensors"
                                          : str("model-", std::string(5 - std::to_string(s + 1).size(), '0'), s + 1,
                                                "-of-", std::string(5 - std::to_string(shards.size()).size(), '0'),
                                                shards.size(), ".safetensors");
    json header = {{"__metadata__", {{"format", "pt"}}}};
    std::string data;
    for (const ParamView* v : shards[s]) {
      size_t begin = data.size();
      append_converted(data, values.data() + v->offset, v->numel, dtype);
      header[v->name] = {{"dtype", dtype}, {"shape", v->shape}, {"data_offsets", {begin, data.size()}}};
      weight_map[v->name] = name;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    uint64_t length = text.size();
    AtomicFile file(dir / name);
    file.write(&length, 8);
    file.write(text);
    file.write(data.data(), data.size());
    file.commit();
  }
  if (shards.size() > 1) {
    size_t total = 0;
    for (const ParamView& v : parameter_views()) total += v.numel * dtype_size(dtype);
    json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_atomic(dir / "model.safetensors.index.json", index.dump(2) + "\n");
  } else {
    fs::remove(dir / "model.safetensors.index.json");  // a stale index would win over the new file
  }
  write_file_atomic(dir / "config.json", hf_config_of(architecture(), dtype).dump(2) + "\n");
}

}  // namespace dsk::model
