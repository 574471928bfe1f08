// Documents from the inputs of dsk-tokenize, one at a time, in input order (input.hpp says
// which documents and what happens to bad ones): the reading stages of the parallel pipeline
// (pipeline.hpp) run one after the other on the caller's thread.
//
//   DocumentReader reader(paths, options);
//   Document document;
//   while (reader.next(document)) ...;      // DataError under ErrorPolicy::fail
//   reader.errors();                        // counts of what was skipped, replaced, empty
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenize/chunk_documents.hpp"
#include "tokenize/input.hpp"
#include "tokenize/input_chunks.hpp"

namespace dsk::tokenize {

// The input-order part of error handling: adds up the chunks' counts and shows the first
// max_reported warnings on stderr, then a line saying the rest are only counted.
class InputErrorLog {
 public:
  explicit InputErrorLog(int max_reported) : max_reported_(max_reported) {}
  void add(const std::vector<std::string>& warnings, const InputErrorCounts& counts);
  const InputErrorCounts& counts() const { return counts_; }

 private:
  int max_reported_;
  int reported_ = 0;
  InputErrorCounts counts_;
};

class DocumentReader {
 public:
  DocumentReader(std::vector<std::string> inputs, ReaderOptions options);

  // The next document to tokenize; false after the last input.
  bool next(Document& document);
  const InputErrorCounts& errors() const { return log_.counts(); }
  uint64_t bytes_read() const { return chunks_.bytes_read(); }  // of all inputs so far, after decompression

 private:
  ReaderOptions options_;
  ChunkReader chunks_;
  InputErrorLog log_;
  ChunkDocuments pending_;    // the current chunk's documents
  size_t next_pending_ = 0;
  uint64_t chunk_first_ = 0;  // number of the current chunk's first document
  uint64_t numbered_ = 0;     // documents numbered so far
};

}  // namespace dsk::tokenize
