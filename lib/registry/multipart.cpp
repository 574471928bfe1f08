#include "registry/multipart.hpp"

#include <atomic>
#include <fstream>
#include <mutex>
#include <regex>
#include <thread>

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

long long part_count(long long size, long long part_size) {
  return std::max(1LL, (size + part_size - 1) / part_size);
}

std::string read_range(const std::filesystem::path& file, long long offset, long long size) {
  std::ifstream in(file, std::ios::binary);
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(offset);
  if (!in.read(bytes.data(), size))
    throw DataError(str(file.string(), ": cannot read bytes ", offset, "..", offset + size));
  return bytes;
}

std::string completion_xml(const std::map<long long, SentPart>& parts) {
  std::string xml = "<CompleteMultipartUpload>";
  for (const auto& [number, part] : parts)
    xml += str("<Part><PartNumber>", number, "</PartNumber><ETag>", part.etag, "</ETag></Part>");
  return xml + "</CompleteMultipartUpload>";
}

std::string unquoted(const std::string& etag) {
  return etag.size() >= 2 && etag.front() == '"' && etag.back() == '"' ? etag.substr(1, etag.size() - 2) : etag;
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

void remove_state(const std::filesystem::path& state_path) {
  if (!state_path.empty()) std::filesystem::remove(state_path);
}

// The saved state is an upload of this very content to this object.
bool same_upload(const UploadState& saved, const UploadState& wanted) {
  return saved.object == wanted.object && saved.file == wanted.file && saved.size == wanted.size &&
         saved.part_size == wanted.part_size && saved.sha256 == wanted.sha256;
}

// Sends every part not in state.parts; each one finished is recorded there (and in the state
// file) with its ETag and the MD5 of the bytes sent.
void send_parts(const Connection& connection, const std::filesystem::path& file,
                const ObjectAddress& object, const MultipartOptions& options,
                const std::filesystem::path& state_path, UploadState& state) {
  const long long size = state.size;
  auto part_bytes = [&](long long number) {
    long long offset = (number - 1) * options.part_size;
    return std::min(options.part_size, size - offset);
  };
  if (options.progress)
    for (const auto& [number, part] : state.parts)
      options.progress->add(static_cast<uint64_t>(part_bytes(number)));

  std::vector<long long> pending;
  for (long long number = 1; number <= part_count(size, options.part_size); ++number)
    if (!state.parts.count(number)) pending.push_back(number);

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
        state.parts[number] = {response.headers["etag"], md5_hex(bytes)};
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
}

// What the file holds now, read once in parts: its sha256, its MD5 and each part's MD5 (hex).
struct FileDigests {
  std::string sha256, md5;
  std::vector<std::string> part_md5s;
};

FileDigests digest_file(const std::filesystem::path& file, long long size, long long part_size) {
  Sha256 sha256;
  Md5 md5;
  FileDigests digests;
  for (long long offset = 0; offset < size; offset += part_size) {
    std::string bytes = read_range(file, offset, std::min(part_size, size - offset));
    sha256.update(bytes);
    md5.update(bytes);
    digests.part_md5s.push_back(md5_hex(bytes));
  }
  digests.sha256 = sha256.hex_digest();
  digests.md5 = md5.hex_digest();
  return digests;
}

// "" when the parts stored are the file's bytes as hashed before the upload began (each sent
// part's MD5 is the file's part's, the file's sha256 is the one the upload was for); else
// what differs.
std::string file_change(const std::filesystem::path& file, const UploadState& state,
                        const FileDigests& now) {
  long long size = static_cast<long long>(std::filesystem::file_size(file));
  if (size != state.size) return str("its size is now ", size, " bytes, was ", state.size);
  if (now.sha256 != state.sha256)
    return str("its sha256 is now ", now.sha256.substr(0, 16), "..., was ", state.sha256.substr(0, 16), "...");
  for (const auto& [number, part] : state.parts)
    if (number > std::ssize(now.part_md5s) || part.md5 != now.part_md5s[number - 1])
      return str("part ", number, " as sent is not the file's part ", number);
  return "";
}

// "" when the completed object is the file: its ETag is S3's multipart ETag of the parts' MD5s
// or (a server that hashes whole objects) the file's MD5; under SSE-KMS, or when the ETag has
// neither form, its size is the file's. Else what differs.
std::string completion_mismatch(S3Client& client, const ObjectAddress& object, const Response& done,
                                const FileDigests& file, long long size) {
  std::string etag = unquoted(xml_field(done.body, "CompleteMultipartUploadResult", "ETag"));
  std::string expected = multipart_etag(file.part_md5s);
  auto encryption = done.headers.find("x-amz-server-side-encryption");
  bool etag_is_digest = std::regex_match(etag, std::regex("[0-9a-f]{32}(-[0-9]+)?")) &&
                        (encryption == done.headers.end() || encryption->second != "aws:kms");
  if (etag_is_digest)
    return etag == expected || etag == file.md5 ? ""
                                                : str("its ETag is ", etag, ", expected ", expected, " or ", file.md5);
  auto stored = client.head(object);
  if (!stored) return "it is missing";
  return stored->size == size ? "" : str("its size is ", stored->size, " bytes, expected ", size);
}

}  // namespace

