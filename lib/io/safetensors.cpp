#include "io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "core/fs.hpp"

namespace dsk::io {

namespace {

using json = nlohmann::json;

std::string where(const std::string& origin, const std::string& tensor) {
  return str(origin, ": tensor '", tensor, "': ");
}

// The JSON, refusing a name that appears twice at the top level (nlohmann would keep the last).
json parse_json_object(std::string_view text, const std::string& origin) {
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && parsed.is_string()) {
      auto key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), on_event);
  } catch (const json::exception& e) {
    throw DataError(str(origin, ": safetensors header is not valid JSON (", e.what(), ")"));
  }
  if (!header.is_object()) throw DataError(str(origin, ": safetensors header is not a JSON object"));
  if (!duplicate.empty()) throw DataError(str(origin, ": tensor '", duplicate, "' appears twice in the header"));
  return header;
}

uint64_t checked_multiply(uint64_t a, uint64_t b, const std::string& context) {
  if (a != 0 && b > UINT64_MAX / a) throw DataError(context + "shape is too large (size overflows 64 bits)");
  return a * b;
}

TensorInfo parse_tensor(const std::string& name, const json& entry, uint64_t data_bytes, const std::string& origin) {
  const std::string context = where(origin, name);
  if (!entry.is_object()) throw DataError(context + "entry is not a JSON object");
  TensorInfo info;
  info.name = name;

  auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) throw DataError(context + "missing \"dtype\" string");
  auto parsed = parse_dtype(dtype->get_ref<const std::string&>());
  if (!parsed) throw DataError(context + "unknown dtype '" + dtype->get<std::string>() + "'");
  info.dtype = *parsed;

  auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array())
    throw DataError(context + "\"shape\" must be a list of non-negative integers");
  uint64_t elements = 1;
  for (const auto& dim : *shape) {
    if (!dim.is_number_unsigned() || dim.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      throw DataError(context + "\"shape\" must be a list of non-negative integers");
    info.shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
    elements = checked_multiply(elements, dim.get<uint64_t>(), context);
  }

  auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned())
    throw DataError(context + "\"data_offsets\" must be [begin, end] (non-negative integers)");
  info.begin = (*offsets)[0].get<uint64_t>();
  info.end = (*offsets)[1].get<uint64_t>();
  if (info.begin > info.end || info.end > data_bytes)
    throw DataError(str(context, "data_offsets [", info.begin, ", ", info.end, "] lie outside the data section (",
                        data_bytes, " bytes)"));
  const uint64_t expected = checked_multiply(elements, dtype_size(info.dtype), context);
  if (info.byte_size() != expected)
    throw DataError(str(context, "holds ", info.byte_size(), " bytes but ", dtype_name(info.dtype), " ",
                        "shape needs ", expected));
  return info;
}

std::map<std::string, std::string> parse_metadata(const json& entry, const std::string& origin) {
  if (!entry.is_object()) throw DataError(origin + ": \"__metadata__\" must be an object of strings");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : entry.items()) {
    if (!value.is_string())
      throw DataError(str(origin, ": \"__metadata__\" value of '", key, "' must be a string"));
    metadata[key] = value.get<std::string>();
  }
  return metadata;
}

void check_no_overlap(const std::vector<TensorInfo>& sorted, const std::string& origin) {
  const TensorInfo* previous = nullptr;
  for (const auto& t : sorted) {
    if (t.byte_size() == 0) continue;
    if (previous && t.begin < previous->end)
      throw DataError(str(origin, ": tensors '", previous->name, "' and '", t.name, "' overlap in the data section"));
    previous = &t;
  }
}

uint64_t read_u64_le(const char* p) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(p[i]);
  return value;
}

}  // namespace

