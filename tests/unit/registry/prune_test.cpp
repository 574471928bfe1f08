#include <doctest/doctest.h>

#include "registry/prune.hpp"

using namespace dsk::registry;
using namespace std::chrono;

namespace {
const system_clock::time_point now = system_clock::time_point{} + hours(24 * 365);
VersionAge aged(const std::string& version, int days_old) {
  return {version, now - hours(24 * days_old)};
}
}  // namespace

TEST_CASE("prune keeps the newest N, the young and the aliased") {
  std::vector<VersionAge> versions{aged("1.0", 40), aged("1.1", 30), aged("1.2", 20),
                                   aged("1.3", 10), aged("1.4", 1)};
  PrunePolicy keep_two_older_than_week{2, hours(24 * 7)};
  CHECK(versions_to_prune(versions, {}, keep_two_older_than_week, now) ==
        std::vector<std::string>{"1.0", "1.1", "1.2"});
  CHECK(versions_to_prune(versions, {"1.0", "1.2"}, keep_two_older_than_week, now) ==
        std::vector<std::string>{"1.1"});
  PrunePolicy older_than_25_days{0, hours(24 * 25)};
  CHECK(versions_to_prune(versions, {}, older_than_25_days, now) ==
        std::vector<std::string>{"1.0", "1.1"});
  PrunePolicy keep_all{10, seconds(0)};
  CHECK(versions_to_prune(versions, {}, keep_all, now).empty());
  CHECK(versions_to_prune({}, {}, keep_two_older_than_week, now).empty());
}
