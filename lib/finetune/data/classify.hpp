// Classification as generation: the answer is whichever label string the model would most
// likely write after the prompt. Each label's score is the sum of the log-probabilities of its
// tokens as the continuation of the prompt (the prompt's own tokens do not count), computed for
// all labels in one batched forward; the prediction is the argmax over the label set only, so
// the model can never answer outside it.
//
// The prompt is a {"prompt": ...} record's prompt (a completion, if any, is ignored), or a
// {"messages": ...} conversation rendered with the generation prompt; the gold label, when the
// record has one, is a string field (default "label") that must be one of the labels.
// Labels are encoded as given: " yes" and "yes" are different continuations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "chat/chat_template.hpp"
#include "finetune/data/classification_metrics.hpp"
#include "finetune/data/command.hpp"
#include "finetune/data/examples.hpp"
#include "model/model.hpp"
#include "tokenizer/tokenizer.hpp"

namespace dsk::finetune {

struct LabelScores {
  std::vector<double> logprobs;  // per label, in the order of the label set
  size_t predicted = 0;          // argmax (the first label on a tie)
};

class LabelScorer {
 public:
  // UsageError for fewer than two labels, an empty label, a repeated one, or one that encodes
  // to no tokens.
  LabelScorer(model::Model& model, const tokenizer::Tokenizer& tokenizer, const chat::ChatTemplate* chat,
              std::vector<std::string> labels);
  LabelScores score(const Example& example) const;
  const std::vector<std::string>& labels() const { return labels_; }
  // The index of a label; nullopt when it is not one.
  std::optional<size_t> index_of(const std::string& label) const;

 private:
  model::Model& model_;
  const tokenizer::Tokenizer& tokenizer_;
  const chat::ChatTemplate* chat_;
  std::vector<std::string> labels_;
  std::vector<std::vector<int32_t>> label_tokens_;

  std::vector<int32_t> prompt_tokens(const Example& example) const;
};

struct ClassificationRun {
  ClassificationMetrics metrics;  // over the records that have a gold label
  uint64_t predicted = 0;         // all records
  uint64_t without_gold = 0;
};

// Classifies every record of the inputs; `on_prediction` receives each record with
// "prediction" and "label_logprobs" added (JSON text). DataError naming file:line for a bad
// record or a gold label outside the label set.
ClassificationRun classify_jsonl(const std::vector<std::string>& inputs, const LabelScorer& scorer, const std::string& label_field,
                                 const std::function<void(const std::string&)>& on_prediction);

// Registers `classify`: dsk-finetune classify --model DIR --labels A,B[,...] [--label-field NAME]
// [--metrics FILE] [-o FILE] [--device D] [--precision P] [FILE...|-]
void add_classify_command(CLI::App& app);

}  // namespace dsk::finetune
