#include "finetune/instruction_data.hpp"

#include <algorithm>
#include <numeric>
#include <random>

#include "core/error.hpp"
#include "finetune/data/examples.hpp"
#include "finetune/data/jsonl_lines.hpp"
#include "finetune/packing.hpp"

namespace dsk::finetune {

std::vector<TokenizedExample> read_instruction_data(const std::vector<std::string>& files,
                                                    const tokenizer::Tokenizer& tokenizer, const chat::ChatTemplate* chat) {
  if (files.empty()) throw UsageError("no instruction data files given");
  std::vector<TokenizedExample> examples;
  JsonlLines lines(files);
  for (JsonlLine line; lines.next(line);) {
    if (line.bytes.find_first_not_of(" \t\r") == std::string::npos) continue;
    const Example example = parse_example(line.bytes, line.where());
    if (!has_completion(example))
      throw DataError(str(line.where(), ": nothing to train on (a prompt without a completion, or no assistant message)"));
    MaskedTokens masked;
    try {
      masked = tokenize_segments(example_segments(example, chat), tokenizer, example.kind);
    } catch (const DataError& e) {
      throw DataError(str(line.where(), ": ", e.what()));
    }
    examples.push_back({std::vector<int32_t>(masked.ids.begin(), masked.ids.end()), std::move(masked.trained)});
  }
  if (examples.empty()) throw DataError("the instruction data holds no examples");
  return examples;
}

TokenizedSet fit_rows(std::vector<TokenizedExample> examples, int seq_len) {
  TokenizedSet set;
  const size_t max_ids = size_t(seq_len) + 1;
  for (TokenizedExample& t : examples) {
    const bool longer = t.ids.size() > max_ids;
    if (longer) {
      t.ids.resize(max_ids);
      t.trained.resize(max_ids);
    }
    // Something to learn: a trained id that is a target (not the row's first id).
    if (std::find(t.trained.begin() + std::min<ptrdiff_t>(1, ptrdiff_t(t.trained.size())), t.trained.end(), 1) ==
        t.trained.end()) {
      set.dropped++;
      continue;
    }
    set.cut += longer ? 1 : 0;
    set.examples.push_back(std::move(t));
  }
  return set;
}

LastTurn last_turn(const TokenizedExample& example) {
  size_t end = example.ids.size();
  while (end > 0 && !example.trained[end - 1]) --end;
  size_t begin = end;
  while (begin > 0 && example.trained[begin - 1]) --begin;
  LastTurn turn;
  turn.prompt.assign(example.ids.begin(), example.ids.begin() + ptrdiff_t(begin));
  turn.completion.assign(example.ids.begin() + ptrdiff_t(begin), example.ids.begin() + ptrdiff_t(end));
  return turn;
}

void fill_row(const TokenizedExample& example, int32_t pad_id, int T, int32_t* tokens, int32_t* targets) {
  const int n = std::min<int>(T, int(example.ids.size()) - 1);  // positions with a next token
  for (int t = 0; t < T; ++t) {
    tokens[t] = t < int(example.ids.size()) ? example.ids[t] : pad_id;
    targets[t] = t < n && example.trained[size_t(t) + 1] ? example.ids[t + 1] : -100;
  }
}

InstructionBatches::InstructionBatches(TokenizedSet train, TokenizedSet val, int32_t pad_id, uint64_t vocab_size,
                                       uint64_t seed, int packed_row_length)
    : train_(std::move(train)),
      val_(std::move(val)),
      pad_id_(pad_id),
      vocab_size_(vocab_size),
      seed_(seed),
      packed_row_length_(packed_row_length) {
  if (train_.examples.empty())
    throw DataError("no training example fits: every prompt fills data.seq_len tokens (raise data.seq_len)");
  if (packed_row_length_ > 0) val_packed_ = pack_in_order(val_.examples, packed_row_length_);
}

size_t InstructionBatches::train_rows() const {
  return packed_row_length_ > 0 ? pack_in_order(train_.examples, packed_row_length_).size() : train_.examples.size();
}

size_t InstructionBatches::val_rows() const { return packed_row_length_ > 0 ? val_packed_.size() : val_.examples.size(); }

void InstructionBatches::check_row_length(int T) const {
  if (T != packed_row_length_)
    throw InternalError(str("packed instruction rows of ", packed_row_length_, " positions asked for as ", T));
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
  if (packed_row_length_ > 0) return next_packed(batch, B, T);
  batch.tokens.resize(size_t(B) * T);
  batch.targets.resize(size_t(B) * T);
  batch.segment_start.clear();
  for (int b = 0; b < B; ++b)
    fill_row(drawn(cursor_++), pad_id_, T, batch.tokens.data() + size_t(b) * T, batch.targets.data() + size_t(b) * T);
}

// Rows filled in order from the cursor; the example that does not fit stays for the next row
// (drawn() is a pure function of the cursor, so looking at it draws nothing).
void InstructionBatches::next_packed(train::Batch& batch, int B, int T) {
  check_row_length(T);
  batch.tokens.resize(size_t(B) * T);
  batch.targets.resize(size_t(B) * T);
  batch.segment_start.resize(size_t(B) * T);
  for (int b = 0; b < B; ++b) {
    int32_t* tokens = batch.tokens.data() + size_t(b) * T;
    int32_t* targets = batch.targets.data() + size_t(b) * T;
    int32_t* segment_start = batch.segment_start.data() + size_t(b) * T;
    int used = 0;
    while (used < T) {
      const TokenizedExample& example = drawn(cursor_);
      if (used + packed_length(example) > T) break;  // never in an empty row: fit_rows cut it to T + 1 ids
      place_example(example, used, tokens, targets, segment_start);
      used += packed_length(example);
      cursor_++;
    }
    pad_row(used, T, pad_id_, tokens, targets, segment_start);
  }
}

void InstructionBatches::validation_batch(int64_t i, train::Batch& batch, int B, int T) const {
  batch.tokens.assign(size_t(B) * T, pad_id_);
  batch.targets.assign(size_t(B) * T, -100);
  batch.segment_start.clear();
  if (packed_row_length_ > 0) {
    check_row_length(T);
    batch.segment_start.assign(size_t(B) * T, 0);  // rows past the last: one segment of padding
    for (int b = 0; b < B && uint64_t(i) * B + b < val_packed_.size(); ++b) {
      int32_t* tokens = batch.tokens.data() + size_t(b) * T;
      int32_t* targets = batch.targets.data() + size_t(b) * T;
      int32_t* segment_start = batch.segment_start.data() + size_t(b) * T;
      int used = 0;
      for (uint32_t k : val_packed_[size_t(i) * B + b]) {
        place_example(val_.examples[k], used, tokens, targets, segment_start);
        used += packed_length(val_.examples[k]);
      }
      pad_row(used, T, pad_id_, tokens, targets, segment_start);
    }
    return;
  }
  for (int b = 0; b < B; ++b) {
    const uint64_t k = uint64_t(i) * B + b;
    if (k >= val_.examples.size()) break;
    fill_row(val_.examples[k], pad_id_, T, batch.tokens.data() + size_t(b) * T, batch.targets.data() + size_t(b) * T);
  }
}

}  // namespace dsk::finetune
