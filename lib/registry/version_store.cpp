#include "registry/version_store.hpp"

#include <yaml-cpp/yaml.h>

#include <ctime>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/sha256.hpp"
#include "registry/alias_store.hpp"

namespace dsk::registry {
namespace {

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[21];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

ObjectAddress version_object(const std::string& root, const std::string& name,
                             const std::string& version, const std::string& file) {
  return registry_object(root, name, version + "/" + file);
}

// A relative file path must stay inside the version's directory.
void check_relative(const std::string& path, const std::string& where) {
  if (path.empty() || path.front() == '/' || path.find("..") != std::string::npos)
    throw DataError(str(where, ": file path '", path, "' must be relative, without '..'"));
}

}  // namespace

Manifest parse_manifest(const std::string& yaml, const std::string& source) {
  Manifest manifest;
  try {
    YAML::Node root = YAML::Load(yaml);
    if (!root.IsMap() || !root["files"] || !root["files"].IsSequence())
      throw DataError(str(source, ": expected a manifest map with a 'files' list"));
    manifest.name = root["name"].as<std::string>("");
    manifest.version = root["version"].as<std::string>("");
    manifest.created = root["created"].as<std::string>("");
    for (const auto& entry : root["files"]) {
      std::string where = yaml_location(source, entry);
      ManifestFile file{entry["path"].as<std::string>(""), entry["size"].as<long long>(-1),
                        entry["sha256"].as<std::string>("")};
      check_relative(file.path, where);
      if (file.size < 0 || file.sha256.size() != 64)
        throw DataError(str(where, ": file '", file.path, "' needs a size and a 64-hex sha256"));
      manifest.files.push_back(file);
    }
  } catch (const YAML::Exception& error) {
    throw DataError(str(source, ":", error.mark.line + 1, ": not a manifest: ", error.msg));
  }
  if (manifest.name.empty() || manifest.version.empty())
    throw DataError(str(source, ": the manifest names no name or version"));
  return manifest;
}

std::string manifest_to_yaml(const Manifest& manifest) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << manifest.name;
  out << YAML::Key << "version" << YAML::Value << YAML::DoubleQuoted << manifest.version;
  out << YAML::Key << "created" << YAML::Value << manifest.created;
  out << YAML::Key << "files" << YAML::Value << YAML::BeginSeq;
  for (const auto& file : manifest.files)
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "path" << YAML::Value << file.path
        << YAML::Key << "size" << YAML::Value << file.size << YAML::Key << "sha256"
        << YAML::Value << file.sha256 << YAML::EndMap;
  out << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

Published publish_version(const Connection& connection, const std::string& root,
                          const std::string& name, const std::string& version,
                          const std::filesystem::path& directory, bool force,
                          const MultipartOptions& options) {
  S3Client client(connection);
  ObjectAddress manifest_object = version_object(root, name, version, "manifest.yaml");
  if (!force && client.head(manifest_object))
    throw UsageError(str(name, " version ", version, " already exists at s3://",
                         manifest_object.bucket, "/", manifest_object.key,
                         " (versions are immutable; --force replaces it)"));
  Manifest manifest{name, version, utc_now(), {}};
  for (const auto& entry : std::filesystem::recursive_directory_iterator(directory)) {
    if (!entry.is_regular_file()) continue;
    std::string relative = entry.path().lexically_relative(directory).generic_string();
    if (relative == "manifest.yaml") continue;
    long long size = static_cast<long long>(entry.file_size());
    manifest.files.push_back({relative, size, sha256_file(entry.path())});
    ObjectAddress object = version_object(root, name, version, relative);
    if (size >= options.part_size)
      upload_multipart(connection, entry.path(), object, options);
    else
      client.put(object, read_file(entry.path()));
  }
  if (manifest.files.empty())
    throw UsageError(str(directory.string(), ": no files to publish"));
  std::sort(manifest.files.begin(), manifest.files.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  std::string text = manifest_to_yaml(manifest);
  client.put(manifest_object, text);
  return {str("s3://", manifest_object.bucket, "/", manifest_object.key), sha256_hex(text)};
}

Manifest fetch_version(const Connection& connection, const std::string& root,
                       const std::string& name, const std::string& version,
                       const std::filesystem::path& directory) {
  S3Client client(connection);
  ObjectAddress manifest_object = version_object(root, name, version, "manifest.yaml");
  std::string source = str("s3://", manifest_object.bucket, "/", manifest_object.key);
  auto text = client.get(manifest_object);
  if (!text) throw UsageError(str(name, " version ", version, " does not exist (no ", source, ")"));
  Manifest manifest = parse_manifest(*text, source);
  for (const auto& file : manifest.files) {
    std::string where = str(source, ": ", file.path);
    std::filesystem::create_directories((directory / file.path).parent_path());
    AtomicFile out(directory / file.path);
    Sha256 digest;
    long long received = 0;
    bool present = client.download(version_object(root, name, version, file.path),
                                   [&](std::string_view bytes) {
                                     out.write(bytes);
                                     digest.update(bytes);
                                     received += static_cast<long long>(bytes.size());
                                   });
    if (!present) throw DataError(str(where, " is listed but missing"));
    if (received != file.size || digest.hex_digest() != file.sha256)
      throw DataError(str(where, ": downloaded bytes do not match the manifest's size/sha256"));
    out.commit();
  }
  write_file_atomic(directory / "manifest.yaml", *text);
  return manifest;
}

}  // namespace dsk::registry
