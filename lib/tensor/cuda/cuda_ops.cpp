// CudaOps<T>: the op interface on one GPU through kernels/cuda, with activations and the working
// copy of the weights in T (bf16, or float for precision fp32). Everything runs on one stream in
// order; the only waits are the calls that hand a number or a copy back to the host (sum,
// sum_of_squares, copy_to_host), a few per step.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "core/error.hpp"
#include "cuda/adamw.cuh"
#include "cuda/attention.cuh"
#include "cuda/cross_entropy.cuh"
#include "cuda/decode_layers.cuh"
#include "cuda/distill.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/gemv.cuh"
#include "cuda/grad_quantize.cuh"
#include "cuda/matmul.cuh"
#include "cuda/moe.cuh"
#include "cuda/paged_attention.cuh"
#include "cuda/sampling.cuh"
#include "tensor/allocation_tally.hpp"
#include "tensor/ops.hpp"

namespace dsk::tensor {

namespace cuda = kernels::cuda;

bool cuda_device_visible() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) {
    cudaGetLastError();  // clear the error: no driver is "no GPU" here, not a failure
    return false;
  }
  return devices > 0;
}

void select_cuda_device_index(int index) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) cudaGetLastError();
  if (index < 0 || index >= devices)
    throw ResourceError(str("GPU ", index, " asked for (the local rank) but ", devices,
                            " are visible: start at most one rank per GPU"));
  DSK_CUDA_CHECK(cudaSetDevice(index));
}

namespace {

// LM-head rows computed at once: 2048 x 32000 bf16 logits are 131 MB.
constexpr int kLmHeadChunkRows = 2048;

std::string gib(size_t bytes) { return str(double(bytes) / double(1ull << 30), " GiB"); }

// A growable device buffer: grows at the first step that needs more, then stays.
class DeviceScratch {
 public:
  ~DeviceScratch() { cudaFree(data_); }
  void* get(size_t bytes, AllocationTally& tally) {
    if (bytes <= size_) return data_;
    DSK_CUDA_CHECK(cudaDeviceSynchronize());
    tally.remove(data_);
    cudaFree(data_);
    data_ = nullptr;
    size_ = 0;
    if (cudaMalloc(&data_, bytes) != cudaSuccess) {
      cudaGetLastError();
      throw ResourceError(str("out of GPU memory allocating ", gib(bytes), " of scratch"));
    }
    size_ = bytes;
    generation_++;
    tally.add(data_, bytes);
    return data_;
  }
  uint64_t generation() const { return generation_; }  // counts the moves of the buffer

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
  uint64_t generation_ = 0;
};

// A captured stream (CudaOps::capture), valid while the scratch buffers it uses stay where they were.
class CudaGraph final : public OpGraph {
 public:
  CudaGraph(cudaGraphExec_t exec, cudaStream_t stream, std::function<uint64_t()> generation)
      : exec_(exec), stream_(stream), generation_(std::move(generation)), captured_at_(generation_()) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  bool replay() override {
    if (generation_() != captured_at_) return false;
    DSK_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
    return true;
  }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
  std::function<uint64_t()> generation_;
  uint64_t captured_at_;
};

template <typename T>
class CudaOps final : public Ops {
 public:
  CudaOps() {
    DSK_CUDA_CHECK(cudaGetDevice(&device_));
    cudaDeviceProp props{};
    DSK_CUDA_CHECK(cudaGetDeviceProperties(&props, device_));
    name_ = props.name;
    DSK_CUDA_CHECK(cudaMalloc(&scalar_, sizeof(float)));
    // Paged attention's arrival counters: zero once here, and every launch leaves them zero.
    const size_t turn_bytes = size_t(cuda::paged_attention_turns()) * sizeof(unsigned);
    DSK_CUDA_CHECK(cudaMalloc(&paged_turns_, turn_bytes));
    DSK_CUDA_CHECK(cudaMemset(paged_turns_, 0, turn_bytes));
    // The persistent decode kernel's counters (grid barrier, merges), likewise.
    DSK_CUDA_CHECK(cudaMalloc(&decode_counters_, cuda::kDecodeCounters * sizeof(unsigned)));
    DSK_CUDA_CHECK(cudaMemset(decode_counters_, 0, cuda::kDecodeCounters * sizeof(unsigned)));
    // A created stream, not the legacy default one: only such a stream can be captured into a
    // CUDA graph. It is a blocking stream (not cudaStreamNonBlocking) on purpose: work that other
    // code still queues on the legacy stream (tests' cudaMemcpy, libraries) stays ordered with ours.
    DSK_CUDA_CHECK(cudaStreamCreate(&stream_));
  }
  ~CudaOps() override {
    cudaStreamSynchronize(stream_);
    for (void* p : owned_) cudaFree(p);
    cudaFree(scalar_);
    cudaFree(paged_turns_);
    cudaFree(decode_counters_);
    cudaFree(decode_table_);
    cudaStreamDestroy(stream_);
  }

