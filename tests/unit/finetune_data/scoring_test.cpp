// Scoring with a model: label continuations (known by construction on a model whose logits are
// all zero, and compared with a direct Model::logits computation on a random one), predictive
// entropy and margin, uncertainty selection, and the select/classify subcommands end to end on a
// tiny checkpoint written here.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "../model/tiny_models.hpp"
#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "finetune/data/classify.hpp"
#include "finetune/data/select.hpp"
#include "finetune/data/token_scores.hpp"
#include "test_files.hpp"

using namespace dsk;
using namespace dsk::finetune;
using dsk::finetune::testing::kTinyTokenizer;
using dsk::finetune::testing::ScratchDirectory;

namespace {

model::Architecture tiny_with_vocab(int vocab) {
  model::Architecture a = model::testing::tiny_llama();
  a.vocab = vocab;
  return a;
}

double direct_logprob(model::Model& m, const std::vector<int32_t>& prefix, const std::vector<int32_t>& continuation) {
  std::vector<int32_t> all = prefix;
  all.insert(all.end(), continuation.begin(), continuation.end());
  std::vector<float> logits = m.logits(all.data(), 1, int(all.size()));
  const size_t V = size_t(m.architecture().vocab);
  double sum = 0;
  for (size_t i = 0; i < continuation.size(); ++i) {
    size_t row = prefix.size() + i - 1;
    std::span<const float> r(logits.data() + row * V, V);
    double top = *std::max_element(r.begin(), r.end()), z = 0;
    for (float x : r) z += std::exp(double(x) - top);
    sum += double(r[size_t(continuation[i])]) - top - std::log(z);
  }
  return sum;
}


}  // namespace

TEST_CASE("entropy and margin of known distributions") {
  std::vector<float> uniform(8, 0.5f);
  CHECK(predictive_entropy(uniform) == doctest::Approx(std::log(8.0)));
  CHECK(predictive_margin(uniform) == doctest::Approx(0.0));
  std::vector<float> quarter = {0.0f, float(std::log(3.0))};  // p = 1/4, 3/4
  CHECK(predictive_entropy(quarter) == doctest::Approx(-(0.25 * std::log(0.25) + 0.75 * std::log(0.75))));
  CHECK(predictive_margin(quarter) == doctest::Approx(0.5));
  std::vector<double> lp = log_softmax(quarter);
  CHECK(lp[1] == doctest::Approx(std::log(0.75)));
}

TEST_CASE("a continuation's log-probability: -k log V on a model with all-zero logits") {
  model::Model zero(tiny_with_vocab(32), 1, 0.0f);  // zero weights: every logit is 0
  std::vector<double> lp = continuation_logprobs(zero, {1, 2, 3}, {{4}, {5, 6, 7}, {8, 9}});
  CHECK(lp[0] == doctest::Approx(-std::log(32.0)));
  CHECK(lp[1] == doctest::Approx(-3 * std::log(32.0)));
  CHECK(lp[2] == doctest::Approx(-2 * std::log(32.0)));
  CHECK_THROWS_AS(continuation_logprobs(zero, {}, {{1}}), DataError);
  CHECK_THROWS_AS(continuation_logprobs(zero, {1}, {{40}}), DataError);  // outside the vocabulary
}

TEST_CASE("batched, padded continuation scores equal one-sequence Model::logits sums") {
  model::Model m(tiny_with_vocab(32), 11, 0.3f);
  std::vector<int32_t> prefix = {3, 14, 15, 9};
  std::vector<std::vector<int32_t>> continuations = {{2}, {6, 5, 3}, {31, 0}};
  std::vector<double> batched = continuation_logprobs(m, prefix, continuations);
  for (size_t i = 0; i < continuations.size(); ++i)
    CHECK(batched[i] == doctest::Approx(direct_logprob(m, prefix, continuations[i])).epsilon(1e-5));
}

