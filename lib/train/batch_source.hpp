// Where the training loop (trainer.hpp) gets its micro-batches. dsk-train's source is token
// windows of shards (token_window_source: data.train / data.val, token_windows.hpp); dsk-finetune's
// is examples of instruction data, padded rows whose targets are -100 where nothing is learned.
// The whole position in the training stream is one number, the cursor, saved with checkpoints:
// restoring it continues with the very batches an uninterrupted run would have seen.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "core/config.hpp"
#include "train/checkpoint.hpp"
#include "train/evaluate.hpp"

namespace dsk::train {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The next training micro-batch: B rows of T inputs and next-token targets; advances the cursor.
  virtual void next(Batch& batch, int B, int T) = 0;
  virtual uint64_t cursor() const = 0;
  virtual void set_cursor(uint64_t cursor) = 0;
  // Validation micro-batch i, the same at every evaluation (only when has_validation()).
  virtual bool has_validation() const = 0;
  virtual void validation_batch(int64_t i, Batch& batch, int B, int T) const = 0;
  // The vocabulary the data was tokenized with (checked against the model's), 0 when unknown.
  virtual uint64_t vocab_size() const = 0;
  // What checkpoints carry about the data: the tokenizer and the BOS/EOS ids.
  virtual void describe(CheckpointExtras& extras) const { (void)extras; }
};

using BatchSourceFactory = std::function<std::unique_ptr<BatchSource>(const Config&)>;

// dsk-train's source: windows of seq_len + 1 tokens of data.train's shards, validation windows of
// data.val's (or the train directories' val split; none: a warning, and no evaluation).
std::unique_ptr<BatchSource> token_window_source(const Config& config);

}  // namespace dsk::train
