// Token shards: the files dsk-tokenize writes and dsk-train reads, made to be mmap'd.
//
// Byte layout of one shard (all integers little-endian), version 1:
//
//   offset size  field
//   0      8     magic           "DSKTOKS1" (ASCII, no terminator)
//   8      4     version         u32, 1
//   12     4     token_bytes     u32, 2 (tokens are u16) or 4 (tokens are u32); u16 when vocab_size <= 65536
//   16     8     vocab_size      u64, every token id is < vocab_size
//   24     8     token_count     u64, number of tokens after the header
//   32     8     document_count  u64, number of documents (each ends with eos_id)
//   40     4     eos_id          u32, the id that ends every document
//   44     4     bos_id          u32, the id that starts every document, or 0xFFFFFFFF when none is added
//   48     16    reserved        zero (a reader refuses other bytes: a later version may use them)
//   64     token_count * token_bytes   the tokens, little-endian u16 or u32
//
// The file size is exactly 64 + token_count * token_bytes. A shard holds whole documents: a
// document is never split across two shards, and the last token of a shard is eos_id.
//
// A directory of shards carries an index (index.yaml, see ShardIndex below) listing the train
// and validation shards; that index is written last, so a directory with an index is complete.
//
//   ShardWriter writer("train-00000.tok", vocab_size, eos_id, bos_id);   // writes file.tmp.<pid>
//   writer.append(tokens); writer.end_document(); ...; writer.commit();  // renamed into place
//   ShardReader shard("train-00000.tok");                                 // mmap, header checked
//   shard.token(i); shard.read(begin, count, out); shard.check_token_ids();
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/fs.hpp"

