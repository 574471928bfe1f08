// `dsk-distill eval --tasks FILE`: the teacher and the student on a task set of dsk-finetune's
// eval format (prompt/completion, chat or text JSONL; with labels, a classification task), each
// through finetune::evaluate_examples (and classify_test_set), so that the two are measured
// exactly as `dsk-finetune eval` measures one model. The retained task quality is the student's
// accuracy over the teacher's for a classification task, its exact match over the teacher's
// otherwise (undefined, so absent, when the teacher's is 0).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "finetune/finetune_eval.hpp"

namespace dsk::distill {

struct TaskSettings {
  std::string file;                 // the test JSONL
  std::vector<std::string> labels;  // a classification task when given
  finetune::EvalSettings eval;      // seq_len, batch, max_new_tokens, limit
  std::string device = "auto", precision = "auto";
};

struct TaskReport {
  finetune::EvalReport teacher, student;
  std::optional<double> retained;  // see above
  std::string metric;              // "accuracy" or "exact_match": what `retained` compares
};

// The tokenizer (and chat template) is the teacher's directory's; the student must share it
// (dsk-distill init copies it), which the cache and training already require.
TaskReport evaluate_tasks(const std::filesystem::path& teacher, const std::filesystem::path& student,
                          const TaskSettings& settings);

}  // namespace dsk::distill
