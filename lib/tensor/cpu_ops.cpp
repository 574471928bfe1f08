// CpuOps: each op is its kernels/cpu function on the Bufs' host pointers, plus the few that are
// compositions on the CPU (the chunked LM head, the per-expert loop of the grouped matmul).
#include "tensor/cpu_ops.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <unistd.h>
#include <vector>

#include "core/error.hpp"
#include "cpu/distill.hpp"
#include "tensor/allocation_tally.hpp"

namespace dsk::tensor {

namespace cpu = kernels::cpu;

namespace {

float* f(Buf b) { return b.empty() ? nullptr : b.as<float>(); }
const int32_t* i32(Buf b) { return b.empty() ? nullptr : b.as<int32_t>(); }

// Rows of the LM head computed at once: 256 x 32000 floats is 32 MB, a tenth of a whole batch's.
constexpr int kLmHeadChunkRows = 256;

class CpuOps final : public Ops {
 public:
  Device device() const override { return Device::cpu; }
  DType activation_dtype() const override { return DType::f32; }
  std::string describe() const override { return "cpu (fp32)"; }

  void* allocate(size_t bytes, const std::string& what) override {
    // Rounded up to the alignment; a size within 255 of SIZE_MAX would wrap to a tiny block.
    if (bytes > SIZE_MAX - 255) throw ResourceError(str("cannot allocate ", bytes, " bytes of host memory for ", what));
    void* p = std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) / 256 * 256);
    if (!p) throw ResourceError(str("out of host memory allocating ", bytes, " bytes for ", what));
    tally_.add(p, bytes);
    return p;
  }
  void release(void* data) override {
    tally_.remove(data);
    std::free(data);
  }
  size_t memory_in_use() const override { return tally_.total(); }
  size_t peak_memory_in_use() const override { return tally_.peak(); }
  void copy_from_host(Buf dst, const void* host) override { std::memcpy(dst.data, host, dst.bytes()); }
  void copy_to_host(void* host, Buf src) override { std::memcpy(host, src.data, src.bytes()); }
  void copy(Buf dst, Buf src) override {
    if (dst.bytes() != src.bytes()) throw InternalError("copy: buffers of different sizes");
    std::memmove(dst.data, src.data, src.bytes());
  }
  void zero(Buf b) override { std::memset(b.data, 0, b.bytes()); }
  void synchronize() override {}
  Buf scratch(size_t bytes) override {
    if (scratch_.size() * sizeof(float) < bytes) scratch_.resize((bytes + 3) / 4);
    return Buf{scratch_.data(), int64_t(scratch_.size()), DType::f32};
  }
  RopeTables prepare_rope(const cpu::Rope& rope) override {
    RopeTables t;
    t.host = rope;
    t.inv_freq = Buf{t.host.inv_freq.data(), int64_t(t.host.inv_freq.size()), DType::f32};
    return t;
  }

  void matmul_forward(Buf out, Buf inp, Buf weight, Buf bias, int N, int C, int OC, bool accumulate) override {
    if (!accumulate) {
      cpu::matmul_forward(f(out), f(inp), f(weight), f(bias), N, C, OC);
      return;
    }
    std::vector<float> product(size_t(N) * OC);
    cpu::matmul_forward(product.data(), f(inp), f(weight), f(bias), N, C, OC);
    cpu::accumulate(f(out), product.data(), int64_t(product.size()));
  }
  void matmul_backward(Buf dinp, Buf dweight, Buf dbias, Buf dout, Buf inp, Buf weight, int N, int C,
                       int OC) override {
    cpu::matmul_backward(f(dinp), f(dweight), f(dbias), f(dout), f(inp), f(weight), N, C, OC);
  }

