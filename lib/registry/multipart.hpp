// Multipart upload of one file: initiate, send parts of part_size bytes from `concurrency`
// threads (each with its own S3Client, so its own libcurl handle), complete with the parts'
// ETags in order.
//
// Integrity: the caller hashes the file (sha256) before the upload. Before completing, the
// file is read once more: its sha256 must still be that hash and each part's MD5 the MD5 sent
// (which the server checked as Content-MD5), so the parts stored are this file's bytes; else
// the upload is aborted and DataError names the file that changed. After completing, the
// object's ETag must be S3's multipart ETag of those MD5s (MD5 of the parts' binary MD5s,
// "-", their count) or, from a server that hashes whole objects (s3rver), the file's MD5; else
// the object is deleted and RemoteError says so. Under SSE-KMS (ETags are no MD5s) only the
// size is compared.
//
// Resume: with a state directory (registry/upload_state.hpp), the upload id and every
// finished part are kept there (rewritten atomically after each part). When an upload fails
// (the server went away, a time-out outlived the retries, the process was killed) the upload
// is left open on the server and the state file stays; the next upload of the same file
// content (its sha256) to the same object sends only the parts not yet finished. Other content
// or an upload the server no longer knows (NoSuchUpload) starts afresh. Without a state
// directory a failed upload is aborted so the server frees the parts.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "registry/s3_client.hpp"
#include "registry/upload_state.hpp"

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

// Returns the completed object's ETag. sha256: the file's, hashed by the caller before the
// upload. headers go with the initiation (x-amz-meta-*, content-type).
std::string upload_multipart(const Connection& connection, const std::filesystem::path& file,
                             const ObjectAddress& object, const MultipartOptions& options,
                             const std::string& sha256,
                             const std::map<std::string, std::string>& headers = {});

// Forgets a resumable upload of object (one found stored whole by other means, or completed
// by a run killed before it could forget it): aborts it on the server if still open and
// removes its state file. Nothing without a state directory or a state file.
void forget_upload(const Connection& connection, const ObjectAddress& object,
                   const MultipartOptions& options);

// S3's ETag of a multipart object: the MD5 of its parts' binary MD5s, "-", the part count.
// part_md5s: hex, in part order.
std::string multipart_etag(const std::vector<std::string>& part_md5s);

}  // namespace dsk::registry
