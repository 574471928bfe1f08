// Where S3 credentials and the endpoint come from, in the AWS CLI's order: explicit values
// (flags) first, then the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL), then the profile
// (--profile, else AWS_PROFILE, else "default") of the shared credentials file
// (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "registry/sigv4.hpp"

namespace dsk::registry {

struct Connection {
  Credentials credentials;
  std::string region = "us-east-1";
  std::string endpoint_url;  // empty: AWS itself; "http://127.0.0.1:4568" for a local server
  // Retries of one request on a 5xx answer (but 501), a connection failure or a time-out,
  // with exponential backoff from first_backoff_ms (doubling, capped at 8 s, with jitter).
  int attempts = 5;
  long first_backoff_ms = 250;
  // A transfer that moves no byte for this long fails as a time-out (and is retried).
  long stall_timeout_seconds = 30;
};

struct ConnectionFlags {  // what the user passed; empty means "not given"
  std::string access_key_id, secret_access_key, session_token, region, endpoint_url, profile;
};

// Reads an INI-style credentials file: "[name]" sections of "key = value" lines; '#' and ';'
// start comment lines. Returns section -> key -> value; throws DataError naming file:line.
std::map<std::string, std::map<std::string, std::string>> read_profiles(
    const std::filesystem::path& file);

// Resolves the connection; getenv is a parameter so that tests need not touch the process.
// Throws UsageError when no access key pair is found anywhere (the message names the places
// looked at, never a secret).
Connection resolve_connection(const ConnectionFlags& flags,
                              const std::function<std::optional<std::string>(const char*)>& getenv);

}  // namespace dsk::registry