  void rmsnorm_forward(Buf out, Buf rstd, Buf inp, Buf weight, int N, int C, float eps) override {
    cpu::rmsnorm_forward(f(out), f(rstd), f(inp), f(weight), N, C, eps);
  }
  void rmsnorm_backward(Buf dinp, Buf dweight, Buf dout, Buf inp, Buf weight, Buf rstd, int N, int C) override {
    cpu::rmsnorm_backward(f(dinp), f(dweight), f(dout), f(inp), f(weight), f(rstd), N, C);
  }
  void rope_forward(Buf x, Buf positions, const RopeTables& rope, int N, int H, int head_stride, int offset,
                    int rot_dim) override {
    cpu::rope_forward(f(x), i32(positions), rope.host, N, H, head_stride, offset, rot_dim);
  }
  void rope_backward(Buf dx, Buf positions, const RopeTables& rope, int N, int H, int head_stride, int offset,
                     int rot_dim) override {
    cpu::rope_backward(f(dx), i32(positions), rope.host, N, H, head_stride, offset, rot_dim);
  }
  void swiglu_forward(Buf out, Buf gate, Buf up) override { cpu::swiglu_forward(f(out), f(gate), f(up), out.numel); }
  void swiglu_backward(Buf dgate, Buf dup, Buf dout, Buf gate, Buf up) override {
    cpu::swiglu_backward(f(dgate), f(dup), f(dout), f(gate), f(up), dout.numel);
  }
  void tanh_forward(Buf out, Buf in) override { cpu::tanh_forward(f(out), f(in), out.numel); }
  void tanh_backward(Buf din, Buf dout, Buf out) override { cpu::tanh_backward(f(din), f(dout), f(out), dout.numel); }
  void embedding_forward(Buf out, Buf tokens, Buf table, int N, int C) override {
    cpu::embedding_forward(f(out), i32(tokens), f(table), N, C);
  }
  void embedding_backward(Buf dtable, Buf dout, Buf tokens, int N, int C, int /*V*/) override {
    cpu::embedding_backward(f(dtable), f(dout), i32(tokens), N, C);
  }
  void add(Buf out, Buf a, Buf b) override { cpu::add(f(out), f(a), f(b), out.numel); }
  void accumulate(Buf out, Buf a) override { cpu::accumulate(f(out), f(a), out.numel); }
  void copy_columns(Buf out, int out_stride, int out_offset, Buf in, int in_stride, int in_offset, int N, int width,
                    bool accumulate) override {
    cpu::copy_columns(f(out), out_stride, out_offset, f(in), in_stride, in_offset, N, width, accumulate);
  }

  int64_t attention_saved_floats(const AttentionShape& s) const override {
    return int64_t(s.B) * s.H * s.Tq * s.Tk;  // the probabilities
  }
  void attention_forward(Buf out, Buf saved, Buf q, Buf k, Buf v, const AttentionShape& s) override {
    cpu::attention_forward(f(out), f(saved), f(q), f(k), f(v), s);
  }
  void attention_backward(Buf dq, Buf dk, Buf dv, Buf dout, Buf /*out*/, Buf saved, Buf q, Buf k, Buf v,
                          const AttentionShape& s) override {
    cpu::attention_backward(f(dq), f(dk), f(dv), f(dout), f(saved), f(q), f(k), f(v), s);
  }
  void mla_expand_forward(Buf k, Buf v, Buf kv_b, Buf kv_a, int N, int H, int nope, int R, int Dv,
                          int kv_rank) override {
    cpu::mla_expand_forward(f(k), f(v), f(kv_b), f(kv_a), N, H, nope, R, Dv, kv_rank);
  }
  void mla_expand_backward(Buf dkv_b, Buf dkv_a, Buf dk, Buf dv, int N, int H, int nope, int R, int Dv,
                           int kv_rank) override {
    cpu::mla_expand_backward(f(dkv_b), f(dkv_a), f(dk), f(dv), N, H, nope, R, Dv, kv_rank);
  }
  void kv_cache_append(Buf cache, Buf rows, int B, int T_new, int max_length, int length, int row) override {
    cpu::kv_cache_append(f(cache), f(rows), B, T_new, max_length, length, row);
  }
  void kv_cache_gather(Buf out, Buf cache, int B, int Tk, int max_length, int row) override {
    cpu::kv_cache_gather(f(out), f(cache), B, Tk, max_length, row);
  }

  void lm_head_loss(Buf losses, Buf dhidden, Buf dweight, Buf hidden, Buf weight, Buf targets, int N, int C, int V,
                    int ignore_index, float dscale) override {
    const bool backward = dscale != 0.0f && !(dhidden.empty() && dweight.empty());
    std::vector<float>& logits = lm_head_chunk_;
    logits.resize(size_t(std::min(N, kLmHeadChunkRows)) * V);
    for (int row = 0; row < N; row += kLmHeadChunkRows) {
      const int rows = std::min(kLmHeadChunkRows, N - row);
      const float* h = f(hidden) + int64_t(row) * C;
      cpu::matmul_forward(logits.data(), h, f(weight), nullptr, rows, C, V);
      cpu::cross_entropy_rows(f(losses) + row, logits.data(), i32(targets) + row, rows, V, ignore_index,
                              backward ? dscale : 0.0f);
      if (backward)
        cpu::matmul_backward(dhidden.empty() ? nullptr : f(dhidden) + int64_t(row) * C, f(dweight), nullptr,
                             logits.data(), h, f(weight), rows, C, V);
    }
  }
  void lm_head_logits(Buf out, Buf hidden, Buf weight, int rows, int C, int V) override {
    cpu::matmul_forward(f(out), f(hidden), f(weight), nullptr, rows, C, V);
  }
  double sum(Buf values) override {
    double total = 0;
    for (int64_t i = 0; i < values.numel; i++) total += f(values)[i];
    return total;
  }

