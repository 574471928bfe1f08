#include "finetune/data/classification_metrics.hpp"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "core/error.hpp"

namespace dsk::finetune {

ConfusionCounter::ConfusionCounter(std::vector<std::string> labels)
    : labels_(std::move(labels)), confusion_(labels_.size(), std::vector<uint64_t>(labels_.size(), 0)) {}

void ConfusionCounter::add(size_t gold, size_t predicted) {
  if (gold >= labels_.size() || predicted >= labels_.size())
    throw InternalError(str("label index out of range: gold ", gold, ", predicted ", predicted, " of ", labels_.size()));
  ++confusion_[gold][predicted];
}

ClassificationMetrics ConfusionCounter::metrics() const {
  ClassificationMetrics m;
  const size_t n = labels_.size();
  m.labels = labels_;
  m.confusion = confusion_;
  m.precision.assign(n, 0);
  m.recall.assign(n, 0);
  m.f1.assign(n, 0);
  m.support.assign(n, 0);
  std::vector<uint64_t> predicted(n, 0);
  for (size_t g = 0; g < n; ++g)
    for (size_t p = 0; p < n; ++p) {
      m.total += confusion_[g][p];
      m.support[g] += confusion_[g][p];
      predicted[p] += confusion_[g][p];
      if (g == p) m.correct += confusion_[g][p];
    }
  m.accuracy = m.total ? double(m.correct) / double(m.total) : 0.0;
  double f1_sum = 0;
  size_t present = 0;
  for (size_t i = 0; i < n; ++i) {
    double tp = double(confusion_[i][i]);
    if (predicted[i]) m.precision[i] = tp / double(predicted[i]);
    if (m.support[i]) m.recall[i] = tp / double(m.support[i]);
    if (m.precision[i] + m.recall[i] > 0) m.f1[i] = 2 * m.precision[i] * m.recall[i] / (m.precision[i] + m.recall[i]);
    if (m.support[i] || predicted[i]) {
      f1_sum += m.f1[i];
      ++present;
    }
  }
  m.macro_f1 = present ? f1_sum / double(present) : 0.0;
  return m;
}

nlohmann::ordered_json ClassificationMetrics::to_json() const {
  nlohmann::ordered_json out;
  out["examples"] = total;
  out["correct"] = correct;
  out["accuracy"] = accuracy;
  out["macro_f1"] = macro_f1;
  out["labels"] = labels;
  out["confusion"] = confusion;
  nlohmann::ordered_json per_label = nlohmann::ordered_json::object();
  for (size_t i = 0; i < labels.size(); ++i)
    per_label[labels[i]] = {{"precision", precision[i]}, {"recall", recall[i]}, {"f1", f1[i]}, {"support", support[i]}};
  out["per_label"] = per_label;
  return out;
}

std::string ClassificationMetrics::table() const {
  size_t width = 9;  // "gold\pred"
  for (const auto& l : labels) width = std::max(width, l.size());
  for (const auto& row : confusion)
    for (uint64_t c : row) width = std::max(width, std::to_string(c).size());
  auto cell = [&](const std::string& text) { return std::string(width - std::min(width, text.size()) + 1, ' ') + text; };
  std::string out = cell("gold\\pred");
  for (const auto& l : labels) out += cell(l);
  out += cell("precision") + cell("recall") + cell("f1") + "\n";
  auto fixed = [](double v) {
    std::ostringstream text;
    text << std::fixed << std::setprecision(4) << v;
    return text.str();
  };
  for (size_t g = 0; g < labels.size(); ++g) {
    out += cell(labels[g]);
    for (uint64_t c : confusion[g]) out += cell(std::to_string(c));
    for (double v : {precision[g], recall[g], f1[g]}) out += cell(fixed(v));
    out += "\n";
  }
  return out + "accuracy " + fixed(accuracy) + "  macro-F1 " + fixed(macro_f1) + "  (" + std::to_string(total) + " examples)\n";
}

}  // namespace dsk::finetune
