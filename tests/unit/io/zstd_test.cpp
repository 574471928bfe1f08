// zstd streams: round trips through files, several frames, and corrupt or truncated input.
#include <doctest/doctest.h>

#include <zstd.h>

#include <filesystem>
#include <random>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "io/zstd_stream.hpp"
#include "scratch_dir.hpp"

namespace fs = std::filesystem;
using namespace dsk;
using namespace dsk::io;

namespace {

std::string sample_text(size_t size) {
  std::mt19937 random(7);
  std::string text;
  const char* words[] = {"the ", "token ", "shard ", "zstd ", "frame ", "\n"};
  while (text.size() < size) text += words[random() % 6];
  text.resize(size);
  return text;
}

std::string read_all(ByteSource& source, size_t chunk) {
  std::string out, buffer(chunk, '\0');
  while (size_t n = source.read(buffer.data(), buffer.size())) out.append(buffer.data(), n);
  return out;
}

std::string compress_frame(const std::string& text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3));
  return out;
}
}  // namespace

TEST_CASE("ZstdWriter then ZstdReader gives back the bytes, in small and large chunks") {
  fs::path dir = scratch_dir("roundtrip");
  std::string text = sample_text(3'000'000);
  for (int threads : {0, 2}) {
    fs::path path = dir / ("a" + std::to_string(threads) + ".zst");
    ZstdWriter writer(path, {.level = 3, .threads = threads});
    for (size_t at = 0; at < text.size(); at += 100'000) writer.write(text.data() + at, std::min<size_t>(100'000, text.size() - at));
    CHECK(!fs::exists(path));
    writer.commit();
    CHECK(writer.bytes_in() == text.size());
    CHECK(fs::file_size(path) < text.size() / 3);
    ZstdReader small(path);
    CHECK(read_all(small, 777) == text);
    ZstdReader large(path);
    CHECK(read_all(large, 1 << 20) == text);
  }
}

TEST_CASE("concatenated frames read as one stream") {
  fs::path dir = scratch_dir("frames");
  write_file_atomic(dir / "m.zst", compress_frame("first frame\n") + compress_frame("") + compress_frame("second\n"));
  ZstdReader reader(dir / "m.zst");
  CHECK(read_all(reader, 5) == "first frame\nsecond\n");
}

TEST_CASE("corrupt and truncated input are DataErrors naming the file") {
  fs::path dir = scratch_dir("bad");
  std::string frame = compress_frame(sample_text(200'000));

  write_file_atomic(dir / "cut.zst", frame.substr(0, frame.size() / 2));
  ZstdReader truncated(dir / "cut.zst");
  CHECK_THROWS_WITH_AS(read_all(truncated, 4096), doctest::Contains("cut.zst: truncated zstd"), DataError);

  std::string damaged = frame;
  for (size_t i = 20; i < 60; ++i) damaged[i] = static_cast<char>(damaged[i] ^ 0x5A);
  write_file_atomic(dir / "bad.zst", damaged);
  ZstdReader corrupt(dir / "bad.zst");
  CHECK_THROWS_WITH_AS(read_all(corrupt, 4096), doctest::Contains("bad.zst: corrupt zstd data"), DataError);

  write_file_atomic(dir / "text.zst", "plain text, not zstd");
  ZstdReader not_zstd(dir / "text.zst");
  CHECK_THROWS_AS(read_all(not_zstd, 4096), DataError);

  CHECK_THROWS_AS(ZstdReader(dir / "missing.zst"), DataError);
}

TEST_CASE("an uncommitted writer leaves no file; bad levels are usage errors") {
  fs::path dir = scratch_dir("abandon");
  {
    ZstdWriter writer(dir / "a.zst");
    writer.write(std::string("partial"));
  }
  CHECK(fs::is_empty(dir));
  CHECK_THROWS_AS(ZstdWriter(dir / "b.zst", {.level = 99}), UsageError);
}

TEST_CASE("the zstd magic is recognised") {
  std::string frame = compress_frame("x");
  CHECK(has_zstd_magic(frame.data(), frame.size()));
  CHECK(!has_zstd_magic("{\"te", 4));
  CHECK(!has_zstd_magic("(", 1));
}