TEST_CASE("LabelScorer predicts the argmax label of the text prompt, constrained to the label set") {
  auto tokenizer = tokenizer::Tokenizer::load(kTinyTokenizer);
  model::Model m(tiny_with_vocab(int(tokenizer.vocab_size())), 5, 0.3f);
  std::vector<std::string> labels = {" yes", " no", " maybe"};
  LabelScorer scorer(m, tokenizer, nullptr, labels);
  Example example = parse_example(R"({"prompt": "Is the sky blue?", "completion": "ignored"})", "t");
  LabelScores scores = scorer.score(example);
  std::vector<int32_t> prompt;
  if (tokenizer.add_bos_by_default() && tokenizer.bos_id()) prompt.push_back(int32_t(*tokenizer.bos_id()));
  for (auto id : tokenizer.encode("Is the sky blue?")) prompt.push_back(int32_t(id));
  size_t best = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    std::vector<int32_t> label;
    for (auto id : tokenizer.encode(labels[i])) label.push_back(int32_t(id));
    double expected = direct_logprob(m, prompt, label);
    CHECK(scores.logprobs[i] == doctest::Approx(expected).epsilon(1e-5));
    if (expected > direct_logprob(m, prompt, [&] {
          std::vector<int32_t> b;
          for (auto id : tokenizer.encode(labels[best])) b.push_back(int32_t(id));
          return b;
        }()))
      best = i;
  }
  CHECK(scores.predicted == best);
  CHECK_THROWS_AS(LabelScorer(m, tokenizer, nullptr, {"only"}), UsageError);
  CHECK_THROWS_AS(LabelScorer(m, tokenizer, nullptr, {"a", "a"}), UsageError);
  CHECK_THROWS_AS(scorer.score(parse_example(R"({"text": "no prompt"})", "t")), DataError);
}

TEST_CASE("uncertainty: completion positions when there is a target, the next position otherwise") {
  auto tokenizer = tokenizer::Tokenizer::load(kTinyTokenizer);
  model::Model zero(tiny_with_vocab(int(tokenizer.vocab_size())), 1, 0.0f);
  UncertaintyScorer entropy(zero, tokenizer, nullptr, UncertaintyMeasure::entropy);
  Uncertainty labelled = entropy.score(parse_example(R"({"prompt": "a b", "completion": " c d"})", "t"));
  size_t completion_tokens = tokenizer.encode(" c d").size() + (tokenizer.eos_id() ? 1 : 0);
  CHECK(labelled.over_completion);
  CHECK(labelled.positions == completion_tokens);
  CHECK(labelled.score == doctest::Approx(std::log(double(tokenizer.vocab_size()))));
  Uncertainty unlabelled = entropy.score(parse_example(R"({"prompt": "a b"})", "t"));
  CHECK(!unlabelled.over_completion);
  CHECK(unlabelled.positions == 1);
  UncertaintyScorer margin(zero, tokenizer, nullptr, UncertaintyMeasure::margin);
  CHECK(margin.score(parse_example(R"({"prompt": "a b"})", "t")).score == doctest::Approx(0.0));
  CHECK(entropy.more_uncertain(2.0, 1.0));
  CHECK(margin.more_uncertain(0.1, 0.2));
}

