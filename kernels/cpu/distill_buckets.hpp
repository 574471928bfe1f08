// The divergence of one bucket of the distillation loss (distill.hpp), shared by the CPU reference
// (in double) and the CUDA kernel (in float) so that the formulas exist once.
//
// For a bucket b with teacher mass P and student mass Q (and their logs, finite: an empty bucket's
// log is kEmptyBucketLog), term() gives its part of the divergence and w = Q * dD/dQ, finite even
// where Q is 0. The gradient of D with respect to the softened student logits s = z / tau is then
//   dD/ds_i = (q_i / Q_b(i)) * w_b(i) - q_i * sum_b w_b
// (q_i / Q_b is 1 for a top-K id and e_i / sum of e over the rest for the rest bucket).
#pragma once

#include <math.h>

#include "cpu/distill.hpp"

#if defined(__CUDACC__)
#define DSK_DISTILL_HD __host__ __device__ __forceinline__
#else
#define DSK_DISTILL_HD inline
#endif

namespace dsk::kernels::cpu {

template <typename F>
struct BucketTerm {
  F divergence;  // this bucket's part of D
  F w;           // Q * dD/dQ
};

template <typename F>
DSK_DISTILL_HD F distill_log(F x) {
  if constexpr (sizeof(F) == sizeof(double)) return ::log(x); else return ::logf(x);
}
template <typename F>
DSK_DISTILL_HD F distill_exp(F x) {
  if constexpr (sizeof(F) == sizeof(double)) return ::exp(x); else return ::expf(x);
}

// x log(x / y) given the logs, 0 where x is 0 (its limit).
template <typename F>
DSK_DISTILL_HD F relative_entropy_term(F x, F log_x, F log_y) {
  return x > F(0) ? x * (log_x - log_y) : F(0);
}

template <typename F>
DSK_DISTILL_HD BucketTerm<F> bucket_term(Divergence divergence, F beta, F P, F log_P, F Q, F log_Q) {
  switch (divergence) {
    case Divergence::forward_kl:
      return {relative_entropy_term(P, log_P, log_Q), -P};
    case Divergence::reverse_kl: {
      // d/dQ [Q log(Q/P)] = log(Q/P) + 1; the +1 terms cancel in the gradient (sum_i dq_i = 0).
      const F term = relative_entropy_term(Q, log_Q, log_P);
      return {term, term};
    }
    case Divergence::jsd: {
      // log M = log(beta P + (1 - beta) Q) without leaving log space.
      const F a = distill_log(beta) + log_P, b = distill_log(F(1) - beta) + log_Q;
      const F top = a > b ? a : b;
      const F log_M = top + distill_log(distill_exp(a - top) + distill_exp(b - top));
      const F student = relative_entropy_term(Q, log_Q, log_M);
      // dD/dQ = (1 - beta) log(Q / M): the P and M terms of the derivative cancel.
      return {beta * relative_entropy_term(P, log_P, log_M) + (F(1) - beta) * student, (F(1) - beta) * student};
    }
  }
  return {F(0), F(0)};
}

// log of a bucket's mass that may be 0.
template <typename F>
DSK_DISTILL_HD F bucket_log(F mass) {
  return mass > F(0) ? distill_log(mass) : F(kEmptyBucketLog);
}

}  // namespace dsk::kernels::cpu
