#include "train/train_data.hpp"

#include <glob.h>

#include <algorithm>

#include "core/error.hpp"
#include "io/token_shard.hpp"

namespace dsk::train {
namespace fs = std::filesystem;
namespace {

// Which shards of a directory an entry contributes: its train split (data.train), its validation
// split (the default evaluation set), or, for a directory named in data.val, its validation split
// and, when it has none, all of it.
enum class Role { train, default_val, named_val };

std::vector<fs::path> expand_glob(const std::string& pattern) {
  glob_t matches{};
  int status = ::glob(pattern.c_str(), 0, nullptr, &matches);
  std::vector<fs::path> paths;
  if (status == 0)
    for (size_t i = 0; i < matches.gl_pathc; ++i) paths.emplace_back(matches.gl_pathv[i]);
  globfree(&matches);
  std::sort(paths.begin(), paths.end());
  return paths;
}

// Where the index's tokenizer is; when it is nowhere, where it should be (the checkpoint then
// says it is gone and goes without one).
fs::path locate_tokenizer(const io::ShardIndex& index, const fs::path& shard_dir) {
  const std::optional<fs::path> found = io::find_index_tokenizer(index, shard_dir);
  return fs::absolute(found ? *found : shard_dir / index.tokenizer);
}

// Adds the shards named by one entry of data.train / data.val; a directory's index.yaml names
// them, and its tokenizer is remembered. Directories are appended to `directories` when given.
void add_entry(const std::string& entry, Role role, std::vector<fs::path>& out, TrainData& data,
               std::vector<fs::path>* directories = nullptr) {
  const fs::path path(entry);
  if (fs::is_directory(path)) {
    const io::ShardIndex index = io::load_shard_index(path);
    const io::ShardSplit* chosen = role == Role::train ? &index.train : &index.val;
    if (role == Role::named_val && chosen->shards.empty()) chosen = &index.train;
    for (const auto& shard : chosen->shards) {
      out.push_back(path / shard.file);
      io::check_shard_against_index(io::ShardReader(out.back()).header(), index, shard, out.back().string());
    }
    if (data.tokenizer.empty() && !index.tokenizer.empty()) data.tokenizer = locate_tokenizer(index, path);
    if (directories) directories->push_back(path);
    return;
  }
  if (fs::is_regular_file(path)) {
    out.push_back(path);
    return;
  }
  std::vector<fs::path> matches = expand_glob(entry);
  if (matches.empty())
    throw DataError(str(entry, ": no such shard directory or file, and no file matches it as a pattern"));
  out.insert(out.end(), matches.begin(), matches.end());
}

// Opens every shard once to check its header and learn the vocabulary and special ids.
void read_headers(TrainData& data) {
  bool first = true;
  auto visit = [&](const fs::path& file) {
    io::ShardReader shard(file);
    const io::ShardHeader& header = shard.header();
    data.vocab_size = std::max<uint64_t>(data.vocab_size, header.vocab_size);
    if (first) {
      data.eos_id = header.eos_id;
      if (header.bos_id != io::kNoBos) data.bos_id = header.bos_id;
      first = false;
    } else if (header.eos_id != data.eos_id) {
      throw DataError(str(file.string(), ": EOS id ", header.eos_id, " differs from the other shards' ", data.eos_id,
                          " (were they made with different tokenizers?)"));
    }
  };
  for (const auto& file : data.train) visit(file);
  for (const auto& file : data.val) visit(file);
}

}  // namespace

TrainData resolve_train_data(const std::vector<std::string>& train, const std::vector<std::string>& val) {
  if (train.empty()) throw UsageError("data.train is empty: name at least one shard directory or file");
  TrainData data;
  std::vector<fs::path> train_directories;
  for (const auto& entry : train) add_entry(entry, Role::train, data.train, data, &train_directories);
  if (data.train.empty()) throw DataError("data.train names no training shard");
  if (val.empty()) {
    for (const auto& directory : train_directories) add_entry(directory.string(), Role::default_val, data.val, data);
  } else {
    for (const auto& entry : val) add_entry(entry, Role::named_val, data.val, data);
    if (data.val.empty()) throw DataError("data.val names no validation shard");
  }
  read_headers(data);
  return data;
}

}  // namespace dsk::train
