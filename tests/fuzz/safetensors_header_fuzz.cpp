// libFuzzer target: any byte string as a whole safetensors file image. The parser must either
// accept it (and then every tensor must lie inside the data section) or throw DataError.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.hpp"
#include "io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    uint64_t data_offset = 0;
    auto header = dsk::io::parse_safetensors_bytes(bytes, "fuzz", data_offset);
    for (const auto& t : header.tensors)
      if (t.end > size - data_offset || t.begin > t.end) std::abort();
  } catch (const dsk::DataError&) {
  }
  return 0;
}
