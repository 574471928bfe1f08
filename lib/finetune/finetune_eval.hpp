// `dsk-finetune eval`: a fine-tuned model (a frozen base with a LoRA adapter, or a merged
// checkpoint) on a test JSONL of the training format:
//   loss         mean cross-entropy over the completion tokens (and EOS), token-weighted
//   exact_match  share of examples whose greedy continuation of the prompt (until EOS or
//                max_new_tokens) equals the completion, both decoded without special tokens and
//                stripped of surrounding whitespace; for a conversation, the last assistant turn
//                after the rest; {"text"} records (no prompt) are not generated
//   latency      of that greedy generation, batch 1 on the device used: time to first token
//                (prefill, the first token's logits and choice) and per further token, p50/p95
// Classification tasks (eval --labels: accuracy, macro-F1, the confusion matrix) add their section
// (finetune_classify.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "finetune/data/classification_metrics.hpp"
#include "finetune/instruction_data.hpp"
#include "model/model.hpp"
#include "tokenizer/tokenizer.hpp"

namespace dsk::finetune {

struct EvalSettings {
  int seq_len = 512;          // rows of the loss pass (longer examples are cut)
  int batch = 8;              // rows per loss micro-batch
  int max_new_tokens = 64;    // generation budget per example
  int64_t limit = 0;          // > 0: only the first N examples
};

struct LatencySummary {
  double p50_ms = 0, p95_ms = 0, mean_ms = 0;
  int64_t samples = 0;
};

struct EvalReport {
  int64_t examples = 0, loss_tokens = 0, generated_tokens = 0;
  double loss = 0, perplexity = 0, exact_match = 0;
  LatencySummary first_token, per_token;
  std::string device;
  std::optional<ClassificationMetrics> classification;  // with a label set

  nlohmann::json to_json() const;
  std::string table() const;  // for people (stderr)
};

EvalReport evaluate_examples(model::Model& model, const tokenizer::Tokenizer& tokenizer,
                             const std::vector<TokenizedExample>& examples, const EvalSettings& settings);

// p50 / p95 / mean of samples in milliseconds (nearest rank).
LatencySummary summarize_latency(std::vector<double> milliseconds);

}  // namespace dsk::finetune
