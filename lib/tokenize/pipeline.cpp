#include "tokenize/pipeline.hpp"

#include <charconv>
#include <deque>
#include <future>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/progress.hpp"
#include "core/signals.hpp"
#include "tokenize/shard_set_writer.hpp"
#include "tokenize/split.hpp"
#include "tokenize/task_pool.hpp"

namespace fs = std::filesystem;

namespace dsk::tokenize {
namespace {

// Work for one job: enough text that a job outweighs its scheduling, few enough documents
// that the in-flight window stays small in memory.
constexpr size_t kBatchTextBytes = 1 << 20;
constexpr size_t kBatchDocuments = 4096;

// Special-token text inside a document ("<｜end▁of▁sentence｜>") is encoded as ordinary text:
// a document cannot end itself early or forge a BOS. dsk adds BOS and EOS itself.
const tokenizer::EncodeOptions kDocumentText{.add_special_tokens = false, .parse_special_tokens = false};

struct Batch {
  std::vector<Document> documents;
  size_t text_bytes = 0;
};

// The tokens of a batch's documents, back to back; document i is tokens[ends[i-1], ends[i]).
struct EncodedBatch {
  std::vector<uint32_t> tokens;
  std::vector<size_t> ends;
  std::vector<uint64_t> numbers;
  std::vector<uint64_t> text_bytes;
};

EncodedBatch encode_batch(const Batch& batch, const tokenizer::Tokenizer& tokenizer, std::optional<uint32_t> bos) {
  EncodedBatch encoded;
  encoded.tokens.reserve(batch.text_bytes / 3);
  for (const Document& document : batch.documents) {
    if (bos) encoded.tokens.push_back(*bos);
    tokenizer.encode_into(document.text, encoded.tokens, kDocumentText);
    encoded.ends.push_back(encoded.tokens.size());
    encoded.numbers.push_back(document.number);
    encoded.text_bytes.push_back(document.text.size());
  }
  return encoded;
}

bool read_batch(DocumentReader& reader, Batch& batch) {
  batch = Batch{};
  Document document;
  while (batch.text_bytes < kBatchTextBytes && batch.documents.size() < kBatchDocuments && reader.next(document)) {
    batch.text_bytes += document.text.size();
    batch.documents.push_back(std::move(document));
  }
  return !batch.documents.empty();
}

uint64_t known_input_size(const std::vector<std::string>& inputs) {
  uint64_t total = 0;
  for (const auto& input : inputs) {
    std::error_code error;
    if (input == "-" || input.ends_with(".zst") || !fs::is_regular_file(input, error)) return 0;
    total += fs::file_size(input, error);
  }
  return total;
}

std::string shortest_number(double value) {
  char buffer[64];
  return std::string(buffer, std::to_chars(buffer, buffer + sizeof buffer, value).ptr);
}

std::string yaml_flow_map(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string text = "{";
  for (const auto& [key, value] : fields) text += (text.size() > 1 ? ", " : "") + key + ": " + value;
  return text + "}";
}

}  // namespace

BosMode parse_bos_mode(const std::string& name) {
  if (name == "auto") return BosMode::tokenizer_default;
  if (name == "always") return BosMode::always;
  if (name == "never") return BosMode::never;
  throw UsageError(str("bos '", name, "': expected auto, always or never"));
}

TokenizeResult tokenize_to_shards(const TokenizeOptions& options, const tokenizer::Tokenizer& tokenizer) {
  if (fs::exists(options.output) && !options.force)
    throw UsageError(str("'", options.output.string(), "' already exists (--force replaces it)"));
  if (options.shard_tokens < 2) throw UsageError("the shard size must be at least 2 tokens");
  const auto eos = tokenizer.eos_id();
  if (!eos)
    throw DataError(str(options.tokenizer_path, ": the tokenizer defines no EOS token (documents end with one: name it as "
                        "eos_token in tokenizer_config.json beside it, e.g. {\"eos_token\": \"<|endoftext|>\"} for GPT-2)"));
  std::optional<uint32_t> bos;
  if (options.bos == BosMode::always && !tokenizer.bos_id())
    throw UsageError(str(options.tokenizer_path, ": --bos always, but the tokenizer defines no BOS token"));
  if (options.bos == BosMode::always || (options.bos == BosMode::tokenizer_default && tokenizer.add_bos_by_default()))
    bos = tokenizer.bos_id();
  const uint64_t vocab_size = tokenizer.vocab_size();
  const uint32_t bos_id = bos ? *bos : io::kNoBos;

  AtomicDirectory directory(options.output);
  DocumentReader reader(options.inputs, options.reader);
  ShardSetWriter train(directory.path(), "train", options.shard_tokens, vocab_size, *eos, bos_id);
  ShardSetWriter val(directory.path(), "val", options.shard_tokens, vocab_size, *eos, bos_id);
  Progress progress("tokenize", known_input_size(options.inputs), "B");

  auto write = [&](const EncodedBatch& encoded) {
    size_t begin = 0;
    for (size_t i = 0; i < encoded.ends.size(); ++i) {
      std::span<const uint32_t> tokens(encoded.tokens.data() + begin, encoded.ends[i] - begin);
      bool to_val = is_validation_document(encoded.numbers[i], options.val_fraction, options.seed);
      (to_val ? val : train).add_document(tokens, encoded.text_bytes[i]);
      begin = encoded.ends[i];
    }
  };

  {
    TaskPool pool(options.threads);
    std::deque<std::future<EncodedBatch>> in_flight;
    Batch batch;
    while (read_batch(reader, batch)) {
      if (stop_requested()) throw Interrupted(stop_exit_code(), "interrupted; no output was written");
      in_flight.push_back(pool.submit(
          [batch = std::move(batch), &tokenizer, bos] { return encode_batch(batch, tokenizer, bos); }));
      progress.set(reader.bytes_read());
      if (in_flight.size() >= 2 * static_cast<size_t>(pool.size())) {
        write(in_flight.front().get());
        in_flight.pop_front();
      }
    }
    for (; !in_flight.empty(); in_flight.pop_front()) write(in_flight.front().get());
  }
  progress.finish();

  TokenizeResult result;
  result.errors = reader.errors();
  result.add_bos = bos.has_value();
  io::ShardIndex& index = result.index;
  index.tokenizer = io::index_tokenizer_reference(options.tokenizer_path, options.output);
  index.vocab_size = vocab_size;
  index.token_bytes = io::token_bytes_for_vocab(vocab_size);
  index.eos_id = *eos;
  index.bos_id = bos_id;
  index.train = train.finish();
  index.val = val.finish();
  if (index.documents() == 0)
    throw DataError(str("no documents in the input (", result.errors.skipped, " skipped for errors, ",
                        result.errors.empty, " empty)"));
  const InputErrorCounts& errors = result.errors;
  index.extra = {
      {"shard_tokens", std::to_string(options.shard_tokens)},
      {"split", yaml_flow_map({{"val_fraction", shortest_number(options.val_fraction)}, {"seed", std::to_string(options.seed)}})},
      {"input_errors", yaml_flow_map({{"policy", error_policy_name(options.reader.on_error)},
                                      {"invalid_utf8", std::to_string(errors.invalid_utf8)},
                                      {"bad_records", std::to_string(errors.bad_records)},
                                      {"skipped", std::to_string(errors.skipped)},
                                      {"replaced", std::to_string(errors.replaced)},
                                      {"empty", std::to_string(errors.empty)}})},
  };
  write_file_atomic(directory.path() / io::kShardIndexName, io::shard_index_to_yaml(index));
  directory.commit(options.force);
  return result;
}

}  // namespace dsk::tokenize
