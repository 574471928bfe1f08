// The registry layout on S3: s3://bucket/prefix/<name>/<version>/<files> and, written last,
// <name>/<version>/manifest.yaml, so a version is visible (has a manifest) only when whole:
//   name: deepseek-vision
//   version: "1.0"
//   created: 2026-11-22T18:40:00Z
//   files:
//     - {path: model.safetensors, size: 123, sha256: ab12...}
// Versions are immutable: publishing one whose manifest exists fails unless forced.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "registry/multipart.hpp"

namespace dsk::registry {

struct ManifestFile {
  std::string path;  // relative, '/'-separated
  long long size = 0;
  std::string sha256;
};

struct Manifest {
  std::string name, version, created;
  std::vector<ManifestFile> files;
};

Manifest parse_manifest(const std::string& yaml, const std::string& source);
std::string manifest_to_yaml(const Manifest& manifest);

struct Published {
  std::string manifest_url;  // s3://bucket/prefix/name/version/manifest.yaml
  std::string manifest_sha256;
};

// root: s3://bucket/prefix (prefix may be empty). Files at least part_size bytes go multipart.
Published publish_version(const Connection& connection, const std::string& root,
                          const std::string& name, const std::string& version,
                          const std::filesystem::path& directory, bool force,
                          const MultipartOptions& options);

// Downloads every file of a version into directory, verifying each size and sha256
// (DataError on a mismatch); files are written under a temporary name and renamed.
Manifest fetch_version(const Connection& connection, const std::string& root,
                       const std::string& name, const std::string& version,
                       const std::filesystem::path& directory);

}  // namespace dsk::registry
