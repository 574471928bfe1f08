// libFuzzer target: any bytes as an S3 server's XML answer, read every way dsk-upload reads one:
// a ListObjectsV2 page, an error body, InitiateMultipartUpload's UploadId, a lifecycle
// configuration. Each must succeed or throw RemoteError (exit 5); accepted lifecycle rules write
// as XML that reads back as the same rules.
#include <cstdlib>
#include <string>

#include "core/error.hpp"
#include "registry/lifecycle.hpp"
#include "registry/s3_client.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsk::registry;
  std::string xml(reinterpret_cast<const char*>(data), size);
  try {
    ListPage page = parse_list_page(xml);
    for (const auto& object : page.objects)
      if (object.size < 0) std::abort();
  } catch (const dsk::RemoteError&) {
  }
  s3_error_summary(xml);
  xml_field(xml, "InitiateMultipartUploadResult", "UploadId");
  xml_field(xml, "CompleteMultipartUploadResult", "ETag");
  try {
    auto rules = parse_lifecycle(xml);
    auto again = parse_lifecycle(lifecycle_to_xml(rules));
    if (again.size() != rules.size()) std::abort();
    for (size_t i = 0; i < rules.size(); ++i)
      if (again[i].id != rules[i].id || again[i].prefix != rules[i].prefix || again[i].enabled != rules[i].enabled ||
          again[i].expire_days != rules[i].expire_days ||
          again[i].abort_incomplete_days != rules[i].abort_incomplete_days)
        std::abort();
  } catch (const dsk::RemoteError&) {
  }
  return 0;
}
