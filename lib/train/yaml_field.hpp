// A required key of a YAML mapping read from a file of dsk's own (dsk/state.yaml,
// dsk/optimizer.yaml), as T: DataError naming the file, the line and the key when it is missing or
// not a T.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "core/error.hpp"

namespace dsk::train {

template <typename T>
T required_yaml_field(const YAML::Node& map, const char* key, const std::filesystem::path& file) {
  const YAML::Node value = map[key];
  if (!value) throw DataError(str(file.string(), ": missing key ", key));
  try {
    return value.as<T>();
  } catch (const YAML::Exception&) {
    throw DataError(str(file.string(), ":", value.Mark().line + 1, ": ", key, " is not a valid value"));
  }
}

}  // namespace dsk::train
