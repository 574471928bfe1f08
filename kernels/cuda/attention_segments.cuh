// Packed rows in the attention kernels (AttentionShape::segment_start, kernels/cpu/kernels.hpp):
// query m of row b sees the keys before the query part, [0, offset), and those of its own example,
// [offset + start(m), offset + m], offset = Tk - Tq. Because an example's positions are
// consecutive, start() is non-decreasing along a row, which lets a block bound its work once:
// a query block skips the key tiles that lie wholly in [offset, offset + start(its first query)),
// and a key block visits only the queries whose example began at or before its last key. Without
// segments (null) every helper here answers as plain causal attention does, so those launches
// visit the same tiles in the same order as before. Included only by the attention kernels.
#pragma once

#include "cpu/kernels.hpp"
#include "cuda/common.cuh"

namespace dsk::kernels::cuda::segments {

using AttentionShape = cpu::AttentionShape;

// Where query m's example begins, in query positions (0 without segments).
__device__ __forceinline__ int start_of(const AttentionShape& s, int b, int m) {
  return s.segment_start ? s.segment_start[int64_t(b) * s.Tq + m] : 0;
}

// Key n lies in the query part before the example that begins at query position `start`.
__device__ __forceinline__ bool hidden(int offset, int start, int n) { return n >= offset && n < offset + start; }

// The key tiles (of `tile` keys) a query block visits: iteration i < visits(n_tiles) visits tile
// at(i); the tiles [from, to) are skipped (all their keys are in the query part, before the
// example of the block's first query m0). An even number of them, so that a tile's parity is its
// visit's and double-buffered kernels keep choosing the stage by tile % 2.
struct KeyTileSkip {
  int from = 0, to = 0;
  KeyTileSkip() = default;
  __device__ KeyTileSkip(const AttentionShape& s, int b, int m0, int tile, int n_tiles) {
    if (!s.segment_start || m0 >= s.Tq) return;
    const int offset = s.Tk - s.Tq;
    from = (offset + tile - 1) / tile;  // the first tile with no key before the query part
    to = max(from, min(n_tiles, (offset + start_of(s, b, m0)) / tile));
    to = from + (to - from) / 2 * 2;
  }
  __device__ int visits(int n_tiles) const { return n_tiles - (to - from); }
  __device__ int at(int i) const { return i < from ? i : i + (to - from); }
};

// One past the last query that sees a key of [n0, last_key]: all queries when a key lies before
// the query part, else those whose example began at or before last_key (a binary search over
// the non-decreasing starts).
__device__ __forceinline__ int query_end(const AttentionShape& s, int b, int n0, int last_key) {
  const int offset = s.Tk - s.Tq;
  if (!s.segment_start || n0 < offset) return s.Tq;
  const int32_t* row = s.segment_start + int64_t(b) * s.Tq;
  int low = 0, high = s.Tq;
  while (low < high) {
    const int middle = (low + high) / 2;
    if (row[middle] > last_key - offset)
      high = middle;
    else
      low = middle + 1;
  }
  return low;
}

}  // namespace dsk::kernels::cuda::segments
