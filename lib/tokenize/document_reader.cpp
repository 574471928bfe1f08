#include "tokenize/document_reader.hpp"

#include "core/log.hpp"

namespace dsk::tokenize {

void InputErrorLog::add(const std::vector<std::string>& warnings, const InputErrorCounts& counts) {
  counts_ += counts;
  for (const std::string& warning : warnings) {
    if (reported_ < max_reported_) log_warn(warning);
    else if (reported_ == max_reported_) log_warn("further input errors are counted but not shown");
    ++reported_;
  }
}

DocumentReader::DocumentReader(std::vector<std::string> inputs, ReaderOptions options)
    : options_(std::move(options)), chunks_(std::move(inputs), options_), log_(options_.max_reported) {}

bool DocumentReader::next(Document& document) {
  while (next_pending_ == pending_.documents.size()) {
    InputChunk chunk;
    if (!chunks_.next(chunk)) return false;
    pending_ = chunk_documents(chunk, options_);
    log_.add(pending_.warnings, pending_.errors);
    next_pending_ = 0;
    chunk_first_ = numbered_;
    numbered_ += pending_.numbered;
  }
  document = std::move(pending_.documents[next_pending_++]);
  document.number += chunk_first_;
  return true;
}

}  // namespace dsk::tokenize
