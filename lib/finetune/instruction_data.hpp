// Instruction data for fine-tuning: JSONL records -> examples (prompt text, completion text) ->
// token rows with the loss on the completion only -> padded micro-batches (a train::BatchSource).
//
// A record becomes an Example through the renderers given, tried in order; prompt_completion()
// reads {"prompt": "...", "completion": "..."}. Chat records ({"messages": [...]}) are rendered
// by a chat template (lib/chat) plugged in here as one more RecordRenderer.
//
// Tokens of an example: [BOS when the tokenizer adds one] + prompt + completion + [EOS]. The
// targets are the next tokens where the next token is part of the completion or the EOS, -100
// elsewhere (the prompt, the padding). Rows are data.seq_len positions, padded on the right with
// EOS (or 0) and target -100; with causal attention a real position never sees the padding, so
// padding changes no number. An example longer than a row is cut at its end; one whose prompt
// alone fills the row has nothing to learn and is dropped (both counted).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.hpp"
#include "train/batch_source.hpp"

namespace dsk::finetune {

struct Example {
  std::string prompt, completion;
};

// One JSONL record -> an Example, or nullopt when the record is not of the renderer's shape.
// DataError (without the place: the reader adds file:line) when it is of the shape but wrong.
using RecordRenderer = std::function<std::optional<Example>(const nlohmann::json& record)>;

// {"prompt": "...", "completion": "..."} (other fields are ignored).
std::optional<Example> prompt_completion(const nlohmann::json& record);

// Each non-blank line of each file through the renderers; DataError naming file:line for a line
// that is not a JSON object or that no renderer takes. An empty result is a DataError too.
std::vector<Example> read_examples(const std::vector<std::string>& files, const std::vector<RecordRenderer>& renderers);

struct TokenizedExample {
  std::vector<int32_t> ids;  // prompt + completion (+ EOS), at most max_tokens
  int32_t prompt_tokens = 0;  // ids before the first one to learn
};

struct TokenizedSet {
  std::vector<TokenizedExample> examples;
  int64_t cut = 0;      // longer than a row: the end of the completion was cut
  int64_t dropped = 0;  // the prompt alone filled the row
};

// Rows of seq_len positions hold seq_len + 1 ids (inputs and the shifted targets).
TokenizedSet tokenize_examples(const std::vector<Example>& examples, const tokenizer::Tokenizer& tokenizer,
                               int seq_len);
// The same for one example (prompt_tokens counts BOS); no cut.
TokenizedExample tokenize_example(const Example& example, const tokenizer::Tokenizer& tokenizer);

// Writes example row b of a batch: inputs ids[0..n-1], targets ids[1..n] where learned, padding.
void fill_row(const TokenizedExample& example, int32_t pad_id, int T, int32_t* tokens, int32_t* targets);

// The training stream: examples in a new random order every epoch (a pure function of the seed
// and the epoch), B per micro-batch; the cursor counts examples drawn. Validation: the val
// examples in file order, the last batch filled with empty rows.
class InstructionBatches final : public train::BatchSource {
 public:
  InstructionBatches(TokenizedSet train, TokenizedSet val, int32_t pad_id, uint64_t vocab_size, uint64_t seed);

  void next(train::Batch& batch, int B, int T) override;
  uint64_t cursor() const override { return cursor_; }
  void set_cursor(uint64_t cursor) override { cursor_ = cursor; }
  bool has_validation() const override { return !val_.examples.empty(); }
  void validation_batch(int64_t i, train::Batch& batch, int B, int T) const override;
  uint64_t vocab_size() const override { return vocab_size_; }

  size_t train_examples() const { return train_.examples.size(); }
  size_t val_examples() const { return val_.examples.size(); }

 private:
  const TokenizedExample& drawn(uint64_t k);

  TokenizedSet train_, val_;
  int32_t pad_id_;
  uint64_t vocab_size_, seed_;
  uint64_t cursor_ = 0;
  uint64_t order_epoch_ = ~uint64_t(0);
  std::vector<uint32_t> order_;
};

}  // namespace dsk::finetune
