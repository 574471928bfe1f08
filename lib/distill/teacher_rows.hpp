// The teacher's top-K rows of one micro-batch in the backend's memory (what the distillation op
// reads), from a teacher run on the batch (online teacher, the cache maker, eval) or copied from
// the teacher cache, and their host copy.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.hpp"
#include "tensor/ops.hpp"

namespace dsk::distill {

class TeacherRows {
 public:
  // Room for `rows` positions of K ids, K log-probabilities and a rest mass each.
  TeacherRows(tensor::Ops& ops, int64_t rows, int K);
  ~TeacherRows();
  TeacherRows(const TeacherRows&) = delete;
  TeacherRows& operator=(const TeacherRows&) = delete;

  // The first B*T rows: the teacher's distribution at `temperature` after tokens [B,T] (inference:
  // no activations are kept for backward).
  void compute(model::Model& teacher, const int32_t* tokens, int B, int T, float temperature);
  // The first `rows` rows from host arrays ([rows,K], [rows,K], [rows]).
  void upload(const int32_t* ids, const float* logprobs, const float* rest, int64_t rows);
  // The first `rows` rows into host arrays.
  void download(int32_t* ids, float* logprobs, float* rest, int64_t rows);

  int top_k() const { return K_; }
  tensor::Buf ids(int64_t rows) const { return ids_.slice(0, rows * K_); }
  tensor::Buf logprobs(int64_t rows) const { return logprobs_.slice(0, rows * K_); }
  tensor::Buf rest(int64_t rows) const { return rest_.slice(0, rows); }

 private:
  tensor::Ops& ops_;
  int K_;
  tensor::Buf ids_, logprobs_, rest_;
};

}  // namespace dsk::distill
