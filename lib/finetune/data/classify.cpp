#include "finetune/data/classify.hpp"

#include <cstdio>
#include <set>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/record.hpp"
#include "core/units.hpp"
#include "finetune/data/jsonl_lines.hpp"
#include "finetune/data/token_scores.hpp"

namespace dsk::finetune {

LabelScorer::LabelScorer(model::Model& model, const tokenizer::Tokenizer& tokenizer, const chat::ChatTemplate* chat,
                         std::vector<std::string> labels)
    : model_(model), tokenizer_(tokenizer), chat_(chat), labels_(std::move(labels)) {
  if (labels_.size() < 2) throw UsageError(str("classification needs at least two labels, got ", labels_.size()));
  std::set<std::string> seen;
  for (const std::string& label : labels_) {
    if (label.empty()) throw UsageError("a label is empty");
    if (!seen.insert(label).second) throw UsageError("label '" + label + "' is given twice");
    std::vector<tokenizer::TokenId> ids = tokenizer_.encode(label);
    if (ids.empty()) throw UsageError("label '" + label + "' encodes to no tokens");
    label_tokens_.emplace_back(ids.begin(), ids.end());
  }
}

std::optional<size_t> LabelScorer::index_of(const std::string& label) const {
  for (size_t i = 0; i < labels_.size(); ++i)
    if (labels_[i] == label) return i;
  return std::nullopt;
}

std::vector<int32_t> LabelScorer::prompt_tokens(const Example& example) const {
  if (example.kind == ExampleKind::text)
    throw DataError("a {\"text\"} record has no prompt to classify (use {\"prompt\"} or {\"messages\"})");
  Example prompt_only = example;
  prompt_only.completion.reset();
  MaskedTokens tokens = tokenize_segments(example_segments(prompt_only, chat_, true), tokenizer_, example.kind);
  if (tokens.ids.empty()) throw DataError("the prompt is empty and the tokenizer adds no BOS: nothing to continue from");
  return {tokens.ids.begin(), tokens.ids.end()};
}

LabelScores LabelScorer::score(const Example& example) const {
  LabelScores scores;
  scores.logprobs = continuation_logprobs(model_, prompt_tokens(example), label_tokens_);
  for (size_t i = 1; i < scores.logprobs.size(); ++i)
    if (scores.logprobs[i] > scores.logprobs[scores.predicted]) scores.predicted = i;
  return scores;
}

ClassificationRun classify_jsonl(const std::vector<std::string>& inputs, const LabelScorer& scorer, const std::string& label_field,
                                 const std::function<void(const std::string&)>& on_prediction) {
  ConfusionCounter counter(scorer.labels());
  ClassificationRun run;
  JsonlLines lines(inputs);
  JsonlLine line;
  while (lines.next(line)) {
    if (line.bytes.find_first_not_of(" \t\r") == std::string::npos) continue;
    Example example = parse_example(line.bytes, line.where());
    std::optional<size_t> gold;
    if (example.record.contains(label_field) && !example.record[label_field].is_null()) {
      const auto& value = example.record[label_field];
      if (!value.is_string()) throw DataError(str(line.where(), ": field '", label_field, "': expected a string"));
      gold = scorer.index_of(value.get<std::string>());
      if (!gold) throw DataError(str(line.where(), ": gold label '", value.get<std::string>(), "' is not one of the labels"));
    }
    LabelScores scores;
    try {
      scores = scorer.score(example);
    } catch (const DataError& e) {
      throw DataError(line.where() + ": " + e.what());
    }
    ++run.predicted;
    if (gold) counter.add(*gold, scores.predicted);
    else ++run.without_gold;
    nlohmann::ordered_json record = example.record;
    record["prediction"] = scorer.labels()[scores.predicted];
    nlohmann::ordered_json logprobs = nlohmann::ordered_json::object();
    for (size_t i = 0; i < scores.logprobs.size(); ++i) logprobs[scorer.labels()[i]] = scores.logprobs[i];
    record["label_logprobs"] = logprobs;
    on_prediction(record.dump());
  }
  run.metrics = counter.metrics();
  return run;
}

namespace {

class ClassifyCommand : public DataCommand {
 public:
  ClassifyCommand() : DataCommand("Classify prompts by scoring each label as the model's continuation", "classify") {
    add_option("inputs", inputs_, "JSONL files of {\"prompt\"} or {\"messages\"} records; none or - reads stdin")->type_name("FILE");
    add_model_flags(model_);
    add_option("-l,--labels", labels_, "The label set, comma-separated or repeated")->type_name("LABEL")->delimiter(',')->allow_extra_args(false)->required();
    add_option("--label-field", label_field_, "Field holding the gold label")->type_name("NAME")->capture_default_str();
    add_option("--metrics", metrics_, "Write accuracy, macro-F1, per-label scores and the confusion matrix as JSON")->type_name("FILE");
    add_option("-o,--output", output_, "Write each record with its prediction and label log-probabilities (default: stdout)")
        ->type_name("FILE");
  }

  int run() override {
    apply_log_flags();
    ScoringModel loaded = load_scoring_model(model_.model, model_.tokenizer, model_.device, model_.precision);
    LabelScorer scorer(*loaded.model, *loaded.files.tokenizer, loaded.files.chat.get(), labels_);
    std::string predictions;
    ClassificationRun run = classify_jsonl(inputs_, scorer, label_field_, [&](const std::string& line) {
      if (output_.empty()) {
        std::string out = line + "\n";
        if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) throw ResourceError("cannot write to stdout");
      } else {
        predictions += line + "\n";
      }
    });
    std::fflush(stdout);
    const ClassificationMetrics& m = run.metrics;
    if (m.total > 0 && log_enabled(LogLevel::info)) std::fputs(m.table().c_str(), stderr);
    log_info("classified ", count_of(run.predicted, "record"), " (", run.without_gold, " without a gold label)");
    if (!metrics_.empty()) write_file_atomic(metrics_, m.to_json().dump(2) + "\n");
    if (output_.empty()) return 0;
    write_output(output_, predictions);
    Record record("classification");
    record.set("path", output_).set("model", model_.model).set("records", run.predicted).set("examples", m.total)
        .set("accuracy", m.accuracy).set("macro_f1", m.macro_f1);
    record.print();
    return 0;
  }

 private:
  std::vector<std::string> inputs_, labels_;
  ModelFlags model_;
  std::string metrics_, output_, label_field_ = "label";
};

}  // namespace

void add_classify_command(CLI::App& app) { app.add_subcommand(std::make_shared<ClassifyCommand>()); }

}  // namespace dsk::finetune
