#include "distill/teacher_rows.hpp"

namespace dsk::distill {

using tensor::DType;

TeacherRows::TeacherRows(tensor::Ops& ops, int64_t rows, int K)
    : ops_(ops),
      K_(K),
      ids_(ops, DType::i32, rows * K, "teacher ids"),
      logprobs_(ops, DType::f32, rows * K, "teacher log-probabilities"),
      rest_(ops, DType::f32, rows, "teacher rest mass") {}

void TeacherRows::compute(model::Model& teacher, const int32_t* tokens, int B, int T, float temperature) {
  teacher.forward_hidden(tokens, B, T, /*training=*/false);
  const int64_t rows = int64_t(B) * T;
  const model::Architecture& arch = teacher.architecture();
  ops_.lm_head_top_k(ids(rows), logprobs(rows), rest(rows), teacher.hidden(), teacher.lm_head_weight(), int(rows),
                     arch.hidden, arch.vocab, K_, temperature);
}

void TeacherRows::upload(const int32_t* host_ids, const float* host_logprobs, const float* host_rest, int64_t rows) {
  ops_.copy_from_host(ids(rows), host_ids);
  ops_.copy_from_host(logprobs(rows), host_logprobs);
  ops_.copy_from_host(rest(rows), host_rest);
}

void TeacherRows::download(int32_t* host_ids, float* host_logprobs, float* host_rest, int64_t rows) {
  ops_.copy_to_host(host_ids, ids(rows));
  ops_.copy_to_host(host_logprobs, logprobs(rows));
  ops_.copy_to_host(host_rest, rest(rows));
}

}  // namespace dsk::distill
