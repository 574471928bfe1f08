#include "registry/version_store.hpp"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <ctime>
#include <mutex>
#include <set>
#include <thread>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/yaml_string.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/progress.hpp"
#include "core/sha256.hpp"
#include "io/safetensors.hpp"
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

// A file path must name a file inside the version's directory: relative, '/'-separated names
// none of which is empty, "." or "..", no NUL or backslash.
void check_relative(const std::string& path, const std::string& where) {
  bool ok = !path.empty() && path.find('\0') == std::string::npos && path.find('\\') == std::string::npos;
  for (size_t start = 0; ok && start <= path.size();) {
    size_t slash = std::min(path.find('/', start), path.size());
    std::string_view name(path.data() + start, slash - start);
    ok = !name.empty() && name != "." && name != "..";
    start = slash + 1;
  }
  if (!ok) throw DataError(str(where, ": file path '", path, "' must be relative, without '..', '.' or empty names"));
}

// A JSON file's top-level string field, or "" when the file, the field or valid JSON is missing.
std::string json_field(const std::filesystem::path& file, const char* field) {
  if (!std::filesystem::exists(file)) return "";
  nlohmann::json root = nlohmann::json::parse(read_file(file), nullptr, /*allow_exceptions=*/false);
  return root.is_object() && root.contains(field) && root[field].is_string() ? root[field].get<std::string>() : "";
}

// What an object holds, by its file's name: S3 keeps it as the object's Content-Type.
std::string content_type_of(const std::filesystem::path& file) {
  std::string extension = file.extension().string();
  if (extension == ".json") return "application/json";
  if (extension == ".yaml" || extension == ".yml") return "application/yaml";
  if (extension == ".txt" || extension == ".md") return "text/plain";
  return "application/octet-stream";
}

// Elements of every tensor, from the checked header of the mmap'd file (no tensor data is read).
long long safetensors_parameters(const std::filesystem::path& file) {
  const io::SafetensorsFile safetensors(file);  // named: a temporary would die before the loop
  long long count = 0;
  for (const auto& tensor : safetensors.tensors()) count += static_cast<long long>(tensor.element_count());
  return count;
}

