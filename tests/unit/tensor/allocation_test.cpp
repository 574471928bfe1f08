// An Allocation takes exactly its elements' bytes from the backend (no arena rounding, so the
// logged peaks stay what the buffers hold) and gives them back when it goes out of scope, on the
// way out of an exception too.
#include <doctest/doctest.h>

#include <cstdint>
#include <stdexcept>

#include "core/error.hpp"
#include "tensor/allocation.hpp"
#include "tensor/cpu_ops.hpp"

using namespace dsk::tensor;

TEST_CASE("an allocation holds exactly its bytes and gives them back at the end of its scope") {
  auto ops = make_cpu_ops();
  const size_t before = ops->memory_in_use();
  {
    const Allocation held(*ops, DType::i64, 3, "three counts");
    CHECK(held.buf().numel == 3);
    CHECK(held.buf().dtype == DType::i64);
    CHECK(ops->memory_in_use() == before + 24);
    held.buf().as<int64_t>()[2] = 7;  // the memory is there to write
  }
  CHECK(ops->memory_in_use() == before);
  CHECK(ops->peak_memory_in_use() == before + 24);

  try {
    const Allocation held(*ops, DType::f32, 5, "five values");
    CHECK(ops->memory_in_use() == before + 20);
    throw std::runtime_error("a collective failed");
  } catch (const std::runtime_error&) {
  }
  CHECK(ops->memory_in_use() == before);
}

TEST_CASE("the CPU backend refuses a size that would wrap when rounded to its alignment") {
  auto ops = make_cpu_ops();
  const size_t before = ops->memory_in_use();
  CHECK_THROWS_AS(ops->allocate(SIZE_MAX - 10, "a bogus size"), dsk::ResourceError);
  CHECK(ops->memory_in_use() == before);
}
