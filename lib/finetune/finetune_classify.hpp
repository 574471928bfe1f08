// `dsk-finetune eval --labels`: the test set as a classification task. Each record's prompt is
// continued by every label string (finetune/data/classify.hpp LabelScorer: constrained scoring,
// so the prediction is always one of the labels) and the best is compared with the record's
// gold label: a {"prompt", "completion"} record's completion, or a {"messages"} record's last
// message (an assistant turn), the conversation before it being the prompt. A gold label names a
// label when the two are equal without surrounding whitespace (" Genesis" scored after "Book:"
// is the gold "Genesis" of a chat record); one that names none is a DataError naming file:line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "chat/chat_template.hpp"
#include "finetune/data/classification_metrics.hpp"
#include "model/model.hpp"
#include "tokenizer/tokenizer.hpp"

namespace dsk::finetune {

// Text without surrounding whitespace (spaces, tabs, CR, LF): how gold labels and eval's exact
// match compare.
std::string trimmed(const std::string& text);

// limit > 0: only the first `limit` records. UsageError for a label set LabelScorer refuses or
// labels equal without surrounding whitespace.
ClassificationMetrics classify_test_set(model::Model& model, const tokenizer::Tokenizer& tokenizer,
                                        const chat::ChatTemplate* chat, const std::string& file,
                                        const std::vector<std::string>& labels, int64_t limit);

}  // namespace dsk::finetune
