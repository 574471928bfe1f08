// libFuzzer target: a version's manifest.yaml NUL a model's aliases.yaml NUL a --weights spec,
// as dsk-upload reads them from the registry (and the command line). Each must succeed or throw
// DataError (UsageError for the spec); an accepted manifest names only files inside the version
// and writes back as the same manifest; accepted aliases have positive weights, write back as
// the same table, and every draw picks one of their versions.
#include <cstdlib>
#include <string>

#include "core/error.hpp"
#include "fuzz_input.hpp"
#include "registry/aliases.hpp"
#include "registry/version_store.hpp"

namespace {

bool inside_version(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.back() == '/') return false;
  return path.find("//") == std::string::npos && ("/" + path + "/").find("/../") == std::string::npos &&
         ("/" + path + "/").find("/./") == std::string::npos;
}

void check_manifest(std::string_view text) {
  using namespace dsk::registry;
  try {
    Manifest manifest = parse_manifest(std::string(text), "manifest.yaml");
    for (const auto& file : manifest.files)
      if (!inside_version(file.path) || file.size < 0 || file.sha256.size() != 64) std::abort();
    std::string written = manifest_to_yaml(manifest);
    if (manifest_to_yaml(parse_manifest(written, "written manifest.yaml")) != written) std::abort();
  } catch (const dsk::DataError&) {
  }
}

void check_aliases(std::string_view text) {
  using namespace dsk::registry;
  try {
    AliasTable table = parse_aliases(std::string(text), "aliases.yaml");
    for (const auto& [alias, versions] : table) {
      for (const auto& weighted : versions)
        if (weighted.weight <= 0) std::abort();
      for (double u : {0.0, 0.5, 0.999999})
        if (pick_version(versions, u).empty()) std::abort();
    }
    if (parse_aliases(aliases_to_yaml(table), "written aliases.yaml") != table) std::abort();
  } catch (const dsk::DataError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = dsk::fuzz::split_input(data, size, 3);
  check_manifest(parts[0]);
  if (parts.size() > 1) check_aliases(parts[1]);
  if (parts.size() > 2) {
    try {
      for (const auto& weighted : dsk::registry::parse_weight_spec(std::string(parts[2])))
        if (weighted.weight <= 0 || weighted.version.empty()) std::abort();
    } catch (const dsk::UsageError&) {
    }
  }
  return 0;
}
