#include "io/dtype.hpp"

#include <bit>
#include <cmath>
#include <cstring>

#include "core/error.hpp"

namespace dsk::io {

namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8},       {DType::F32, "F32", 4},          {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},     {DType::F8_E4M3, "F8_E4M3", 1},  {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::I64, "I64", 8},       {DType::I32, "I32", 4},          {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},         {DType::U8, "U8", 1},            {DType::BOOL, "BOOL", 1},
};

const DTypeInfo& info(DType type) { return kDTypes[static_cast<size_t>(type)]; }

// A small float format: 1 sign bit, exponent_bits, mantissa_bits, IEEE-style bias.
struct SmallFloat {
  int exponent_bits;
  int mantissa_bits;
  bool has_infinity;       // false for e4m3fn: the top exponent holds normal numbers, all-ones is NaN
  uint32_t overflow_code;  // what a too-large magnitude becomes (inf or NaN), without the sign
};

constexpr SmallFloat kF16{5, 10, true, 0x7C00};
constexpr SmallFloat kE5M2{5, 2, true, 0x7C};
constexpr SmallFloat kE4M3{4, 3, false, 0x7F};

int bias(const SmallFloat& f) { return (1 << (f.exponent_bits - 1)) - 1; }

float decode(uint32_t bits, const SmallFloat& f) {
  const uint32_t mantissa_mask = (1u << f.mantissa_bits) - 1;
  const uint32_t exponent_max = (1u << f.exponent_bits) - 1;
  const bool negative = (bits >> (f.exponent_bits + f.mantissa_bits)) & 1;
  const uint32_t exponent = (bits >> f.mantissa_bits) & exponent_max;
  const uint32_t mantissa = bits & mantissa_mask;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), 1 - bias(f) - f.mantissa_bits);
  } else if (f.has_infinity && exponent == exponent_max) {
    magnitude = mantissa ? NAN : INFINITY;
  } else if (!f.has_infinity && exponent == exponent_max && mantissa == mantissa_mask) {
    magnitude = NAN;
  } else {
    magnitude = std::ldexp(1.0f + static_cast<float>(mantissa) / static_cast<float>(1u << f.mantissa_bits),
                           static_cast<int>(exponent) - bias(f));
  }
  return negative ? -magnitude : magnitude;
}

// Round to nearest, ties to even, on the float32 bit pattern: adding half an ulp of the target
// (minus one unless the kept lowest bit is odd) then truncating rounds the way IEEE does, and a
// carry out of the mantissa correctly bumps the exponent.
uint32_t encode(float value, const SmallFloat& f) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint32_t sign = (bits >> 31) << (f.exponent_bits + f.mantissa_bits);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  const uint32_t nan_code = f.has_infinity ? (f.overflow_code | 1u << (f.mantissa_bits - 1)) : f.overflow_code;
  if (magnitude > 0x7F800000u) return sign | nan_code;
  if (magnitude == 0x7F800000u) return sign | f.overflow_code;
  const int min_normal_exponent = 1 - bias(f);
  if (std::fabs(value) < std::ldexp(1.0f, min_normal_exponent)) {
    // Subnormal in the target: a multiple of its smallest step, rounded (nearbyint: ties to even).
    float steps = std::nearbyint(std::ldexp(std::fabs(value), f.mantissa_bits - min_normal_exponent));
    return sign | static_cast<uint32_t>(steps);  // 2^mantissa_bits steps is the smallest normal: right too
  }
  const int shift = 23 - f.mantissa_bits;
  const uint32_t rounded = magnitude + ((1u << (shift - 1)) - 1) + ((magnitude >> shift) & 1);
  const uint32_t code = (rounded >> shift) - (static_cast<uint32_t>(127 - bias(f)) << f.mantissa_bits);
  const uint32_t largest_finite = f.overflow_code - 1;  // the code below inf (or e4m3's NaN)
  if (code > largest_finite) return sign | f.overflow_code;
  return sign | code;
}

template <typename T>
T load(const void* data, size_t i) {
  T value;
  std::memcpy(&value, static_cast<const char*>(data) + i * sizeof(T), sizeof(T));
  return value;
}

template <typename T>
void store(void* data, size_t i, T value) {
  std::memcpy(static_cast<char*>(data) + i * sizeof(T), &value, sizeof(T));
}

}  // namespace

size_t dtype_size(DType type) { return info(type).size; }
std::string_view dtype_name(DType type) { return info(type).name; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.type;
  return std::nullopt;
}

float bf16_to_float(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

uint16_t float_to_bf16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
}

float f16_to_float(uint16_t bits) { return decode(bits, kF16); }
uint16_t float_to_f16(float value) { return static_cast<uint16_t>(encode(value, kF16)); }
float f8_e4m3_to_float(uint8_t bits) { return decode(bits, kE4M3); }
uint8_t float_to_f8_e4m3(float value) { return static_cast<uint8_t>(encode(value, kE4M3)); }
float f8_e5m2_to_float(uint8_t bits) { return decode(bits, kE5M2); }
uint8_t float_to_f8_e5m2(float value) { return static_cast<uint8_t>(encode(value, kE5M2)); }

float element_to_float(const void* data, DType type, size_t i) {
  switch (type) {
    case DType::F64: return static_cast<float>(load<double>(data, i));
    case DType::F32: return load<float>(data, i);
    case DType::F16: return f16_to_float(load<uint16_t>(data, i));
    case DType::BF16: return bf16_to_float(load<uint16_t>(data, i));
    case DType::F8_E4M3: return f8_e4m3_to_float(load<uint8_t>(data, i));
    case DType::F8_E5M2: return f8_e5m2_to_float(load<uint8_t>(data, i));
    case DType::I64: return static_cast<float>(load<int64_t>(data, i));
    case DType::I32: return static_cast<float>(load<int32_t>(data, i));
    case DType::I16: return static_cast<float>(load<int16_t>(data, i));
    case DType::I8: return static_cast<float>(load<int8_t>(data, i));
    case DType::U8: return static_cast<float>(load<uint8_t>(data, i));
    case DType::BOOL: return load<uint8_t>(data, i) ? 1.0f : 0.0f;
  }
  throw InternalError("element_to_float: unknown dtype");
}

void to_float(const void* data, DType type, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = element_to_float(data, type, i);
}

void from_float(const float* values, size_t n, DType type, void* out) {
  for (size_t i = 0; i < n; ++i) {
    switch (type) {
      case DType::F64: store<double>(out, i, values[i]); break;
      case DType::F32: store<float>(out, i, values[i]); break;
      case DType::F16: store<uint16_t>(out, i, float_to_f16(values[i])); break;
      case DType::BF16: store<uint16_t>(out, i, float_to_bf16(values[i])); break;
      case DType::F8_E4M3: store<uint8_t>(out, i, float_to_f8_e4m3(values[i])); break;
      case DType::F8_E5M2: store<uint8_t>(out, i, float_to_f8_e5m2(values[i])); break;
      default: throw UsageError(str("cannot convert float32 to ", dtype_name(type), ": not a float dtype"));
    }
  }
}

}  // namespace dsk::io
