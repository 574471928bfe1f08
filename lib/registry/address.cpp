#include "registry/address.hpp"

#include "core/error.hpp"

namespace dsk::registry {

ObjectAddress parse_s3_url(const std::string& url) {
  const std::string scheme = "s3://";
  if (!url.starts_with(scheme) || url.size() == scheme.size())
    throw UsageError(str("'", url, "' is not an S3 URL: expected s3://bucket/key"));
  std::string rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  ObjectAddress address{rest.substr(0, slash),
                        slash == std::string::npos ? "" : rest.substr(slash + 1)};
  if (address.bucket.empty())
    throw UsageError(str("'", url, "' names no bucket: expected s3://bucket/key"));
  return address;
}

Endpoint make_endpoint(const std::string& endpoint_url, const std::string& region,
                       bool virtual_host) {
  if (endpoint_url.empty()) return {"https", "s3." + region + ".amazonaws.com", false};
  auto separator = endpoint_url.find("://");
  if (separator == std::string::npos)
    throw UsageError(str("endpoint '", endpoint_url, "': expected http://host[:port] or https://..."));
  Endpoint endpoint{endpoint_url.substr(0, separator), endpoint_url.substr(separator + 3),
                    !virtual_host};
  if (endpoint.scheme != "http" && endpoint.scheme != "https")
    throw UsageError(str("endpoint '", endpoint_url, "': the scheme must be http or https"));
  while (endpoint.host.ends_with('/')) endpoint.host.pop_back();
  if (endpoint.host.empty() || endpoint.host.find('/') != std::string::npos)
    throw UsageError(str("endpoint '", endpoint_url, "': expected a host[:port] and no path"));
  return endpoint;
}

Target target_of(const Endpoint& endpoint, const ObjectAddress& object) {
  if (endpoint.path_style)  // the bucket itself is "/bucket", with no trailing slash
    return {endpoint.host, "/" + object.bucket + (object.key.empty() ? "" : "/" + object.key)};
  return {object.bucket + "." + endpoint.host, "/" + object.key};
}

}  // namespace dsk::registry
