// libFuzzer target: any text as a shard directory's index.yaml. Parsing must succeed or throw
// DataError; an accepted index has totals equal to its parts and names shard files inside the
// directory, and prints as YAML that parses back to the same index.
#include <cstdlib>
#include <string>

#include "core/error.hpp"
#include "io/token_shard.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsk::io;
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    ShardIndex index = parse_shard_index(text, "index.yaml");
    for (const ShardSplit* split : {&index.train, &index.val}) {
      uint64_t tokens = 0;
      for (const auto& entry : split->shards) {
        if (entry.file.empty() || entry.file.find('/') != std::string::npos || entry.file == "..") std::abort();
        tokens += entry.tokens;
      }
      if (tokens != split->tokens) std::abort();
    }
    if (index.eos_id >= index.vocab_size) std::abort();
    std::string printed = shard_index_to_yaml(index);
    if (shard_index_to_yaml(parse_shard_index(printed, "printed index.yaml")) != printed) std::abort();
  } catch (const dsk::DataError&) {
  }
  return 0;
}
