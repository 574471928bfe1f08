#include "registry/upload_state.hpp"

#include <signal.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/sha256.hpp"

namespace dsk::registry {
namespace {

// The pid in "<name>.tmp.<pid>" (write_file_atomic's temporary name), or 0 for any other name.
pid_t temporary_owner(const std::string& filename) {
  auto marker = filename.rfind(".tmp.");
  if (marker == std::string::npos) return 0;
  std::string digits = filename.substr(marker + 5);
  if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos)
    return 0;
  return static_cast<pid_t>(std::stol(digits));
}

bool process_running(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

}  // namespace

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

int remove_stale_temporaries(const std::filesystem::path& state_dir, std::chrono::seconds stale_after) {
  std::error_code error;
  if (!std::filesystem::is_directory(state_dir, error)) return 0;
  const auto now = std::filesystem::file_time_type::clock::now();
  int removed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(state_dir, error)) {
    pid_t owner = temporary_owner(entry.path().filename().string());
    if (owner <= 0 || process_running(owner)) continue;
    auto modified = std::filesystem::last_write_time(entry.path(), error);
    if (error || now - modified < stale_after) continue;
    // Another run may be removing it at the same moment: that is no failure.
    if (std::filesystem::remove(entry.path(), error)) {
      log_debug(entry.path().string(), ": removed, left by process ", owner, " which is gone");
      ++removed;
    }
  }
  return removed;
}

}  // namespace dsk::registry
