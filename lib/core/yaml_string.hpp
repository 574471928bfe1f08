// Strings written with yaml-cpp's emitter that read back as the same strings.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <string>

namespace dsk {

// yaml-cpp writes control characters raw unless the string is double-quoted, and a raw CR then
// reads back as a line break: such strings go double-quoted, where yaml-cpp escapes them.
inline void emit_string(YAML::Emitter& out, const std::string& text) {
  bool control = std::any_of(text.begin(), text.end(), [](char c) {
    auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7F;
  });
  if (control) out << YAML::DoubleQuoted;
  out << text;
}

}  // namespace dsk