// Downloads one file of size bytes into target, verified: a single GET below part_size,
// otherwise ranges of part_size from `concurrency` threads written in place.
// Each request is retried by the client, so a dropped connection costs one range at most.
void download_file(const Connection& connection, S3Client& client, const ObjectAddress& object,
                   const ManifestFile& file, const std::filesystem::path& target,
                   const FetchOptions& options, const std::string& where) {
  std::filesystem::create_directories(target.parent_path());
  AtomicFile out(target);
  if (file.size <= options.part_size || options.concurrency <= 1) {
    auto bytes = client.get(object);
    if (!bytes) throw DataError(str(where, " is listed but missing"));
    if (static_cast<long long>(bytes->size()) != file.size || sha256_hex(*bytes) != file.sha256)
      throw DataError(str(where, ": downloaded bytes do not match the manifest's size/sha256"));
    out.write(*bytes);
    if (options.progress) options.progress->add(bytes->size());
    out.commit();
    return;
  }
  int descriptor = fileno(out.handle());
  if (ftruncate(descriptor, file.size) != 0) throw_io_error("resize", out.temporary_path(), errno);
  const long long ranges = (file.size + options.part_size - 1) / options.part_size;
  // Ranges are hashed in order as they arrive (by whichever worker completes the next one), so
  // the file is never read back; a worker runs at most `window` ranges ahead of the hash, which
  // bounds the memory to about (concurrency + 1) ranges.
  const long long window = options.concurrency + 1;
  Sha256 digest;
  std::mutex mutex;
  std::condition_variable progressed;
  std::map<long long, std::string> unhashed;
  long long next_to_hash = 0;
  bool hashing = false;
  std::atomic<long long> next{0};
  std::exception_ptr first_error;
  auto worker = [&] {
    try {
      S3Client own(connection);
      for (long long range = next++; range < ranges; range = next++) {
        {
          std::unique_lock lock(mutex);
          progressed.wait(lock, [&] { return range < next_to_hash + window || first_error; });
          if (first_error) return;
        }
        long long first = range * options.part_size;
        long long last = std::min(file.size, first + options.part_size) - 1;
        auto bytes = own.get(object, std::pair{first, last});
        if (!bytes) throw DataError(str(where, " is listed but missing"));
        if (static_cast<long long>(bytes->size()) != last - first + 1)
          throw DataError(str(where, ": bytes ", first, "-", last, " came back as ",
                              bytes->size(), " bytes (is the object shorter than the manifest says?)"));
        for (size_t written = 0; written < bytes->size();) {
          ssize_t n = pwrite(descriptor, bytes->data() + written, bytes->size() - written,
                             static_cast<off_t>(first) + static_cast<off_t>(written));
          if (n < 0) throw_io_error("write", out.temporary_path(), errno);
          written += static_cast<size_t>(n);
        }
        if (options.progress) options.progress->add(bytes->size());
        std::unique_lock lock(mutex);
        unhashed.emplace(range, std::move(*bytes));
        if (hashing) continue;  // the worker hashing now will reach this range too
        hashing = true;
        for (auto ready = unhashed.find(next_to_hash); ready != unhashed.end();
             ready = unhashed.find(next_to_hash)) {
          std::string chunk = std::move(ready->second);
          unhashed.erase(ready);
          lock.unlock();
          digest.update(chunk);
          lock.lock();
          ++next_to_hash;
          progressed.notify_all();
        }
        hashing = false;
      }
    } catch (...) {
      std::lock_guard lock(mutex);
      if (!first_error) first_error = std::current_exception();
      progressed.notify_all();
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < std::min<long long>(options.concurrency, ranges); ++i)
    threads.emplace_back(worker);
  for (auto& thread : threads) thread.join();
  if (first_error) std::rethrow_exception(first_error);
  if (next_to_hash != ranges || digest.hex_digest() != file.sha256)
    throw DataError(str(where, ": downloaded bytes do not match the manifest's sha256"));
  out.commit();
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
    manifest.model_type = root["model_type"].as<std::string>("");
    manifest.base_model = root["base_model"].as<std::string>("");
    manifest.parameters = root["parameters"].as<long long>(0);
    for (const auto& entry : root["files"]) {
      std::string where = yaml_location(source, entry);
      if (!entry.IsMap())
        throw DataError(str(where, ": each file must be a map {path, size, sha256}"));
      ManifestFile file{entry["path"].as<std::string>(""), entry["size"].as<long long>(-1),
                        entry["sha256"].as<std::string>("")};
      check_relative(file.path, where);
      if (file.size < 0 || file.sha256.size() != 64 ||
          file.sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
        throw DataError(str(where, ": file '", file.path, "' needs a size and a 64-hex sha256"));
      manifest.files.push_back(file);
    }
    if (YAML::Node record = root["record"]; record && record.IsMap())
      for (const auto& field : record)
        manifest.record.emplace_back(field.first.as<std::string>(), field.second.as<std::string>(""));
  } catch (const YAML::Exception& error) {
    throw DataError(str(source, ":", error.mark.line + 1, ": not a manifest: ", error.msg));
  }
  if (manifest.name.empty() || manifest.version.empty())
    throw DataError(str(source, ": the manifest names no name or version"));
  return manifest;
}

std::string manifest_to_yaml(const Manifest& manifest) {
  // Strings through emit_string: a control character written raw does not read back the same.
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "name" << YAML::Value;
  emit_string(out, manifest.name);
  out << YAML::Key << "version" << YAML::Value << YAML::DoubleQuoted << manifest.version;
  out << YAML::Key << "created" << YAML::Value;
  emit_string(out, manifest.created);
  if (!manifest.model_type.empty()) {
    out << YAML::Key << "model_type" << YAML::Value;
    emit_string(out, manifest.model_type);
  }
  if (!manifest.base_model.empty()) {
    out << YAML::Key << "base_model" << YAML::Value;
    emit_string(out, manifest.base_model);
  }
  if (manifest.parameters > 0)
    out << YAML::Key << "parameters" << YAML::Value << manifest.parameters;
  out << YAML::Key << "files" << YAML::Value << YAML::BeginSeq;
  for (const auto& file : manifest.files) {
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "path" << YAML::Value;
    emit_string(out, file.path);
    out << YAML::Key << "size" << YAML::Value << file.size << YAML::Key << "sha256" << YAML::Value << file.sha256
        << YAML::EndMap;
  }
  out << YAML::EndSeq;
  if (!manifest.record.empty()) {
    out << YAML::Key << "record" << YAML::Value << YAML::BeginMap;
    for (const auto& [key, value] : manifest.record) {
      out << YAML::Key;
      emit_string(out, key);
      out << YAML::Value;
      emit_string(out, value);
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

void describe_model(const std::filesystem::path& directory, Manifest& manifest) {
  manifest.model_type = json_field(directory / "config.json", "model_type");
  manifest.base_model = json_field(directory / "adapter_config.json", "base_model_name_or_path");
  manifest.parameters = 0;
  try {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(directory))
      if (entry.is_regular_file() && entry.path().extension() == ".safetensors")
        manifest.parameters += safetensors_parameters(entry.path());
  } catch (const DataError& error) {
    // Publishing stores bytes; a file dsk cannot read is still the user's to store.
    log_warn(error.what(), ": the manifest gets no parameter count");
    manifest.parameters = 0;
  }
}

Published publish_version(const Connection& connection, const std::string& root,
                          const std::string& name, const std::string& version,
                          const std::filesystem::path& directory, const PublishOptions& options) {
  S3Client client(connection);
  if (!options.multipart.state_dir.empty()) remove_stale_temporaries(options.multipart.state_dir);
  ObjectAddress manifest_object = version_object(root, name, version, "manifest.yaml");
  if (!options.force && client.head(manifest_object))
    throw UsageError(str(name, " version ", version, " already exists at s3://",
                         manifest_object.bucket, "/", manifest_object.key,
                         " (versions are immutable; --force replaces it)"));
  if (!std::filesystem::is_directory(directory))
    throw UsageError(str(directory.string(), ": not a directory to publish"));
  Manifest manifest{name, version, utc_now(), {}, "", "", 0, options.record};
  describe_model(directory, manifest);
  if (manifest.base_model.empty())
    for (const auto& [key, value] : options.record)
      if (key == "base_model") manifest.base_model = value;
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(directory))
    if (entry.is_regular_file() && entry.path().lexically_relative(directory) != "manifest.yaml")
      paths.push_back(entry.path());
  if (paths.empty()) throw UsageError(str(directory.string(), ": no files to publish"));
  std::sort(paths.begin(), paths.end());
  long long total = 0;
  for (const auto& path : paths) total += static_cast<long long>(std::filesystem::file_size(path));
  if (options.multipart.progress) options.multipart.progress->set_total(static_cast<uint64_t>(total));

  for (const auto& path : paths) {
    std::string relative = path.lexically_relative(directory).generic_string();
    long long size = static_cast<long long>(std::filesystem::file_size(path));
    std::string sha256 = sha256_file(path);
    manifest.files.push_back({relative, size, sha256});
    ObjectAddress object = version_object(root, name, version, relative);
    // A rerun after an interruption: a file already stored whole is not sent again.
    if (auto stored = client.head(object);
        stored && stored->size == size && stored->metadata["sha256"] == sha256) {
      log_debug(relative, ": already stored whole, not sent again");
      forget_upload(connection, object, options.multipart);  // a run killed after completing it
      if (options.multipart.progress) options.multipart.progress->add(static_cast<uint64_t>(size));
      continue;
    }
    std::map<std::string, std::string> headers{{"x-amz-meta-sha256", sha256},
                                               {"content-type", content_type_of(path)}};
    if (size >= options.multipart.part_size) {
      upload_multipart(connection, path, object, options.multipart, sha256, headers);
    } else {
      client.put(object, read_file(path), headers);
      if (options.multipart.progress) options.multipart.progress->add(static_cast<uint64_t>(size));
    }
  }
  std::string text = manifest_to_yaml(manifest);
  client.put(manifest_object, text, {{"content-type", "application/yaml"}});
  return {str("s3://", manifest_object.bucket, "/", manifest_object.key), sha256_hex(text), total};
}

std::optional<std::string> read_manifest_text(S3Client& client, const std::string& root,
                                              const std::string& name, const std::string& version) {
  return client.get(version_object(root, name, version, "manifest.yaml"));
}

Manifest fetch_version(const Connection& connection, const std::string& root,
                       const std::string& name, const std::string& version,
                       const std::filesystem::path& directory, const FetchOptions& options) {
  S3Client client(connection);
  auto text = read_manifest_text(client, root, name, version);
  if (!text) {
    ObjectAddress object = version_object(root, name, version, "manifest.yaml");
    throw UsageError(str(name, " version ", version, " does not exist (no s3://", object.bucket,
                         "/", object.key, ")"));
  }
  return fetch_manifest_files(connection, root, name, version, *text, directory, options);
}

Manifest fetch_manifest_files(const Connection& connection, const std::string& root,
                              const std::string& name, const std::string& version,
                              const std::string& manifest_text,
                              const std::filesystem::path& directory, const FetchOptions& options) {
  ObjectAddress manifest_object = version_object(root, name, version, "manifest.yaml");
  std::string source = str("s3://", manifest_object.bucket, "/", manifest_object.key);
  Manifest manifest = parse_manifest(manifest_text, source);
  if (options.progress) {
    long long total = 0;
    for (const auto& file : manifest.files) total += file.size;
    options.progress->set_total(static_cast<uint64_t>(total));
  }
  S3Client client(connection);
  for (const auto& file : manifest.files)
    download_file(connection, client, version_object(root, name, version, file.path), file,
                  directory / file.path, options, str(source, ": ", file.path));
  write_file_atomic(directory / "manifest.yaml", manifest_text);
  return manifest;
}

// Both listings walk every key under the prefix rather than asking for CommonPrefixes with a
// delimiter: s3rver 3.7.1 returns no CommonPrefixes when the rest of a key holds more than one
// '/', and a registry has few enough objects that one paginated listing is cheap.
std::vector<std::string> list_names(S3Client& client, const std::string& root) {
  ObjectAddress base = registry_object(root, "", "");  // "prefix//" or "/"
  base.key.pop_back();                                 // "prefix/" or ""
  std::set<std::string> names;
  for (const auto& object : client.list(base)) {
    std::string rest = object.key.substr(base.key.size());
    if (auto slash = rest.find('/'); slash != std::string::npos && slash > 0)
      names.insert(rest.substr(0, slash));
  }
  return {names.begin(), names.end()};
}

std::vector<VersionSummary> list_versions(S3Client& client, const std::string& root,
                                          const std::string& name) {
  ObjectAddress base = registry_object(root, name, "");  // "prefix/name/"
  std::vector<VersionSummary> versions;
  for (const auto& object : client.list(base)) {
    std::string rest = object.key.substr(base.key.size());
    auto slash = rest.find('/');
    if (slash == std::string::npos || slash == 0 || rest.substr(slash + 1) != "manifest.yaml") continue;
    std::string version = rest.substr(0, slash);
    auto text = read_manifest_text(client, root, name, version);
    if (!text) continue;  // deleted meanwhile
    Manifest manifest = parse_manifest(*text, str("s3://", base.bucket, "/", base.key, version, "/manifest.yaml"));
    versions.push_back({version, manifest.created});
  }
  std::sort(versions.begin(), versions.end(), [](const auto& a, const auto& b) {
    return a.created != b.created ? a.created < b.created : a.version < b.version;
  });
  return versions;
}

void delete_version(S3Client& client, const std::string& root, const std::string& name,
                    const std::string& version) {
  ObjectAddress manifest_object = version_object(root, name, version, "manifest.yaml");
  client.remove(manifest_object);
  for (const auto& object : client.list(version_object(root, name, version, "")))
    client.remove({manifest_object.bucket, object.key});
}

}  // namespace dsk::registry
