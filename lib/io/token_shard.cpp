#include "io/token_shard.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "core/config.hpp"
#include "core/error.hpp"

namespace fs = std::filesystem;

namespace dsk::io {
namespace {

// Little-endian stores and loads, independent of the host's byte order.
void store_le(unsigned char* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
}
uint64_t load_le(const unsigned char* in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= static_cast<uint64_t>(in[i]) << (8 * i);
  return value;
}

constexpr bool host_is_little_endian() { return std::endian::native == std::endian::little; }

}  // namespace

uint32_t token_bytes_for_vocab(uint64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

std::string dtype_name(uint32_t token_bytes) { return token_bytes == 2 ? "u16" : "u32"; }

void encode_shard_header(const ShardHeader& header, unsigned char out[kShardHeaderBytes]) {
  std::memset(out, 0, kShardHeaderBytes);
  std::memcpy(out, kShardMagic, sizeof kShardMagic);
  store_le(out + 8, header.version, 4);
  store_le(out + 12, header.token_bytes, 4);
  store_le(out + 16, header.vocab_size, 8);
  store_le(out + 24, header.token_count, 8);
  store_le(out + 32, header.document_count, 8);
  store_le(out + 40, header.eos_id, 4);
  store_le(out + 44, header.bos_id, 4);
}

ShardHeader decode_shard_header(const unsigned char bytes[kShardHeaderBytes], const std::string& source) {
  if (std::memcmp(bytes, kShardMagic, sizeof kShardMagic) != 0)
    throw DataError(str(source, ": not a dsk token shard (bad magic; expected \"DSKTOKS1\")"));
  ShardHeader header;
  header.version = static_cast<uint32_t>(load_le(bytes + 8, 4));
  if (header.version != kShardVersion)
    throw DataError(str(source, ": token shard version ", header.version, " is not supported (this dsk reads version ",
                        kShardVersion, ")"));
  header.token_bytes = static_cast<uint32_t>(load_le(bytes + 12, 4));
  if (header.token_bytes != 2 && header.token_bytes != 4)
    throw DataError(str(source, ": token width ", header.token_bytes, " bytes in the header; expected 2 or 4"));
  header.vocab_size = load_le(bytes + 16, 8);
  header.token_count = load_le(bytes + 24, 8);
  header.document_count = load_le(bytes + 32, 8);
  header.eos_id = static_cast<uint32_t>(load_le(bytes + 40, 4));
  header.bos_id = static_cast<uint32_t>(load_le(bytes + 44, 4));
  if (header.vocab_size == 0 || (header.token_bytes == 2 && header.vocab_size > 65536))
    throw DataError(str(source, ": vocab_size ", header.vocab_size, " does not fit ", dtype_name(header.token_bytes),
                        " tokens"));
  if (header.eos_id >= header.vocab_size)
    throw DataError(str(source, ": eos_id ", header.eos_id, " is not below vocab_size ", header.vocab_size));
  if (header.bos_id != kNoBos && header.bos_id >= header.vocab_size)
    throw DataError(str(source, ": bos_id ", header.bos_id, " is not below vocab_size ", header.vocab_size));
  if (header.document_count > header.token_count)
    throw DataError(str(source, ": ", header.document_count, " documents in ", header.token_count, " tokens"));
  for (size_t at = 48; at < kShardHeaderBytes; ++at)
    if (bytes[at] != 0)
      throw DataError(str(source, ": reserved header byte ", at, " is ", int(bytes[at]),
                          ", not 0 (written by a newer dsk, or damaged)"));
  return header;
}

void check_shard_against_index(const ShardHeader& header, const ShardIndex& index, const ShardFileEntry& entry,
                               const std::string& source) {
  auto differ = [&](const char* field, uint64_t in_header, uint64_t in_index) {
    if (in_header != in_index)
      throw DataError(str(source, ": header says ", field, " ", in_header, " but index.yaml says ", in_index,
                          " (is the shard from another tokenization?)"));
  };
  differ("vocab_size", header.vocab_size, index.vocab_size);
  differ("token width", header.token_bytes, index.token_bytes);
  differ("eos_id", header.eos_id, index.eos_id);
  differ("bos_id", header.bos_id, index.bos_id);
  differ("tokens", header.token_count, entry.tokens);
  differ("documents", header.document_count, entry.documents);
}

// ---- ShardWriter ----

ShardWriter::ShardWriter(fs::path path, uint64_t vocab_size, uint32_t eos_id, uint32_t bos_id)
    : path_(std::move(path)), file_(path_) {
  header_.token_bytes = token_bytes_for_vocab(vocab_size);
  header_.vocab_size = vocab_size;
  header_.eos_id = eos_id;
  header_.bos_id = bos_id;
  if (eos_id >= vocab_size) throw InternalError(str("eos_id ", eos_id, " >= vocab_size ", vocab_size));
  // A buffer of 1 MiB: documents of a few thousand tokens each go to the kernel in large
  // writes, not two or three system calls each through stdio's default 4 KiB.
  std::setvbuf(file_.handle(), nullptr, _IOFBF, size_t(1) << 20);
  unsigned char placeholder[kShardHeaderBytes] = {};
  file_.write(placeholder, sizeof placeholder);
}

void ShardWriter::write_tokens(std::span<const uint32_t> tokens) {
  // dsk-tokenize's writer is one thread for the tokens of all its workers, so this runs at
  // memory speed: one branch-free pass for the largest id (it vectorizes), then the tokens as
  // they are (u32 on a little-endian host) or narrowed in one loop (u16); the per-byte
  // store_le with a check per token held 16 workers back.
  uint32_t largest = 0;
  for (uint32_t id : tokens) largest = std::max(largest, id);
  if (!tokens.empty() && largest >= header_.vocab_size) {
    const uint32_t bad = *std::find_if(tokens.begin(), tokens.end(), [&](uint32_t id) { return id >= header_.vocab_size; });
    throw InternalError(str(path_.string(), ": token id ", bad, " >= vocab_size ", header_.vocab_size));
  }
  constexpr bool little_endian = std::endian::native == std::endian::little;
  if (header_.token_bytes == 4 && little_endian) {
    file_.write(tokens.data(), tokens.size_bytes());
  } else if (header_.token_bytes == 2 && little_endian) {
    buffer_.resize(tokens.size() * 2);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const uint16_t narrow = static_cast<uint16_t>(tokens[i]);
      std::memcpy(buffer_.data() + 2 * i, &narrow, 2);
    }
    file_.write(buffer_.data(), buffer_.size());
  } else {
    const int width = static_cast<int>(header_.token_bytes);
    buffer_.resize(tokens.size() * width);
    for (size_t i = 0; i < tokens.size(); ++i) store_le(buffer_.data() + i * width, tokens[i], width);
    file_.write(buffer_.data(), buffer_.size());
  }
  header_.token_count += tokens.size();
}

void ShardWriter::append(std::span<const uint32_t> tokens) { write_tokens(tokens); }

void ShardWriter::end_document() {
  uint32_t eos = header_.eos_id;
  write_tokens({&eos, 1});
  header_.document_count += 1;
}

void ShardWriter::write_header() {
  unsigned char bytes[kShardHeaderBytes];
  encode_shard_header(header_, bytes);
  if (std::fseek(file_.handle(), 0, SEEK_SET) != 0) throw_io_error("seek in", file_.temporary_path(), errno);
  file_.write(bytes, sizeof bytes);
  if (std::fflush(file_.handle()) != 0) throw_io_error("write", file_.temporary_path(), errno);
  header_written_ = true;
}

void ShardWriter::commit() {
  if (!header_written_) write_header();
  file_.commit();
}

// ---- ShardReader ----

ShardReader::ShardReader(const fs::path& path) : path_(path) {
  const std::string source = path.string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_io_error("open token shard", path, errno);
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    int error = errno;
    ::close(fd);
    throw_io_error("stat", path, error);
  }
  file_size_ = static_cast<size_t>(info.st_size);
  if (file_size_ < kShardHeaderBytes) {
    ::close(fd);
    throw DataError(str(source, ": truncated token shard (", file_size_, " bytes; the header alone is ",
                        kShardHeaderBytes, ")"));
  }
  void* mapped = ::mmap(nullptr, file_size_, PROT_READ, MAP_SHARED, fd, 0);
  int map_error = errno;
  ::close(fd);
  if (mapped == MAP_FAILED) throw_io_error("mmap", path, map_error);
  data_ = static_cast<const unsigned char*>(mapped);
  try {
    header_ = decode_shard_header(data_, source);
    uint64_t expected = kShardHeaderBytes + header_.token_count * header_.token_bytes;
    if (header_.token_count > (UINT64_MAX - kShardHeaderBytes) / header_.token_bytes || expected != file_size_)
      throw DataError(str(source, ": the header says ", header_.token_count, " ", dtype_name(header_.token_bytes),
                          " tokens (", expected, " bytes) but the file has ", file_size_, " bytes",
                          file_size_ < expected ? " (truncated)" : ""));
  } catch (...) {
    close();
    throw;
  }
}

