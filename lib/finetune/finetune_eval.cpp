#include "finetune/finetune_eval.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/error.hpp"
#include "core/progress.hpp"
#include "finetune/finetune_classify.hpp"
#include "model/generate.hpp"

namespace dsk::finetune {
namespace {

using Clock = std::chrono::steady_clock;

double elapsed_ms(Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
}

// Token-weighted mean loss over the completions, B rows of T positions at a time.
void add_loss(model::Model& model, const tokenizer::Tokenizer& tokenizer, const std::vector<TokenizedExample>& examples,
              const EvalSettings& settings, EvalReport& report) {
  const TokenizedSet set = fit_rows(examples, settings.seq_len);
  const int B = settings.batch, T = settings.seq_len;
  const int32_t pad = tokenizer.eos_id() ? int32_t(*tokenizer.eos_id()) : 0;
  std::vector<int32_t> tokens(size_t(B) * T), targets(size_t(B) * T);
  double weighted = 0;
  for (size_t first = 0; first < set.examples.size(); first += size_t(B)) {
    std::fill(tokens.begin(), tokens.end(), pad);
    std::fill(targets.begin(), targets.end(), -100);
    for (int b = 0; b < B && first + size_t(b) < set.examples.size(); ++b)
      fill_row(set.examples[first + size_t(b)], pad, T, tokens.data() + size_t(b) * T, targets.data() + size_t(b) * T);
    const int64_t counted = std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t != -100; });
    weighted += double(model.forward(tokens.data(), targets.data(), B, T)) * double(counted);
    report.loss_tokens += counted;
  }
  report.loss = report.loss_tokens > 0 ? weighted / double(report.loss_tokens) : 0;
  report.perplexity = std::exp(report.loss);
}

}  // namespace

LatencySummary summarize_latency(std::vector<double> ms) {
  LatencySummary s;
  s.samples = int64_t(ms.size());
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  auto rank = [&](double q) { return ms[size_t(std::ceil(q * double(ms.size()))) - 1]; };
  s.p50_ms = rank(0.5);
  s.p95_ms = rank(0.95);
  double total = 0;
  for (double v : ms) total += v;
  s.mean_ms = total / double(ms.size());
  return s;
}

EvalReport evaluate_examples(model::Model& model, const tokenizer::Tokenizer& tokenizer,
                             const std::vector<TokenizedExample>& all, const EvalSettings& settings) {
  std::vector<TokenizedExample> examples = all;
  if (settings.limit > 0 && int64_t(examples.size()) > settings.limit) examples.resize(size_t(settings.limit));
  EvalReport report;
  report.examples = int64_t(examples.size());
  report.device = model.ops().describe();
  add_loss(model, tokenizer, examples, settings, report);

  const int vocab = model.architecture().vocab;
  const model::SamplingSettings greedy{0.0f, 0, 1.0f, int(std::min<size_t>(tokenizer.vocab_size(), size_t(vocab)))};
  std::mt19937_64 unused_rng(0);
  std::vector<double> first_token_ms, per_token_ms;
  int64_t matches = 0, prompted = 0;
  Progress progress("eval", uint64_t(examples.size()), "examples");
  for (const TokenizedExample& example : examples) {
    const LastTurn turn = last_turn(example);
    progress.add(1);
    if (turn.prompt.empty()) continue;  // a {"text"} record: nothing to continue
    prompted++;
    const std::vector<int32_t> prompt(turn.prompt.begin(), turn.prompt.end());
    model::KvCache cache = model.new_kv_cache(1, int(prompt.size()) + settings.max_new_tokens);
    std::vector<uint32_t> generated;
    auto start = Clock::now();
    std::vector<float> logits = model.forward_cached(cache, prompt.data(), 1, int(prompt.size()));
    for (int i = 0; i < settings.max_new_tokens; ++i) {
      const uint32_t next = model::sample_token(logits, greedy, unused_rng);  // only the tokenizer's ids
      (i == 0 ? first_token_ms : per_token_ms).push_back(elapsed_ms(start));
      if (tokenizer.eos_id() && next == *tokenizer.eos_id()) break;
      generated.push_back(next);
      if (i + 1 == settings.max_new_tokens) break;
      start = Clock::now();
      const int32_t input = int32_t(next);
      logits = model.forward_cached(cache, &input, 1, 1);
    }
    report.generated_tokens += int64_t(generated.size());
    if (trimmed(tokenizer.decode(generated, true)) == trimmed(tokenizer.decode(turn.completion, true))) matches++;
  }
  progress.finish();
  report.exact_match = prompted == 0 ? 0 : double(matches) / double(prompted);
  report.first_token = summarize_latency(std::move(first_token_ms));
  report.per_token = summarize_latency(std::move(per_token_ms));
  return report;
}

nlohmann::json EvalReport::to_json() const {
  auto latency = [](const LatencySummary& s) {
    return nlohmann::json{{"p50_ms", s.p50_ms}, {"p95_ms", s.p95_ms}, {"mean_ms", s.mean_ms}, {"samples", s.samples}};
  };
  nlohmann::json json = {
      {"examples", examples},         {"loss", loss},
      {"perplexity", perplexity},     {"loss_tokens", loss_tokens},
      {"exact_match", exact_match},   {"generated_tokens", generated_tokens},
      {"device", device},             {"latency", {{"first_token", latency(first_token)}, {"per_token", latency(per_token)}}}};
  if (classification) json["classification"] = nlohmann::json::parse(classification->to_json().dump());
  return json;
}

std::string EvalReport::table() const {
  char text[1024];
  std::snprintf(text, sizeof text,
                "%-22s %s\n%-22s %lld\n%-22s %.4f (perplexity %.3f, %lld tokens)\n%-22s %.4f\n"
                "%-22s %8s %8s %8s\n%-22s %8.2f %8.2f %8.2f\n%-22s %8.2f %8.2f %8.2f\n",
                "device", device.c_str(), "examples", static_cast<long long>(examples), "loss", loss, perplexity,
                static_cast<long long>(loss_tokens), "exact match", exact_match, "latency (ms)", "p50", "p95", "mean",
                "  time to first token", first_token.p50_ms, first_token.p95_ms, first_token.mean_ms, "  per token",
                per_token.p50_ms, per_token.p95_ms, per_token.mean_ms);
  if (!classification) return text;
  return std::string(text) + "classification\n" + classification->table();
}

}  // namespace dsk::finetune
