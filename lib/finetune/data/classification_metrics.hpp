// Metrics of a classifier over a fixed label set: accuracy, per-label precision/recall/F1,
// macro-F1 and the confusion matrix, as a struct that becomes JSON/YAML and a printed table.
//
// Conventions (scikit-learn's defaults): precision, recall or F1 whose denominator is 0 is 0;
// macro-F1 is the unweighted mean over the labels that occur in the gold labels or in the
// predictions (a label neither expected nor predicted does not pull the mean down).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsk::finetune {

struct ClassificationMetrics {
  std::vector<std::string> labels;
  std::vector<std::vector<uint64_t>> confusion;  // [gold][predicted]
  uint64_t total = 0, correct = 0;
  double accuracy = 0;
  std::vector<double> precision, recall, f1;  // per label
  std::vector<uint64_t> support;              // gold count per label
  double macro_f1 = 0;

  nlohmann::ordered_json to_json() const;
  // The confusion matrix with gold labels as rows, then per-label precision/recall/F1, for people.
  std::string table() const;
};

// Counts (gold, predicted) pairs of label indices into the metrics. An index outside labels is
// an InternalError (the caller maps text to indices).
class ConfusionCounter {
 public:
  explicit ConfusionCounter(std::vector<std::string> labels);
  void add(size_t gold, size_t predicted);
  ClassificationMetrics metrics() const;
  const std::vector<std::string>& labels() const { return labels_; }

 private:
  std::vector<std::string> labels_;
  std::vector<std::vector<uint64_t>> confusion_;
};

}  // namespace dsk::finetune