  void moe_route_forward(Buf scores, Buf experts, Buf weights, Buf logits, Buf bias, const RouterConfig& r,
                         int N) override {
    cpu::moe_route_forward(f(scores), experts.as<int32_t>(), f(weights), f(logits), f(bias), r, N);
  }
  void moe_route_backward(Buf dlogits, Buf dweights, Buf scores, Buf experts, const RouterConfig& r, int N) override {
    cpu::moe_route_backward(f(dlogits), f(dweights), f(scores), i32(experts), r, N);
  }
  void moe_permute(Buf offsets, Buf order, Buf row_of, Buf load, Buf experts, int N, int K, int E) override {
    cpu::moe_permute(offsets.as<int32_t>(), order.as<int32_t>(), row_of.as<int32_t>(), load.as<int64_t>(),
                     i32(experts), N, K, E);
  }
  void moe_gather(Buf xp, Buf x, Buf order, int N, int K, int C) override {
    cpu::moe_gather(f(xp), f(x), i32(order), N, K, C);
  }
  void moe_gather_backward(Buf dx, Buf dxp, Buf row_of, int N, int K, int C) override {
    cpu::moe_gather_backward(f(dx), f(dxp), i32(row_of), N, K, C);
  }
  // One matmul per expert over its rows: the offsets are host memory here.
  void grouped_matmul_forward(Buf out, Buf inp, Buf weight, int64_t expert_stride, Buf offsets, int E, int /*rows*/,
                              int C, int OC) override {
    const int32_t* o = i32(offsets);
    for (int e = 0; e < E; e++) {
      const int n = o[e + 1] - o[e];
      if (n == 0) continue;
      cpu::matmul_forward(f(out) + int64_t(o[e]) * OC, f(inp) + int64_t(o[e]) * C, f(weight) + e * expert_stride,
                          nullptr, n, C, OC);
    }
  }
  void grouped_matmul_backward(Buf dinp, Buf dweight, Buf dout, Buf inp, Buf weight, int64_t expert_stride,
                               Buf offsets, int E, int /*rows*/, int C, int OC) override {
    const int32_t* o = i32(offsets);
    for (int e = 0; e < E; e++) {
      const int n = o[e + 1] - o[e];
      if (n == 0) continue;
      cpu::matmul_backward(dinp.empty() ? nullptr : f(dinp) + int64_t(o[e]) * C,
                           dweight.empty() ? nullptr : f(dweight) + e * expert_stride, nullptr,
                           f(dout) + int64_t(o[e]) * OC, f(inp) + int64_t(o[e]) * C, f(weight) + e * expert_stride, n,
                           C, OC);
    }
  }
  void moe_combine_forward(Buf out, Buf yp, Buf weights, Buf row_of, int N, int K, int C) override {
    cpu::moe_combine_forward(f(out), f(yp), f(weights), i32(row_of), N, K, C);
  }
  void moe_combine_backward(Buf dyp, Buf dweights, Buf dout, Buf yp, Buf weights, Buf row_of, int N, int K,
                            int C) override {
    cpu::moe_combine_backward(f(dyp), f(dweights), f(dout), f(yp), f(weights), i32(row_of), N, K, C);
  }
  void moe_update_bias(Buf bias, Buf load, int E, float speed) override {
    cpu::moe_update_bias(f(bias), load.as<int64_t>(), E, speed);
  }
  void moe_sequence_aux_loss(Buf loss, Buf dlogits, Buf scores, Buf experts, int B, int T, int E, int K,
                             float alpha) override {
    f(loss)[0] += cpu::moe_sequence_aux_loss(f(dlogits), f(scores), i32(experts), B, T, E, K, alpha);
  }

