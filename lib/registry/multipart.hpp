// Multipart upload of one file: initiate, send parts of part_size bytes from `concurrency`
// threads (each with its own S3Client, so its own libcurl handle), complete with the parts'
// ETags in order. On any failure the upload is aborted so the server frees the parts, and the
// first error is rethrown.
#pragma once

#include <filesystem>
#include <string>

#include "registry/s3_client.hpp"

namespace dsk::registry {

struct MultipartOptions {
  long long part_size = 8ll << 20;  // S3 wants >= 5 MiB for every part but the last
  int concurrency = 4;
};

// Returns the completed object's ETag.
std::string upload_multipart(const Connection& connection, const std::filesystem::path& file,
                             const ObjectAddress& object, const MultipartOptions& options);

}  // namespace dsk::registry
