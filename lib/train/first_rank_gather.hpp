// Gathering a flat buffer that the ranks hold in pieces, in backend memory, into one host copy
// on rank 0 alone: how a checkpoint under expert parallelism gets the other ranks' experts'
// weights and moments (and with ZeRO-1 their shards of the rest) without any other rank building
// a copy of the model. Each step is one collective, the communicator's all-to-all with every
// block addressed to rank 0: each rank sends the flat ranges the step gives it, packed in order,
// and rank 0 copies what arrives into place.
//
// Backend memory for a step: rank 0 the blocks it receives (the widest step's, allocated once); a
// sender nothing when it sends one range (sent from where it lies), else its widest packing.
#pragma once

#include <span>
#include <vector>

#include "dist/communicator.hpp"
#include "tensor/ops.hpp"
#include "train/flat_range.hpp"

namespace dsk::train {

// steps[s][q]: the flat ranges rank q sends at step s, ascending (rank 0's own are never sent:
// it holds them). Every rank passes the same steps.
using GatherSteps = std::vector<std::vector<std::vector<FlatRange>>>;

// Every rank at once. source: this rank's values of the ranges `held`, packed in order (held
// must contain what the steps have this rank send). whole: rank 0's host copy of the flat buffer,
// whose sent ranges are overwritten; empty on the other ranks.
void gather_to_first_rank(dist::Communicator& comm, tensor::Ops& ops, const GatherSteps& steps, tensor::Buf source,
                          std::span<const FlatRange> held, std::span<float> whole);

}  // namespace dsk::train