namespace dsk::io {

inline constexpr char kShardMagic[8] = {'D', 'S', 'K', 'T', 'O', 'K', 'S', '1'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;
inline constexpr uint32_t kNoBos = 0xFFFFFFFFu;

// The header, decoded. Written and read field by field (little-endian), never as a struct image.
struct ShardHeader {
  uint32_t version = kShardVersion;
  uint32_t token_bytes = 4;
  uint64_t vocab_size = 0;
  uint64_t token_count = 0;
  uint64_t document_count = 0;
  uint32_t eos_id = 0;
  uint32_t bos_id = kNoBos;
};

// 2 when every id of a vocabulary of this size fits a u16, else 4.
uint32_t token_bytes_for_vocab(uint64_t vocab_size);
std::string dtype_name(uint32_t token_bytes);  // "u16" or "u32"

// Encodes / decodes the 64 header bytes. decode: DataError naming `source` on a bad magic, an
// unknown version or token width, or header fields that contradict each other.
void encode_shard_header(const ShardHeader& header, unsigned char out[kShardHeaderBytes]);
ShardHeader decode_shard_header(const unsigned char bytes[kShardHeaderBytes], const std::string& source);

// Writes one shard: a placeholder header, the tokens as they come, then the real header, under
// a temporary name renamed onto `path` by commit(). Destroyed uncommitted: nothing is left.
class ShardWriter {
 public:
  ShardWriter(std::filesystem::path path, uint64_t vocab_size, uint32_t eos_id, uint32_t bos_id = kNoBos);

  // Appends the tokens of the current document (without its EOS); InternalError on an id >= vocab_size.
  void append(std::span<const uint32_t> tokens);
  // Appends eos_id and counts one document.
  void end_document();
  // Writes the real header and flushes: the file is whole under temporary_path(), so that a
  // reader (dsk-tokenize's hash) can start on it while commit() waits for the disk. commit()
  // writes it when this was not called.
  void write_header();
  void commit();
  const std::filesystem::path& temporary_path() const { return file_.temporary_path(); }

  uint64_t token_count() const { return header_.token_count; }
  uint64_t document_count() const { return header_.document_count; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void write_tokens(std::span<const uint32_t> tokens);

  std::filesystem::path path_;
  ShardHeader header_;
  AtomicFile file_;
  std::vector<unsigned char> buffer_;
  bool header_written_ = false;
};

// A read-only memory map of one shard. The header and the file size are checked on open;
// token ids against vocab_size only by check_token_ids() (it reads every token).
class ShardReader {
 public:
  explicit ShardReader(const std::filesystem::path& path);
  ~ShardReader();
  ShardReader(ShardReader&& other) noexcept;
  ShardReader& operator=(ShardReader&& other) noexcept;
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  const ShardHeader& header() const { return header_; }
  uint64_t size() const { return header_.token_count; }
  const std::filesystem::path& path() const { return path_; }

  // Token at index i (i < size(); std::out_of_range otherwise).
  uint32_t token(uint64_t i) const;
  // Copies tokens [begin, begin + count) into out (resized); std::out_of_range past the end.
  void read(uint64_t begin, uint64_t count, std::vector<uint32_t>& out) const;
  // Zero-copy views: only the one matching header().token_bytes is non-empty.
  std::span<const uint16_t> u16_tokens() const;
  std::span<const uint32_t> u32_tokens() const;
  // DataError naming the file and the index of the first id >= vocab_size, or a shard whose
  // last token is not eos_id, or whose EOS count differs from document_count.
  void check_token_ids() const;

 private:
  void close();
  std::filesystem::path path_;
  ShardHeader header_;
  const unsigned char* data_ = nullptr;  // the whole file
  size_t file_size_ = 0;
};

// index.yaml of a shard directory:
//
//   format: dsk-token-shards
//   version: 1
//   tokenizer: ../tokenizer.json   # relative to this directory (or absolute)
//   vocab_size: 129280
//   dtype: u32
//   eos_id: 1
//   bos_id: 0              # -1 when no BOS is added
//   documents: 7           # train + validation
//   tokens: 1234
//   text_bytes: 5678       # UTF-8 bytes of the documents' text (for bytes per token)
//   ... (the producer's own fields: split, errors; kept as they are)
//   train: {documents: 6, tokens: 1000, text_bytes: 4000, shards: [{file: train-00000.tok, documents: 6, tokens: 1000, sha256: ...}]}
//   val:   {documents: 1, tokens: 234,  text_bytes: 1678, shards: [...]}
struct ShardFileEntry {
  std::string file;  // relative to the directory
  uint64_t documents = 0;
  uint64_t tokens = 0;
  std::string sha256;
};

struct ShardSplit {
  uint64_t documents = 0;
  uint64_t tokens = 0;
  uint64_t text_bytes = 0;
  std::vector<ShardFileEntry> shards;
};

struct ShardIndex {
  std::string tokenizer;  // as stored: see index_tokenizer_reference() and find_index_tokenizer()
  uint64_t vocab_size = 0;
  uint32_t token_bytes = 4;
  uint32_t eos_id = 0;
  uint32_t bos_id = kNoBos;
  ShardSplit train;
  ShardSplit val;
  // Extra top-level fields, in order (already YAML text for each value), printed after the standard ones.
  std::vector<std::pair<std::string, std::string>> extra;

  uint64_t documents() const { return train.documents + val.documents; }
  uint64_t tokens() const { return train.tokens + val.tokens; }
  uint64_t text_bytes() const { return train.text_bytes + val.text_bytes; }
};

inline constexpr const char* kShardIndexName = "index.yaml";

std::string shard_index_to_yaml(const ShardIndex& index);
// Reads DIR/index.yaml; DataError naming the file and key when a field is missing or malformed,
// or when the totals (documents, tokens, text_bytes; each split's) differ from their parts.
ShardIndex load_shard_index(const std::filesystem::path& directory);
// The same from the text; `source` names it in errors.
ShardIndex parse_shard_index(const std::string& text, const std::string& source);

// DataError naming `source` when a shard's header disagrees with index.yaml (vocab_size, token
// width, eos_id, bos_id) or with its entry there (tokens, documents). The sha256 is not checked
// here (it means reading the whole file): dsk-tokenize stats does that.
void check_shard_against_index(const ShardHeader& header, const ShardIndex& index, const ShardFileEntry& entry,
                               const std::string& source);

// index.yaml's tokenizer field for a tokenizer given as `tokenizer` (relative to the working
// directory) and a shard directory `directory`: an absolute path stays as it is, a relative one
// is made relative to the shard directory, so that the index resolves from any directory.
std::string index_tokenizer_reference(const std::filesystem::path& tokenizer, const std::filesystem::path& directory);

// The tokenizer.json an index names, for the shard directory `directory`: relative to that
// directory, else (indexes written before the field was) relative to the working directory or
// to the shard directory's parent. nullopt when it is in none of these places.
std::optional<std::filesystem::path> find_index_tokenizer(const ShardIndex& index,
                                                          const std::filesystem::path& directory);

}  // namespace dsk::io
