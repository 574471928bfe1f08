// The documents of one input chunk (input_chunks.hpp): lines or paragraphs split, UTF-8
// checked, JSONL records parsed, by the rules of input.hpp. A pure function of the chunk and
// the options, so chunks can be done on any threads in any order; what must happen in input
// order (numbering documents across chunks, showing the first N warnings) is left to the
// caller, who gets the chunk's count and its warnings in order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenize/input.hpp"
#include "tokenize/input_chunks.hpp"

namespace dsk::tokenize {

struct ChunkDocuments {
  std::vector<Document> documents;    // those kept; `number` counts from 0 at the chunk's first document
  uint64_t numbered = 0;              // documents in the chunk, dropped ones too
  std::vector<std::string> warnings;  // one per problem, in input order ("file:line: problem; skipped")
  InputErrorCounts errors;
};

// Under ErrorPolicy::fail, the first problem is a DataError naming the file and line.
ChunkDocuments chunk_documents(const InputChunk& chunk, const ReaderOptions& options);

}  // namespace dsk::tokenize
