// ---- distill.cpp: knowledge distillation on chunks of LM-head rows (the fused chunked LM head of
// lib/tensor calls these a chunk of rows at a time, as it calls cross_entropy_rows; kernels/cuda/
// distill.cu mirrors them). Conventions of kernels.hpp (row-major, N = rows, gradients +=).
//
// The teacher's distribution at temperature tau is kept as its top K tokens plus one bucket for
// the rest of the mass: ids [rows,K] (descending probability, ties to the lower id), logprobs
// [rows,K] = log softmax(z / tau) at those ids, rest [rows] = the mass of the V - K others.
// The student's softened distribution q = softmax(z / tau) is bucketed the same way (Q_j = q at
// teacher id j, Q_rest = the sum of q over the other ids), and the divergence D(P, Q) is taken
// over these K + 1 buckets (K == V: exactly the full distributions, no rest bucket):
//   forward_kl   KL(P || Q) = sum_b P_b log(P_b / Q_b)
//   reverse_kl   KL(Q || P) = sum_b Q_b log(Q_b / P_b)
//   jsd          beta KL(P || M) + (1 - beta) KL(Q || M),  M = beta P + (1 - beta) Q,  0 < beta < 1
// A rest bucket with no mass counts as 1e-30 inside a log (so reverse KL stays finite when the
// teacher's top K held all of its mass). The loss of a row is
//   alpha * D + (1 - alpha) * cross_entropy(softmax(z), target)          (z unsoftened for the CE)
// with no tau^2 factor (as TRL's GKD); divergence and cross-entropy are returned apart.
#pragma once

#include <cstdint>

namespace dsk::kernels::cpu {

enum class Divergence : int32_t { forward_kl = 0, reverse_kl = 1, jsd = 2 };

struct DistillLoss {
  Divergence divergence = Divergence::forward_kl;
  float alpha = 0.5f;        // weight of the divergence; 1 - alpha weighs the cross-entropy
  float temperature = 1.0f;  // > 0; the teacher's logprobs must be at the same temperature
  float beta = 0.5f;         // jsd only
};

// log(1e-30): what an empty bucket's log mass counts as.
constexpr float kEmptyBucketLog = -69.0775527898f;

// The teacher side: logits [rows,V] (left as they are) -> ids, logprobs [rows,K] and rest [rows]
// at temperature tau. 1 <= K <= V.
void teacher_top_k_rows(int32_t* ids, float* logprobs, float* rest, const float* logits, int rows, int V, int K,
                        float temperature);

// The student side, in place on logits [rows,V]: divergences[r] = D and cross_entropies[r] = CE of
// each row (both 0 where targets[r] == ignore_index). When dscale != 0 the logits are overwritten
// with d(dscale * sum_r (alpha D_r + (1 - alpha) CE_r)) / d(logits) (0 on ignored rows). A
// teacher id outside [0, V) gives a NaN divergence, a target outside it a NaN cross-entropy (the
// trainer's NaN guard stops on them) instead of a read out of bounds.
void distill_rows(float* divergences, float* cross_entropies, float* logits, const int32_t* targets,
                  const int32_t* teacher_ids, const float* teacher_logprobs, const float* teacher_rest, int rows,
                  int V, int K, int ignore_index, const DistillLoss& loss, float dscale);

}  // namespace dsk::kernels::cpu
