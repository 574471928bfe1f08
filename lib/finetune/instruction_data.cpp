#include "finetune/instruction_data.hpp"

#include <algorithm>
#include <fstream>
#include <numeric>
#include <random>

#include "core/error.hpp"

namespace dsk::finetune {

using nlohmann::json;

std::optional<Example> prompt_completion(const json& record) {
  if (!record.contains("prompt") && !record.contains("completion")) return std::nullopt;
  for (const char* key : {"prompt", "completion"})
    if (!record.contains(key) || !record[key].is_string())
      throw DataError(str("\"", key, "\" must be a string in a prompt/completion record"));
  return Example{record["prompt"].get<std::string>(), record["completion"].get<std::string>()};
}

std::vector<Example> read_examples(const std::vector<std::string>& files, const std::vector<RecordRenderer>& renderers) {
  std::vector<Example> examples;
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw DataError(str(file, ": cannot open the instruction data"));
    std::string line;
    for (int64_t number = 1; std::getline(in, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = str(file, ":", number);
      json record;
      try {
        record = json::parse(line);
      } catch (const json::parse_error&) {
        throw DataError(str(where, ": not a JSON record"));
      }
      if (!record.is_object()) throw DataError(str(where, ": expected a JSON object"));
      std::optional<Example> example;
      try {
        for (const RecordRenderer& render : renderers)
          if ((example = render(record))) break;
      } catch (const DataError& e) {
        throw DataError(str(where, ": ", e.what()));
      }
      if (!example)
        throw DataError(str(where, record.contains("messages")
                                       ? ": chat records ({\"messages\": ...}) need a chat template, which this "
                                         "build does not render yet; write {\"prompt\", \"completion\"} records"
                                       : ": expected {\"prompt\": ..., \"completion\": ...}"));
      examples.push_back(std::move(*example));
    }
  }
  if (examples.empty()) throw DataError("the instruction data holds no examples");
  return examples;
}

TokenizedExample tokenize_example(const Example& example, const tokenizer::Tokenizer& tokenizer) {
  TokenizedExample out;
  if (tokenizer.add_bos_by_default() && tokenizer.bos_id()) out.ids.push_back(int32_t(*tokenizer.bos_id()));
  for (uint32_t id : tokenizer.encode(example.prompt)) out.ids.push_back(int32_t(id));
  out.prompt_tokens = int32_t(out.ids.size());
  for (uint32_t id : tokenizer.encode(example.completion)) out.ids.push_back(int32_t(id));
  if (tokenizer.eos_id()) out.ids.push_back(int32_t(*tokenizer.eos_id()));
  return out;
}

TokenizedSet tokenize_examples(const std::vector<Example>& examples, const tokenizer::Tokenizer& tokenizer,
                               int seq_len) {
  TokenizedSet set;
  const size_t max_ids = size_t(seq_len) + 1;
  for (const Example& example : examples) {
    TokenizedExample t = tokenize_example(example, tokenizer);
    // Something to learn: the first completion id must still be a target (index <= seq_len).
    if (t.prompt_tokens == 0 || size_t(t.prompt_tokens) >= max_ids || t.ids.size() <= size_t(t.prompt_tokens)) {
      set.dropped++;
      continue;
    }
    if (t.ids.size() > max_ids) {
      t.ids.resize(max_ids);
      set.cut++;
    }
    set.examples.push_back(std::move(t));
  }
  return set;
}

void fill_row(const TokenizedExample& example, int32_t pad_id, int T, int32_t* tokens, int32_t* targets) {
  const int n = std::min<int>(T, int(example.ids.size()) - 1);  // positions with a next token
  for (int t = 0; t < T; ++t) {
    tokens[t] = t < int(example.ids.size()) ? example.ids[t] : pad_id;
    targets[t] = t < n && t + 1 >= example.prompt_tokens ? example.ids[t + 1] : -100;
  }
}

InstructionBatches::InstructionBatches(TokenizedSet train, TokenizedSet val, int32_t pad_id, uint64_t vocab_size,
                                       uint64_t seed)
    : train_(std::move(train)), val_(std::move(val)), pad_id_(pad_id), vocab_size_(vocab_size), seed_(seed) {
  if (train_.examples.empty())
    throw DataError("no training example fits: every prompt fills data.seq_len tokens (raise data.seq_len)");
}

const TokenizedExample& InstructionBatches::drawn(uint64_t k) {
  const uint64_t n = train_.examples.size(), epoch = k / n;
  if (epoch != order_epoch_) {
    order_.resize(n);
    std::iota(order_.begin(), order_.end(), 0u);
    std::mt19937_64 rng(seed_ ^ (0x9e3779b97f4a7c15ull * (epoch + 1)));
    for (uint64_t i = n - 1; i > 0; --i)  // Fisher-Yates with our own draws: the same order on every platform
      std::swap(order_[i], order_[rng() % (i + 1)]);
    order_epoch_ = epoch;
  }
  return train_.examples[order_[k % n]];
}

void InstructionBatches::next(train::Batch& batch, int B, int T) {
  batch.tokens.resize(size_t(B) * T);
  batch.targets.resize(size_t(B) * T);
  for (int b = 0; b < B; ++b)
    fill_row(drawn(cursor_++), pad_id_, T, batch.tokens.data() + size_t(b) * T, batch.targets.data() + size_t(b) * T);
}

void InstructionBatches::validation_batch(int64_t i, train::Batch& batch, int B, int T) const {
  batch.tokens.assign(size_t(B) * T, pad_id_);
  batch.targets.assign(size_t(B) * T, -100);
  for (int b = 0; b < B; ++b) {
    const uint64_t k = uint64_t(i) * B + b;
    if (k >= val_.examples.size()) break;
    fill_row(val_.examples[k], pad_id_, T, batch.tokens.data() + size_t(b) * T, batch.targets.data() + size_t(b) * T);
  }
}

}  // namespace dsk::finetune