ShardReader::~ShardReader() { close(); }

void ShardReader::close() {
  if (data_) ::munmap(const_cast<unsigned char*>(data_), file_size_);
  data_ = nullptr;
}

ShardReader::ShardReader(ShardReader&& other) noexcept
    : path_(std::move(other.path_)), header_(other.header_), data_(other.data_), file_size_(other.file_size_) {
  other.data_ = nullptr;
}

ShardReader& ShardReader::operator=(ShardReader&& other) noexcept {
  if (this != &other) {
    close();
    path_ = std::move(other.path_);
    header_ = other.header_;
    data_ = other.data_;
    file_size_ = other.file_size_;
    other.data_ = nullptr;
  }
  return *this;
}

uint32_t ShardReader::token(uint64_t i) const {
  if (i >= header_.token_count)
    throw std::out_of_range(str(path_.string(), ": token ", i, " of ", header_.token_count));
  const unsigned char* at = data_ + kShardHeaderBytes + i * header_.token_bytes;
  return static_cast<uint32_t>(load_le(at, static_cast<int>(header_.token_bytes)));
}

void ShardReader::read(uint64_t begin, uint64_t count, std::vector<uint32_t>& out) const {
  if (begin > header_.token_count || count > header_.token_count - begin)
    throw std::out_of_range(str(path_.string(), ": tokens [", begin, ", ", begin + count, ") of ", header_.token_count));
  out.resize(count);
  const int width = static_cast<int>(header_.token_bytes);
  const unsigned char* at = data_ + kShardHeaderBytes + begin * width;
  for (uint64_t i = 0; i < count; ++i) out[i] = static_cast<uint32_t>(load_le(at + i * width, width));
}

