#include "registry/credentials.hpp"

#include <fstream>

#include "core/error.hpp"

namespace dsk::registry {
namespace {

std::string trim(const std::string& text) {
  auto begin = text.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  auto end = text.find_last_not_of(" \t\r");
  return text.substr(begin, end - begin + 1);
}

// The first non-empty of the given candidates, or "".
std::string first_of(std::initializer_list<std::string> candidates) {
  for (const auto& candidate : candidates)
    if (!candidate.empty()) return candidate;
  return "";
}

}  // namespace

std::map<std::string, std::map<std::string, std::string>> read_profiles(
    const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw DataError(str(file.string(), ": cannot read the credentials file"));
  std::map<std::string, std::map<std::string, std::string>> profiles;
  std::string section, line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string text = trim(line);
    if (text.empty() || text[0] == '#' || text[0] == ';') continue;
    if (text.front() == '[') {
      if (text.back() != ']')
        throw DataError(str(file.string(), ":", number, ": expected a [profile] line"));
      section = trim(text.substr(1, text.size() - 2));
      profiles[section];
      continue;
    }
    auto equals = text.find('=');
    if (equals == std::string::npos || section.empty())
      throw DataError(str(file.string(), ":", number,
                          ": expected 'key = value' inside a [profile] section"));
    profiles[section][trim(text.substr(0, equals))] = trim(text.substr(equals + 1));
  }
  return profiles;
}

Connection resolve_connection(
    const ConnectionFlags& flags,
    const std::function<std::optional<std::string>(const char*)>& getenv) {
  auto env = [&](const char* name) { return getenv(name).value_or(""); };
  std::string profile_name = first_of({flags.profile, env("AWS_PROFILE"), "default"});
  std::filesystem::path file = first_of({env("AWS_SHARED_CREDENTIALS_FILE"),
                                         env("HOME").empty() ? "" : env("HOME") + "/.aws/credentials"});
  std::map<std::string, std::string> profile;
  if (!file.empty() && std::filesystem::exists(file)) {
    auto profiles = read_profiles(file);
    if (profiles.count(profile_name)) profile = profiles[profile_name];
  }
  if (!flags.profile.empty() && profile.empty())
    throw UsageError(str("profile '", flags.profile, "' is not in ", file.string()));

  // A pair is taken whole from one place, so an environment key never meets a file secret.
  Connection connection;
  Credentials& c = connection.credentials;
  if (!flags.access_key_id.empty() || !flags.secret_access_key.empty()) {
    c = {flags.access_key_id, flags.secret_access_key, flags.session_token};
  } else if (!env("AWS_ACCESS_KEY_ID").empty()) {
    c = {env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")};
  } else {
    c = {profile["aws_access_key_id"], profile["aws_secret_access_key"],
         profile["aws_session_token"]};
  }
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    throw UsageError(str("no S3 credentials: give --access-key/--secret-key, set "
                         "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add them to profile '",
                         profile_name, "' of ", file.empty() ? "~/.aws/credentials" : file.string()));
  connection.region = first_of({flags.region, env("AWS_REGION"), env("AWS_DEFAULT_REGION"),
                                profile["region"], "us-east-1"});
  connection.endpoint_url = first_of({flags.endpoint_url, env("AWS_ENDPOINT_URL"),
                                      profile["endpoint_url"]});
  return connection;
}

}  // namespace dsk::registry
