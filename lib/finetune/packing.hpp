// Packing (data.packing): short examples placed one after another in rows of T positions, as
// TRL's and axolotl's `packing: true`, with attention kept within each example (the rows carry
// train::Batch::segment_start, which the model turns into the attention mask and into RoPE
// positions that restart at 0 with each example; model.hpp set_segment_starts). An example of n
// ids takes n - 1 positions: inputs ids[0..n-2], targets ids[1..n-1] where trained, so it learns
// exactly what it learns alone in a padded row. Rows are filled in order (next-fit): an example
// that does not fit in what is left of a row starts the next one, and the row's tail is padding
// (pad id, target -100, a segment of its own). Examples were cut to a row by fit_rows, as for
// padding, so every example fits in an empty row.
#pragma once

#include <cstdint>
#include <vector>

#include "finetune/instruction_data.hpp"

namespace dsk::finetune {

// The positions an example takes in a packed row.
int packed_length(const TokenizedExample& example);

// Writes `example` at positions [start, start + packed_length) of a row (tokens, targets and
// segment_start each point at the row's first position).
void place_example(const TokenizedExample& example, int start, int32_t* tokens, int32_t* targets,
                   int32_t* segment_start);
// Fills positions [start, T) of a row with padding (one segment beginning at start).
void pad_row(int start, int T, int32_t pad_id, int32_t* tokens, int32_t* targets, int32_t* segment_start);

// The examples packed in their order into rows of T positions: the examples' indices, row by row.
std::vector<std::vector<uint32_t>> pack_in_order(const std::vector<TokenizedExample>& examples, int T);

// How full rows of T positions are, padded (one example a row) and packed (in file order): what
// dsk-finetune reports at the start.
struct RowUsage {
  size_t examples = 0, padded_rows = 0, packed_rows = 0;
  int64_t positions = 0;  // positions holding an example (the rest is padding)
  double padding_fraction(size_t rows, int T) const {
    return rows == 0 ? 0.0 : 1.0 - double(positions) / (double(rows) * T);
  }
};
RowUsage row_usage(const std::vector<TokenizedExample>& examples, int T);

}  // namespace dsk::finetune
