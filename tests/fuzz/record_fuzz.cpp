// libFuzzer target: any text as what a tool reads on stdin in place of a path ("-"): a stream of
// YAML documents whose last record counts. Parsing must succeed or throw DataError; an accepted
// record prints as YAML that parses back to the same record when the input was UTF-8 (YAML is a
// Unicode format: yaml-cpp keeps other bytes only where it writes a string unquoted).
#include <cstdlib>
#include <string>

#include "core/error.hpp"
#include "core/record.hpp"
#include "tokenizer/utf8.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    dsk::Record record = dsk::Record::parse_last(text, "<stdin>");
    dsk::Record again = dsk::Record::parse(record.to_yaml(), "printed record");
    if (dsk::tokenizer::first_invalid_utf8(text)) return 0;
    if (again.kind() != record.kind() || again.fields() != record.fields()) std::abort();
  } catch (const dsk::DataError&) {
  } catch (const dsk::UsageError&) {  // no usable record where one is expected (dsk(7))
  }
  return 0;
}
