#include "core/fs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace fs = std::filesystem;

namespace dsk {

void throw_io_error(const std::string& what, const fs::path& path, int error_number) {
  std::string message = str("cannot ", what, " '", path.string(), "': ", std::strerror(error_number));
  if (error_number == ENOSPC || error_number == EDQUOT || error_number == ENOMEM)
    throw ResourceError(message);
  throw DataError(message);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_io_error("read", path, errno);
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) throw_io_error("read", path, errno);
  return contents.str();
}

void write_file_atomic(const fs::path& path, std::string_view contents) {
  AtomicFile file(path);
  file.write(contents);
  file.commit();
}

AtomicFile::AtomicFile(fs::path target) : target_(std::move(target)) {
  temporary_ = target_;
  temporary_ += str(".tmp.", getpid());
  file_ = std::fopen(temporary_.c_str(), "wb");
  if (!file_) throw_io_error("create", temporary_, errno);
}

AtomicFile::~AtomicFile() {
  if (file_) std::fclose(file_);
  if (!committed_) {
    std::error_code ignored;
    fs::remove(temporary_, ignored);
  }
}

void AtomicFile::write(const void* data, size_t size) {
  if (size && std::fwrite(data, 1, size, file_) != size) throw_io_error("write", temporary_, errno);
  // Every 16 MiB, the disk starts writing what is there (without waiting for it), so that the
  // fsync of commit() has little left: for a large file (dsk-tokenize's 150 MB shard) it was a
  // stall at the very end, when nothing else runs. Advice only: its errors are commit's to see.
  written_since_writeback_ += size;
  if (written_since_writeback_ >= (size_t(16) << 20)) {
    written_since_writeback_ = 0;
    if (std::fflush(file_) != 0) throw_io_error("write", temporary_, errno);
    sync_file_range(fileno(file_), 0, 0, SYNC_FILE_RANGE_WRITE);
  }
}

void AtomicFile::commit() {
  if (std::fflush(file_) != 0) throw_io_error("write", temporary_, errno);
  if (fsync(fileno(file_)) != 0) throw_io_error("sync", temporary_, errno);
  int close_result = std::fclose(file_);
  file_ = nullptr;
  if (close_result != 0) throw_io_error("close", temporary_, errno);
  std::error_code error;
  fs::rename(temporary_, target_, error);
  if (error) throw_io_error("rename into", target_, error.value());
  committed_ = true;
}

AtomicDirectory::AtomicDirectory(fs::path target) : target_(std::move(target)) {
  // "shards/" names the directory "shards": without this the temporary went inside it and the
  // target existed before the commit.
  if (!target_.has_filename() && target_.has_parent_path()) target_ = target_.parent_path();
  temporary_ = target_;
  temporary_ += str(".tmp-", getpid());
  std::error_code error;
  fs::remove_all(temporary_, error);
  if (target_.has_parent_path()) fs::create_directories(target_.parent_path(), error);
  if (!fs::create_directory(temporary_, error) || error) throw_io_error("create directory", temporary_, error.value());
}

AtomicDirectory::~AtomicDirectory() {
  if (!committed_) {
    std::error_code ignored;
    fs::remove_all(temporary_, ignored);
  }
}

void AtomicDirectory::commit(bool replace_existing) {
  std::error_code error;
  // Make the directory's entries durable before it becomes visible.
  int directory_fd = open(temporary_.c_str(), O_RDONLY | O_DIRECTORY);
  if (directory_fd >= 0) {
    fsync(directory_fd);
    close(directory_fd);
  }
  fs::path old_aside;
  if (fs::exists(target_)) {
    if (!replace_existing) throw UsageError(str("'", target_.string(), "' already exists"));
    old_aside = target_;
    old_aside += str(".old-", getpid());
    fs::rename(target_, old_aside, error);
    if (error) throw_io_error("move aside", target_, error.value());
  }
  fs::rename(temporary_, target_, error);
  if (error) throw_io_error("rename into", target_, error.value());
  committed_ = true;
  if (!old_aside.empty()) fs::remove_all(old_aside, error);
}

}  // namespace dsk
