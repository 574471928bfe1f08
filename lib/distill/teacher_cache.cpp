#include "distill/teacher_cache.hpp"

#include <yaml-cpp/yaml.h>

#include <bit>
#include <cstring>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "io/zstd_stream.hpp"

namespace dsk::distill {
namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little, "the cache's raw arrays are little-endian");

namespace {

constexpr const char* kFormat = "dsk-teacher-cache";
constexpr int kVersion = 1;

// Exactly `bytes` decompressed bytes, or a DataError naming the part (truncated or corrupt).
void read_exactly(io::ZstdReader& in, void* out, size_t bytes) {
  char* p = static_cast<char*>(out);
  while (bytes > 0) {
    const size_t n = in.read(p, bytes);
    if (n == 0) throw DataError(str(in.name(), ": the part ends early (truncated); rerun dsk-distill cache"));
    p += n;
    bytes -= n;
  }
}

}  // namespace

uint64_t TeacherCacheSpec::windows_in_part(uint64_t part) const {
  const uint64_t first = part * windows_per_part;
  return std::min(windows_per_part, windows - first);
}

io::DType TeacherCacheSpec::logprob_dtype() const {
  if (dtype == "F32") return io::DType::F32;
  if (dtype == "BF16") return io::DType::BF16;
  if (dtype == "F16") return io::DType::F16;
  throw DataError(str("teacher cache dtype '", dtype, "': expected F32, BF16 or F16"));
}

size_t TeacherCacheSpec::bytes_per_position() const {
  return size_t(top_k) * (4 + io::dtype_size(logprob_dtype())) + 4;
}

fs::path cache_manifest_path(const fs::path& cache) { return cache / "cache.yaml"; }

fs::path cache_part_path(const fs::path& cache, uint64_t part) {
  char name[32];
  std::snprintf(name, sizeof name, "part-%06llu.zst", static_cast<unsigned long long>(part));
  return cache / name;
}

void write_cache_manifest(const fs::path& cache, const TeacherCacheSpec& spec) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "format" << YAML::Value << kFormat;
  out << YAML::Key << "version" << YAML::Value << kVersion;
  out << YAML::Key << "teacher" << YAML::Value << YAML::DoubleQuoted << spec.teacher;
  out << YAML::Key << "teacher_sha256" << YAML::Value << spec.teacher_sha256;
  out << YAML::Key << "tokenizer_sha256" << YAML::Value << spec.tokenizer_sha256;
  out << YAML::Key << "vocab_size" << YAML::Value << spec.vocab_size;
  out << YAML::Key << "seq_len" << YAML::Value << spec.seq_len;
  out << YAML::Key << "seed" << YAML::Value << spec.seed;
  out << YAML::Key << "windows" << YAML::Value << spec.windows;
  out << YAML::Key << "windows_per_part" << YAML::Value << spec.windows_per_part;
  out << YAML::Key << "top_k" << YAML::Value << spec.top_k;
  out << YAML::Key << "temperature" << YAML::Value << spec.temperature;
  out << YAML::Key << "dtype" << YAML::Value << spec.dtype;
  out << YAML::EndMap;
  write_file_atomic(cache_manifest_path(cache), std::string(out.c_str()) + "\n");
}