std::string multipart_etag(const std::vector<std::string>& part_md5s) {
  std::string binary;
  for (const auto& hex : part_md5s)
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
      binary += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return str(md5_hex(binary), "-", part_md5s.size());
}

void forget_upload(const Connection& connection, const ObjectAddress& object,
                   const MultipartOptions& options) {
  if (options.state_dir.empty()) return;
  std::filesystem::path state_path = upload_state_path(options.state_dir, connection, object, options.part_size);
  if (!std::filesystem::exists(state_path)) return;
  try {
    UploadState saved = parse_upload_state(read_file(state_path), state_path.string());
    S3Client client(connection);
    abort_upload(client, object, saved.upload_id);  // NoSuchUpload when it was completed
  } catch (const DataError&) {
    // an unreadable state file names no upload to abort; it goes all the same
  }
  std::filesystem::remove(state_path);
  log_debug(state_path.string(), ": removed, its object is stored whole");
}

std::string upload_multipart(const Connection& connection, const std::filesystem::path& file,
                             const ObjectAddress& object, const MultipartOptions& options,
                             const std::string& sha256,
                             const std::map<std::string, std::string>& headers) {
  if (options.part_size < 1 || options.concurrency < 1)
    throw UsageError("multipart upload: part size and concurrency must be positive");
  if (sha256.size() != 64) throw InternalError("multipart upload: the file's sha256 is required");
  long long size = static_cast<long long>(std::filesystem::file_size(file));
  long long parts = part_count(size, options.part_size);
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
  UploadState state{"", url, absolute, size, sha256, options.part_size, {}};
  bool resumed = false;
  if (!state_path.empty() && std::filesystem::exists(state_path)) {
    try {
      UploadState saved = parse_upload_state(read_file(state_path), state_path.string());
      if (same_upload(saved, state)) {
        state = saved;
        resumed = true;
        log_info("resuming the upload of ", file.string(), " to ", url, ": ", state.parts.size(),
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
      send_parts(connection, file, object, options, state_path, state);
      // The object appears on completion: first make sure the parts are this file's bytes.
      FileDigests now = digest_file(file, size, options.part_size);
      if (std::string change = file_change(file, state, now); !change.empty()) {
        abort_upload(control, object, state.upload_id);
        remove_state(state_path);
        throw DataError(str(file.string(), " changed while it was being uploaded to ", url, " (", change,
                            "): nothing was stored; rerun when it no longer changes"));
      }
      Response done = control.send("POST", object, {{"uploadId", state.upload_id}},
                                   completion_xml(state.parts), {{"content-type", "application/xml"}},
                                   false);
      // S3 may answer 200 with an <Error> body when completion fails late.
      if (std::string failure = s3_error_summary(done.body); !failure.empty())
        throw RemoteError(str("completing ", url, ": ", failure));
      remove_state(state_path);
      if (std::string mismatch = completion_mismatch(control, object, done, now, size); !mismatch.empty()) {
        control.remove(object);  // else a rerun would find it "stored whole" by its metadata
        throw RemoteError(str("completing ", url, ": the server assembled another object than the parts sent (",
                              mismatch, "); it was deleted"));
      }
      return xml_field(done.body, "CompleteMultipartUploadResult", "ETag");
    } catch (const Error& error) {
      if (resumed && round == 0 && no_such_upload(error)) {
        // The server forgot the upload (aborted, expired, restarted without its data).
        log_info("the server no longer knows the interrupted upload to ", url, ": starting afresh");
        state.upload_id.clear();
        state.parts.clear();
        continue;
      }
      if (state_path.empty()) {
        abort_upload(control, object, state.upload_id);
      } else if (std::filesystem::exists(state_path)) {
        log_warn("the upload of ", file.string(), " stopped after ", state.parts.size(), " of ",
                 parts, " parts; rerun the same command to resume (state in ",
                 state_path.string(), ")");
      }
      throw;
    }
  }
}

}  // namespace dsk::registry
