#include "finetune/data/select.hpp"

#include <algorithm>
#include <queue>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/record.hpp"
#include "core/units.hpp"
#include "finetune/data/jsonl_lines.hpp"
#include "finetune/data/token_scores.hpp"

namespace dsk::finetune {

UncertaintyMeasure parse_uncertainty_measure(const std::string& name) {
  if (name == "entropy") return UncertaintyMeasure::entropy;
  if (name == "margin") return UncertaintyMeasure::margin;
  throw UsageError("unknown uncertainty measure '" + name + "' (expected entropy or margin)");
}

UncertaintyScorer::UncertaintyScorer(model::Model& model, const tokenizer::Tokenizer& tokenizer, const chat::ChatTemplate* chat,
                                     UncertaintyMeasure measure, size_t max_tokens)
    : model_(model), tokenizer_(tokenizer), chat_(chat), measure_(measure), max_tokens_(max_tokens) {}

bool UncertaintyScorer::more_uncertain(double a, double b) const {
  return measure_ == UncertaintyMeasure::entropy ? a > b : a < b;
}

Uncertainty UncertaintyScorer::score(const Example& example) const {
  Uncertainty result;
  result.over_completion = has_completion(example);
  MaskedTokens tokens = tokenize_segments(example_segments(example, chat_, !result.over_completion), tokenizer_, example.kind);
  if (!result.over_completion) {
    tokens.trained.assign(tokens.ids.size(), 0);  // an unlabelled example: no EOS, only the next position counts
  }
  if (max_tokens_ > 0 && tokens.ids.size() > max_tokens_) {
    size_t drop = tokens.ids.size() - max_tokens_;
    tokens.ids.erase(tokens.ids.begin(), tokens.ids.begin() + long(drop));
    tokens.trained.erase(tokens.trained.begin(), tokens.trained.begin() + long(drop));
  }
  std::vector<int32_t> ids(tokens.ids.begin(), tokens.ids.end());
  if (ids.empty()) throw DataError("the example has no tokens to score");
  std::vector<float> logits = sequence_logits(model_, ids);
  const size_t V = size_t(model_.architecture().vocab);
  auto measure_row = [&](size_t row) {
    std::span<const float> r(logits.data() + row * V, V);
    return measure_ == UncertaintyMeasure::entropy ? predictive_entropy(r) : predictive_margin(r);
  };
  double sum = 0;
  if (result.over_completion) {
    for (size_t t = 1; t < ids.size(); ++t)
      if (tokens.trained[t]) {
        sum += measure_row(t - 1);
        ++result.positions;
      }
  }
  if (result.positions == 0) {  // unlabelled, or a completion cut away by max_tokens
    result.over_completion = false;
    sum = measure_row(ids.size() - 1);
    result.positions = 1;
  }
  result.score = sum / double(result.positions);
  return result;
}

SelectionResult select_most_uncertain(const std::vector<std::string>& inputs, const UncertaintyScorer& scorer, size_t top) {
  // A heap whose top is the least uncertain of those kept (the first to go).
  auto keeps_before = [&](const SelectedExample& a, const SelectedExample& b) {
    if (a.score != b.score) return scorer.more_uncertain(a.score, b.score);
    return a.order < b.order;
  };
  std::priority_queue<SelectedExample, std::vector<SelectedExample>, decltype(keeps_before)> kept(keeps_before);
  SelectionResult result;
  JsonlLines lines(inputs);
  JsonlLine line;
  while (lines.next(line)) {
    if (line.bytes.find_first_not_of(" \t\r") == std::string::npos) continue;
    Example example = parse_example(line.bytes, line.where());
    Uncertainty u;
    try {
      u = scorer.score(example);
    } catch (const DataError& e) {
      throw DataError(line.where() + ": " + e.what());
    }
    ++result.scored;
    SelectedExample candidate{"", u.score, result.scored};
    if (top == 0) continue;
    if (kept.size() == top && !keeps_before(candidate, kept.top())) continue;
    nlohmann::ordered_json record = example.record;
    record["score"] = u.score;
    candidate.line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
    kept.push(std::move(candidate));
    if (kept.size() > top) kept.pop();
  }
  while (!kept.empty()) {
    result.selected.push_back(kept.top());
    kept.pop();
  }
  std::reverse(result.selected.begin(), result.selected.end());
  return result;
}

namespace {

class SelectCommand : public DataCommand {
 public:
  SelectCommand() : DataCommand("Pick the examples the model is least sure about (active learning)", "select") {
    add_option("inputs", inputs_, "Candidate JSONL files (plain or .zst); none or - reads stdin")->type_name("FILE");
    add_model_flags(model_);
    add_option("-n,--top", top_, "How many examples to keep")->type_name("N")->capture_default_str()->check(cli::numeric<uint64_t>(1));
    add_option("--measure", measure_, "entropy (mean predictive entropy) or margin (mean top-1 minus top-2 probability)")
        ->type_name("NAME")->capture_default_str()->check(CLI::IsMember({"entropy", "margin"}));
    add_option("--max-tokens", max_tokens_, "Score only the last N tokens of longer examples (0: no limit)")
        ->type_name("N")->capture_default_str()->check(cli::numeric<uint64_t>());
    add_option("-o,--output", output_, "Write the selected records here (default: stdout)")->type_name("FILE");
  }

  int run() override {
    apply_log_flags();
    ScoringModel loaded = load_scoring_model(model_.model, model_.tokenizer, model_.device, model_.precision);
    UncertaintyScorer scorer(*loaded.model, *loaded.files.tokenizer, loaded.files.chat.get(), parse_uncertainty_measure(measure_),
                             size_t(max_tokens_));
    SelectionResult result = select_most_uncertain(inputs_, scorer, size_t(top_));
    std::string text;
    for (const SelectedExample& s : result.selected) text += s.line + "\n";
    log_info("scored ", count_of(result.scored, "example"), " by ", measure_, "; kept ", result.selected.size());
    write_output(output_, text);
    if (output_.empty()) return 0;
    Record record("selection");
    record.set("path", output_).set("model", model_.model).set("measure", measure_).set("scored", result.scored)
        .set("selected", uint64_t(result.selected.size()));
    if (!result.selected.empty())
      record.set("top_score", result.selected.front().score).set("last_score", result.selected.back().score);
    record.print();
    return 0;
  }

 private:
  std::vector<std::string> inputs_;
  ModelFlags model_;
  std::string output_;
  uint64_t top_ = 100, max_tokens_ = 0;
  std::string measure_ = "entropy";
};

}  // namespace

void add_select_command(CLI::App& app) { app.add_subcommand(std::make_shared<SelectCommand>()); }

}  // namespace dsk::finetune
