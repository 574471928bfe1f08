// safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON {"name": {"dtype": "BF16", "shape": [4096, 4096],
// "data_offsets": [begin, end]}, ..., "__metadata__": {"key": "string"}}, then the data section;
// offsets are relative to the data section's start. A file is mmap'd read-only and each tensor
// is a zero-copy view into the mapping (valid while the SafetensorsFile lives; not necessarily
// aligned beyond 1 byte, though HF pads the header so data starts 8-aligned).
//
// Everything in the header is checked before any view is handed out (DataError naming the file
// and the tensor): length within the file and below kMaxHeaderBytes, JSON object, known dtype,
// shape a list of non-negative integers, data_offsets [begin, end] inside the data section,
// end - begin == product(shape) * dtype size, no two tensors overlapping, no name twice.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "io/dtype.hpp"

namespace dsk::io {

// A hostile header length must not make us allocate gigabytes (HF's own limit is 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the data section
  uint64_t end = 0;
  uint64_t byte_size() const { return end - begin; }
  uint64_t element_count() const;
};

// A parsed and checked header: tensors in data order (by begin offset) and the metadata map.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};

// Parses the JSON header of a file whose data section is data_bytes long. `origin` names the
// file in error messages. Throws DataError.
SafetensorsHeader parse_safetensors_header(std::string_view json, uint64_t data_bytes, const std::string& origin);

// Parses a whole file image (length prefix + header + data). Throws DataError. Returns the
// header and sets data_offset to where the data section starts in `bytes`.
SafetensorsHeader parse_safetensors_bytes(std::string_view bytes, const std::string& origin, uint64_t& data_offset);

struct TensorView {
  const TensorInfo* info;
  const void* data;  // info->byte_size() bytes
  const std::string& name() const { return info->name; }
  DType dtype() const { return info->dtype; }
  const std::vector<int64_t>& shape() const { return info->shape; }
  uint64_t byte_size() const { return info->byte_size(); }
};

class SafetensorsFile {
 public:
  // Maps and checks the file: DataError for a bad file, DataError naming it when it cannot be opened.
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  bool contains(std::string_view name) const;
  // The tensor by name; DataError naming the file and tensor when absent.
  TensorView at(std::string_view name) const;
  TensorView view(const TensorInfo& info) const;

 private:
  void release();

  std::filesystem::path path_;
  const char* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  uint64_t data_offset_ = 0;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> by_name_;
};

}  // namespace dsk::io

namespace dsk::io {

// One tensor to write: bytes are byte_size(dtype, shape) long and are copied as they are.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};

// The header JSON of a file holding these tensors, back to back in the given order, padded
// with spaces to a multiple of 8 bytes so the data section starts 8-aligned (as HF writes it).
std::string safetensors_header_json(const std::vector<TensorToWrite>& tensors,
                                    const std::map<std::string, std::string>& metadata);
// Writes a safetensors file to a temporary name and renames it into place (core/fs.hpp).
// UsageError for a name given twice; ResourceError on a full disk.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace dsk::io