TeacherCacheSpec read_cache_manifest(const fs::path& cache) {
  const fs::path path = cache_manifest_path(cache);
  if (!fs::exists(path))
    throw DataError(str(cache.string(), ": not a teacher cache (no cache.yaml); make one with dsk-distill cache"));
  YAML::Node node;
  try {
    node = YAML::Load(read_file(path));
  } catch (const YAML::Exception& e) {
    throw DataError(str(path.string(), ":", e.mark.line + 1, ": ", e.msg));
  }
  auto field = [&]<typename V>(const char* key, V& value) {
    if (!node[key]) throw DataError(str(path.string(), ": no '", key, "' (not a dsk teacher cache?)"));
    try {
      value = node[key].as<V>();
    } catch (const YAML::Exception&) {
      throw DataError(str(path.string(), ":", node[key].Mark().line + 1, ": '", key, "' has the wrong type"));
    }
  };
  std::string format;
  int version = 0;
  field("format", format);
  field("version", version);
  if (format != kFormat || version != kVersion)
    throw DataError(str(path.string(), ": format ", format, " version ", version, "; this dsk reads ", kFormat,
                        " version ", kVersion));
  TeacherCacheSpec spec;
  field("teacher", spec.teacher);
  field("teacher_sha256", spec.teacher_sha256);
  field("tokenizer_sha256", spec.tokenizer_sha256);
  field("vocab_size", spec.vocab_size);
  field("seq_len", spec.seq_len);
  field("seed", spec.seed);
  field("windows", spec.windows);
  field("windows_per_part", spec.windows_per_part);
  field("top_k", spec.top_k);
  field("temperature", spec.temperature);
  field("dtype", spec.dtype);
  spec.logprob_dtype();  // checks the name
  if (spec.vocab_size < 1 || spec.seq_len < 1 || spec.windows < 1 || spec.windows_per_part < 1 || spec.top_k < 1 ||
      spec.top_k > spec.vocab_size || !(spec.temperature > 0))
    throw DataError(str(path.string(), ": sizes out of range (vocab_size, seq_len, windows, windows_per_part, top_k "
                                       "at least 1, top_k at most vocab_size, temperature above 0)"));
  return spec;
}

std::string first_difference(const TeacherCacheSpec& cache, const TeacherCacheSpec& now) {
  auto differs = [](const char* key, const auto& a, const auto& b) {
    return a == b ? std::string() : str(key, ": ", a, " (cache) vs ", b, " (now)");
  };
  for (const std::string& difference :
       {differs("teacher_sha256", cache.teacher_sha256, now.teacher_sha256),
        differs("tokenizer_sha256", cache.tokenizer_sha256, now.tokenizer_sha256),
        differs("vocab_size", cache.vocab_size, now.vocab_size), differs("seq_len", cache.seq_len, now.seq_len),
        differs("seed", cache.seed, now.seed), differs("windows", cache.windows, now.windows),
        differs("windows_per_part", cache.windows_per_part, now.windows_per_part),
        differs("top_k", cache.top_k, now.top_k), differs("temperature", cache.temperature, now.temperature),
        differs("dtype", cache.dtype, now.dtype)})
    if (!difference.empty()) return difference;
  return "";
}

uint64_t window_hash(const uint32_t* tokens, size_t count) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < count; i++)
    for (int byte = 0; byte < 4; byte++) {
      hash ^= (tokens[i] >> (8 * byte)) & 0xffu;
      hash *= 0x100000001b3ull;
    }
  return hash;
}

void write_cache_part(const fs::path& cache, uint64_t part, const TeacherCacheSpec& spec,
                      const std::vector<uint32_t>& tokens, const std::vector<int32_t>& ids,
                      const std::vector<float>& logprobs, const std::vector<float>& rest) {
  const uint64_t n = spec.windows_in_part(part);
  const size_t positions = size_t(n) * size_t(spec.seq_len), K = size_t(spec.top_k);
  if (tokens.size() != n * size_t(spec.seq_len + 1) || ids.size() != positions * K ||
      logprobs.size() != positions * K || rest.size() != positions)
    throw InternalError("write_cache_part: arrays of the wrong size");
  const io::DType dtype = spec.logprob_dtype();
  const size_t element = io::dtype_size(dtype);
  // One position's record at a time: ids, log-probs in the cache's dtype, rest.
  std::vector<char> record(spec.bytes_per_position());
  io::ZstdWriter out(cache_part_path(cache, part));
  out.write(tokens.data(), tokens.size() * 4);
  for (size_t p = 0; p < positions; p++) {
    std::memcpy(record.data(), ids.data() + p * K, K * 4);
    io::from_float(logprobs.data() + p * K, K, dtype, record.data() + K * 4);
    std::memcpy(record.data() + K * (4 + element), &rest[p], 4);
    out.write(record.data(), record.size());
  }
  out.commit();
}

