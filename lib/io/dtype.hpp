// Element types of safetensors files (the names Hugging Face writes in a header's "dtype") and
// the conversions between the narrow float formats and float32 that model code needs.
// Narrowing conversions round to nearest, ties to even, as torch's .to(dtype) does:
//   bf16 and f16 overflow to +-inf; f8 e5m2 overflows to +-inf; f8 e4m3 (the "fn" variant: no
//   infinities, one NaN pattern 0x7f/0xff, largest finite 448) overflows to NaN like torch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace dsk::io {

enum class DType : uint8_t { F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL };

// Bytes per element.
size_t dtype_size(DType type);
// The header spelling: "F32", "BF16", "F8_E4M3", ...
std::string_view dtype_name(DType type);
// The dtype for a header spelling; nullopt for anything else (names are case-sensitive).
std::optional<DType> parse_dtype(std::string_view name);

float bf16_to_float(uint16_t bits);
uint16_t float_to_bf16(float value);
float f16_to_float(uint16_t bits);
uint16_t float_to_f16(float value);
float f8_e4m3_to_float(uint8_t bits);
uint8_t float_to_f8_e4m3(float value);
float f8_e5m2_to_float(uint8_t bits);
uint8_t float_to_f8_e5m2(float value);

// Element i of a buffer of the given float dtype (F64, F32, F16, BF16, F8_*) as float32.
// Integer and bool dtypes are converted by value. `data` need not be aligned.
float element_to_float(const void* data, DType type, size_t i);
// Converts n elements of `type` to float32; n floats are written to `out`.
void to_float(const void* data, DType type, size_t n, float* out);
// Converts n floats to `type` (float dtypes only: F64, F32, F16, BF16, F8_E4M3, F8_E5M2);
// writes n * dtype_size(type) bytes to `out`.
void from_float(const float* values, size_t n, DType type, void* out);

}  // namespace dsk::io
