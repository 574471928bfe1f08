// Atomic writes: the target appears whole or not at all.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <stdexcept>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/sha256.hpp"

namespace fs = std::filesystem;
using namespace dsk;

namespace {
fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("dsk-fs-test-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}
}  // namespace

TEST_CASE("write_file_atomic replaces a file and leaves no temporary") {
  fs::path dir = fresh_dir("file");
  write_file_atomic(dir / "a.txt", "first");
  write_file_atomic(dir / "a.txt", "second");
  CHECK(read_file(dir / "a.txt") == "second");
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  fs::remove_all(dir);
}

TEST_CASE("an AtomicFile that is not committed leaves nothing behind") {
  fs::path dir = fresh_dir("abort");
  try {
    AtomicFile file(dir / "out.bin");
    file.write("partial");
    throw std::runtime_error("failure mid-write");
  } catch (const std::runtime_error&) {
  }
  CHECK(fs::is_empty(dir));
  fs::remove_all(dir);
}

TEST_CASE("an AtomicDirectory appears only on commit") {
  fs::path dir = fresh_dir("dir");
  {
    AtomicDirectory staged(dir / "ckpt");
    write_file_atomic(staged.path() / "config.json", "{}");
    CHECK_FALSE(fs::exists(dir / "ckpt"));
    staged.commit();
  }
  CHECK(fs::exists(dir / "ckpt" / "config.json"));
  {
    AtomicDirectory again(dir / "ckpt");
    CHECK_THROWS_AS(again.commit(), UsageError);
  }
  CHECK(fs::exists(dir / "ckpt" / "config.json"));
  fs::remove_all(dir);
}

TEST_CASE("an AtomicDirectory named with a trailing slash is the same directory") {
  fs::path dir = fresh_dir("slash");
  {
    AtomicDirectory staged(dir / "shards" / "");  // "…/shards/", as in dsk-tokenize -o shards/
    CHECK(staged.target() == dir / "shards");
    CHECK_FALSE(fs::exists(dir / "shards"));
    write_file_atomic(staged.path() / "index.yaml", "x");
    staged.commit();
  }
  CHECK(fs::exists(dir / "shards" / "index.yaml"));
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);  // no temporary left
  fs::remove_all(dir);
}

TEST_CASE("reading a missing file is a data error naming it") {
  try {
    read_file("/nonexistent/dsk/file");
    FAIL("expected an error");
  } catch (const DataError& e) {
    CHECK(std::string(e.what()).find("/nonexistent/dsk/file") != std::string::npos);
  }
}

TEST_CASE("sha256 of known vectors") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
