// The serial part of reading: the inputs, in order, cut into chunks that hold whole documents,
// so that everything done per byte after the cut (line splitting, UTF-8 checks, JSON, the BPE)
// can run on any thread (chunk_documents.hpp). Reading does only what must be in order:
// read(), zstd decompression, and finding a cut (the last "\n" of a chunk, or for paragraphs
// the end of its last blank line) and counting lines.
//
//   JSONL                 whole lines
//   text by paragraph     whole lines, cut just after a blank line, so no paragraph is split
//   text by file          the whole file, one chunk however large (an empty file too: it counts)
// A chunk is cut at the last boundary within `chunk_bytes`, and grows past it to hold one longer
// line or paragraph. Chunks never span two inputs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/zstd_stream.hpp"
#include "tokenize/input.hpp"

namespace dsk::tokenize {

// Opens a path or "-" for reading, decompressing when the bytes start with the zstd magic.
std::unique_ptr<io::ByteSource> open_input(const std::string& path);

enum class ChunkLayout { jsonl_lines, paragraphs, whole_file };

struct InputChunk {
  std::string bytes;
  std::string input;  // the input's name for messages: its path, or "<stdin>"
  ChunkLayout layout = ChunkLayout::whole_file;
  uint64_t first_line = 1;     // line number of bytes[0] in its input, 1-based
  uint64_t bytes_through = 0;  // bytes read from all inputs when this chunk was cut (for progress)
};

class ChunkReader {
 public:
  // Small enough that the last chunks, encoded while other threads have run out of work, cost
  // little (256 KiB is ~10 ms of encoding), large enough that a chunk outweighs its scheduling.
  static constexpr size_t kDefaultChunkBytes = 256 << 10;

  // UsageError for stdin named twice. An input is opened when the one before it is done (a
  // DataError naming it if it cannot be); no inputs reads stdin.
  ChunkReader(std::vector<std::string> inputs, const ReaderOptions& options, size_t chunk_bytes = kDefaultChunkBytes);
  ~ChunkReader();

  // The next chunk; false after the last input.
  bool next(InputChunk& chunk);
  uint64_t bytes_read() const { return bytes_read_; }  // of all inputs so far, after decompression

 private:
  bool open_next_input();
  void close_input();
  bool read_more(size_t at_least);  // appends to buffer_; false at the end of the input
  size_t last_boundary() const;     // end of the last whole document in buffer_, 0 if none
  void emit(InputChunk& chunk, size_t size);

  std::vector<std::string> inputs_;
  TextDocuments text_documents_;
  InputFormat format_;
  size_t chunk_bytes_;
  size_t next_input_ = 0;
  std::unique_ptr<io::ByteSource> source_;
  ChunkLayout layout_ = ChunkLayout::whole_file;
  std::string buffer_;  // bytes read and not yet cut; starts at a document boundary
  bool input_ended_ = false;
  uint64_t line_ = 1;
  uint64_t bytes_read_ = 0;
};

}  // namespace dsk::tokenize