TEST_CASE("select keeps the N most uncertain, best first, ties in input order") {
  auto tokenizer = tokenizer::Tokenizer::load(kTinyTokenizer);
  model::Model m(tiny_with_vocab(int(tokenizer.vocab_size())), 9, 0.5f);
  UncertaintyScorer scorer(m, tokenizer, nullptr, UncertaintyMeasure::entropy);
  ScratchDirectory dir("select");
  std::vector<std::string> prompts = {"alpha", "bravo charlie", "delta", "echo foxtrot golf", "hotel", "india juliet"};
  std::string jsonl;
  std::vector<double> scores;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::string line = "{\"prompt\": \"" + prompts[i] + "\", \"id\": " + std::to_string(i) + "}";
    jsonl += line + "\n\n";  // blank lines are skipped
    scores.push_back(scorer.score(parse_example(line, "t")).score);
  }
  auto input = dir.write("pool.jsonl", jsonl);
  SelectionResult result = select_most_uncertain({input.string()}, scorer, 3);
  CHECK(result.scored == prompts.size());
  REQUIRE(result.selected.size() == 3);
  std::vector<double> sorted = scores;
  std::sort(sorted.rbegin(), sorted.rend());
  for (size_t i = 0; i < 3; ++i) {
    CHECK(result.selected[i].score == doctest::Approx(sorted[i]));
    nlohmann::json record = nlohmann::json::parse(result.selected[i].line);
    CHECK(record["score"].get<double>() == doctest::Approx(sorted[i]));
    CHECK(scores[record["id"].get<size_t>()] == doctest::Approx(sorted[i]));
  }
  model::Model zero(tiny_with_vocab(int(tokenizer.vocab_size())), 1, 0.0f);
  UncertaintyScorer flat(zero, tokenizer, nullptr, UncertaintyMeasure::entropy);
  SelectionResult ties = select_most_uncertain({input.string()}, flat, 2);
  CHECK(nlohmann::json::parse(ties.selected[0].line)["id"] == 0);
  CHECK(nlohmann::json::parse(ties.selected[1].line)["id"] == 1);
  auto bad = dir.write("bad.jsonl", "{\"prompt\": \"ok\"}\n{\"nothing\": 1}\n");
  CHECK_THROWS_WITH_AS(select_most_uncertain({bad.string()}, scorer, 1),
                       doctest::Contains("bad.jsonl:2: expected a field 'messages'"), DataError);
}

TEST_CASE("select and classify subcommands on a checkpoint written here") {
  ScratchDirectory dir("select-cli");
  auto tokenizer = tokenizer::Tokenizer::load(kTinyTokenizer);
  model::Model m(tiny_with_vocab(int(tokenizer.vocab_size())), 3, 0.5f);
  auto checkpoint = dir / "model";
  m.save_hf_checkpoint(checkpoint, "F32");
  std::filesystem::copy_file(kTinyTokenizer, checkpoint / "tokenizer.json");
  auto pool = dir.write("pool.jsonl", "{\"prompt\": \"one\"}\n{\"prompt\": \"two words\"}\n{\"prompt\": \"three more words\"}\n");
  auto picked = dir / "picked.jsonl";
  CHECK(testing::run_data_cli({"select", "-q", "--model", checkpoint.string(), "--top", "2", "--device", "cpu", "-o", picked.string(), pool.string()}) == 0);
  std::string text = read_file(picked);
  CHECK(std::count(text.begin(), text.end(), '\n') == 2);
  CHECK(text.find("\"score\":") != std::string::npos);
  CHECK(testing::run_data_cli({"select", "-q", "--model", (dir / "nothing").string(), pool.string()}) == 2);
  CHECK(testing::run_data_cli({"select", "-q", "--model", checkpoint.string(), "--measure", "vibes", pool.string()}) == 2);

  auto labelled = dir.write("labelled.jsonl",
                            "{\"prompt\": \"Is it? \", \"label\": \"yes\"}\n{\"prompt\": \"Or not? \", \"label\": \"no\"}\n"
                            "{\"prompt\": \"Unknown \"}\n");
  auto predictions = dir / "predictions.jsonl";
  auto metrics = dir / "metrics.json";
  CHECK(testing::run_data_cli({"classify", "-q", "-m", checkpoint.string(), "--labels", "yes,no", "--device", "cpu", "--metrics", metrics.string(),
                 "-o", predictions.string(), labelled.string()}) == 0);
  nlohmann::json report = nlohmann::json::parse(read_file(metrics));
  CHECK(report["examples"] == 2);
  CHECK(report["labels"] == nlohmann::json::parse(R"(["yes", "no"])"));
  std::string lines = read_file(predictions);
  CHECK(std::count(lines.begin(), lines.end(), '\n') == 3);
  CHECK(lines.find("\"label_logprobs\":{\"yes\":") != std::string::npos);
  auto wrong_gold = dir.write("wrong.jsonl", "{\"prompt\": \"x\", \"label\": \"perhaps\"}\n");
  CHECK(testing::run_data_cli({"classify", "-q", "-m", checkpoint.string(), "--labels", "yes,no", wrong_gold.string()}) == 3);
  CHECK(testing::run_data_cli({"classify", "-q", "-m", checkpoint.string(), "--labels", "yes", labelled.string()}) == 2);
}
