// metrics.jsonl: one parseable object a line, appended across reopenings (a resumed run).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "train/metrics_log.hpp"

using namespace dsk::train;
namespace fs = std::filesystem;

TEST_CASE("metrics lines are JSON and a reopened log appends") {
  fs::path file = fs::temp_directory_path() / ("dsk-train-metrics-" + std::to_string(::getpid()) + ".jsonl");
  MetricsLog(file).append({1, 4.5, 1e-3, 2.0, 100.0, 0.5, 0, {}});
  MetricsLog(file).append({2, 4.25, 1e-3, 1.5, 110.0, 1.0, 1, {{0.5, 1.5}}});
  std::ifstream in(file);
  std::string first, second, extra;
  std::getline(in, first);
  std::getline(in, second);
  CHECK_FALSE(std::getline(in, extra));
  auto a = nlohmann::json::parse(first), b = nlohmann::json::parse(second);
  CHECK(a["step"] == 1);
  CHECK(a["loss"] == 4.5);
  CHECK_FALSE(a.contains("expert_load"));
  CHECK(b["skipped_steps"] == 1);
  CHECK(b["expert_load"][0][1] == 1.5);
  fs::remove(file);
}
