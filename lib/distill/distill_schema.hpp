// The keys of a dsk-distill config: every dsk-train key (the student's model, data, optimizer,
// schedule, run length, eval, checkpoints) and the distill section:
//   distill.teacher      teacher checkpoint directory (the online teacher, the cache's identity)
//   distill.cache        teacher cache directory (dsk-distill cache); none: run the teacher online
//   distill.loss         forward_kl, reverse_kl or jsd          distill.beta   jsd's mixture weight
//   distill.alpha        weight of the divergence (1 - alpha on the data's cross-entropy)
//   distill.temperature  softening of both distributions        distill.top_k  teacher tokens kept
//   distill.cache_dtype  of the cached log-probabilities
#pragma once

#include <cstdint>

#include "core/config.hpp"
#include "cpu/distill.hpp"

namespace dsk::distill {

const Schema& distill_schema();

// The loss of a loaded config (UsageError for a jsd beta outside (0, 1)).
kernels::cpu::DistillLoss distill_loss_from(const Config& config);

// Training windows a run of this config draws: steps (or tokens) x micro_batch x grad_accum.
uint64_t run_windows(const Config& config);

}  // namespace dsk::distill
