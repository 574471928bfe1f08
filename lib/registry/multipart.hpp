// Multipart upload of one file: initiate, send parts of part_size bytes from `concurrency`
// threads (each with its own S3Client, so its own libcurl handle), complete with the parts'
// ETags in order.
//
// Resume: with a state directory, the upload id and every finished part's ETag are kept in a
// small YAML file there (rewritten atomically after each part), keyed by endpoint, bucket, key
// and part size. When an upload fails (the server went away, a time-out outlived the retries,
// the process was killed) the upload is left open on the server and the state file stays; the
// next upload of the same file to the same object sends only the parts not yet finished. A
// changed file (size or modification time) or an upload the server no longer knows
// (NoSuchUpload) starts afresh. Without a state directory a failed upload is aborted so the
// server frees the parts.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "registry/s3_client.hpp"

namespace dsk {
class Progress;
}

namespace dsk::registry {

struct MultipartOptions {
  long long part_size = 8ll << 20;  // S3 wants >= 5 MiB for every part but the last
  int concurrency = 4;
  std::filesystem::path state_dir;  // empty: no resume
  Progress* progress = nullptr;     // bytes sent (and bytes already sent, on resume) go here
};

// What a resumable upload keeps between runs.
struct UploadState {
  std::string upload_id;
  std::string object;  // s3://bucket/key
  std::string file;    // absolute path of the local file
  long long size = 0, mtime = 0, part_size = 0;
  std::map<long long, std::string> etags;  // finished parts: number (1-based) -> ETag
};
std::string upload_state_to_yaml(const UploadState& state);
UploadState parse_upload_state(const std::string& yaml, const std::string& source);
std::filesystem::path upload_state_path(const std::filesystem::path& state_dir,
                                        const Connection& connection,
                                        const ObjectAddress& object, long long part_size);

// The default state directory: $XDG_STATE_HOME/dsk/uploads, else ~/.local/state/dsk/uploads.
std::filesystem::path default_upload_state_dir();

// Returns the completed object's ETag. headers go with the initiation (x-amz-meta-*).
std::string upload_multipart(const Connection& connection, const std::filesystem::path& file,
                             const ObjectAddress& object, const MultipartOptions& options,
                             const std::map<std::string, std::string>& headers = {});

}  // namespace dsk::registry
