// TeacherRows holds exactly K ids, K log-probabilities and a rest mass a row (no arena rounding:
// the logged peak device memory counts them as they are) and gives them back when it goes, also
// when its constructor throws after taking the first buffers.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "distill/teacher_rows.hpp"
#include "tensor/cpu_ops.hpp"

using namespace dsk;
using namespace dsk::distill;

TEST_CASE("teacher rows hold exactly their bytes and give them back") {
  auto ops = tensor::make_cpu_ops();
  const size_t before = ops->memory_in_use();
  {
    const TeacherRows rows(*ops, 6, 3);
    CHECK(ops->memory_in_use() == before + 6 * (3 + 3 + 1) * 4);
    CHECK(rows.ids(6).numel == 18);
    CHECK(rows.rest(6).numel == 6);
  }
  CHECK(ops->memory_in_use() == before);
}

TEST_CASE("teacher rows whose constructor throws after two buffers give those two back") {
  auto ops = tensor::make_cpu_ops();
  const size_t before = ops->memory_in_use();
  // Negative rows and K: ids and log-probabilities have a positive size (rows * K) and are taken;
  // the rest mass's (rows) is refused. The one way to fail the third buffer on the CPU backend.
  CHECK_THROWS_AS(TeacherRows(*ops, -2, -3), InternalError);
  CHECK(ops->peak_memory_in_use() == before + 2 * 6 * 4);  // the two were taken
  CHECK(ops->memory_in_use() == before);
}
