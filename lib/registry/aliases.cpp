#include "registry/aliases.hpp"

#include <yaml-cpp/yaml.h>

#include <cctype>

#include "core/config.hpp"
#include "core/error.hpp"

namespace dsk::registry {
namespace {

void check_name(const std::string& text, const std::string& what, const std::string& where) {
  bool ok = !text.empty();
  for (char c : text)
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_');
  if (!ok)
    throw DataError(str(where, ": ", what, " '", text,
                        "' must be non-empty letters, digits, '.', '-' or '_'"));
}

// A mapping key: "{a: 1}: 2" is valid YAML, but names no alias or version.
std::string scalar_key(const YAML::Node& key, const std::string& what, const std::string& where) {
  if (!key.IsScalar()) throw DataError(str(where, ": ", what, " must be a name, not a ", key.IsMap() ? "mapping" : "list"));
  return key.Scalar();
}

}  // namespace

AliasTable parse_aliases(const std::string& yaml, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& error) {
    throw DataError(str(source, ":", error.mark.line + 1, ": not YAML: ", error.msg));
  }
  AliasTable table;
  if (!root || root.IsNull()) return table;
  // A subscript of a scalar or a list throws yaml-cpp's BadSubscript: the kind is checked first.
  YAML::Node aliases = root.IsMap() ? root["aliases"] : YAML::Node();
  if (!aliases || !aliases.IsMap()) throw DataError(str(yaml_location(source, root), ": expected a map 'aliases:'"));
  for (const auto& alias : aliases) {
    std::string where = yaml_location(source, alias.second);
    std::string name = scalar_key(alias.first, "alias", where);
    check_name(name, "alias", where);
    if (!alias.second.IsMap() || alias.second.size() == 0)
      throw DataError(str(where, ": alias '", name, "' must map versions to weights"));
    for (const auto& entry : alias.second) {
      WeightedVersion weighted{scalar_key(entry.first, "version", where), 0};
      check_name(weighted.version, "version", where);
      try {
        weighted.weight = entry.second.as<int>();
      } catch (const YAML::Exception&) {
        weighted.weight = 0;
      }
      if (weighted.weight <= 0)
        throw DataError(str(where, ": alias '", name, "' version '", weighted.version,
                            "' needs a positive integer weight"));
      table[name].push_back(weighted);
    }
  }
  return table;
}

std::string aliases_to_yaml(const AliasTable& table) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "aliases" << YAML::Value << YAML::BeginMap;
  for (const auto& [name, versions] : table) {
    out << YAML::Key << name << YAML::Value << YAML::Flow << YAML::BeginMap;
    for (const auto& weighted : versions)
      out << YAML::Key << YAML::DoubleQuoted << weighted.version << YAML::Value << weighted.weight;
    out << YAML::EndMap;
  }
  out << YAML::EndMap << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::vector<WeightedVersion> parse_weight_spec(const std::string& spec) {
  std::vector<WeightedVersion> versions;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    std::string item = spec.substr(start, comma == std::string::npos ? std::string::npos
                                                                     : comma - start);
    size_t equals = item.find('=');
    WeightedVersion weighted{item.substr(0, equals), 100};
    if (equals != std::string::npos) {
      std::string number = item.substr(equals + 1);
      size_t used = 0;
      try {
        weighted.weight = std::stoi(number, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != number.size() || weighted.weight <= 0)
        throw UsageError(str("'", spec, "': weight '", number, "' is not a positive integer"));
    } else if (spec.find(',') != std::string::npos) {
      throw UsageError(str("'", spec, "': give every version a weight: 1.0=90,1.1=10"));
    }
    try {
      check_name(weighted.version, "version", "'" + spec + "'");
    } catch (const DataError& error) {
      throw UsageError(error.what());
    }
    versions.push_back(weighted);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return versions;
}

const std::string& pick_version(const std::vector<WeightedVersion>& versions, double u) {
  if (versions.empty()) throw InternalError("pick_version: an alias with no versions");
  long total = 0;
  for (const auto& weighted : versions) total += weighted.weight;
  double point = u * static_cast<double>(total);
  long reached = 0;
  for (const auto& weighted : versions) {
    reached += weighted.weight;
    if (point < static_cast<double>(reached)) return weighted.version;
  }
  return versions.back().version;
}

std::set<std::string> aliased_versions(const AliasTable& table) {
  std::set<std::string> versions;
  for (const auto& [name, weighted] : table)
    for (const auto& entry : weighted) versions.insert(entry.version);
  return versions;
}

}  // namespace dsk::registry
