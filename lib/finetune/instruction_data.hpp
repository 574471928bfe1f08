// Instruction data for fine-tuning: JSONL records -> token ids with a loss mask -> padded
// micro-batches (a train::BatchSource).
//
// Records are read by the data library (finetune/data/examples.hpp), the one place that knows
// their shapes: {"prompt", "completion"}, {"messages"} rendered by the tokenizer's chat template
// (the loss on the assistant turns only) and {"text"}. Each becomes ids and a mask of the ids the
// loss counts (examples.hpp tokenize_segments: for prompt/completion [BOS] + prompt + completion
// + EOS with the completion and EOS trained). Rows are data.seq_len positions, padded on the
// right with EOS (or 0) and target -100; with causal attention a real position never sees the
// padding, so padding changes no number. An example longer than a row is cut at its end; one
// with no trained id left in the row has nothing to learn and is dropped (both counted).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/batch_source.hpp"

namespace dsk::finetune {

struct TokenizedExample {
  std::vector<int32_t> ids;
  std::vector<uint8_t> trained;  // per id: 1 where the loss counts (the id is a target)
};


// The examples of the files (JSONL, "-" for stdin, .zst or plain), tokenized; `chat` (may be
// null) renders {"messages"} records. DataError naming file:line for a line that is not an
// example, has nothing to train on (a prompt without a completion), or that the template
// refuses; an empty result is a DataError too.
std::vector<TokenizedExample> read_instruction_data(const std::vector<std::string>& files,
                                                    const tokenizer::Tokenizer& tokenizer, const chat::ChatTemplate* chat);


struct TokenizedSet {
  std::vector<TokenizedExample> examples;
  int64_t cut = 0;      // longer than a row: the end of the completion was cut
  int64_t dropped = 0;  // no trained id within the row (the prompt alone filled it)
};

// The examples that fit rows of seq_len positions (seq_len + 1 ids: inputs and the shifted
// targets), longer ones cut.
TokenizedSet fit_rows(std::vector<TokenizedExample> examples, int seq_len);

// The ids of an example before its last trained run (the prompt of its last completion or
// assistant turn), and that run's ids: what generation is given and should write.
struct LastTurn {
  std::vector<tokenizer::TokenId> prompt, completion;
};
LastTurn last_turn(const TokenizedExample& example);

// Writes example row b of a batch: inputs ids[0..n-1], targets ids[1..n] where trained, padding.
void fill_row(const TokenizedExample& example, int32_t pad_id, int T, int32_t* tokens, int32_t* targets);

// The training stream: examples in a new random order every epoch (a pure function of the seed
// and the epoch), B per micro-batch; the cursor counts examples drawn. Validation: the val
// examples in file order, the last batch filled with empty rows.
// packed_row_length 0: one example a row (padding). Otherwise (data.packing) rows of that many
// positions, the drawn examples packed into them in order (packing.hpp): a micro-batch takes as
// many examples as its B rows hold, and an example that does not fit in the last row begins the
// next micro-batch. Validation rows are packed once, in file order.
class InstructionBatches final : public train::BatchSource {
 public:
  InstructionBatches(TokenizedSet train, TokenizedSet val, int32_t pad_id, uint64_t vocab_size, uint64_t seed,
                     int packed_row_length = 0);

  void next(train::Batch& batch, int B, int T) override;
  uint64_t cursor() const override { return cursor_; }
  void set_cursor(uint64_t cursor) override { cursor_ = cursor; }
  bool has_validation() const override { return !val_.examples.empty(); }
  void validation_batch(int64_t i, train::Batch& batch, int B, int T) const override;
  uint64_t vocab_size() const override { return vocab_size_; }

  size_t train_examples() const { return train_.examples.size(); }
  size_t val_examples() const { return val_.examples.size(); }
  // Rows an epoch of the training examples takes (packed in file order: an estimate for a
  // shuffled epoch), and the validation rows.
  size_t train_rows() const;
  size_t val_rows() const;

 private:
  const TokenizedExample& drawn(uint64_t k);
  void next_packed(train::Batch& batch, int B, int T);
  void check_row_length(int T) const;

  TokenizedSet train_, val_;
  int32_t pad_id_;
  uint64_t vocab_size_, seed_;
  uint64_t cursor_ = 0;
  uint64_t order_epoch_ = ~uint64_t(0);
  std::vector<uint32_t> order_;
  int packed_row_length_ = 0;
  std::vector<std::vector<uint32_t>> val_packed_;  // the validation examples of each packed row
};

}  // namespace dsk::finetune
