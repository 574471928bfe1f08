#include "registry/multipart.hpp"

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.hpp"

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

std::string completion_xml(const std::vector<std::string>& etags) {
  std::string xml = "<CompleteMultipartUpload>";
  for (size_t i = 0; i < etags.size(); ++i)
    xml += str("<Part><PartNumber>", i + 1, "</PartNumber><ETag>", etags[i], "</ETag></Part>");
  return xml + "</CompleteMultipartUpload>";
}

}  // namespace

std::string upload_multipart(const Connection& connection, const std::filesystem::path& file,
                             const ObjectAddress& object, const MultipartOptions& options) {
  if (options.part_size < 1 || options.concurrency < 1)
    throw UsageError("multipart upload: part size and concurrency must be positive");
  long long size = static_cast<long long>(std::filesystem::file_size(file));
  long long parts = std::max(1LL, (size + options.part_size - 1) / options.part_size);
  if (parts > 10000)
    throw UsageError(str(file.string(), ": ", parts, " parts exceed S3's 10000; raise the part size"));

  S3Client control(connection);
  std::string upload_id = upload_id_of(control.send("POST", object, {{"uploads", ""}}, "", {}, false).body);

  std::vector<std::string> etags(static_cast<size_t>(parts));
  std::atomic<long long> next_part{0};
  std::mutex error_mutex;
  std::exception_ptr first_error;
  auto worker = [&] {
    try {
      S3Client client(connection);
      for (long long part = next_part++; part < parts && !first_error; part = next_part++) {
        long long offset = part * options.part_size;
        std::string bytes = read_range(file, offset, std::min(options.part_size, size - offset));
        Response response = client.send(
            "PUT", object, {{"partNumber", std::to_string(part + 1)}, {"uploadId", upload_id}},
            bytes, {}, false);
        etags[static_cast<size_t>(part)] = response.headers["etag"];
      }
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < std::min<long long>(options.concurrency, parts); ++i)
    threads.emplace_back(worker);
  for (auto& thread : threads) thread.join();

  try {
    if (first_error) std::rethrow_exception(first_error);
    Response done = control.send("POST", object, {{"uploadId", upload_id}}, completion_xml(etags),
                                 {{"content-type", "application/xml"}}, false);
    // S3 may answer 200 with an <Error> body when completion fails late.
    if (std::string failure = s3_error_summary(done.body); !failure.empty())
      throw RemoteError(str("completing s3://", object.bucket, "/", object.key, ": ", failure));
    return done.headers.count("etag") ? done.headers["etag"] : "";
  } catch (...) {
    try {
      control.send("DELETE", object, {{"uploadId", upload_id}}, "", {}, true);
    } catch (const Error&) {
      // the original error matters more than a failed abort
    }
    throw;
  }
}

}  // namespace dsk::registry
