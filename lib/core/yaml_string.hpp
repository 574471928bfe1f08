// Strings and nodes written with yaml-cpp's emitter so that they read back the same.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

namespace dsk {

// yaml-cpp writes control characters raw unless the string is double-quoted, and a raw CR then
// reads back as a line break: such strings go double-quoted, where yaml-cpp escapes them.
void emit_string(YAML::Emitter& out, const std::string& text);

// `out << node`, except that a scalar that was quoted ('123', tag "!") is written quoted, not as
// the number it spells, strings go through emit_string, and other tags are kept verbatim.
void emit_node(YAML::Emitter& out, const YAML::Node& node);

}  // namespace dsk
