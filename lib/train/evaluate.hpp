// Validation loss: the mean next-token cross-entropy of a model over fixed windows of token
// shards, on whichever backend the model lives. dsk-train evaluates with it every eval.every steps
// and `dsk-train eval CHECKPOINT --data SHARDS` runs it alone, so the two give the same number for
// the same windows (same seq_len, micro-batch, batches and seed).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/model.hpp"
#include "train/token_windows.hpp"

namespace dsk::train {

struct EvalResult {
  double loss = 0;        // mean over the batches (natural log)
  double perplexity = 0;  // exp(loss)
  int64_t tokens = 0;     // predicted tokens counted
  int64_t batches = 0;
};

// Windows 0, 1, 2, ... of `windows` (seq_len + 1 tokens each, at positions drawn from the window
// index and the windows' seed) in `batches` micro-batches of B. The model's expert-load counts are
// reset afterwards (evaluation is not training traffic).
EvalResult evaluate_windows(model::Model& model, const TokenWindows& windows, int B, int T, int64_t batches);

struct Batch;
// The same over any loss of a micro-batch (a training objective's evaluate).
EvalResult evaluate_windows(const TokenWindows& windows, int B, int T, int64_t batches,
                            const std::function<double(const Batch&)>& loss);

// inputs and next-token targets of B windows of T + 1 tokens, as the model takes them ([B,T]).
struct Batch {
  std::vector<int32_t> tokens, targets;
  // Packed rows (dsk-finetune's data.packing): per position, where its example begins in its row
  // (model.hpp set_segment_starts). Empty: one sequence a row.
  std::vector<int32_t> segment_start;
  std::vector<uint32_t> window;
  int micro_in_step = 0;  // training: which of the step's grad_accum micro-batches (of all ranks') this is

  template <typename NextWindow>
  void fill(int B, int T, NextWindow next_window) {
    tokens.resize(size_t(B) * T);
    targets.resize(size_t(B) * T);
    for (int b = 0; b < B; ++b) {
      window.clear();
      next_window(window);
      for (int t = 0; t < T; ++t) {
        tokens[size_t(b) * T + t] = int32_t(window[t]);
        targets[size_t(b) * T + t] = int32_t(window[t + 1]);
      }
    }
  }
};

}  // namespace dsk::train
