// Where an S3 request goes: "s3://bucket/key" parsed, and the URL + Host header for an
// endpoint in virtual-host style (bucket.host/key, AWS's default) or path style
// (host/bucket/key, what local servers such as s3rver and MinIO need).
#pragma once

#include <string>

namespace dsk::registry {

struct ObjectAddress {
  std::string bucket;
  std::string key;  // may be empty (the bucket itself) or end with '/' (a prefix)
};

// "s3://bucket/some/key" -> {bucket, "some/key"}; throws UsageError on anything else.
ObjectAddress parse_s3_url(const std::string& url);

struct Endpoint {
  std::string scheme = "https";
  std::string host;  // "s3.us-east-1.amazonaws.com" or "127.0.0.1:4568"
  bool path_style = false;
};

// endpoint_url empty: AWS in region, virtual-host style. Otherwise the URL given
// ("http://127.0.0.1:4568"), path style unless virtual_host is asked for.
Endpoint make_endpoint(const std::string& endpoint_url, const std::string& region,
                       bool virtual_host);

struct Target {
  std::string host;  // the Host header
  std::string path;  // unencoded, as SigV4 signs it: "/bucket/key" or "/key"
};
Target target_of(const Endpoint& endpoint, const ObjectAddress& object);

}  // namespace dsk::registry
