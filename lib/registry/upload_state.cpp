#include "registry/upload_state.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "core/error.hpp"
#include "core/sha256.hpp"

namespace dsk::registry {

std::string upload_state_to_yaml(const UploadState& state) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "upload_id" << YAML::Value << state.upload_id;
  out << YAML::Key << "object" << YAML::Value << state.object;
  out << YAML::Key << "file" << YAML::Value << state.file;
  out << YAML::Key << "size" << YAML::Value << state.size;
  out << YAML::Key << "sha256" << YAML::Value << state.sha256;
  out << YAML::Key << "part_size" << YAML::Value << state.part_size;
  out << YAML::Key << "parts" << YAML::Value << YAML::BeginMap;
  for (const auto& [number, part] : state.parts)
    out << YAML::Key << number << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "etag"
        << YAML::Value << YAML::DoubleQuoted << part.etag << YAML::Key << "md5" << YAML::Value
        << part.md5 << YAML::EndMap;
  out << YAML::EndMap << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

UploadState parse_upload_state(const std::string& yaml, const std::string& source) {
  try {
    YAML::Node root = YAML::Load(yaml);
    if (!root.IsMap() || !root["upload_id"] || !root["parts"])
      throw DataError(str(source, ": not an upload state file (no upload_id/parts)"));
    UploadState state{root["upload_id"].as<std::string>(), root["object"].as<std::string>(""),
                      root["file"].as<std::string>(""), root["size"].as<long long>(-1),
                      root["sha256"].as<std::string>(""), root["part_size"].as<long long>(0), {}};
    // A part written by an older dsk is its bare ETag; such a file has no sha256 either, so
    // it is read only to abort its upload.
    for (const auto& part : root["parts"])
      state.parts[part.first.as<long long>()] =
          part.second.IsMap() ? SentPart{part.second["etag"].as<std::string>(""), part.second["md5"].as<std::string>("")}
                              : SentPart{part.second.as<std::string>(), ""};
    return state;
  } catch (const YAML::Exception& error) {
    throw DataError(str(source, ":", error.mark.line + 1, ": not an upload state file: ", error.msg));
  }
}

std::filesystem::path upload_state_path(const std::filesystem::path& state_dir,
                                        const Connection& connection,
                                        const ObjectAddress& object, long long part_size) {
  std::string identity = str(connection.endpoint_url, "\n", connection.region, "\n", object.bucket,
                             "\n", object.key, "\n", part_size);
  return state_dir / (sha256_hex(identity).substr(0, 32) + ".yaml");
}

std::filesystem::path default_upload_state_dir() {
  const char* state_home = std::getenv("XDG_STATE_HOME");
  if (state_home && *state_home) return std::filesystem::path(state_home) / "dsk/uploads";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home && *home ? home : "/tmp") / ".local/state/dsk/uploads";
}

}  // namespace dsk::registry
