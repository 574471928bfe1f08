#include "distill/task_eval.hpp"

#include "core/error.hpp"
#include "finetune/data/examples.hpp"
#include "finetune/finetune_classify.hpp"
#include "finetune/instruction_data.hpp"
#include "model/model.hpp"
#include "tensor/device.hpp"

namespace dsk::distill {
namespace fs = std::filesystem;

namespace {

// One model at a time, so that the two never hold device memory together.
finetune::EvalReport evaluate_one(const fs::path& checkpoint, const finetune::TokenizerFiles& tokenizer,
                                  const std::vector<finetune::TokenizedExample>& examples,
                                  const TaskSettings& settings) {
  model::Model model = model::Model::load_hf_checkpoint(checkpoint, tensor::make_ops(settings.device, settings.precision),
                                                        model::ModelOptions{true});
  std::optional<finetune::ClassificationMetrics> classification;
  if (!settings.labels.empty())
    classification = finetune::classify_test_set(model, *tokenizer.tokenizer, tokenizer.chat.get(), settings.file,
                                                  settings.labels, settings.eval.limit);
  finetune::EvalReport report = finetune::evaluate_examples(model, *tokenizer.tokenizer, examples, settings.eval);
  report.classification = std::move(classification);
  return report;
}

}  // namespace

TaskReport evaluate_tasks(const fs::path& teacher, const fs::path& student, const TaskSettings& settings) {
  const fs::path tokenizer_file = teacher / "tokenizer.json";
  if (!fs::exists(tokenizer_file)) throw DataError(str(tokenizer_file.string(), ": no such file (the tokenizer)"));
  const finetune::TokenizerFiles tokenizer = finetune::load_tokenizer_files(tokenizer_file);
  const auto examples = finetune::read_instruction_data({settings.file}, *tokenizer.tokenizer, tokenizer.chat.get());
  TaskReport report;
  report.teacher = evaluate_one(teacher, tokenizer, examples, settings);
  report.student = evaluate_one(student, tokenizer, examples, settings);
  if (report.teacher.classification) {
    report.metric = "accuracy";
    if (report.teacher.classification->accuracy > 0)
      report.retained = report.student.classification->accuracy / report.teacher.classification->accuracy;
  } else {
    report.metric = "exact_match";
    if (report.teacher.exact_match > 0) report.retained = report.student.exact_match / report.teacher.exact_match;
  }
  return report;
}

}  // namespace dsk::distill