std::span<const uint16_t> ShardReader::u16_tokens() const {
  if (header_.token_bytes != 2 || !host_is_little_endian()) return {};
  return {reinterpret_cast<const uint16_t*>(data_ + kShardHeaderBytes), header_.token_count};
}

std::span<const uint32_t> ShardReader::u32_tokens() const {
  if (header_.token_bytes != 4 || !host_is_little_endian()) return {};
  return {reinterpret_cast<const uint32_t*>(data_ + kShardHeaderBytes), header_.token_count};
}

void ShardReader::check_token_ids() const {
  uint64_t eos_count = 0;
  for (uint64_t i = 0; i < header_.token_count; ++i) {
    uint32_t id = token(i);
    if (id >= header_.vocab_size)
      throw DataError(str(path_.string(), ": token ", i, " has id ", id, ", not below vocab_size ", header_.vocab_size));
    eos_count += id == header_.eos_id;
  }
  if (header_.token_count > 0 && token(header_.token_count - 1) != header_.eos_id)
    throw DataError(str(path_.string(), ": the last token is not eos_id ", header_.eos_id, " (a document is cut off)"));
  if (eos_count != header_.document_count)
    throw DataError(str(path_.string(), ": ", eos_count, " EOS tokens but the header says ", header_.document_count,
                        " documents"));
}

// ---- index.yaml ----

namespace {

void emit_split(YAML::Emitter& out, const ShardSplit& split) {
  out << YAML::BeginMap;
  out << YAML::Key << "documents" << YAML::Value << split.documents;
  out << YAML::Key << "tokens" << YAML::Value << split.tokens;
  out << YAML::Key << "text_bytes" << YAML::Value << split.text_bytes;
  out << YAML::Key << "shards" << YAML::Value << YAML::BeginSeq;
  for (const auto& shard : split.shards) {
    out << YAML::BeginMap;
    out << YAML::Key << "file" << YAML::Value << shard.file;
    out << YAML::Key << "documents" << YAML::Value << shard.documents;
    out << YAML::Key << "tokens" << YAML::Value << shard.tokens;
    out << YAML::Key << "sha256" << YAML::Value << shard.sha256;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
}

template <typename T>
T required(const YAML::Node& node, const std::string& key, const std::string& source) {
  if (!node.IsMap()) throw DataError(str(yaml_location(source, node), ": expected a mapping with '", key, "'"));
  const YAML::Node value = node[key];
  if (!value) throw DataError(str(yaml_location(source, node), ": missing key '", key, "'"));
  try {
    return value.as<T>();
  } catch (const YAML::Exception&) {
    throw DataError(str(yaml_location(source, value), ": key '", key, "' has a malformed value"));
  }
}

void require_equal(uint64_t stated, uint64_t summed, const std::string& what, const std::string& place) {
  if (stated != summed)
    throw DataError(str(place, ": ", what, " is ", stated, " but its parts add up to ", summed));
}

// A shard's file name: a plain name inside the directory (the index may come from elsewhere).
void check_file_name(const std::string& name, const std::string& place) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos || name.find('\0') != std::string::npos)
    throw DataError(str(place, ": shard file '", name, "' must be a file name inside the directory"));
}

