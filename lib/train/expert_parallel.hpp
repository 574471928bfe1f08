// Expert parallelism for deepseek_v3 training (dist.expert_parallel: N, N dividing the number of
// ranks): the ranks form groups of N consecutive ranks, and within each group the routed experts
// of every MoE layer are split over the ranks (the group's rank r runs experts [r*E/N, (r+1)*E/N));
// each rank's tokens reach their experts through the communicator's all-to-all
// (model/expert_dispatch.hpp has the dispatch and combine). Attention, the shared experts, the
// embeddings and the router stay data-parallel over all ranks, and so do the experts across the
// groups.
//
// How it fits the data-parallel step (trainer.cpp, gradient_sync.hpp): a local expert's gradient
// is summed over the tokens of every rank of its group that were routed to it, each already scaled
// by its micro-batch's 1/grad_accum; the other ranks of the group hold 0 for that expert. The
// all-reduce of the whole gradient buffer over all ranks therefore sums each expert over the
// groups (with one group: leaves its exact gradient, x + 0 = x), the global grad norm is the
// one-rank norm, and AdamW updates every copy alike (ZeRO-1), or only the owners' copies of an
// expert (without ZeRO-1; below): rank 0 writes the same checkpoint as a one-rank run, and a
// checkpoint resumes on any number of ranks, with or without expert parallelism. The expert loads each rank counts for its own tokens are summed over the ranks
// before the bias update (as with data parallelism alone), so every rank balances alike.
//
// What is split is the expert compute, the routed activations and, without ZeRO-1, the experts'
// AdamW state: each rank keeps m and v of its own experts only and updates only their weights
// (expert_ownership.hpp; a checkpoint gathers the others' from their owners, so it is the same
// whole checkpoint as today's). With ZeRO-1 the whole AdamW state is sharded over all ranks
// instead. The expert weights and gradients are still held in full by every rank, and the
// gradient all-reduce still carries every expert.
#pragma once

#include <memory>

#include "core/config.hpp"
#include "dist/communicator.hpp"
#include "model/expert_dispatch.hpp"
#include "model/model.hpp"
#include "train/expert_ownership.hpp"
#include "train/gradient_sync.hpp"

namespace dsk::train {

// The row exchange of a model's expert parallelism over `comm`, within this rank's group of
// `group` consecutive ranks (group divides comm.size()).
std::unique_ptr<model::RowExchange> make_row_exchange(dist::Communicator& comm, int group);

// Reads dist.expert_parallel and, when it is above 1, turns expert parallelism on in `model` and
// returns the exchange, which must outlive the model's passes (null when off). UsageError when it
// does not divide the number of ranks, or the model has no routed experts to split evenly.
std::unique_ptr<model::RowExchange> enable_expert_parallel(const Config& config, dist::Communicator& comm,
                                                           model::Model& model);

// Who updates which routed expert, when expert parallelism is on without ZeRO-1 and `trainable`
// (the optimizer's flat parameters) is the model's own master buffer; null otherwise.
std::unique_ptr<ExpertOwnership> make_expert_ownership(const Config& config, dist::Communicator& comm,
                                                       model::Model& model, tensor::Buf trainable);

// The routed experts' gradients apart from the all-ranks buckets (gradient_sync.hpp) as
// `ownership` splits them; empty (nothing apart) when null.
ExpertGradientSplit expert_gradient_split(const ExpertOwnership* ownership);

}  // namespace dsk::train