uint64_t TensorInfo::element_count() const {
  uint64_t n = 1;
  for (auto d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

SafetensorsHeader parse_safetensors_header(std::string_view text, uint64_t data_bytes, const std::string& origin) {
  json header = parse_json_object(text, origin);
  SafetensorsHeader result;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__")
      result.metadata = parse_metadata(entry, origin);
    else
      result.tensors.push_back(parse_tensor(name, entry, data_bytes, origin));
  }
  std::stable_sort(result.tensors.begin(), result.tensors.end(),
                   [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin; });
  check_no_overlap(result.tensors, origin);
  return result;
}

SafetensorsHeader parse_safetensors_bytes(std::string_view bytes, const std::string& origin, uint64_t& data_offset) {
  if (bytes.size() < 8)
    throw DataError(str(origin, ": not a safetensors file (", bytes.size(), " bytes, shorter than the 8-byte header length)"));
  const uint64_t header_bytes = read_u64_le(bytes.data());
  if (header_bytes > kMaxHeaderBytes)
    throw DataError(str(origin, ": safetensors header length ", header_bytes, " exceeds the limit of ", kMaxHeaderBytes,
                        " bytes"));
  if (header_bytes > bytes.size() - 8)
    throw DataError(str(origin, ": safetensors header length ", header_bytes, " runs past the end of the file (",
                        bytes.size(), " bytes)"));
  data_offset = 8 + header_bytes;
  return parse_safetensors_header(bytes.substr(8, header_bytes), bytes.size() - data_offset, origin);
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(str(path.string(), ": cannot open (", std::strerror(errno), ")"));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw DataError(str(path.string(), ": cannot stat (", std::strerror(e), ")"));
  }
  mapping_size_ = static_cast<size_t>(st.st_size);
  if (mapping_size_ > 0) {
    void* p = ::mmap(nullptr, mapping_size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw ResourceError(str(path.string(), ": cannot mmap (", std::strerror(e), ")"));
    }
    mapping_ = static_cast<const char*>(p);
  }
  ::close(fd);
  try {
    header_ = parse_safetensors_bytes(std::string_view(mapping_ ? mapping_ : "", mapping_size_), path.string(),
                                      data_offset_);
  } catch (...) {
    release();
    throw;
  }
  for (size_t i = 0; i < header_.tensors.size(); ++i) by_name_.emplace(header_.tensors[i].name, i);
}

SafetensorsFile::~SafetensorsFile() { release(); }

void SafetensorsFile::release() {
  if (mapping_) ::munmap(const_cast<char*>(mapping_), mapping_size_);
  mapping_ = nullptr;
  mapping_size_ = 0;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      mapping_(std::exchange(other.mapping_, nullptr)),
      mapping_size_(std::exchange(other.mapping_size_, 0)),
      data_offset_(other.data_offset_),
      header_(std::move(other.header_)),
      by_name_(std::move(other.by_name_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    mapping_size_ = std::exchange(other.mapping_size_, 0);
    data_offset_ = other.data_offset_;
    header_ = std::move(other.header_);
    by_name_ = std::move(other.by_name_);
  }
  return *this;
}

bool SafetensorsFile::contains(std::string_view name) const { return by_name_.find(name) != by_name_.end(); }

TensorView SafetensorsFile::at(std::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) throw DataError(str(path_.string(), ": no tensor '", name, "'"));
  return view(header_.tensors[it->second]);
}

TensorView SafetensorsFile::view(const TensorInfo& info) const {
  return TensorView{&info, mapping_ + data_offset_ + info.begin};
}

namespace {

uint64_t bytes_of(const TensorToWrite& t) {
  uint64_t n = dtype_size(t.dtype);
  for (auto d : t.shape) {
    if (d < 0) throw UsageError(str("tensor '", t.name, "': negative dimension"));
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

}  // namespace

std::string safetensors_header_json(const std::vector<TensorToWrite>& tensors,
                                    const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__" || header.contains(t.name))
      throw UsageError(str("tensor name '", t.name, "' given twice or reserved"));
    const uint64_t size = bytes_of(t);
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape},
                      {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string header = safetensors_header_json(tensors, metadata);
  char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((static_cast<uint64_t>(header.size()) >> (8 * i)) & 0xFF);
  AtomicFile file(path);
  file.write(length, 8);
  file.write(header);
  for (const auto& t : tensors) file.write(t.data, bytes_of(t));
  file.commit();
}

}  // namespace dsk::io
