// The text of one JSONL record, fast: a scanner for the common case of a line that is a JSON
// object holding a string under the field, about ten times faster than a full JSON parse
// (nlohmann's lexer reads ~150 MB/s, which made it a third of dsk-tokenize's work per byte).
//
// It is a filter in front of nlohmann::json, not a second JSON parser with its own opinions:
// it answers only when it is sure nlohmann would accept the line and give the same string, and
// declines (returns false) on anything else: every error, a BOM, a number that nlohmann might
// refuse as out of range (an exponent, many digits), an escape in a key, the field given twice,
// nesting deeper than 64, a field that is not a string. The caller then parses the line with
// nlohmann, which gives the verdict and the message.
#pragma once

#include <string>
#include <string_view>

namespace dsk::tokenize {

// True when `line` (valid UTF-8) is a JSON object whose member `field` is a string; its value,
// unescaped, is then in `text`. False: ask nlohmann (text is then unspecified).
bool extract_jsonl_string_field(std::string_view line, std::string_view field, std::string& text);

}  // namespace dsk::tokenize
