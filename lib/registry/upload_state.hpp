// What a resumable multipart upload keeps between runs: one small YAML file per object in a
// state directory, named by a hash of endpoint, region, bucket, key and part size:
//   upload_id: 2~abc...
//   object: s3://models/team/vision/1.0/model.safetensors
//   file: /data/ckpt/model.safetensors      # absolute
//   size: 62914560
//   sha256: 5f1c...                         # of the whole file, hashed before the upload
//   part_size: 5242880
//   parts:                                  # finished parts: number (1-based) -> ETag, MD5 sent
//     1: {etag: "\"0cc1...\"", md5: 0cc1...}
// A run resumes an upload only when object, file, size, part size and sha256 all match: the
// content hash, not the modification time, says whether the parts already sent are this file's.
// The file is rewritten whole (a temporary <name>.tmp.<pid> renamed onto it) after each part.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <string>

#include "registry/s3_client.hpp"

namespace dsk::registry {

struct SentPart {
  std::string etag;  // as the server answered, quotes included
  std::string md5;   // hex MD5 of the bytes sent (the Content-MD5 the server checked)
};

struct UploadState {
  std::string upload_id;
  std::string object;  // s3://bucket/key
  std::string file;    // absolute path of the local file
  long long size = 0;
  std::string sha256;  // of the file's content when the upload began
  long long part_size = 0;
  std::map<long long, SentPart> parts;  // finished parts by number (1-based)
};
std::string upload_state_to_yaml(const UploadState& state);
UploadState parse_upload_state(const std::string& yaml, const std::string& source);
std::filesystem::path upload_state_path(const std::filesystem::path& state_dir,
                                        const Connection& connection,
                                        const ObjectAddress& object, long long part_size);

// The default state directory: $XDG_STATE_HOME/dsk/uploads, else ~/.local/state/dsk/uploads.
std::filesystem::path default_upload_state_dir();

// Removes the temporary files (<name>.tmp.<pid>) that runs killed while rewriting their state
// left in state_dir: those of a process that is no longer running, once older than
// stale_after. The age guards a state directory shared by several hosts (a home directory on
// NFS), where a pid not running here may be running elsewhere: a live rewrite takes
// milliseconds. Returns how many were removed; a missing directory has none.
int remove_stale_temporaries(const std::filesystem::path& state_dir,
                             std::chrono::seconds stale_after = std::chrono::seconds(60));

}  // namespace dsk::registry
