// Shards back to text: each document's tokens (its BOS and EOS left out) through the
// tokenizer's decoder. For text that was valid UTF-8 this is the text that went in, byte for byte.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "tokenizer/tokenizer.hpp"

namespace dsk::tokenize {

enum class SplitSelection { train, val, both };  // both: train shards, then val shards
SplitSelection parse_split_selection(const std::string& name);  // train, val, all

// Calls emit(text) for each document in shard order; returns how many.
uint64_t decode_documents(const std::filesystem::path& directory, SplitSelection selection,
                          const tokenizer::Tokenizer& tokenizer, const std::function<void(const std::string&)>& emit);

}  // namespace dsk::tokenize
