// `dsk-finetune select`: active learning by uncertainty sampling. Each example is scored by how
// unsure the model is, and the top N are written (JSONL, the record with a "score" added), most
// uncertain first:
//
//   entropy  mean predictive entropy (nats) over the scored positions; higher is more uncertain
//   margin   mean of p(top-1) - p(top-2) over the scored positions; lower is more uncertain
//
// Scored positions: for an example with a target (a completion, assistant messages, text), the
// positions that predict its trained tokens (the completion's tokens, as in loss masking); for
// an unlabelled one (a prompt alone, a conversation ending in a user turn) the single next-token
// position after the prompt (a conversation is rendered with the generation prompt).
// Memory holds the N best records only (a heap), so any number of candidates streams through.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "chat/chat_template.hpp"
#include "finetune/data/command.hpp"
#include "finetune/data/examples.hpp"
#include "model/model.hpp"
#include "tokenizer/tokenizer.hpp"

namespace dsk::finetune {

enum class UncertaintyMeasure { entropy, margin };
UncertaintyMeasure parse_uncertainty_measure(const std::string& name);  // UsageError when unknown

struct Uncertainty {
  double score = 0;
  size_t positions = 0;        // how many positions were averaged
  bool over_completion = false;  // false: the next-token position after the prompt
};

class UncertaintyScorer {
 public:
  // max_tokens: longer examples keep their last max_tokens tokens (0: no limit).
  UncertaintyScorer(model::Model& model, const tokenizer::Tokenizer& tokenizer, const chat::ChatTemplate* chat,
                    UncertaintyMeasure measure, size_t max_tokens = 0);
  Uncertainty score(const Example& example) const;
  // Whether a is more uncertain than b under the measure.
  bool more_uncertain(double a, double b) const;

 private:
  model::Model& model_;
  const tokenizer::Tokenizer& tokenizer_;
  const chat::ChatTemplate* chat_;
  UncertaintyMeasure measure_;
  size_t max_tokens_;
};

struct SelectedExample {
  std::string line;  // the record with "score" added
  double score = 0;
  uint64_t order = 0;  // input position, which breaks ties (earlier first)
};

struct SelectionResult {
  std::vector<SelectedExample> selected;  // most uncertain first
  uint64_t scored = 0;
};

// Scores every record of the inputs (JSONL; blank lines skipped; a bad record is a DataError
// naming file:line) and keeps the `top` most uncertain.
SelectionResult select_most_uncertain(const std::vector<std::string>& inputs, const UncertaintyScorer& scorer, size_t top);

// Registers `select`: dsk-finetune select --model DIR [--top N] [--measure entropy|margin]
// [--max-tokens N] [--device D] [--precision P] [-o FILE] [FILE...|-]
void add_select_command(CLI::App& app);

}  // namespace dsk::finetune
