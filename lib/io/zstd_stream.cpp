#include "io/zstd_stream.hpp"

#include <zstd.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"
#include "core/signals.hpp"

namespace fs = std::filesystem;

namespace dsk::io {

// ---- FileSource ----

FileSource::FileSource(const fs::path& path) {
  if (path == "-") {
    file_ = stdin;
    name_ = "<stdin>";
    return;
  }
  name_ = path.string();
  std::error_code error;
  if (fs::is_directory(path, error)) throw DataError(str("cannot read '", name_, "': it is a directory"));
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) throw_io_error("open", path, errno);
  owned_ = true;
}

FileSource::~FileSource() {
  if (owned_ && file_) std::fclose(file_);
}

size_t FileSource::read(char* out, size_t capacity) {
  for (;;) {
    size_t count = std::fread(out, 1, capacity, file_);
    if (count == capacity || !std::ferror(file_)) return count;
    if (errno != EINTR) throw_io_error("read", name_, errno);
    // A signal interrupted a blocking read (a pipe, a terminal): stop if it asked us to.
    std::clearerr(file_);
    if (stop_requested()) throw Interrupted(stop_exit_code(), str("interrupted while reading ", name_));
    if (count > 0) return count;
  }
}

bool has_zstd_magic(const char* bytes, size_t size) {
  static const unsigned char magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
  return size >= 4 && std::memcmp(bytes, magic, 4) == 0;
}

// ---- ZstdReader ----

struct ZstdReader::Stream {
  ZSTD_DCtx* context = ZSTD_createDCtx();
  ~Stream() { ZSTD_freeDCtx(context); }
};

ZstdReader::ZstdReader(const fs::path& path) : ZstdReader(std::make_unique<FileSource>(path), path.string()) {}

ZstdReader::ZstdReader(std::unique_ptr<ByteSource> compressed, std::string name)
    : stream_(std::make_unique<Stream>()), compressed_(std::move(compressed)), name_(std::move(name)) {
  if (!stream_->context) throw ResourceError("cannot create a zstd decompression context");
  input_.resize(ZSTD_DStreamInSize());
}

ZstdReader::~ZstdReader() = default;

bool ZstdReader::refill() {
  if (input_ended_) return false;
  input_size_ = compressed_->read(input_.data(), input_.size());
  input_position_ = 0;
  if (input_size_ == 0) input_ended_ = true;
  return input_size_ > 0;
}

size_t ZstdReader::read(char* out, size_t capacity) {
  ZSTD_outBuffer output{out, capacity, 0};
  while (output.pos == 0 && capacity > 0) {
    if (input_position_ == input_size_ && !refill()) {
      if (inside_frame_) throw DataError(str(name_, ": truncated zstd stream (the input ends inside a frame)"));
      return 0;
    }
    ZSTD_inBuffer input{input_.data(), input_size_, input_position_};
    size_t result = ZSTD_decompressStream(stream_->context, &output, &input);
    input_position_ = input.pos;
    if (ZSTD_isError(result))
      throw DataError(str(name_, ": corrupt zstd data (", ZSTD_getErrorName(result), ")"));
    // result == 0: a frame ended exactly here; the next byte (if any) starts another frame.
    inside_frame_ = result != 0;
  }
  return output.pos;
}

// ---- ZstdWriter ----

struct ZstdWriter::Stream {
  ZSTD_CCtx* context = ZSTD_createCCtx();
  ~Stream() { ZSTD_freeCCtx(context); }
};

namespace {
void check_zstd(size_t result, const std::string& what) {
  if (ZSTD_isError(result)) throw InternalError(str("zstd: ", what, ": ", ZSTD_getErrorName(result)));
}
}  // namespace

ZstdWriter::ZstdWriter(const fs::path& path, ZstdWriterOptions options)
    : stream_(std::make_unique<Stream>()), file_(path) {
  if (!stream_->context) throw ResourceError("cannot create a zstd compression context");
  if (options.level < 1 || options.level > ZSTD_maxCLevel())
    throw UsageError(str("zstd level ", options.level, " is outside 1..", ZSTD_maxCLevel()));
  check_zstd(ZSTD_CCtx_setParameter(stream_->context, ZSTD_c_compressionLevel, options.level), "set level");
  check_zstd(ZSTD_CCtx_setParameter(stream_->context, ZSTD_c_checksumFlag, 1), "enable checksums");
  if (options.threads > 0) {
    // A libzstd built without multithreading refuses nbWorkers: compress on this thread then.
    ZSTD_CCtx_setParameter(stream_->context, ZSTD_c_nbWorkers, options.threads);
  }
  output_.resize(ZSTD_CStreamOutSize());
}

ZstdWriter::~ZstdWriter() = default;

void ZstdWriter::compress(const void* data, size_t size, bool end) {
  ZSTD_inBuffer input{data, size, 0};
  const ZSTD_EndDirective mode = end ? ZSTD_e_end : ZSTD_e_continue;
  for (;;) {
    ZSTD_outBuffer output{output_.data(), output_.size(), 0};
    size_t remaining = ZSTD_compressStream2(stream_->context, &output, &input, mode);
    check_zstd(remaining, "compress");
    file_.write(output_.data(), output.pos);
    bool done = end ? remaining == 0 : input.pos == input.size;
    if (done) return;
  }
}

void ZstdWriter::write(const void* data, size_t size) {
  compress(data, size, false);
  bytes_in_ += size;
}

void ZstdWriter::commit() {
  compress(nullptr, 0, true);
  file_.commit();
}

}  // namespace dsk::io
