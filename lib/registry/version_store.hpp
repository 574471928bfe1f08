// The registry layout on S3: s3://bucket/prefix/<name>/<version>/<files> and, written last,
// <name>/<version>/manifest.yaml, so a version is visible (has a manifest) only when whole:
//   name: deepseek-vision
//   version: "1.0"
//   created: 2026-11-22T18:40:00Z
//   model_type: llama                  # from config.json, when there is one
//   base_model: deepseek-ai/...        # an adapter's base (adapter_config.json), or the record's
//   parameters: 6738415616             # elements of every *.safetensors tensor, when any
//   files:
//     - {path: model.safetensors, size: 123, sha256: ab12...}
//   record: {kind: checkpoint, path: ..., step: 500}   # the producing record, when read from stdin
// Versions are immutable: publishing one whose manifest exists fails unless forced. Every file
// object carries its sha256 as x-amz-meta-sha256, so a rerun of an interrupted publish skips
// the files already stored whole, and a Content-Type by its name: application/json (.json),
// application/yaml (.yaml, .yml, the manifest), text/plain (.txt, .md), else
// application/octet-stream.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
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
  std::string model_type;                                   // "" when unknown
  std::string base_model;                                   // "" when unknown
  long long parameters = 0;                                 // 0 when unknown
  std::vector<std::pair<std::string, std::string>> record;  // the producing record's fields
};

Manifest parse_manifest(const std::string& yaml, const std::string& source);
std::string manifest_to_yaml(const Manifest& manifest);

struct Published {
  std::string manifest_url;  // s3://bucket/prefix/name/version/manifest.yaml
  std::string manifest_sha256;
  long long bytes = 0;  // of all files
};

struct PublishOptions {
  bool force = false;
  MultipartOptions multipart;  // files at least multipart.part_size bytes go multipart
  std::vector<std::pair<std::string, std::string>> record;  // kept in the manifest
};

// What the manifest says about a directory's model beyond its files: model_type from
// config.json, base_model from adapter_config.json (PEFT's base_model_name_or_path), and the
// parameter count summed over the headers of its *.safetensors files (0, with a warning, when
// one of them is not valid safetensors).
void describe_model(const std::filesystem::path& directory, Manifest& manifest);

// root: s3://bucket/prefix (prefix may be empty).
Published publish_version(const Connection& connection, const std::string& root,
                          const std::string& name, const std::string& version,
                          const std::filesystem::path& directory, const PublishOptions& options);

struct FetchOptions {
  long long part_size = 8ll << 20;  // files larger than this download as parallel ranges
  int concurrency = 4;
  Progress* progress = nullptr;
};

// Downloads every file of a version into directory, verifying each size and sha256
// (DataError on a mismatch); files are written under a temporary name and renamed. The
// manifest is written beside them as manifest.yaml.
Manifest fetch_version(const Connection& connection, const std::string& root,
                       const std::string& name, const std::string& version,
                       const std::filesystem::path& directory, const FetchOptions& options = {});
// The same for a manifest already read (its text as stored).
Manifest fetch_manifest_files(const Connection& connection, const std::string& root,
                              const std::string& name, const std::string& version,
                              const std::string& manifest_text,
                              const std::filesystem::path& directory, const FetchOptions& options);

// The manifest's text as stored, or nullopt when the version does not exist (is not whole).
std::optional<std::string> read_manifest_text(S3Client& client, const std::string& root,
                                              const std::string& name, const std::string& version);

// Model names under root (every <name>/ directory).
std::vector<std::string> list_names(S3Client& client, const std::string& root);

struct VersionSummary {
  std::string version, created;
};
// The whole versions of name (those with a manifest), oldest first by creation time.
std::vector<VersionSummary> list_versions(S3Client& client, const std::string& root,
                                          const std::string& name);

// Deletes a version: the manifest first (so it stops being visible at once), then its files.
void delete_version(S3Client& client, const std::string& root, const std::string& name,
                    const std::string& version);

}  // namespace dsk::registry