void check_sha256(const std::string& text, const std::string& place) {
  if (!text.empty() && (text.size() != 64 || text.find_first_not_of("0123456789abcdef") != std::string::npos))
    throw DataError(str(place, ": sha256 '", text, "' is not 64 lowercase hex digits"));
}

ShardSplit load_split(const YAML::Node& root, const std::string& name, const std::string& source) {
  const YAML::Node node = root[name];
  if (!node || !node.IsMap()) throw DataError(str(source, ": missing section '", name, "'"));
  ShardSplit split;
  split.documents = required<uint64_t>(node, "documents", source);
  split.tokens = required<uint64_t>(node, "tokens", source);
  split.text_bytes = required<uint64_t>(node, "text_bytes", source);
  const YAML::Node shards = node["shards"];
  if (!shards || !shards.IsSequence()) throw DataError(str(yaml_location(source, node), ": '", name, ".shards' must be a list"));
  uint64_t documents = 0, tokens = 0;
  for (const auto& item : shards) {
    ShardFileEntry entry;
    const std::string place = yaml_location(source, item);
    entry.file = required<std::string>(item, "file", source);
    check_file_name(entry.file, place);
    entry.documents = required<uint64_t>(item, "documents", source);
    entry.tokens = required<uint64_t>(item, "tokens", source);
    if (item["sha256"]) entry.sha256 = required<std::string>(item, "sha256", source);
    check_sha256(entry.sha256, place);
    if (entry.documents > entry.tokens)
      throw DataError(str(place, ": ", entry.documents, " documents in ", entry.tokens, " tokens"));
    documents += entry.documents;  // no overflow: each is at most its tokens, which the files hold
    tokens += entry.tokens;
    if (tokens < entry.tokens) throw DataError(str(place, ": token counts overflow"));
    split.shards.push_back(std::move(entry));
  }
  require_equal(split.documents, documents, name + ".documents", yaml_location(source, node));
  require_equal(split.tokens, tokens, name + ".tokens", yaml_location(source, node));
  return split;
}

}  // namespace

std::string shard_index_to_yaml(const ShardIndex& index) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "format" << YAML::Value << "dsk-token-shards";
  out << YAML::Key << "version" << YAML::Value << kShardVersion;
  out << YAML::Key << "tokenizer" << YAML::Value << index.tokenizer;
  out << YAML::Key << "vocab_size" << YAML::Value << index.vocab_size;
  out << YAML::Key << "dtype" << YAML::Value << dtype_name(index.token_bytes);
  out << YAML::Key << "eos_id" << YAML::Value << index.eos_id;
  out << YAML::Key << "bos_id" << YAML::Value << (index.bos_id == kNoBos ? int64_t{-1} : int64_t{index.bos_id});
  out << YAML::Key << "documents" << YAML::Value << index.documents();
  out << YAML::Key << "tokens" << YAML::Value << index.tokens();
  out << YAML::Key << "text_bytes" << YAML::Value << index.text_bytes();
  for (const auto& [key, yaml_text] : index.extra) out << YAML::Key << key << YAML::Value << YAML::Load(yaml_text);
  out << YAML::Key << "train" << YAML::Value;
  emit_split(out, index.train);
  out << YAML::Key << "val" << YAML::Value;
  emit_split(out, index.val);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

