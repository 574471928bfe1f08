// Files: whole reads with clear errors, and writes that a reader never sees half done
// (a temporary name beside the target, fsync, then rename).
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

namespace dsk {

// Reads a whole file; DataError when it cannot (naming the file and why).
std::string read_file(const std::filesystem::path& path);

// Writes contents to path.tmp.<pid> and renames it onto path. ResourceError on a full disk.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

// A file written under a temporary name and renamed into place by commit(). If the object is
// destroyed without commit() (an error, an exception) the temporary file is removed.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  std::FILE* handle() { return file_; }
  const std::filesystem::path& temporary_path() const { return temporary_; }
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path temporary_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
  size_t written_since_writeback_ = 0;
};

// A directory built under a temporary name (target.tmp-<pid>) and renamed into place by
// commit(); removed on destruction when not committed. commit() refuses to replace an existing
// target unless replace_existing is set, in which case the old one is moved aside first and
// deleted after the rename.
class AtomicDirectory {
 public:
  explicit AtomicDirectory(std::filesystem::path target);
  ~AtomicDirectory();
  AtomicDirectory(const AtomicDirectory&) = delete;
  AtomicDirectory& operator=(const AtomicDirectory&) = delete;

  const std::filesystem::path& path() const { return temporary_; }
  const std::filesystem::path& target() const { return target_; }
  void commit(bool replace_existing = false);

 private:
  std::filesystem::path target_;
  std::filesystem::path temporary_;
  bool committed_ = false;
};

// Maps errno from a failed write/open into the right error type (ENOSPC is a resource error).
[[noreturn]] void throw_io_error(const std::string& what, const std::filesystem::path& path, int error_number);

}  // namespace dsk
