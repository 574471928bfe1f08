// A TileChoice for kernels/cuda/attention.cu (through DSK_ATTENTION_TILE_CHOICE) that differs from
// the baseline in every kernel: 8-warp forward and dQ blocks, and the one-pass backward
// (KeyConfig's ORDERED_DQ) for the bench head dims. scripts/device/attention-sweep-gpu.sh runs the
// parity tests built with it (.carry/bin/dsk_gpu_*attention_alt), so that packed rows, GQA, KV-cache
// offsets and ragged lengths check these configurations too, not only the sweep's plain shapes.
template <>
struct TileChoice<64, 64> {
  using Forward = flash::ForwardConfig<8, 1, 64>;
  using Key = flash::KeyConfig<4, 1, 64, 0, true>;
  using Query = flash::QueryConfig<8, 1, 32>;
};
template <>
struct TileChoice<96, 64> {
  using Forward = flash::ForwardConfig<8, 1, 64>;
  using Key = flash::KeyConfig<4, 1, 32, 0, true>;
  using Query = flash::QueryConfig<8, 1, 32>;
};
template <>
struct TileChoice<128, 128> {
  using Forward = flash::ForwardConfig<8, 1, 64>;
  using Key = flash::KeyConfig<8, 1, 16, 0, true>;
  using Query = flash::QueryConfig<8, 1, 32>;
};