  Device device() const override { return Device::cuda; }
  DType activation_dtype() const override { return sizeof(T) == 4 ? DType::f32 : DType::bf16; }
  std::string describe() const override {
    return str("cuda:", device_, " ", name_, sizeof(T) == 4 ? " (fp32)" : " (bf16, fp32 master weights)");
  }

  void* allocate(size_t bytes, const std::string& what) override {
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, std::max<size_t>(bytes, 1));
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_bytes = 0, total = 0;
      cudaMemGetInfo(&free_bytes, &total);
      throw ResourceError(str("out of GPU memory: ", what, " needs ", gib(bytes), " with ", gib(tally_.total()),
                              " already taken by dsk and ", gib(free_bytes), " free of ", gib(total),
                              "; try a smaller data.micro_batch (with a larger data.grad_accum), "
                              "train.recompute: full, or a smaller data.seq_len"));
    }
    DSK_CUDA_CHECK(status);
    tally_.add(p, bytes);
    return p;
  }
  void release(void* data) override {
    tally_.remove(data);
    cudaFree(data);
  }
  size_t memory_in_use() const override { return tally_.total(); }
  size_t peak_memory_in_use() const override { return tally_.peak(); }
  void copy_from_host(Buf dst, const void* host) override {
    DSK_CUDA_CHECK(cudaMemcpyAsync(dst.data, host, dst.bytes(), cudaMemcpyHostToDevice, stream_));
    DSK_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host buffer may change right after
  }
  void copy_to_host(void* host, Buf src) override {
    DSK_CUDA_CHECK(cudaMemcpyAsync(host, src.data, src.bytes(), cudaMemcpyDeviceToHost, stream_));
    DSK_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void copy(Buf dst, Buf src) override {
    if (dst.bytes() != src.bytes()) throw InternalError("copy: buffers of different sizes");
    DSK_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, src.bytes(), cudaMemcpyDeviceToDevice, stream_));
  }
  void zero(Buf b) override { DSK_CUDA_CHECK(cudaMemsetAsync(b.data, 0, b.bytes(), stream_)); }
  void synchronize() override { DSK_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  void* native_stream() const override { return stream_; }
  Buf scratch(size_t bytes) override {
    return Buf{scratch_.get(bytes, tally_), int64_t((bytes + 3) / 4), DType::f32};
  }
  RopeTables prepare_rope(const kernels::cpu::Rope& rope) override {
    RopeTables t;
    t.host = rope;
    void* p = nullptr;
    DSK_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(rope.inv_freq.size(), 1) * sizeof(float)));
    owned_.push_back(p);
    t.inv_freq = Buf{p, int64_t(rope.inv_freq.size()), DType::f32};
    copy_from_host(t.inv_freq, rope.inv_freq.data());
    return t;
  }

  void matmul_forward(Buf out, Buf inp, Buf weight, Buf bias, int N, int C, int OC, bool accumulate) override {
    cuda::matmul_forward<T>(blas_, a(out), a(inp), a(weight), bias.empty() ? nullptr : a(bias), N, C, OC, accumulate,
                            stream_);
  }
  void matmul_parts_forward(const std::vector<LinearPart>& parts, Buf inp, int N, int C) override {
    if (N > cuda::kGemvMaxRows || parts.size() > size_t(cuda::kGemvMaxParts))
      return Ops::matmul_parts_forward(parts, inp, N, C);
    const std::vector<cuda::GemvPart<T>> gemv = gemv_parts(parts);
    cuda::gemv_parts_forward<T>(gemv.data(), int(gemv.size()), a(inp), N, C, stream_);
  }
  void swiglu_matmul_forward(Buf out, Buf inp, Buf gate, Buf up, int N, int C, int I) override {
    if (N > cuda::kGemvMaxRows) return Ops::swiglu_matmul_forward(out, inp, gate, up, N, C, I);
    cuda::gemv_swiglu_forward<T>(a(out), a(inp), a(gate), a(up), N, C, I, stream_);
  }
  void rmsnorm_matmul_parts_forward(const std::vector<LinearPart>& parts, const NormedInput& in, int N,
                                    int C) override {
    if (N <= cuda::kGemvMaxRows && parts.size() <= size_t(cuda::kGemvMaxParts)) {
      const std::vector<cuda::GemvPart<T>> gemv = gemv_parts(parts);
      if (cuda::rmsnorm_gemv_parts_forward<T>(gemv.data(), int(gemv.size()), a(in.x), a(in.weight), in.eps, N, C,
                                              stream_))
        return;
    }
    Ops::rmsnorm_matmul_parts_forward(parts, in, N, C);
  }
  void rmsnorm_swiglu_matmul_forward(Buf out, const NormedInput& in, Buf gate, Buf up, int N, int C, int I) override {
    if (N <= cuda::kGemvMaxRows &&
        cuda::rmsnorm_gemv_swiglu_forward<T>(a(out), a(in.x), a(in.weight), in.eps, a(gate), a(up), N, C, I, stream_))
      return;
    Ops::rmsnorm_swiglu_matmul_forward(out, in, gate, up, N, C, I);
  }
  void matmul_backward(Buf dinp, Buf dweight, Buf dbias, Buf dout, Buf inp, Buf weight, int N, int C,
                       int OC) override {
    if (!dinp.empty()) cuda::matmul_backward_input<T>(blas_, a(dinp), a(dout), a(weight), N, C, OC, stream_);
    if (dweight.empty() && dbias.empty()) return;
    float* scratch_floats = dbias.empty() ? nullptr : f(scratch(cuda::matmul_bias_scratch_floats(N, OC) * 4));
    cuda::matmul_backward_weight<T>(blas_, dweight.empty() ? nullptr : f(dweight), dbias.empty() ? nullptr : f(dbias),
                                    a(dout), a(inp), N, C, OC, scratch_floats, stream_);
  }

  void rmsnorm_forward(Buf out, Buf rstd, Buf inp, Buf weight, int N, int C, float eps) override {
    cuda::rmsnorm_forward<T>(a(out), f(rstd), a(inp), a(weight), N, C, eps, stream_);
  }
  void rmsnorm_backward(Buf dinp, Buf dweight, Buf dout, Buf inp, Buf weight, Buf rstd, int N, int C) override {
    float* scratch_floats = f(scratch(cuda::rmsnorm_backward_scratch_floats(N, C) * 4));
    cuda::rmsnorm_backward<T>(a(dinp), dweight.empty() ? nullptr : f(dweight), a(dout), a(inp), a(weight), f(rstd), N,
                              C, scratch_floats, stream_);
  }
  void rope_forward(Buf x, Buf positions, const RopeTables& rope, int N, int H, int head_stride, int offset,
                    int rot_dim) override {
    cuda::rope_forward<T>(a(x), i32(positions), device_rope(rope), N, H, head_stride, offset, rot_dim, stream_);
  }
  void rope_backward(Buf dx, Buf positions, const RopeTables& rope, int N, int H, int head_stride, int offset,
                     int rot_dim) override {
    cuda::rope_backward<T>(a(dx), i32(positions), device_rope(rope), N, H, head_stride, offset, rot_dim, stream_);
  }
  void swiglu_forward(Buf out, Buf gate, Buf up) override {
    cuda::swiglu_forward<T>(a(out), a(gate), a(up), out.numel, stream_);
  }
  void swiglu_backward(Buf dgate, Buf dup, Buf dout, Buf gate, Buf up) override {
    cuda::swiglu_backward<T>(a(dgate), a(dup), a(dout), a(gate), a(up), dout.numel, stream_);
  }
  void tanh_forward(Buf out, Buf in) override { cuda::tanh_forward<T>(a(out), a(in), out.numel, stream_); }
  void tanh_backward(Buf din, Buf dout, Buf out) override {
    cuda::tanh_backward<T>(a(din), a(dout), a(out), dout.numel, stream_);
  }
  void embedding_forward(Buf out, Buf tokens, Buf table, int N, int C) override {
    cuda::embedding_forward<T>(a(out), i32(tokens), a(table), N, C, stream_);
  }
  void embedding_backward(Buf dtable, Buf dout, Buf tokens, int N, int C, int V) override {
    if (dtable.empty()) return;
    void* scratch_bytes = scratch(cuda::embedding_backward_scratch_bytes(N, V)).data;
    cuda::embedding_backward<T>(f(dtable), a(dout), i32(tokens), N, C, V, scratch_bytes, stream_);
  }
  void add(Buf out, Buf x, Buf y) override { cuda::add<T>(a(out), a(x), a(y), out.numel, stream_); }
  void accumulate(Buf out, Buf x) override { cuda::accumulate<T>(a(out), a(x), out.numel, stream_); }
  void copy_columns(Buf out, int out_stride, int out_offset, Buf in, int in_stride, int in_offset, int N, int width,
                    bool accumulate) override {
    cuda::copy_columns<T>(a(out), out_stride, out_offset, a(in), in_stride, in_offset, N, width, accumulate, stream_);
  }

  int64_t attention_saved_floats(const AttentionShape& s) const override {
    return int64_t(s.B) * s.H * s.Tq;  // the log-sum-exps
  }
  void attention_forward(Buf out, Buf saved, Buf q, Buf k, Buf v, const AttentionShape& s) override {
    cuda::attention_forward<T>(a(out), f(saved), a(q), a(k), a(v), s, stream_);
  }
  void attention_backward(Buf dq, Buf dk, Buf dv, Buf dout, Buf out, Buf saved, Buf q, Buf k, Buf v,
                          const AttentionShape& s) override {
    float* scratch_floats = f(scratch(cuda::attention_backward_scratch_floats(s) * 4));
    cuda::attention_backward<T>(a(dq), a(dk), a(dv), a(dout), a(out), f(saved), a(q), a(k), a(v), s, scratch_floats,
                                stream_);
  }
  void mla_expand_forward(Buf k, Buf v, Buf kv_b, Buf kv_a, int N, int H, int nope, int R, int Dv,
                          int kv_rank) override {
    cuda::mla_expand_forward<T>(a(k), a(v), a(kv_b), a(kv_a), N, H, nope, R, Dv, kv_rank, stream_);
  }
  void mla_expand_backward(Buf dkv_b, Buf dkv_a, Buf dk, Buf dv, int N, int H, int nope, int R, int Dv,
                           int kv_rank) override {
    cuda::mla_expand_backward<T>(a(dkv_b), a(dkv_a), a(dk), a(dv), N, H, nope, R, Dv, kv_rank, stream_);
  }
  // Both cache copies are B strided rows of bytes: one 2D copy each.
  void kv_cache_append(Buf cache, Buf rows, int B, int T_new, int max_length, int length, int row) override {
    const size_t element = sizeof(T);
    DSK_CUDA_CHECK(cudaMemcpy2DAsync(static_cast<char*>(cache.data) + size_t(length) * row * element,
                                     size_t(max_length) * row * element, rows.data, size_t(T_new) * row * element,
                                     size_t(T_new) * row * element, B, cudaMemcpyDeviceToDevice, stream_));
  }
  void kv_cache_gather(Buf out, Buf cache, int B, int Tk, int max_length, int row) override {
    const size_t element = sizeof(T);
    DSK_CUDA_CHECK(cudaMemcpy2DAsync(out.data, size_t(Tk) * row * element, cache.data,
                                     size_t(max_length) * row * element, size_t(Tk) * row * element, B,
                                     cudaMemcpyDeviceToDevice, stream_));
  }

  void lm_head_loss(Buf losses, Buf dhidden, Buf dweight, Buf hidden, Buf weight, Buf targets, int N, int C, int V,
                    int ignore_index, float dscale) override {
    const bool backward = dscale != 0.0f && !(dhidden.empty() && dweight.empty());
    lm_head_chunks(hidden, weight, backward ? dhidden : Buf{}, backward ? dweight : Buf{}, N, C, V,
                   [&](T* logits, int row, int rows) {
                     cuda::cross_entropy_chunk<T>(f(losses) + row, logits, i32(targets) + row, rows, V, ignore_index,
                                                  backward ? dscale : 0.0f, stream_);
                   });
  }
  void lm_head_logits(Buf out, Buf hidden, Buf weight, int rows, int C, int V) override {
    if constexpr (sizeof(T) == 4) {
      cuda::matmul_forward<T>(blas_, f(out), a(hidden), a(weight), nullptr, rows, C, V, false, stream_);
    } else {
      T* logits = static_cast<T*>(lm_head_chunk_.get(size_t(rows) * V * sizeof(T), tally_));
      cuda::matmul_forward<T>(blas_, logits, a(hidden), a(weight), nullptr, rows, C, V, false, stream_);
      cuda::cast_to_float<T>(f(out), logits, int64_t(rows) * V, stream_);
    }
  }
  double sum(Buf values) override {
    cuda::sum_floats(scalar_, f(values), values.numel, stream_);
    float total = 0;
    DSK_CUDA_CHECK(cudaMemcpyAsync(&total, scalar_, sizeof(float), cudaMemcpyDeviceToHost, stream_));
    DSK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return total;
  }

  void moe_route_forward(Buf scores, Buf experts, Buf weights, Buf logits, Buf bias, const RouterConfig& r,
                         int N) override {
    cuda::moe_route_forward<T>(f(scores), experts.as<int32_t>(), f(weights), a(logits), f(bias), r, N, stream_);
  }
  void moe_route_backward(Buf dlogits, Buf dweights, Buf scores, Buf experts, const RouterConfig& r, int N) override {
    cuda::moe_route_backward<T>(a(dlogits), f(dweights), f(scores), i32(experts), r, N, stream_);
  }
  void moe_permute(Buf offsets, Buf order, Buf row_of, Buf load, Buf experts, int N, int K, int E) override {
    void* scratch_bytes = scratch(cuda::moe_permute_scratch_bytes(N * K, E)).data;
    cuda::moe_permute(offsets.as<int32_t>(), order.as<int32_t>(), row_of.as<int32_t>(), load.as<int64_t>(),
                      i32(experts), N, K, E, scratch_bytes, stream_);
  }
  void moe_gather(Buf xp, Buf x, Buf order, int N, int K, int C) override {
    cuda::moe_gather<T>(a(xp), a(x), i32(order), N, K, C, stream_);
  }
  void moe_gather_backward(Buf dx, Buf dxp, Buf row_of, int N, int K, int C) override {
    cuda::moe_gather_backward<T>(a(dx), a(dxp), i32(row_of), N, K, C, stream_);
  }
  void grouped_matmul_forward(Buf out, Buf inp, Buf weight, int64_t expert_stride, Buf offsets, int E, int rows, int C,
                              int OC) override {
    cuda::grouped_matmul_forward<T>(a(out), a(inp), a(weight), expert_stride, i32(offsets), E, rows, C, OC, stream_);
  }
  void grouped_matmul_backward(Buf dinp, Buf dweight, Buf dout, Buf inp, Buf weight, int64_t expert_stride,
                               Buf offsets, int E, int rows, int C, int OC) override {
    if (!dinp.empty())
      cuda::grouped_matmul_backward_input<T>(a(dinp), a(dout), a(weight), expert_stride, i32(offsets), E, rows, C, OC,
                                             stream_);
    if (!dweight.empty())
      cuda::grouped_matmul_backward_weight<T>(f(dweight), expert_stride, a(dout), a(inp), i32(offsets), E, rows, C, OC,
                                              stream_);
  }
  void moe_combine_forward(Buf out, Buf yp, Buf weights, Buf row_of, int N, int K, int C) override {
    cuda::moe_combine_forward<T>(a(out), a(yp), f(weights), i32(row_of), N, K, C, stream_);
  }
  void moe_combine_backward(Buf dyp, Buf dweights, Buf dout, Buf yp, Buf weights, Buf row_of, int N, int K,
                            int C) override {
    cuda::moe_combine_backward<T>(a(dyp), f(dweights), a(dout), a(yp), f(weights), i32(row_of), N, K, C, stream_);
  }
  void moe_update_bias(Buf bias, Buf load, int E, float speed) override {
    cuda::moe_update_bias(f(bias), load.as<int64_t>(), E, speed, stream_);
  }
  void moe_sequence_aux_loss(Buf loss, Buf dlogits, Buf scores, Buf experts, int B, int T_, int E, int K,
                             float alpha) override {
    cuda::moe_sequence_aux_loss<T>(f(loss), dlogits.empty() ? nullptr : a(dlogits), f(scores), i32(experts), B, T_, E,
                                   K, alpha, stream_);
  }

  void adamw_step(Buf params, Buf working, Buf grads, Buf m, Buf v, Buf decay_mask, const AdamWStep& s) override {
    cuda::AdamWStep step{s.lr, s.beta1, s.beta2, s.eps, s.weight_decay, s.bias_correction1, s.bias_correction2};
    T* copy = working.empty() || working.data == params.data ? nullptr : a(working);
    cuda::adamw_step<T>(f(params), copy, f(grads), f(m), f(v), decay_mask.empty() ? nullptr : decay_mask.as<uint8_t>(),
                        params.numel, step, stream_);
  }
  double sum_of_squares(Buf values) override {
    float* scratch_floats = f(scratch(cuda::grad_norm_scratch_floats(values.numel) * 4));
    cuda::grad_sum_of_squares(scalar_, f(values), values.numel, scratch_floats, stream_);
    float total = 0;
    DSK_CUDA_CHECK(cudaMemcpyAsync(&total, scalar_, sizeof(float), cudaMemcpyDeviceToHost, stream_));
    DSK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return total;
  }
  std::vector<double> sums_of_squares(const std::vector<Buf>& pieces) override {
    // The pieces one after another on the stream share the partials' scratch; each sum lands in
    // its own float after them, and all come back in one copy.
    size_t partials = 0;
    for (const Buf& piece : pieces) partials = std::max(partials, cuda::grad_norm_scratch_floats(piece.numel));
    float* space = f(scratch((partials + pieces.size()) * 4));
    for (size_t i = 0; i < pieces.size(); i++)
      cuda::grad_sum_of_squares(space + partials + i, f(pieces[i]), pieces[i].numel, space, stream_);
    std::vector<float> sums(pieces.size());
    if (!sums.empty()) {
      DSK_CUDA_CHECK(cudaMemcpyAsync(sums.data(), space + partials, sums.size() * sizeof(float),
                                     cudaMemcpyDeviceToHost, stream_));
      DSK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    return {sums.begin(), sums.end()};
  }
  void scale(Buf values, float factor) override { cuda::scale_floats(f(values), factor, values.numel, stream_); }
  void dropout_forward(Buf out, Buf in, float scale, float p, uint64_t seed) override {
    cuda::dropout_forward<T>(a(out), a(in), in.numel, scale / (1.0f - p), kernels::cpu::dropout_threshold(p), seed,
                             stream_);
  }
  void dropout_backward(Buf din, Buf dout, float scale, float p, uint64_t seed) override {
    cuda::dropout_backward<T>(a(din), a(dout), dout.numel, scale / (1.0f - p), kernels::cpu::dropout_threshold(p),
                              seed, stream_);
  }
  void quantize_int8(Buf q, Buf scales, Buf values, Buf residual, int chunk) override {
    cuda::quantize_int8(reinterpret_cast<int8_t*>(q.as<uint8_t>()), f(scales), f(values),
                        residual.empty() ? nullptr : f(residual), values.numel, chunk, stream_);
  }
  void dequantize_sum_int8(Buf out, Buf q, Buf scales, int ranks, int chunk) override {
    cuda::dequantize_sum_int8(f(out), reinterpret_cast<const int8_t*>(q.as<uint8_t>()), f(scales), out.numel, ranks,
                              chunk, stream_);
  }
  void cast(Buf out, Buf in) override {
    if (out.dtype == in.dtype) {
      copy(out, in);
    } else if (out.dtype == DType::f32) {
      cuda::cast_to_float<T>(f(out), a(in), in.numel, stream_);
    } else {
      cuda::cast_from_float<T>(a(out), f(in), in.numel, stream_);
    }
  }

  void lm_head_top_k(Buf ids, Buf logprobs, Buf rest, Buf hidden, Buf weight, int N, int C, int V, int K,
                     float temperature) override {
    lm_head_chunks(hidden, weight, Buf{}, Buf{}, N, C, V, [&](T* logits, int row, int rows) {
      cuda::teacher_top_k_chunk<T>(ids.as<int32_t>() + int64_t(row) * K, f(logprobs) + int64_t(row) * K,
                                   f(rest) + row, logits, rows, V, K, temperature, stream_);
    });
  }
  void lm_head_distill_loss(Buf divergences, Buf cross_entropies, Buf dhidden, Buf dweight, Buf hidden, Buf weight,
                            Buf targets, Buf teacher_ids, Buf teacher_logprobs, Buf teacher_rest, int N, int C, int V,
                            int K, int ignore_index, const DistillLoss& loss, float dscale) override {
    const bool backward = dscale != 0.0f && !(dhidden.empty() && dweight.empty());
    lm_head_chunks(hidden, weight, backward ? dhidden : Buf{}, backward ? dweight : Buf{}, N, C, V,
                   [&](T* logits, int row, int rows) {
                     cuda::distill_chunk<T>(f(divergences) + row, f(cross_entropies) + row, logits,
                                            i32(targets) + row, i32(teacher_ids) + int64_t(row) * K,
                                            f(teacher_logprobs) + int64_t(row) * K, f(teacher_rest) + row, rows, V, K,
                                            ignore_index, loss, backward ? dscale : 0.0f, stream_);
                   });
  }
  void rope_paged_kv_write(Buf q, Buf k, Buf v, Buf k_pool, Buf v_pool, Buf positions, Buf slots,
                           const RopeTables& rope, int N, int H, int KVH, int D) override {
    cuda::rope_paged_kv_write<T>(a(q), a(k), a(v), a(k_pool), a(v_pool), i32(positions), i32(slots), device_rope(rope),
                                 N, H, KVH, D, stream_);
  }
  void paged_kv_write(Buf pool, Buf rows, Buf slots, int N, int row, int stride) override {
    cuda::paged_kv_write<T>(a(pool), a(rows), i32(slots), N, row, stride, stream_);
  }
  void paged_attention_forward(Buf out, Buf q, Buf k_pool, Buf v_pool, Buf block_tables, Buf sequence, Buf positions,
                               const PagedAttentionShape& s) override {
    const size_t floats = cuda::paged_attention_scratch_floats(s);
    float* scratch_floats = floats ? f(scratch(floats * 4)) : nullptr;
    cuda::paged_attention_forward<T>(a(out), a(q), a(k_pool), a(v_pool), i32(block_tables), i32(sequence),
                                     i32(positions), s, scratch_floats, paged_turns_, stream_);
  }
  bool decode_layers_forward(const DecodeLayers& s) override {
    if (!s.rope || s.rope->host.inv_freq.size() * 2 != size_t(s.D)) return false;  // RoPE over the whole head only
    std::vector<cuda::DecodeLayer<T>> layers;
    for (const DecodeLayerWeights& l : s.layers)
      layers.push_back({a(l.input_norm), {a(l.q), a(l.k), a(l.v)}, {optional(l.q_bias), optional(l.k_bias),
                        optional(l.v_bias)}, a(l.o), optional(l.o_bias), a(l.post_norm), a(l.gate), a(l.up), a(l.down),
                        optional(l.down_bias), a(l.k_pool), a(l.v_pool)});
    cuda::DecodeLayersArgs<T> args{};
    args.layers = decode_table(layers);
    args.layer_count = int(layers.size());
    args.x = a(s.x);
    args.q = a(s.q);
    args.k = a(s.k);
    args.v = a(s.v);
    args.act = a(s.act);
    args.attention = a(s.attention);
    args.partials = f(scratch(cuda::decode_layers_partial_floats(s.N, s.H, s.D) * sizeof(float)));
    args.counters = decode_counters_;
    args.positions = i32(s.positions);
    args.slots = i32(s.slots);
    args.sequence = i32(s.sequence);
    args.block_tables = i32(s.block_tables);
    args.rope = device_rope(*s.rope);
    args.N = s.N;
    args.C = s.C;
    args.H = s.H;
    args.KVH = s.KVH;
    args.D = s.D;
    args.I = s.I;
    args.block_size = s.block_size;
    args.table_width = s.table_width;
    args.eps = s.eps;
    args.scale = s.scale;
    return cuda::decode_layers_forward<T>(args, layers.data(), stream_);
  }
  void sample_rows(Buf ids, Buf logits, Buf temperatures, Buf seeds, int rows, int V) override {
    cuda::sample_rows(ids.as<int32_t>(), f(logits), temperatures.empty() ? nullptr : f(temperatures),
                      seeds.empty() ? nullptr : reinterpret_cast<const uint64_t*>(seeds.as<int64_t>()), rows, V,
                      stream_);
  }
  std::unique_ptr<OpGraph> capture(const std::function<void()>& record) override {
    const uint64_t before = scratch_generation();
    if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    bool recorded = true;
    try {
      record();
    } catch (const std::exception&) {  // e.g. a call that a capture forbids: the caller runs eagerly
      recorded = false;
    }
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    cudaGetLastError();  // a failed capture leaves its error behind: clear it
    cudaGraphExec_t exec = nullptr;
    const bool made = recorded && ended == cudaSuccess && graph && scratch_generation() == before &&
                      cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess;
    cudaGetLastError();
    if (graph) cudaGraphDestroy(graph);
    if (!made) return nullptr;
    return std::make_unique<CudaGraph>(exec, stream_, [this] { return scratch_generation(); });
  }
  size_t memory_available() const override {
    size_t free_bytes = 0, total = 0;
    DSK_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
    return free_bytes;
  }

 private:
  std::vector<cuda::GemvPart<T>> gemv_parts(const std::vector<LinearPart>& parts) {
    std::vector<cuda::GemvPart<T>> gemv;
    for (const LinearPart& p : parts) gemv.push_back({a(p.out), a(p.weight), p.bias.empty() ? nullptr : a(p.bias), p.OC});
    return gemv;
  }

  // The LM head a chunk of rows at a time, so the logits of the whole batch never exist at once:
  // logits = hidden @ weight^T for the chunk, then row_kernel(logits, first_row, rows) (a loss may
  // turn the logits into their gradient in place), then dhidden += and dweight += from that
  // gradient where they are not empty.
  template <typename RowKernel>
  void lm_head_chunks(Buf hidden, Buf weight, Buf dhidden, Buf dweight, int N, int C, int V, RowKernel row_kernel) {
    T* logits = static_cast<T*>(lm_head_chunk_.get(size_t(std::min(N, kLmHeadChunkRows)) * V * sizeof(T), tally_));
    for (int row = 0; row < N; row += kLmHeadChunkRows) {
      const int rows = std::min(kLmHeadChunkRows, N - row);
      const T* h = a(hidden) + int64_t(row) * C;
      cuda::matmul_forward<T>(blas_, logits, h, a(weight), nullptr, rows, C, V, false, stream_);
      row_kernel(logits, row, rows);
      if (!dhidden.empty())
        cuda::matmul_backward_input<T>(blas_, a(dhidden) + int64_t(row) * C, logits, a(weight), rows, C, V, stream_);
      if (!dweight.empty())
        cuda::matmul_backward_weight<T>(blas_, f(dweight), nullptr, logits, h, rows, C, V, nullptr, stream_);
    }
  }

  static const T* optional(Buf b) { return b.empty() ? nullptr : a(b); }

  // The decode kernel's layer table in device memory: copied when it changes (a model's first
  // step; never inside a graph capture, which follows an eager run of the same step).
  const cuda::DecodeLayer<T>* decode_table(const std::vector<cuda::DecodeLayer<T>>& layers) {
    const size_t bytes = layers.size() * sizeof(cuda::DecodeLayer<T>);
    if (decode_table_ && bytes == decode_table_host_.size() &&
        std::memcmp(decode_table_host_.data(), layers.data(), bytes) == 0)
      return static_cast<const cuda::DecodeLayer<T>*>(decode_table_);
    if (bytes > decode_table_bytes_) {
      cudaFree(decode_table_);
      decode_table_ = nullptr;
      decode_table_bytes_ = 0;
      DSK_CUDA_CHECK(cudaMalloc(&decode_table_, bytes));
      decode_table_bytes_ = bytes;
    }
    DSK_CUDA_CHECK(cudaMemcpyAsync(decode_table_, layers.data(), bytes, cudaMemcpyHostToDevice, stream_));
    DSK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    const char* raw = reinterpret_cast<const char*>(layers.data());
    decode_table_host_.assign(raw, raw + bytes);
    return static_cast<const cuda::DecodeLayer<T>*>(decode_table_);
  }

  uint64_t scratch_generation() const { return scratch_.generation() + lm_head_chunk_.generation(); }
  static T* a(Buf b) { return static_cast<T*>(b.data); }  // act: checked by the arenas' dtype
  static float* f(Buf b) { return b.as<float>(); }
  static const int32_t* i32(Buf b) { return b.as<int32_t>(); }
  static cuda::RopeDevice device_rope(const RopeTables& rope) {
    return cuda::RopeDevice{static_cast<const float*>(rope.inv_freq.data), rope.host.attention_factor,
                            rope.host.interleaved};
  }

  int device_ = 0;
  std::string name_;
  cudaStream_t stream_ = nullptr;  // every op, copy and memset: one stream, ops in order
  cuda::Blas blas_;
  float* scalar_ = nullptr;
  unsigned* paged_turns_ = nullptr;  // paged attention's arrival counters (paged_attention.cuh)
  unsigned* decode_counters_ = nullptr;  // decode_layers.cuh's counters
  void* decode_table_ = nullptr;        // decode_layers.cuh's layer table, its size, and its host copy
  size_t decode_table_bytes_ = 0;
  std::vector<char> decode_table_host_;
  AllocationTally tally_;
  std::vector<void*> owned_;
  DeviceScratch scratch_, lm_head_chunk_;
};

}  // namespace

std::unique_ptr<Ops> make_cuda_ops(bool bf16) {
  if (bf16) return std::make_unique<CudaOps<cuda::bf16>>();
  return std::make_unique<CudaOps<float>>();
}

}  // namespace dsk::tensor
