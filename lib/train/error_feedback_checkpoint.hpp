// The int8 error-feedback residual in a checkpoint (gradient_compression.hpp; man/dsk-formats.5):
// each rank of a run with dist.grad_dtype: int8 and dist.error_feedback writes its own
//
//   dsk/error_feedback.rank-00001-of-00002.safetensors    one F32 tensor "residual" [count]
//
// beside the optimizer state (or rank 0 writes every rank's, for a checkpoint it writes alone),
// metadata {"format": "dsk-int8-residual-1", "rank", "ranks",
// "step"}, and dsk/state.yaml says how many ranks wrote one (error_feedback_ranks), so that a
// checkpoint that should have them and lacks one is told from one that never had them.
//
// A residual is what this rank's int8 levels missed, at the places of its gradient buffer: it
// means something only to the same rank of the same number of ranks (the sum over ranks is what
// reaches the weights, and no other split of it can be recovered). So a run resumed on another
// number of ranks, or with int8 error feedback switched on or off, or with another layout of a
// rank's buffer (dist.expert_parallel), starts the residual from zero, and rank 0 says so once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "dist/communicator.hpp"
#include "tensor/ops.hpp"

namespace dsk::train {

// "error_feedback.rank-00001-of-00002.safetensors"
std::string error_feedback_file_name(int rank, int ranks);

// Every rank, for a checkpoint that rank 0 writes alone (dsk-finetune's adapter): the ranks'
// residuals on rank 0, in rank order (an all-gather: an adapter's residual is small); nothing
// elsewhere, nor anywhere when `residual` is empty (a collective only when it is not).
std::vector<std::vector<float>> gather_error_feedback(dist::Communicator& comm, tensor::Ops& ops,
                                                      tensor::Buf residual);

// Writes rank `rank`'s residual into dsk_dir (a checkpoint's dsk/ under its temporary name), to a
// temporary name renamed into place when whole.
void save_error_feedback(const std::filesystem::path& dsk_dir, int rank, int ranks, int64_t step,
                         std::span<const float> residual);

// On resume: fills `residual` (this run's, f32; empty without int8 error feedback or with one
// rank) from the checkpoint when it was written by `ranks` ranks with the same layout, else
// zeroes it, rank 0 logging why. saved_ranks and step are the checkpoint's dsk/state.yaml's
// error_feedback_ranks (0: none written) and step. DataError naming the file when the checkpoint
// should hold this rank's residual and it is missing, truncated or not one.
void restore_error_feedback(const std::filesystem::path& checkpoint, int64_t saved_ranks, int64_t step, int rank,
                            int ranks, tensor::Ops& ops, tensor::Buf residual);

}  // namespace dsk::train
