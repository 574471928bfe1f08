// Bucket lifecycle rules (PutBucketLifecycleConfiguration / GetBucketLifecycleConfiguration):
// the server itself expires objects under a prefix after some days and aborts multipart
// uploads left incomplete. An expiration rule knows nothing of aliases, so for versions the
// registry's own prune (prune.hpp) is the safe tool; the useful rule is usually the abort of
// incomplete uploads (what an interrupted, never resumed dsk-upload leaves behind).
// Servers without lifecycle support (s3rver answers 501 NotImplemented) get a RemoteError that
// says so.
#pragma once

#include <string>
#include <vector>

#include "registry/s3_client.hpp"

namespace dsk::registry {

struct LifecycleRule {
  std::string id;
  std::string prefix;
  bool enabled = true;
  int expire_days = 0;            // 0: no expiration
  int abort_incomplete_days = 0;  // 0: no abort of incomplete multipart uploads
};

std::string lifecycle_to_xml(const std::vector<LifecycleRule>& rules);
std::vector<LifecycleRule> parse_lifecycle(const std::string& xml);

// Replaces the bucket's lifecycle configuration with rules (S3 keeps one per bucket).
void set_lifecycle(S3Client& client, const std::string& bucket,
                   const std::vector<LifecycleRule>& rules);
// The bucket's rules; empty when it has none.
std::vector<LifecycleRule> get_lifecycle(S3Client& client, const std::string& bucket);

}  // namespace dsk::registry