ShardIndex parse_shard_index(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw DataError(str(source, ":", e.mark.line + 1, ": YAML syntax error: ", e.msg));
  }
  if (!root.IsMap() || !root["format"] || !root["format"].IsScalar() || root["format"].Scalar() != "dsk-token-shards")
    throw DataError(str(source, ": not a dsk token shard index (expected 'format: dsk-token-shards')"));
  if (required<uint32_t>(root, "version", source) != kShardVersion)
    throw DataError(str(source, ": index version ", root["version"].Scalar(), " is not supported"));
  ShardIndex index;
  index.tokenizer = required<std::string>(root, "tokenizer", source);
  index.vocab_size = required<uint64_t>(root, "vocab_size", source);
  std::string dtype = required<std::string>(root, "dtype", source);
  if (dtype != "u16" && dtype != "u32") throw DataError(str(source, ": dtype '", dtype, "'; expected u16 or u32"));
  index.token_bytes = dtype == "u16" ? 2 : 4;
  if (index.vocab_size == 0 || (index.token_bytes == 2 && index.vocab_size > 65536))
    throw DataError(str(source, ": vocab_size ", index.vocab_size, " does not fit ", dtype, " tokens"));
  index.eos_id = required<uint32_t>(root, "eos_id", source);
  if (index.eos_id >= index.vocab_size)
    throw DataError(str(source, ": eos_id ", index.eos_id, " is not below vocab_size ", index.vocab_size));
  int64_t bos = required<int64_t>(root, "bos_id", source);
  if (bos < -1 || (bos >= 0 && uint64_t(bos) >= index.vocab_size))
    throw DataError(str(source, ": bos_id ", bos, " is neither -1 (none) nor below vocab_size ", index.vocab_size));
  index.bos_id = bos < 0 ? kNoBos : static_cast<uint32_t>(bos);
  index.train = load_split(root, "train", source);
  index.val = load_split(root, "val", source);
  require_equal(required<uint64_t>(root, "documents", source), index.documents(), "documents", source);
  require_equal(required<uint64_t>(root, "tokens", source), index.tokens(), "tokens", source);
  require_equal(required<uint64_t>(root, "text_bytes", source), index.text_bytes(), "text_bytes", source);
  static const char* const standard[] = {"format", "version", "tokenizer", "vocab_size", "dtype", "eos_id",
                                         "bos_id", "documents", "tokens", "text_bytes", "train", "val"};
  for (const auto& entry : root) {
    if (!entry.first.IsScalar())
      throw DataError(str(yaml_location(source, entry.first), ": a key must be a plain name, not a ", 
                          entry.first.IsMap() ? "mapping" : "list"));
    std::string key = entry.first.Scalar();
    if (std::find(std::begin(standard), std::end(standard), key) != std::end(standard)) continue;
    YAML::Emitter value;
    value << YAML::Flow << entry.second;
    index.extra.emplace_back(key, value.c_str());
  }
  return index;
}

ShardIndex load_shard_index(const fs::path& directory) {
  const fs::path path = directory / kShardIndexName;
  return parse_shard_index(read_file(path), path.string());
}

namespace {

// "/a/shards/" -> "/a/shards": a trailing slash is an empty last component to lexically_relative.
fs::path folder_of(const fs::path& directory) {
  const fs::path normal = fs::weakly_canonical(fs::absolute(directory));
  return normal.has_filename() ? normal : normal.parent_path();
}

}  // namespace

std::string index_tokenizer_reference(const fs::path& tokenizer, const fs::path& directory) {
  if (tokenizer.is_absolute()) return tokenizer.lexically_normal().string();
  // The folder is resolved, not the file: a tokenizer.json that is a symlink (Hugging Face's
  // cache) keeps its name, and tokenizer_config.json is still looked for beside it.
  const fs::path folder = folder_of(tokenizer.parent_path().empty() ? "." : tokenizer.parent_path());
  const fs::path relative = folder.lexically_relative(folder_of(directory));
  if (relative.empty()) return (folder / tokenizer.filename()).string();
  return (relative / tokenizer.filename()).lexically_normal().string();
}

std::optional<fs::path> find_index_tokenizer(const ShardIndex& index, const fs::path& directory) {
  const fs::path named(index.tokenizer);
  if (named.empty()) return std::nullopt;
  if (named.is_absolute()) return fs::exists(named) ? std::optional(named) : std::nullopt;
  const fs::path parent = folder_of(directory).parent_path();
  for (const fs::path& candidate : {directory / named, named, parent / named})
    if (fs::is_regular_file(candidate)) return candidate.lexically_normal();
  return std::nullopt;
}

}  // namespace dsk::io
