// Classification metrics against cases computed by hand.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "finetune/data/classification_metrics.hpp"

using namespace dsk::finetune;

TEST_CASE("accuracy, per-label precision/recall/F1 and macro-F1 of a 3-class confusion") {
  ConfusionCounter counter({"a", "b", "c", "never"});
  // gold -> predicted: a:a a:a a:b b:b b:a c:c c:b
  for (auto [g, p] : std::vector<std::pair<size_t, size_t>>{{0, 0}, {0, 0}, {0, 1}, {1, 1}, {1, 0}, {2, 2}, {2, 1}}) counter.add(g, p);
  ClassificationMetrics m = counter.metrics();
  CHECK(m.total == 7);
  CHECK(m.correct == 4);
  CHECK(m.accuracy == doctest::Approx(4.0 / 7));
  CHECK(m.confusion[0] == std::vector<uint64_t>{2, 1, 0, 0});
  CHECK(m.confusion[2] == std::vector<uint64_t>{0, 1, 1, 0});
  CHECK(m.precision[0] == doctest::Approx(2.0 / 3));
  CHECK(m.precision[1] == doctest::Approx(1.0 / 3));
  CHECK(m.precision[2] == doctest::Approx(1.0));
  CHECK(m.recall[1] == doctest::Approx(0.5));
  CHECK(m.f1[0] == doctest::Approx(2.0 / 3));
  CHECK(m.f1[1] == doctest::Approx(0.4));
  CHECK(m.f1[2] == doctest::Approx(2.0 / 3));
  CHECK(m.f1[3] == 0);
  CHECK(m.support == std::vector<uint64_t>{3, 2, 2, 0});
  // "never" is neither gold nor predicted: it does not count in the mean.
  CHECK(m.macro_f1 == doctest::Approx((2.0 / 3 + 0.4 + 2.0 / 3) / 3));
}

TEST_CASE("a label only predicted, never gold, counts with F1 0; empty input gives zeros") {
  ConfusionCounter counter({"yes", "no"});
  counter.add(0, 1);
  counter.add(0, 0);
  ClassificationMetrics m = counter.metrics();
  CHECK(m.accuracy == doctest::Approx(0.5));
  CHECK(m.f1[0] == doctest::Approx(2 * 1.0 * 0.5 / 1.5));
  CHECK(m.f1[1] == 0);
  CHECK(m.macro_f1 == doctest::Approx((2.0 / 3 + 0) / 2));
  ClassificationMetrics none = ConfusionCounter({"x", "y"}).metrics();
  CHECK(none.total == 0);
  CHECK(none.accuracy == 0);
  CHECK(none.macro_f1 == 0);
  CHECK_THROWS_AS(counter.add(2, 0), dsk::InternalError);
}

TEST_CASE("metrics as JSON and as a table") {
  ConfusionCounter counter({"pos", "neg"});
  counter.add(0, 0);
  counter.add(1, 0);
  ClassificationMetrics m = counter.metrics();
  nlohmann::ordered_json j = m.to_json();
  CHECK(j["examples"] == 2);
  CHECK(j["confusion"] == nlohmann::ordered_json::parse("[[1, 0], [1, 0]]"));
  CHECK(j["per_label"]["pos"]["precision"].get<double>() == doctest::Approx(0.5));
  CHECK(j["labels"][1] == "neg");
  std::string table = m.table();
  CHECK(table.find("gold\\pred") != std::string::npos);
  CHECK(table.find("accuracy 0.5000  macro-F1 0.3333  (2 examples)") != std::string::npos);
}
