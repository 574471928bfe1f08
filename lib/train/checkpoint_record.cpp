#include "train/checkpoint_record.hpp"

namespace dsk::train {

Record checkpoint_record(const TrainOutcome& outcome) {
  Record record("checkpoint");
  record.set("path", outcome.checkpoint.string())
      .set("run_dir", outcome.run_dir.string())
      .set("model_type", outcome.model_type)
      .set("parameters", outcome.parameters)
      .set("step", outcome.step)
      .set("tokens", outcome.tokens)
      .set("train_loss", outcome.train_loss);
  if (outcome.val_loss) record.set("val_loss", *outcome.val_loss);
  record.set("skipped_steps", outcome.skipped_steps);
  return record;
}

}  // namespace dsk::train