// The decoded part in memory.
struct TeacherCache::Part {
  uint64_t index = ~uint64_t(0);
  std::vector<uint32_t> tokens;
  std::vector<int32_t> ids;
  std::vector<float> logprobs, rest;
};

TeacherCache::TeacherCache(const fs::path& cache) : path_(cache), spec_(read_cache_manifest(cache)) {
  uint64_t missing = 0;
  for (uint64_t part = 0; part < spec_.parts(); part++) missing += !fs::exists(cache_part_path(cache, part));
  if (missing > 0)
    throw DataError(str(cache.string(), ": the cache is incomplete (", missing, " of ", spec_.parts(),
                        " parts missing); rerun the dsk-distill cache command that made it to finish it"));
  const size_t window = size_t(spec_.seq_len) + 1;
  std::vector<uint32_t> tokens;
  for (uint64_t part = 0; part < spec_.parts(); part++) {
    const uint64_t n = spec_.windows_in_part(part);
    tokens.resize(n * window);
    io::ZstdReader in(cache_part_path(cache, part));
    read_exactly(in, tokens.data(), tokens.size() * 4);
    for (uint64_t w = 0; w < n; w++)
      window_of_hash_.emplace(window_hash(tokens.data() + w * window, window), part * spec_.windows_per_part + w);
  }
}

TeacherCache::~TeacherCache() = default;

void TeacherCache::load_part(uint64_t part) {
  if (part_ && part_->index == part) return;
  auto loaded = std::make_unique<Part>();
  loaded->index = part;
  const uint64_t n = spec_.windows_in_part(part);
  const size_t positions = size_t(n) * size_t(spec_.seq_len), K = size_t(spec_.top_k);
  const io::DType dtype = spec_.logprob_dtype();
  const size_t element = io::dtype_size(dtype);
  io::ZstdReader in(cache_part_path(path_, part));
  loaded->tokens.resize(n * size_t(spec_.seq_len + 1));
  read_exactly(in, loaded->tokens.data(), loaded->tokens.size() * 4);
  loaded->ids.resize(positions * K);
  loaded->logprobs.resize(positions * K);
  loaded->rest.resize(positions);
  std::vector<char> record(spec_.bytes_per_position());
  for (size_t p = 0; p < positions; p++) {
    read_exactly(in, record.data(), record.size());
    std::memcpy(loaded->ids.data() + p * K, record.data(), K * 4);
    io::to_float(record.data() + K * 4, dtype, K, loaded->logprobs.data() + p * K);
    std::memcpy(&loaded->rest[p], record.data() + K * (4 + element), 4);
  }
  char extra;
  if (in.read(&extra, 1) != 0) throw DataError(str(in.name(), ": more bytes than cache.yaml's sizes allow"));
  for (int32_t id : loaded->ids)
    if (id < 0 || id >= spec_.vocab_size)
      throw DataError(str(in.name(), ": teacher id ", id, " outside the vocabulary of ", spec_.vocab_size));
  part_ = std::move(loaded);
}

void TeacherCache::rows_of_window(const uint32_t* tokens, const TeacherRowsView& out) {
  const size_t window = size_t(spec_.seq_len) + 1, T = size_t(spec_.seq_len), K = size_t(spec_.top_k);
  const auto [first, last] = window_of_hash_.equal_range(window_hash(tokens, window));
  for (auto it = first; it != last; ++it) {
    const uint64_t part = it->second / spec_.windows_per_part, w = it->second % spec_.windows_per_part;
    load_part(part);
    if (std::memcmp(part_->tokens.data() + w * window, tokens, window * 4) != 0) continue;  // a hash collision
    std::memcpy(out.ids, part_->ids.data() + w * T * K, T * K * 4);
    std::memcpy(out.logprobs, part_->logprobs.data() + w * T * K, T * K * 4);
    std::memcpy(out.rest, part_->rest.data() + w * T, T * 4);
    return;
  }
  throw DataError(str(path_.string(), ": a training window is not in the cache (it holds ", spec_.windows,
                      " windows of seq_len ", spec_.seq_len, ", seed ", spec_.seed,
                      "): make the cache with the run's data, data.seq_len, seed and length"));
}

}  // namespace dsk::distill
