// The teacher's top-K rows of one micro-batch in the backend's memory (what the distillation op
// reads), from a teacher run on the batch (online teacher, the cache maker, eval) or copied from
// the teacher cache, and their host copy.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.hpp"
#include "tensor/allocation.hpp"
#include "tensor/ops.hpp"

namespace dsk::distill {

class TeacherRows {
 public:
  // Room for `rows` positions of K ids, K log-probabilities and a rest mass each.
  TeacherRows(tensor::Ops& ops, int64_t rows, int K);

  // The first B*T rows: the teacher's distribution at `temperature` after tokens [B,T] (inference:
  // no activations are kept for backward).
  void compute(model::Model& teacher, const int32_t* tokens, int B, int T, float temperature);
  // The first `rows` rows from host arrays ([rows,K], [rows,K], [rows]).
  void upload(const int32_t* ids, const float* logprobs, const float* rest, int64_t rows);
  // The first `rows` rows into host arrays.
  void download(int32_t* ids, float* logprobs, float* rest, int64_t rows);

  int top_k() const { return K_; }
  tensor::Buf ids(int64_t rows) const { return ids_.buf().slice(0, rows * K_); }
  tensor::Buf logprobs(int64_t rows) const { return logprobs_.buf().slice(0, rows * K_); }
  tensor::Buf rest(int64_t rows) const { return rest_.buf().slice(0, rows); }

 private:
  tensor::Ops& ops_;
  int K_;
  // Owned, so that a constructor that throws after the first gives that one back; exactly their
  // bytes (not an arena's 256-byte rounding), so the backend's logged peak is what it always was.
  const tensor::Allocation ids_, logprobs_, rest_;
};

}  // namespace dsk::distill