  void adamw_step(Buf params, Buf working, Buf grads, Buf m, Buf v, Buf decay_mask, const AdamWStep& s) override {
    const cpu::AdamWStep step{s.lr, s.beta1, s.beta2, s.eps, s.weight_decay, s.bias_correction1, s.bias_correction2};
    cpu::adamw_step(f(params), f(grads), f(m), f(v), decay_mask.empty() ? nullptr : decay_mask.as<uint8_t>(),
                    params.numel, step);
    if (!working.empty() && working.data != params.data) copy(working, params);
  }
  double sum_of_squares(Buf values) override { return cpu::sum_of_squares(f(values), values.numel); }
  std::vector<double> sums_of_squares(const std::vector<Buf>& pieces) override {
    std::vector<double> sums;
    for (const Buf& piece : pieces) sums.push_back(sum_of_squares(piece));
    return sums;
  }
  void scale(Buf values, float factor) override { cpu::scale(f(values), factor, values.numel); }
  void dropout_forward(Buf out, Buf in, float scale, float p, uint64_t seed) override {
    cpu::dropout_forward(f(out), f(in), in.numel, scale / (1.0f - p), cpu::dropout_threshold(p), seed);
  }
  void dropout_backward(Buf din, Buf dout, float scale, float p, uint64_t seed) override {
    cpu::dropout_backward(f(din), f(dout), dout.numel, scale / (1.0f - p), cpu::dropout_threshold(p), seed);
  }
  void quantize_int8(Buf q, Buf scales, Buf values, Buf residual, int chunk) override {
    cpu::quantize_int8(reinterpret_cast<int8_t*>(q.as<uint8_t>()), f(scales), f(values), f(residual), values.numel,
                       chunk);
  }
  void dequantize_sum_int8(Buf out, Buf q, Buf scales, int ranks, int chunk) override {
    cpu::dequantize_sum_int8(f(out), reinterpret_cast<const int8_t*>(q.as<uint8_t>()), f(scales), out.numel, ranks,
                             chunk);
  }
  void cast(Buf out, Buf in) override {
    if (out.dtype != DType::f32 || in.dtype != DType::f32)
      throw InternalError("cpu backend: only f32 buffers exist on the CPU");
    copy(out, in);
  }
  void paged_kv_write(Buf pool, Buf rows, Buf slots, int N, int row, int stride) override {
    cpu::paged_kv_write(f(pool), f(rows), i32(slots), N, row, stride);
  }
  void paged_attention_forward(Buf out, Buf q, Buf k_pool, Buf v_pool, Buf block_tables, Buf sequence, Buf positions,
                               const PagedAttentionShape& s) override {
    cpu::paged_attention_forward(f(out), f(q), f(k_pool), f(v_pool), i32(block_tables), i32(sequence), i32(positions),
                                 s);
  }
  void sample_rows(Buf ids, Buf logits, Buf temperatures, Buf seeds, int rows, int V) override {
    cpu::sample_rows(ids.as<int32_t>(), f(logits), f(temperatures),
                     seeds.empty() ? nullptr : reinterpret_cast<const uint64_t*>(seeds.as<int64_t>()), rows, V);
  }
  size_t memory_available() const override {
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? size_t(pages) * size_t(page) : 0;
  }


  void lm_head_top_k(Buf ids, Buf logprobs, Buf rest, Buf hidden, Buf weight, int N, int C, int V, int K,
                     float temperature) override {
    for_each_lm_head_chunk(N, V, [&](float* logits, int row, int rows) {
      cpu::matmul_forward(logits, f(hidden) + int64_t(row) * C, f(weight), nullptr, rows, C, V);
      cpu::teacher_top_k_rows(ids.as<int32_t>() + int64_t(row) * K, f(logprobs) + int64_t(row) * K, f(rest) + row,
                              logits, rows, V, K, temperature);
    });
  }
  void lm_head_distill_loss(Buf divergences, Buf cross_entropies, Buf dhidden, Buf dweight, Buf hidden, Buf weight,
                            Buf targets, Buf teacher_ids, Buf teacher_logprobs, Buf teacher_rest, int N, int C, int V,
                            int K, int ignore_index, const DistillLoss& loss, float dscale) override {
    const bool backward = dscale != 0.0f && !(dhidden.empty() && dweight.empty());
    for_each_lm_head_chunk(N, V, [&](float* logits, int row, int rows) {
      const float* h = f(hidden) + int64_t(row) * C;
      cpu::matmul_forward(logits, h, f(weight), nullptr, rows, C, V);
      cpu::distill_rows(f(divergences) + row, f(cross_entropies) + row, logits, i32(targets) + row,
                        i32(teacher_ids) + int64_t(row) * K, f(teacher_logprobs) + int64_t(row) * K,
                        f(teacher_rest) + row, rows, V, K, ignore_index, loss, backward ? dscale : 0.0f);
      if (backward)
        cpu::matmul_backward(dhidden.empty() ? nullptr : f(dhidden) + int64_t(row) * C, f(dweight), nullptr, logits,
                             h, f(weight), rows, C, V);
    });
  }

 private:
  // body(logits, first row, rows) for each chunk of at most kLmHeadChunkRows rows, with a logits
  // buffer [rows, V] reused from chunk to chunk.
  template <typename Body>
  void for_each_lm_head_chunk(int N, int V, Body&& body) {
    lm_head_chunk_.resize(size_t(std::min(N, kLmHeadChunkRows)) * V);
    for (int row = 0; row < N; row += kLmHeadChunkRows) body(lm_head_chunk_.data(), row, std::min(kLmHeadChunkRows, N - row));
  }

  AllocationTally tally_;
  std::vector<float> scratch_;
  std::vector<float> lm_head_chunk_;
};

}  // namespace

std::unique_ptr<Ops> make_cpu_ops() { return std::make_unique<CpuOps>(); }

}  // namespace dsk::tensor
