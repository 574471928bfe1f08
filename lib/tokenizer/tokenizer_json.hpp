// tokenizer.json read in one streaming pass (nlohmann's SAX interface): model.vocab and
// model.merges, most of the file (128k entries each in DeepSeek-V3's), go straight into flat
// lists; everything else into a JSON tree as parse_json builds it. A tree of the whole file (a
// std::map node per vocab entry, a string per merge, then copies of both) was most of the time
// dsk-tokenize took to load the tokenizer.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe.hpp"

namespace dsk::tokenizer {

struct TokenizerJson {
  nlohmann::json tree;  // the file; model.vocab / model.merges are empty where `bpe` holds them
  BpeInput bpe;         // model.vocab and model.merges when they had the expected shape
};

// The same errors as parse_json for text that is not JSON or is nested too deep. Values the
// lists cannot hold (a vocab id that is not an integer up to kMaxTokenId, a merge of another
// form) are left in the tree, whose checks name them.
TokenizerJson read_tokenizer_json(std::string_view text, const std::string& where);

}  // namespace dsk::tokenizer
