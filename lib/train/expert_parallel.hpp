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
// all-reduce over all ranks (expert_ownership.hpp; with ZeRO-1 its reduce-scatter) leaves the
// routed experts out, and
// each rank sums its own experts' gradients over the ranks that own them too (one per group: with
// one group nothing is sent), so every owner holds the global mean; the grad norm counts every
// expert once (the one-rank norm), and AdamW updates only the owners' copies of an expert: rank 0
// writes the same checkpoint as a one-rank run (gathering the experts from their owners), and a
// checkpoint resumes on any number of ranks, with or without expert parallelism. With ZeRO-1 the
// AdamW state of the rest (attention, shared experts, router, embeddings) is sharded over all
// ranks, each piece between two MoE layers' experts reduce-scattered and all-gathered on its own,
// while the experts' state stays with their owners (adamw.hpp), int8 gradients included (every
// rank then holds the whole sum of the rest and updates its shards of it). The expert loads each rank
// counts for its own tokens are summed over the ranks before the bias update (as with data
// parallelism alone), so every rank balances alike.
//
// What is split is the expert compute, the routed activations, the experts' AdamW state and
// gradient traffic. A rank does not hold the other ranks' experts at all: neither their weights
// (master and working copy: Model::drop_weights; no training pass reads them, and a checkpoint
// takes them from their owners) nor their gradients (Model::drop_gradients; int8 gradients too:
// their experts' pieces are gathered over the replicas alone). parameter_memory() gives the bytes
// held. dsk-train builds the model that way from the start (expert_share()): random init fills
// only this rank's experts (with the values one rank gives them), an HF checkpoint is read only
// for their tensors, and a resumed run reads only their part of the optimizer state, so start-up
// never holds the other ranks' experts either.
#pragma once

#include <memory>
#include <string>

#include "core/config.hpp"
#include "dist/communicator.hpp"
#include "model/expert_dispatch.hpp"
#include "model/model.hpp"
#include "train/expert_ownership.hpp"
#include "train/gradient_sync.hpp"

namespace dsk::train {

// How a model that this rank trains whole holds its weights: with expert parallelism, only this
// rank's experts (model.hpp, ModelOptions), so that start-up never builds the others'; default
// options otherwise. UsageError when dist.expert_parallel does not divide the
// number of ranks.
model::ModelOptions expert_share(const Config& config, const dist::Communicator& comm);

// The row exchange of a model's expert parallelism over `comm`, within this rank's group of
// `group` consecutive ranks (group divides comm.size()).
std::unique_ptr<model::RowExchange> make_row_exchange(dist::Communicator& comm, int group);

// Reads dist.expert_parallel and, when it is above 1, turns expert parallelism on in `model` and
// returns the exchange, which must outlive the model's passes (null when off). UsageError when it
// does not divide the number of ranks, or the model has no routed experts to split evenly.
std::unique_ptr<model::RowExchange> enable_expert_parallel(const Config& config, dist::Communicator& comm,
                                                           model::Model& model);

// Who updates which routed expert, when expert parallelism is on and `trainable`
// (the optimizer's flat parameters) is the model's own master buffer; null otherwise. A model
// built whole (not with expert_share()'s options) then drops the other ranks' experts' weights
// and gradients. Generation on the model then refuses the routed experts (it would run them all).
std::unique_ptr<ExpertOwnership> make_expert_ownership(const Config& config, dist::Communicator& comm,
                                                       model::Model& model, tensor::Buf trainable);

// The routed experts' gradients apart from the all-ranks buckets (gradient_sync.hpp) as
// `ownership` splits them, at their places in the model's gradient buffer; empty (nothing apart)
// when null.
ExpertGradientSplit expert_gradient_split(const ExpertOwnership* ownership, const model::Model& model);

// The log line of the parameter memory a rank holds: "parameter memory: X MiB on rank 0 (M bytes
// of fp32 master weights, G of fp32 gradients, W of working copy)", and with `ownership` then
// "; the other ranks' routed experts: F bytes of master weights and D bytes of gradients not held".
std::string parameter_memory(model::Model& model, const ExpertOwnership* ownership);

}  // namespace dsk::train
