#include "core/yaml_string.hpp"

#include <algorithm>

namespace dsk {

void emit_string(YAML::Emitter& out, const std::string& text) {
  bool control = std::any_of(text.begin(), text.end(), [](char c) {
    auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7F;
  });
  if (control) out << YAML::DoubleQuoted;
  out << text;
}

void emit_node(YAML::Emitter& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      out << YAML::BeginMap;
      for (const auto& entry : node) {
        out << YAML::Key;
        emit_node(out, entry.first);
        out << YAML::Value;
        emit_node(out, entry.second);
      }
      out << YAML::EndMap;
      return;
    case YAML::NodeType::Sequence:
      out << YAML::BeginSeq;
      for (const auto& item : node) emit_node(out, item);
      out << YAML::EndSeq;
      return;
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") {
        out << YAML::DoubleQuoted << node.Scalar();
      } else {
        if (!node.Tag().empty() && node.Tag() != "?") out << YAML::VerbatimTag(node.Tag());
        emit_string(out, node.Scalar());
      }
      return;
    default:
      out << YAML::Null;
  }
}

}  // namespace dsk
