#include "finetune/finetune_classify.hpp"

#include <set>

#include "core/error.hpp"
#include "core/progress.hpp"
#include "finetune/data/classify.hpp"
#include "finetune/data/examples.hpp"
#include "finetune/data/jsonl_lines.hpp"

namespace dsk::finetune {

std::string trimmed(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\r\n") - begin + 1);
}

namespace {

// The gold label's text, and the example reduced to its prompt (a conversation without its last
// message). DataError (the caller adds file:line) when the record has no gold label.
std::string split_gold(Example& example) {
  if (example.kind == ExampleKind::prompt_completion) {
    if (!example.completion) throw DataError("no completion: the gold label of a classification example");
    std::string gold = *example.completion;
    example.completion.reset();
    return gold;
  }
  if (example.kind == ExampleKind::messages) {
    chat::List messages = example.messages.as_list();
    const chat::Value* role = messages.empty() ? nullptr : messages.back().as_dict().find("role");
    const chat::Value* content = messages.empty() ? nullptr : messages.back().as_dict().find("content");
    if (!role || role->as_string() != "assistant" || !content || !content->is_string())
      throw DataError("the last message is not an assistant's text: the gold label of a classification example");
    std::string gold = content->as_string();
    messages.pop_back();
    example.messages = chat::Value(std::move(messages));
    return gold;
  }
  throw DataError("a {\"text\"} record has no prompt and label to classify");
}

size_t gold_index(const std::vector<std::string>& labels, const std::string& gold) {
  for (size_t i = 0; i < labels.size(); ++i)
    if (trimmed(labels[i]) == trimmed(gold)) return i;
  throw DataError(str("gold label '", gold, "' is not one of the labels"));
}

}  // namespace

ClassificationMetrics classify_test_set(model::Model& model, const tokenizer::Tokenizer& tokenizer,
                                        const chat::ChatTemplate* chat, const std::string& file,
                                        const std::vector<std::string>& labels, int64_t limit) {
  const LabelScorer scorer(model, tokenizer, chat, labels);
  std::set<std::string> distinct;
  for (const std::string& label : labels)
    if (!distinct.insert(trimmed(label)).second)
      throw UsageError(str("labels '", label, "' and another are the same without surrounding whitespace"));
  ConfusionCounter counter(labels);
  Progress progress("classify", limit > 0 ? uint64_t(limit) : 0, "examples");
  JsonlLines lines({file});
  int64_t seen = 0;
  for (JsonlLine line; (limit <= 0 || seen < limit) && lines.next(line);) {
    if (line.bytes.find_first_not_of(" \t\r") == std::string::npos) continue;
    Example example = parse_example(line.bytes, line.where());
    try {
      const size_t gold = gold_index(labels, split_gold(example));
      counter.add(gold, scorer.score(example).predicted);
    } catch (const DataError& e) {
      throw DataError(str(line.where(), ": ", e.what()));
    }
    seen++;
    progress.add(1);
  }
  progress.finish();
  if (seen == 0) throw DataError(str(file, ": no examples to classify"));
  return counter.metrics();
}

}  // namespace dsk::finetune
