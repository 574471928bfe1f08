// Reading and writing F32-only safetensors files in tests (the reference files of the fixtures,
// and checkpoints edited by a test).
#pragma once

#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/fs.hpp"

namespace dsk::model::testing {

struct F32Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

inline std::map<std::string, F32Tensor> read_f32_safetensors(const std::filesystem::path& path) {
  std::string bytes = dsk::read_file(path);
  uint64_t length;
  std::memcpy(&length, bytes.data(), 8);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, length));
  std::map<std::string, F32Tensor> out;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    if (entry["dtype"] != "F32") throw std::runtime_error(path.string() + ": " + name + " is not F32");
    size_t begin = entry["data_offsets"][0], end = entry["data_offsets"][1];
    F32Tensor t{entry["shape"].get<std::vector<int64_t>>(), std::vector<float>((end - begin) / 4)};
    std::memcpy(t.values.data(), bytes.data() + 8 + length + begin, end - begin);
    out[name] = std::move(t);
  }
  return out;
}

inline void write_f32_safetensors(const std::filesystem::path& path, const std::map<std::string, F32Tensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * 4);
    header[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  uint64_t length = text.size();
  std::string file(reinterpret_cast<const char*>(&length), 8);
  dsk::write_file_atomic(path, file + text + data);
}

}  // namespace dsk::model::testing
