// libFuzzer target: any text as a dsk-scale samples trace (--samples FILE), JSONL or, when the
// first byte is 'c', CSV. Parsing must succeed or throw DataError; accepted samples have finite
// times that never go back.
#include <cmath>
#include <cstdlib>
#include <string>

#include "core/error.hpp"
#include "scale/samples_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  const bool csv = !text.empty() && text[0] == 'c';
  try {
    auto samples = dsk::scale::parse_samples(csv ? text.substr(1) : text, "samples", csv);
    for (size_t i = 0; i < samples.size(); ++i)
      if (!std::isfinite(samples[i].time) || (i > 0 && samples[i].time < samples[i - 1].time)) std::abort();
  } catch (const dsk::DataError&) {
  }
  return 0;
}
