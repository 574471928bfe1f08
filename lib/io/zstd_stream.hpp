// zstd streams: read a .zst file (one or many concatenated frames) in chunks, and compress a
// stream into a file, without holding either whole in memory (libzstd's streaming API).
//
//   ZstdReader in("corpus.jsonl.zst");                 // or ZstdReader(std::move(byte_source), "name")
//   char buffer[1 << 16];
//   while (size_t n = in.read(buffer, sizeof buffer)) ...;  // 0 at the end; DataError if corrupt/truncated
//
//   ZstdWriter out("optimizer.bin.zst", {.level = 3, .threads = 4});  // writes optimizer.bin.zst.tmp.<pid>
//   out.write(data, size); ...; out.commit();                          // ends the frame, renames into place
#pragma once

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/fs.hpp"

namespace dsk::io {

// A source of bytes: read() fills up to `capacity` bytes and returns how many, 0 at the end.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual size_t read(char* out, size_t capacity) = 0;
  virtual const std::string& name() const = 0;  // for messages: a path or "<stdin>"
};

// A file (or stdin for "-"), read with stdio. DataError naming the file when it cannot be opened or read.
class FileSource : public ByteSource {
 public:
  explicit FileSource(const std::filesystem::path& path);
  ~FileSource() override;
  size_t read(char* out, size_t capacity) override;
  const std::string& name() const override { return name_; }

 private:
  std::FILE* file_ = nullptr;
  bool owned_ = false;
  std::string name_;
};

// True when the bytes start with the zstd frame magic (28 B5 2F FD).
bool has_zstd_magic(const char* bytes, size_t size);

class ZstdReader : public ByteSource {
 public:
  explicit ZstdReader(const std::filesystem::path& path);
  ZstdReader(std::unique_ptr<ByteSource> compressed, std::string name);
  ~ZstdReader() override;
  ZstdReader(const ZstdReader&) = delete;
  ZstdReader& operator=(const ZstdReader&) = delete;

  // Decompressed bytes; 0 at the end of the last frame. DataError naming the file on corrupt
  // data, or when the input ends inside a frame (truncated).
  size_t read(char* out, size_t capacity) override;
  const std::string& name() const override { return name_; }

 private:
  bool refill();

  struct Stream;
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<ByteSource> compressed_;
  std::string name_;
  std::vector<char> input_;
  size_t input_position_ = 0;
  size_t input_size_ = 0;
  bool input_ended_ = false;
  bool inside_frame_ = false;  // a frame was started and not yet finished
};

struct ZstdWriterOptions {
  int level = 3;    // 1 (fast) to 19 (small); zstd's default is 3
  int threads = 0;  // 0: compress on the calling thread; N: N zstd worker threads
};

class ZstdWriter {
 public:
  ZstdWriter(const std::filesystem::path& path, ZstdWriterOptions options = {});
  ~ZstdWriter();
  ZstdWriter(const ZstdWriter&) = delete;
  ZstdWriter& operator=(const ZstdWriter&) = delete;

  void write(const void* data, size_t size);
  void write(const std::string& text) { write(text.data(), text.size()); }
  // Ends the frame, syncs and renames the file into place. Uncommitted: the temporary is removed.
  void commit();
  uint64_t bytes_in() const { return bytes_in_; }

 private:
  void compress(const void* data, size_t size, bool end);

  struct Stream;
  std::unique_ptr<Stream> stream_;
  AtomicFile file_;
  std::vector<char> output_;
  uint64_t bytes_in_ = 0;
};

}  // namespace dsk::io
