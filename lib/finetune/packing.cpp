#include "finetune/packing.hpp"

namespace dsk::finetune {

int packed_length(const TokenizedExample& example) { return int(example.ids.size()) - 1; }

void place_example(const TokenizedExample& example, int start, int32_t* tokens, int32_t* targets,
                   int32_t* segment_start) {
  const int length = packed_length(example);
  for (int i = 0; i < length; ++i) {
    tokens[start + i] = example.ids[size_t(i)];
    targets[start + i] = example.trained[size_t(i) + 1] ? example.ids[size_t(i) + 1] : -100;
    segment_start[start + i] = start;
  }
}

void pad_row(int start, int T, int32_t pad_id, int32_t* tokens, int32_t* targets, int32_t* segment_start) {
  for (int t = start; t < T; ++t) {
    tokens[t] = pad_id;
    targets[t] = -100;
    segment_start[t] = start;
  }
}

std::vector<std::vector<uint32_t>> pack_in_order(const std::vector<TokenizedExample>& examples, int T) {
  std::vector<std::vector<uint32_t>> rows;
  int used = T;  // no open row yet
  for (size_t i = 0; i < examples.size(); ++i) {
    const int length = packed_length(examples[i]);
    if (used + length > T) {
      rows.emplace_back();
      used = 0;
    }
    rows.back().push_back(uint32_t(i));
    used += length;
  }
  return rows;
}

RowUsage row_usage(const std::vector<TokenizedExample>& examples, int T) {
  RowUsage usage;
  usage.examples = usage.padded_rows = examples.size();
  usage.packed_rows = pack_in_order(examples, T).size();
  for (const TokenizedExample& example : examples) usage.positions += packed_length(example);
  return usage;
}

}  // namespace dsk::finetune
