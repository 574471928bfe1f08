#include "tokenize/input_chunks.hpp"

#include <algorithm>
#include <cstring>

#include "core/error.hpp"

namespace dsk::tokenize {
namespace {

// Gives back bytes already read (to sniff the format) before the rest of the source.
class PrefixedSource : public io::ByteSource {
 public:
  PrefixedSource(std::string prefix, std::unique_ptr<io::ByteSource> rest)
      : prefix_(std::move(prefix)), rest_(std::move(rest)) {}
  size_t read(char* out, size_t capacity) override {
    if (position_ < prefix_.size()) {
      size_t count = std::min(capacity, prefix_.size() - position_);
      std::memcpy(out, prefix_.data() + position_, count);
      position_ += count;
      return count;
    }
    return rest_->read(out, capacity);
  }
  const std::string& name() const override { return rest_->name(); }

 private:
  std::string prefix_;
  size_t position_ = 0;
  std::unique_ptr<io::ByteSource> rest_;
};

// A blank line (one that ends a paragraph) holds only these.
bool is_blank_byte(char c) { return c == ' ' || c == '\t' || c == '\r'; }

uint64_t count_newlines(const std::string& bytes) {
  uint64_t count = 0;
  const char* at = bytes.data();
  const char* end = at + bytes.size();
  while ((at = static_cast<const char*>(std::memchr(at, '\n', end - at)))) {
    ++count;
    ++at;
  }
  return count;
}

}  // namespace

std::unique_ptr<io::ByteSource> open_input(const std::string& path) {
  auto file = std::make_unique<io::FileSource>(path);
  std::string head(4, '\0');
  size_t got = 0;
  while (got < head.size()) {
    size_t count = file->read(head.data() + got, head.size() - got);
    if (count == 0) break;
    got += count;
  }
  head.resize(got);
  std::string name = file->name();
  bool compressed = io::has_zstd_magic(head.data(), head.size());
  auto source = std::make_unique<PrefixedSource>(std::move(head), std::move(file));
  if (compressed) return std::make_unique<io::ZstdReader>(std::move(source), name);
  return source;
}

ChunkReader::ChunkReader(std::vector<std::string> inputs, const ReaderOptions& options, size_t chunk_bytes)
    : inputs_(std::move(inputs)),
      text_documents_(options.documents),
      format_(options.format),
      chunk_bytes_(std::max<size_t>(chunk_bytes, 1)) {
  if (inputs_.empty()) inputs_.push_back("-");
  if (std::count(inputs_.begin(), inputs_.end(), "-") > 1) throw UsageError("stdin ('-') can be read only once");
}

ChunkReader::~ChunkReader() = default;

bool ChunkReader::open_next_input() {
  if (next_input_ == inputs_.size()) return false;
  const std::string& path = inputs_[next_input_++];
  const InputFormat format = resolve_format(format_, path);
  layout_ = format == InputFormat::jsonl                 ? ChunkLayout::jsonl_lines
            : text_documents_ == TextDocuments::paragraph ? ChunkLayout::paragraphs
                                                          : ChunkLayout::whole_file;
  source_ = open_input(path);
  buffer_.clear();
  input_ended_ = false;
  line_ = 1;
  return true;
}

void ChunkReader::close_input() {
  source_.reset();
  buffer_.clear();
}

bool ChunkReader::read_more(size_t at_least) {
  const size_t goal = buffer_.size() + at_least;
  while (buffer_.size() < goal) {
    const size_t size = buffer_.size();
    const size_t want = std::max<size_t>(goal - size, 1 << 16);
    buffer_.resize(size + want);
    const size_t got = source_->read(buffer_.data() + size, want);
    buffer_.resize(size + got);
    bytes_read_ += got;
    if (got == 0) {
      input_ended_ = true;
      return false;
    }
  }
  return true;
}

size_t ChunkReader::last_boundary() const {
  const char* data = buffer_.data();
  size_t end = buffer_.size();
  for (;;) {
    const void* found = end > 0 ? memrchr(data, '\n', end) : nullptr;
    if (!found) return 0;
    const size_t newline = static_cast<const char*>(found) - data;
    if (layout_ == ChunkLayout::jsonl_lines) return newline + 1;
    // Paragraphs: a cut after a blank line ends a paragraph there, as reading on would.
    size_t at = newline;
    while (at > 0 && data[at - 1] != '\n' && is_blank_byte(data[at - 1])) --at;
    if (at == 0 || data[at - 1] == '\n') return newline + 1;
    end = at;  // that line has text: look before it
  }
}

void ChunkReader::emit(InputChunk& chunk, size_t size) {
  chunk.input = source_->name();
  chunk.layout = layout_;
  chunk.first_line = line_;
  chunk.bytes_through = bytes_read_;
  // Move the buffer out and copy back only the tail (less than one document).
  chunk.bytes = std::move(buffer_);
  buffer_ = std::string();
  buffer_.reserve(chunk_bytes_ + (1 << 16));
  buffer_.assign(chunk.bytes, size);
  chunk.bytes.resize(size);
  line_ += count_newlines(chunk.bytes);
}

bool ChunkReader::next(InputChunk& chunk) {
  for (;;) {
    if (!source_ && !open_next_input()) return false;
    if (layout_ == ChunkLayout::whole_file) {
      while (read_more(chunk_bytes_)) {
      }
      emit(chunk, buffer_.size());
      close_input();
      return true;
    }
    size_t wanted = chunk_bytes_;
    for (;;) {
      if (!input_ended_ && buffer_.size() < wanted) read_more(wanted - buffer_.size());
      const size_t cut = input_ended_ ? buffer_.size() : last_boundary();
      if (cut > 0) {
        emit(chunk, cut);
        return true;
      }
      if (input_ended_) break;
      wanted = buffer_.size() * 2;  // a document longer than a chunk: read on
    }
    close_input();
  }
}

}  // namespace dsk::tokenize
