#include "tokenize/pipeline.hpp"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <thread>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/progress.hpp"
#include "core/signals.hpp"
#include "tokenize/bounded_queue.hpp"
#include "tokenize/chunk_documents.hpp"
#include "tokenize/document_reader.hpp"
#include "tokenize/shard_set_writer.hpp"
#include "tokenize/split.hpp"
#include "tokenize/task_pool.hpp"

namespace fs = std::filesystem;

namespace dsk::tokenize {
namespace {

// Special-token text inside a document ("<｜end▁of▁sentence｜>") is encoded as ordinary text:
// a document cannot end itself early or forge a BOS. dsk adds BOS and EOS itself.
const tokenizer::EncodeOptions kDocumentText{.add_special_tokens = false, .parse_special_tokens = false};

// One chunk's documents as tokens, back to back: document i is tokens[ends[i-1], ends[i]).
struct EncodedChunk {
  std::vector<uint32_t> tokens;
  std::vector<size_t> ends;
  std::vector<uint64_t> numbers;  // from 0 at the chunk's first document (dropped ones count)
  std::vector<uint64_t> text_bytes;
  uint64_t numbered = 0;
  std::vector<std::string> warnings;
  InputErrorCounts errors;
  uint64_t bytes_through = 0;
  double seconds = 0;  // the worker's time on it, for -v's account of where the time went
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// A worker's job: everything done per byte, from the chunk's raw bytes to tokens.
EncodedChunk tokenize_chunk(const InputChunk& chunk, const ReaderOptions& reader, const tokenizer::Tokenizer& tokenizer,
                            std::optional<uint32_t> bos) {
  const auto start = Clock::now();
  ChunkDocuments documents = chunk_documents(chunk, reader);
  EncodedChunk encoded;
  encoded.tokens.reserve(chunk.bytes.size() / 3);
  for (const Document& document : documents.documents) {
    if (bos) encoded.tokens.push_back(*bos);
    tokenizer.encode_into(document.text, encoded.tokens, kDocumentText);
    encoded.ends.push_back(encoded.tokens.size());
    encoded.numbers.push_back(document.number);
    encoded.text_bytes.push_back(document.text.size());
  }
  encoded.numbered = documents.numbered;
  encoded.warnings = std::move(documents.warnings);
  encoded.errors = documents.errors;
  encoded.bytes_through = chunk.bytes_through;
  encoded.seconds = seconds_since(start);
  return encoded;
}

using ChunkQueue = BoundedQueue<std::future<EncodedChunk>>;

// What the reader thread and the writer share, owned by both: after an error the writer leaves
// a reader that is blocked in a read (stdin from a pipe that stays open) behind, and the reader
// ends by itself when its read returns and finds the queue cancelled.
struct ReadingState {
  ReadingState(const TokenizeOptions& options, size_t queue_capacity)
      : chunks(options.inputs, options.reader), queue(queue_capacity) {}
  ChunkReader chunks;
  ChunkQueue queue;
  double seconds_blocked = 0;  // the reader's, waiting for room in the queue (written by it alone)
};

// The reader thread: cuts the inputs into chunks and hands each to the pool, queueing the
// futures in input order. An input error takes its place in the queue, so that it surfaces in
// order too (after the documents before it, as when everything ran on one thread). Jobs are
// submitted under the queue's lock and only while it is not cancelled, so a reader left behind
// never touches the pool, the tokenizer or the options again.
void read_chunks(std::shared_ptr<ReadingState> state, TaskPool& pool, const ReaderOptions& reader,
                 const tokenizer::Tokenizer& tokenizer, std::optional<uint32_t> bos) {
  try {
    InputChunk chunk;
    while (state->chunks.next(chunk)) {
      auto submit = [&] {
        return pool.submit([chunk = std::move(chunk), &reader, &tokenizer, bos] { return tokenize_chunk(chunk, reader, tokenizer, bos); });
      };
      const auto start = Clock::now();
      if (!state->queue.push_made(submit)) return;  // the writer gave up
      state->seconds_blocked += seconds_since(start);
    }
  } catch (...) {
    std::promise<EncodedChunk> failed;
    failed.set_exception(std::current_exception());
    state->queue.push(failed.get_future());
  }
  state->queue.close();
}

// The reader thread, joined when the writer is done; after an error, left behind (abandon()).
struct ReaderThread {
  std::shared_ptr<ReadingState> state;
  std::thread thread;
  ~ReaderThread() {
    state->queue.cancel();
    if (thread.joinable()) thread.join();
  }
  void abandon() {
    state->queue.cancel();
    thread.detach();
  }
};

uint64_t known_input_size(const std::vector<std::string>& inputs) {
  uint64_t total = 0;
  for (const auto& input : inputs) {
    std::error_code error;
    if (input == "-" || input.ends_with(".zst") || !fs::is_regular_file(input, error)) return 0;
    total += fs::file_size(input, error);
  }
  return total;
}

// Where the time went, for -v: what each thread did and what it waited for. The workers' busy
// share of threads x wall says how well they were fed; the writer's waiting, whether it kept up.
struct StageTimes {
  double workers_busy = 0, writer_waiting = 0, writer_writing = 0, reader_blocked = 0;
  uint64_t chunks = 0;
};

void log_stage_times(const StageTimes& times, int threads, double wall, double last_shards) {
  char line[400];
  std::snprintf(line, sizeof line,
                "stages: %.3f s to the last chunk written (%llu chunks); workers busy %.3f s, %.0f%% of %d x that; "
                "writer waited %.3f s, wrote %.3f s; reader blocked on a full queue %.3f s; last shards "
                "(header, hash, sync) %.3f s",
                wall, static_cast<unsigned long long>(times.chunks), times.workers_busy,
                100 * times.workers_busy / (wall * threads), threads, times.writer_waiting, times.writer_writing,
                times.reader_blocked, last_shards);
  log_debug(line);
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
  ShardSetWriter train(directory.path(), "train", options.shard_tokens, vocab_size, *eos, bos_id);
  ShardSetWriter val(directory.path(), "val", options.shard_tokens, vocab_size, *eos, bos_id);
  Progress progress("tokenize", known_input_size(options.inputs), "B");
  InputErrorLog error_log(options.reader.max_reported);

  const auto start = Clock::now();
  StageTimes times;
  uint64_t numbered = 0;  // documents before the chunk being written, dropped ones too
  auto write = [&](const EncodedChunk& encoded) {
    size_t begin = 0;
    for (size_t i = 0; i < encoded.ends.size(); ++i) {
      std::span<const uint32_t> tokens(encoded.tokens.data() + begin, encoded.ends[i] - begin);
      bool to_val = is_validation_document(numbered + encoded.numbers[i], options.val_fraction, options.seed);
      (to_val ? val : train).add_document(tokens, encoded.text_bytes[i]);
      begin = encoded.ends[i];
    }
    numbered += encoded.numbered;
  };

  {
    TaskPool pool(options.threads);
    // Four chunks per worker in flight: while the writer waits for the oldest (a chunk that
    // took longer), the other workers go on with the next ones rather than wait for room in
    // the queue; a bound on memory all the same (4 x threads chunks of 256 KiB of text, and
    // their tokens: 40 MB at 16 threads).
    auto state = std::make_shared<ReadingState>(options, 4 * static_cast<size_t>(pool.size()));
    ReaderThread reader{state, std::thread(read_chunks, state, std::ref(pool), std::cref(options.reader),
                                           std::cref(tokenizer), bos)};
    try {
      for (;;) {
        auto wait_start = Clock::now();
        auto next = state->queue.pop();
        if (!next) break;
        if (stop_requested()) throw Interrupted(stop_exit_code(), "interrupted; no output was written");
        EncodedChunk encoded = next->get();  // a worker's or the reader's error comes out here, in input order
        times.writer_waiting += seconds_since(wait_start);
        auto write_start = Clock::now();
        error_log.add(encoded.warnings, encoded.errors);
        write(encoded);
        progress.set(encoded.bytes_through);
        times.writer_writing += seconds_since(write_start);
        times.workers_busy += encoded.seconds;
        ++times.chunks;
      }
      times.reader_blocked = state->seconds_blocked;  // the reader is done: the queue is closed
    } catch (...) {
      reader.abandon();
      throw;
    }
  }
  progress.finish();
  const double workers_done = seconds_since(start);

  TokenizeResult result;
  result.errors = error_log.counts();
  result.add_bos = bos.has_value();
  io::ShardIndex& index = result.index;
  index.tokenizer = io::index_tokenizer_reference(options.tokenizer_path, options.output);
  index.vocab_size = vocab_size;
  index.token_bytes = io::token_bytes_for_vocab(vocab_size);
  index.eos_id = *eos;
  index.bos_id = bos_id;
  const auto finish_start = Clock::now();
  index.train = train.finish();
  index.val = val.finish();
  log_stage_times(times, std::max(1, options.threads), workers_done, seconds_since(finish_start));
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
