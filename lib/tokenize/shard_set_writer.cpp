#include "tokenize/shard_set_writer.hpp"

#include <cerrno>
#include <cstdio>

#include "core/error.hpp"

#include "core/sha256.hpp"

namespace dsk::tokenize {
namespace {

// Hashes running at once: a bound on threads when shards are small and close quickly.
constexpr size_t kMaxHashesInFlight = 4;

}  // namespace

ShardSetWriter::ShardSetWriter(std::filesystem::path directory, std::string prefix, uint64_t shard_tokens,
                               uint64_t vocab_size, uint32_t eos_id, uint32_t bos_id)
    : directory_(std::move(directory)),
      prefix_(std::move(prefix)),
      shard_tokens_(shard_tokens),
      vocab_size_(vocab_size),
      eos_id_(eos_id),
      bos_id_(bos_id) {}

std::string ShardSetWriter::shard_name(const std::string& prefix, size_t number) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%05zu", number);
  return prefix + "-" + digits + ".tok";
}

void ShardSetWriter::add_document(std::span<const uint32_t> tokens, uint64_t text_bytes) {
  const uint64_t document_tokens = tokens.size() + 1;  // with its EOS
  if (open_ && open_->token_count() > 0 && open_->token_count() + document_tokens > shard_tokens_) close_shard();
  if (!open_) {
    auto path = directory_ / shard_name(prefix_, split_.shards.size());
    open_ = std::make_unique<io::ShardWriter>(path, vocab_size_, eos_id_, bos_id_);
  }
  open_->append(tokens);
  open_->end_document();
  split_.documents += 1;
  split_.tokens += document_tokens;
  split_.text_bytes += text_bytes;
}

void ShardSetWriter::close_shard() {
  // The hash starts before commit()'s fsync, not after it: for the last shard both are in
  // series with nothing else left to run. The file is opened before the rename, so the hash
  // reads it whatever its name by then.
  open_->write_header();
  if (hashes_.size() - hashes_collected_ >= kMaxHashesInFlight) collect_oldest_hash();
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(open_->temporary_path().c_str(), "rb"), std::fclose);
  if (!file) throw_io_error("read", open_->temporary_path(), errno);
  hashes_.push_back(std::async(std::launch::async, [file = std::move(file), path = open_->path()] {
    return sha256_stream(file.get(), path);
  }));
  open_->commit();
  io::ShardFileEntry entry;
  entry.file = open_->path().filename().string();
  entry.documents = open_->document_count();
  entry.tokens = open_->token_count();
  split_.shards.push_back(std::move(entry));
  open_.reset();
}

void ShardSetWriter::collect_oldest_hash() {
  split_.shards[hashes_collected_].sha256 = hashes_[hashes_collected_].get();
  ++hashes_collected_;
}

io::ShardSplit ShardSetWriter::finish() {
  if (open_) close_shard();
  while (hashes_collected_ < hashes_.size()) collect_oldest_hash();
  return split_;
}

ShardSetWriter::~ShardSetWriter() {
  for (auto& hash : hashes_)
    if (hash.valid()) hash.wait();
}

}  // namespace dsk::tokenize
