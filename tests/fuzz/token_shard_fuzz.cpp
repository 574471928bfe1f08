// libFuzzer target: any bytes as a token shard file. Opening must succeed or throw DataError;
// an opened shard has exactly the bytes its header promises, and check_token_ids() passes or
// throws DataError. The bytes go through a file because ShardReader maps one.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.hpp"
#include "io/token_shard.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsk::io;
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("dsk-fuzz-shard-" + std::to_string(::getpid()) + ".tok");
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    ShardReader shard(path);
    const ShardHeader& header = shard.header();
    if (kShardHeaderBytes + header.token_count * header.token_bytes != size) std::abort();
    if (header.eos_id >= header.vocab_size) std::abort();
    std::vector<uint32_t> tokens;
    shard.read(0, shard.size(), tokens);
    try {
      shard.check_token_ids();
      for (uint32_t id : tokens)
        if (id >= header.vocab_size) std::abort();
    } catch (const dsk::DataError&) {
    }
  } catch (const dsk::DataError&) {
  }
  std::filesystem::remove(path);
  return 0;
}
