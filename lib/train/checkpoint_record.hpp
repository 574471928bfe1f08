// The "checkpoint" record a training tool prints on stdout when a run ends (or stops on a signal),
// for the next tool in a pipe (dsk-train sample -, dsk-upload -): where the checkpoint is and how
// the run went. Tools add their own fields before printing it.
#pragma once

#include "core/record.hpp"
#include "train/trainer.hpp"

namespace dsk::train {

Record checkpoint_record(const TrainOutcome& outcome);

}  // namespace dsk::train
