// The fused ops' definitions as the ops they fuse: the CPU's reference, and what a backend runs
// where it has no fused kernel for a shape (CUDA past a few rows).
#include "tensor/ops.hpp"

namespace dsk::tensor {

void Ops::matmul_parts_forward(const std::vector<LinearPart>& parts, Buf inp, int N, int C) {
  for (const LinearPart& part : parts) matmul_forward(part.out, inp, part.weight, part.bias, N, C, part.OC, false);
}

void Ops::rmsnorm_matmul_parts_forward(const std::vector<LinearPart>& parts, const NormedInput& in, int N, int C) {
  rmsnorm_forward(in.out, in.rstd, in.x, in.weight, N, C, in.eps);
  matmul_parts_forward(parts, in.out, N, C);
}

void Ops::rmsnorm_swiglu_matmul_forward(Buf out, const NormedInput& in, Buf gate, Buf up, int N, int C, int I) {
  rmsnorm_forward(in.out, in.rstd, in.x, in.weight, N, C, in.eps);
  swiglu_matmul_forward(out, in.out, gate, up, N, C, I);
}

void Ops::swiglu_matmul_forward(Buf out, Buf inp, Buf gate, Buf up, int N, int C, int I) {
  // The gate's product goes to out itself (SwiGLU reads each element before writing it), the up
  // projection's to scratch, which no op below takes.
  const int64_t count = int64_t(N) * I;
  const DType t = activation_dtype();
  Buf up_product{scratch(size_t(count) * dtype_size(t)).data, count, t};
  matmul_forward(out, inp, gate, Buf{}, N, C, I, false);
  matmul_forward(up_product, inp, up, Buf{}, N, C, I, false);
  swiglu_forward(out, out, up_product);
}

void Ops::rope_paged_kv_write(Buf q, Buf k, Buf v, Buf k_pool, Buf v_pool, Buf positions, Buf slots,
                              const RopeTables& rope, int N, int H, int KVH, int D) {
  rope_forward(q, positions, rope, N, H, D, 0, D);
  rope_forward(k, positions, rope, N, KVH, D, 0, D);
  paged_kv_write(k_pool, k, slots, N, KVH * D, KVH * D);
  paged_kv_write(v_pool, v, slots, N, KVH * D, KVH * D);
}

}  // namespace dsk::tensor
