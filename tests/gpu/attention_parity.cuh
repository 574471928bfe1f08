// What the attention parity tests (attention_test.cu, segment_attention_test.cu) share: the host
// tensors of a case, a double-precision log-sum-exp over the keys each query sees, and one
// forward + backward on the GPU.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cuda/attention.cuh"
#include "parity.cuh"

namespace dsk::gpu_test {

struct AttentionTensors {  // host copies, as floats (already rounded to T where they are inputs)
  std::vector<float> q, k, v, dout, out, lse, dq, dk, dv;
};

// lse [B, H, Tq] of each query's scaled scores over the keys it sees (kernels.hpp: causal, and
// with packed rows `starts` [B, Tq] only its own example's keys of the query part), in double.
inline std::vector<float> reference_lse(const AttentionTensors& in, const kernels::cpu::AttentionShape& s,
                                        const std::vector<int32_t>& starts = {}) {
  std::vector<float> lse(size_t(s.B) * s.H * s.Tq);
  const int offset = s.Tk - s.Tq;
  for (int b = 0; b < s.B; b++)
    for (int h = 0; h < s.H; h++)
      for (int t = 0; t < s.Tq; t++) {
        const int kvh = h / (s.H / s.KVH), first = offset + (starts.empty() ? 0 : starts[size_t(b) * s.Tq + t]);
        std::vector<double> scores;
        double top = -INFINITY;
        for (int j = 0; j <= offset + t; j++) {
          if (j >= offset && j < first) continue;
          double dot = 0;
          for (int d = 0; d < s.Dk; d++)
            dot += double(in.q[(size_t(b) * s.Tq + t) * s.q_stride + h * s.Dk + d]) *
                   in.k[(size_t(b) * s.Tk + j) * s.k_stride + kvh * s.Dk + d];
          scores.push_back(dot * s.scale);
          top = std::max(top, scores.back());
        }
        double sum = 0;
        for (double score : scores) sum += std::exp(score - top);
        lse[(size_t(b) * s.H + h) * s.Tq + t] = float(top + std::log(sum));
      }
  return lse;
}

inline double rms(const std::vector<float>& v) {
  double sum = 0;
  for (float x : v) sum += double(x) * x;
  return std::sqrt(sum / double(std::max<size_t>(v.size(), 1)));
}

inline std::vector<float> plus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> sum(a.size());
  for (size_t i = 0; i < a.size(); i++) sum[i] = a[i] + b[i];
  return sum;
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Forward then backward on the GPU from the inputs and starting gradients in `in`; `starts`
// empty: plain causal (null segment_start).
template <typename T>
AttentionTensors run_attention_gpu(const AttentionTensors& in, kernels::cpu::AttentionShape s,
                                   const std::vector<int32_t>& starts = {}) {
  namespace cuda = kernels::cuda;
  DeviceBuffer<T> q(in.q.size()), k(in.k.size()), v(in.v.size()), dout(in.dout.size()), out(in.dout.size());
  DeviceBuffer<T> dq(in.dq.size()), dk(in.dk.size()), dv(in.dv.size());
  DeviceBuffer<float> lse(size_t(s.B) * s.H * s.Tq), scratch(cuda::attention_backward_scratch_floats(s));
  DeviceBuffer<int32_t> segment_start(starts.size());
  DSK_CUDA_CHECK(cudaMemcpy(segment_start.get(), starts.data(), starts.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
  s.segment_start = starts.empty() ? nullptr : segment_start.get();
  upload(q, in.q);
  upload(k, in.k);
  upload(v, in.v);
  upload(dout, in.dout);
  upload(dq, in.dq);
  upload(dk, in.dk);
  upload(dv, in.dv);
  out.poison();
  lse.poison();
  scratch.poison();
  cuda::attention_forward<T>(out.get(), lse.get(), q.get(), k.get(), v.get(), s, nullptr);
  cuda::attention_backward<T>(dq.get(), dk.get(), dv.get(), dout.get(), out.get(), lse.get(), q.get(), k.get(),
                              v.get(), s, scratch.get(), nullptr);
  AttentionTensors result;
  result.out = download(out);
  result.lse = download(lse);
  result.dq = download(dq);
  result.dk = download(dk);
  result.dv = download(dv);
  return result;
}

}  // namespace dsk::gpu_test
