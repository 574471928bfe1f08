#include "registry/multipart.hpp"

#include <yaml-cpp/yaml.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/progress.hpp"
#include "core/sha256.hpp"

namespace dsk::registry {
namespace {

std::string upload_id_of(const std::string& xml) {
  std::string id = xml_field(xml, "InitiateMultipartUploadResult", "UploadId");
  if (id.empty()) throw RemoteError("the server's InitiateMultipartUpload answer has no UploadId");
  return id;
}

std::string read_range(const std::filesystem::path& file, long long offset, long long size) {
  std::ifstream in(file, std::ios::binary);
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(offset);
  if (!in.read(bytes.data(), size))
    throw DataError(str(file.string(), ": cannot read bytes ", offset, "..", offset + size));
  return bytes;
}

std::string completion_xml(const std::map<long long, std::string>& etags) {
  std::string xml = "<CompleteMultipartUpload>";
  for (const auto& [number, etag] : etags)
    xml += str("<Part><PartNumber>", number, "</PartNumber><ETag>", etag, "</ETag></Part>");
  return xml + "</CompleteMultipartUpload>";
}

long long modification_time(const std::filesystem::path& file) {
  return static_cast<long long>(std::filesystem::last_write_time(file).time_since_epoch().count());
}

bool no_such_upload(const Error& error) {
  return std::string(error.what()).find("NoSuchUpload") != std::string::npos;
}

void abort_upload(S3Client& client, const ObjectAddress& object, const std::string& upload_id) {
  try {
    client.send("DELETE", object, {{"uploadId", upload_id}}, "", {}, true);
  } catch (const Error&) {
    // the error that brought us here matters more than a failed abort
  }
}

// One attempt at the whole upload; `state` is the fresh or resumed state.
std::string run_upload(const Connection& connection, const std::filesystem::path& file,
                       const ObjectAddress& object, const MultipartOptions& options,
                       const std::filesystem::path& state_path, UploadState& state) {
  const long long size = state.size;
  const long long parts = std::max(1LL, (size + options.part_size - 1) / options.part_size);
  auto part_bytes = [&](long long number) {
    long long offset = (number - 1) * options.part_size;
    return std::min(options.part_size, size - offset);
  };
  if (options.progress)
    for (const auto& [number, etag] : state.etags)
      options.progress->add(static_cast<uint64_t>(part_bytes(number)));

  std::vector<long long> pending;
  for (long long number = 1; number <= parts; ++number)
    if (!state.etags.count(number)) pending.push_back(number);

  std::mutex state_mutex;
  std::atomic<size_t> next{0};
  std::exception_ptr first_error;
  auto worker = [&] {
    try {
      S3Client client(connection);
      for (size_t i = next++; i < pending.size(); i = next++) {
        {
          std::lock_guard lock(state_mutex);
          if (first_error) return;
        }
        long long number = pending[i];
        std::string bytes = read_range(file, (number - 1) * options.part_size, part_bytes(number));
        Response response = client.put_verified(
            object, {{"partNumber", std::to_string(number)}, {"uploadId", state.upload_id}}, bytes, {});
        std::lock_guard lock(state_mutex);
        state.etags[number] = response.headers["etag"];
        if (!state_path.empty()) write_file_atomic(state_path, upload_state_to_yaml(state));
        if (options.progress) options.progress->add(bytes.size());
      }
    } catch (...) {
      std::lock_guard lock(state_mutex);
      if (!first_error) first_error = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < std::min<long long>(options.concurrency, std::ssize(pending)); ++i)
    threads.emplace_back(worker);
  for (auto& thread : threads) thread.join();
  if (first_error) std::rethrow_exception(first_error);

  S3Client control(connection);
  Response done = control.send("POST", object, {{"uploadId", state.upload_id}},
                               completion_xml(state.etags), {{"content-type", "application/xml"}},
                               false);
  // S3 may answer 200 with an <Error> body when completion fails late.
  if (std::string failure = s3_error_summary(done.body); !failure.empty())
    throw RemoteError(str("completing s3://", object.bucket, "/", object.key, ": ", failure));
  return done.headers.count("etag") ? done.headers["etag"] : "";
}

}  // namespace

std::string upload_state_to_yaml(const UploadState& state) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "upload_id" << YAML::Value << state.upload_id;
  out << YAML::Key << "object" << YAML::Value << state.object;
  out << YAML::Key << "file" << YAML::Value << state.file;
  out << YAML::Key << "size" << YAML::Value << state.size;
  out << YAML::Key << "mtime" << YAML::Value << state.mtime;
  out << YAML::Key << "part_size" << YAML::Value << state.part_size;
  out << YAML::Key << "parts" << YAML::Value << YAML::BeginMap;
  for (const auto& [number, etag] : state.etags)
    out << YAML::Key << number << YAML::Value << YAML::DoubleQuoted << etag;
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
                      root["mtime"].as<long long>(0), root["part_size"].as<long long>(0), {}};
    for (const auto& part : root["parts"])
      state.etags[part.first.as<long long>()] = part.second.as<std::string>();
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

std::string upload_multipart(const Connection& connection, const std::filesystem::path& file,
                             const ObjectAddress& object, const MultipartOptions& options,
                             const std::map<std::string, std::string>& headers) {
  if (options.part_size < 1 || options.concurrency < 1)
    throw UsageError("multipart upload: part size and concurrency must be positive");
  long long size = static_cast<long long>(std::filesystem::file_size(file));
  long long parts = std::max(1LL, (size + options.part_size - 1) / options.part_size);
  if (parts > 10000)
    throw UsageError(str(file.string(), ": ", parts, " parts exceed S3's 10000; raise the part size"));
  const std::string url = str("s3://", object.bucket, "/", object.key);
  const std::string absolute = std::filesystem::absolute(file).lexically_normal().string();

  std::filesystem::path state_path;
  if (!options.state_dir.empty()) {
    std::filesystem::create_directories(options.state_dir);
    state_path = upload_state_path(options.state_dir, connection, object, options.part_size);
  }
  S3Client control(connection);
  UploadState state{"", url, absolute, size, modification_time(file), options.part_size, {}};
  bool resumed = false;
  if (!state_path.empty() && std::filesystem::exists(state_path)) {
    try {
      UploadState saved = parse_upload_state(read_file(state_path), state_path.string());
      if (saved.object == url && saved.file == absolute && saved.size == size &&
          saved.mtime == state.mtime && saved.part_size == options.part_size) {
        state = saved;
        resumed = true;
        log_info("resuming the upload of ", file.string(), " to ", url, ": ", state.etags.size(),
                 " of ", parts, " parts already sent");
      } else {
        log_info(file.string(), " changed since its interrupted upload to ", url, ": starting afresh");
        abort_upload(control, object, saved.upload_id);
      }
    } catch (const DataError& error) {
      log_warn(error.what(), ": starting afresh");
    }
    if (!resumed) std::filesystem::remove(state_path);
  }

  for (int round = 0;; ++round) {
    if (state.upload_id.empty()) {
      state.upload_id = upload_id_of(control.send("POST", object, {{"uploads", ""}}, "", headers, false).body);
      if (!state_path.empty()) write_file_atomic(state_path, upload_state_to_yaml(state));
    }
    try {
      std::string etag = run_upload(connection, file, object, options, state_path, state);
      if (!state_path.empty()) std::filesystem::remove(state_path);
      return etag;
    } catch (const Error& error) {
      if (resumed && round == 0 && no_such_upload(error)) {
        // The server forgot the upload (aborted, expired, restarted without its data).
        log_info("the server no longer knows the interrupted upload to ", url, ": starting afresh");
        state.upload_id.clear();
        state.etags.clear();
        continue;
      }
      if (state_path.empty()) {
        abort_upload(control, object, state.upload_id);
      } else {
        log_warn("the upload of ", file.string(), " stopped after ", state.etags.size(), " of ",
                 parts, " parts; rerun the same command to resume (state in ",
                 state_path.string(), ")");
      }
      throw;
    }
  }
}

}  // namespace dsk::registry
