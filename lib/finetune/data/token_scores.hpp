// What a causal LM predicts at each position of a token sequence, for ranking examples by
// uncertainty (select.hpp) and scoring label continuations (classify.hpp). Model::logits runs on
// whichever backend the model was built on (tensor/device.hpp); the reductions below are on the
// host in double precision.
//
// Row t of logits [T, V] is the distribution of token t+1 given tokens 0..t.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "finetune/data/examples.hpp"
#include "model/model.hpp"

namespace dsk::finetune {

// log p for every token of a row of logits (a numerically stable log-softmax).
std::vector<double> log_softmax(std::span<const float> logits);
// Shannon entropy in nats of softmax(logits).
double predictive_entropy(std::span<const float> logits);
// p(top-1) - p(top-2) of softmax(logits): small means the model hesitates between two tokens.
double predictive_margin(std::span<const float> logits);

// Logits [T, V] of one sequence (T >= 1); DataError when a token is outside the model's
// vocabulary (a tokenizer that does not belong to the model).
std::vector<float> sequence_logits(model::Model& model, const std::vector<int32_t>& tokens);

// Sum of log p(continuation[i] | prefix, continuation[:i]) for each continuation, computed in one
// batched forward (sequences padded on the right, which a causal model never looks at).
// prefix must not be empty (the first continuation token needs a position to be predicted from).
std::vector<double> continuation_logprobs(model::Model& model, const std::vector<int32_t>& prefix,
                                          const std::vector<std::vector<int32_t>>& continuations);

// A model and its tokenizer from flags: the model's HF checkpoint directory, its tokenizer
// (the checkpoint's own when tokenizer_directory is empty), the backend ("auto", "cpu", "cuda")
// and precision ("auto", "bf16", "fp32"). UsageError when the directory is no checkpoint.
struct ScoringModel {
  std::unique_ptr<model::Model> model;
  TokenizerFiles files;
};
ScoringModel load_scoring_model(const std::string& model_directory, const std::string& tokenizer_directory,
                                const std::string& device, const std::string& precision);

}  // namespace dsk::finetune
