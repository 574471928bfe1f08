// dtype names/sizes and the float conversions: exact values, rounding ties to even, overflow.
#include <doctest/doctest.h>

#include <cmath>

#include "io/dtype.hpp"

using namespace dsk::io;

TEST_CASE("dtype names and sizes round trip") {
  for (auto name : {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I64", "I32", "I16", "I8", "U8", "BOOL"}) {
    auto type = parse_dtype(name);
    REQUIRE(type);
    CHECK(dtype_name(*type) == name);
  }
  CHECK(!parse_dtype("bf16"));
  CHECK(!parse_dtype("F4"));
  CHECK(dtype_size(DType::F64) == 8);
  CHECK(dtype_size(DType::BF16) == 2);
  CHECK(dtype_size(DType::F8_E4M3) == 1);
  CHECK(dtype_size(DType::BOOL) == 1);
}

TEST_CASE("bf16 rounds to nearest even and keeps NaN") {
  CHECK(float_to_bf16(1.0f) == 0x3F80);
  CHECK(bf16_to_float(0x3F80) == 1.0f);
  CHECK(float_to_bf16(1.0f + 0x1p-8f) == 0x3F80);             // tie, even stays
  CHECK(float_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3F82);         // tie, odd rounds up
  CHECK(float_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3F81);  // above the tie
  CHECK(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  CHECK(float_to_bf16(-INFINITY) == 0xFF80);
}

TEST_CASE("f16 normals, subnormals, overflow") {
  CHECK(float_to_f16(1.0f) == 0x3C00);
  CHECK(float_to_f16(-2.0f) == 0xC000);
  CHECK(float_to_f16(65504.0f) == 0x7BFF);
  CHECK(float_to_f16(65520.0f) == 0x7C00);  // halfway to 2^16 rounds to inf
  CHECK(float_to_f16(0x1p-24f) == 0x0001);  // smallest subnormal
  CHECK(float_to_f16(0x1p-25f) == 0x0000);  // tie to even: 0
  CHECK(float_to_f16(1.0f + 0x1p-11f) == 0x3C00);
  CHECK(float_to_f16(1.0f + 3 * 0x1p-11f) == 0x3C02);
  CHECK(f16_to_float(0x0001) == 0x1p-24f);
  CHECK(f16_to_float(0x7BFF) == 65504.0f);
  CHECK(std::isinf(f16_to_float(0x7C00)));
  CHECK(std::isnan(f16_to_float(float_to_f16(NAN))));
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    float value = f16_to_float(static_cast<uint16_t>(bits));
    if (!std::isnan(value)) CHECK(float_to_f16(value) == bits);
  }
}

TEST_CASE("f8 e4m3fn: max 448, NaN on overflow, every code round trips") {
  CHECK(f8_e4m3_to_float(0x7E) == 448.0f);
  CHECK(std::isnan(f8_e4m3_to_float(0x7F)));
  CHECK(f8_e4m3_to_float(0x01) == 0x1p-9f);
  CHECK(f8_e4m3_to_float(0x38) == 1.0f);
  CHECK(float_to_f8_e4m3(1.0f) == 0x38);
  CHECK(float_to_f8_e4m3(464.0f) == 0x7E);  // halfway to 480: ties to even 448
  CHECK(float_to_f8_e4m3(470.0f) == 0x7F);  // nearer 480: out of range, NaN like torch
  CHECK(float_to_f8_e4m3(460.0f) == 0x7E);
  CHECK(float_to_f8_e4m3(-1.0f - 0x1p-4f) == 0xB8);  // tie to even
  CHECK(float_to_f8_e4m3(1.0f + 3 * 0x1p-4f) == 0x3A);
  CHECK(float_to_f8_e4m3(0x1p-10f) == 0x00);        // tie between 0 and the smallest step
  CHECK(float_to_f8_e4m3(0x1p-9f * 7.5f) == 0x08);  // rounds up into the smallest normal
  for (uint32_t bits = 0; bits < 0x100; ++bits) {
    float value = f8_e4m3_to_float(static_cast<uint8_t>(bits));
    if (!std::isnan(value)) CHECK(float_to_f8_e4m3(value) == bits);
  }
}

TEST_CASE("f8 e5m2: max 57344, inf on overflow, every code round trips") {
  CHECK(f8_e5m2_to_float(0x7B) == 57344.0f);
  CHECK(std::isinf(f8_e5m2_to_float(0x7C)));
  CHECK(float_to_f8_e5m2(1.0f) == 0x3C);
  CHECK(float_to_f8_e5m2(1e6f) == 0x7C);
  for (uint32_t bits = 0; bits < 0x100; ++bits) {
    float value = f8_e5m2_to_float(static_cast<uint8_t>(bits));
    if (!std::isnan(value)) CHECK(float_to_f8_e5m2(value) == bits);
  }
}

TEST_CASE("to_float and from_float over buffers") {
  const float values[] = {0.5f, -3.0f, 1.5f};
  for (auto type : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2}) {
    unsigned char buffer[3 * 8];
    from_float(values, 3, type, buffer);
    float back[3];
    to_float(buffer, type, 3, back);
    CHECK(back[0] == 0.5f);
    CHECK(back[1] == -3.0f);
    CHECK(back[2] == 1.5f);
  }
  const int32_t ints[] = {-7, 9};
  float out[2];
  to_float(ints, DType::I32, 2, out);
  CHECK(out[0] == -7.0f);
  CHECK(out[1] == 9.0f);
  unsigned char sink[8];
  CHECK_THROWS(from_float(values, 2, DType::I32, sink));
}
