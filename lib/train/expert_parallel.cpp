#include "train/expert_parallel.hpp"

#include <algorithm>
#include <vector>

#include "core/error.hpp"
#include "core/log.hpp"

namespace dsk::train {
namespace {

// Groups of `group` consecutive ranks (group g: ranks [g*group, (g+1)*group)) each split the
// experts among themselves. The exchange is an all-to-all of the whole communicator with nothing
// for the ranks of other groups: every rank makes the same calls at the same time, and no
// sub-communicator is needed (NCCL's send/receive skip empty blocks; MPI's all-to-all is cheap on
// the CPU ranks of tests).
class CommunicatorRowExchange : public model::RowExchange {
 public:
  CommunicatorRowExchange(dist::Communicator& comm, int group)
      : comm_(comm), group_(group), first_(comm.rank() / group * group) {}
  int rank() const override { return comm_.rank() - first_; }
  int ranks() const override { return group_; }
  void all_to_all(tensor::Buf send, std::span<const int64_t> send_counts, tensor::Buf recv,
                  std::span<const int64_t> recv_counts) override {
    if (group_ == comm_.size()) {
      comm_.all_to_all(send, send_counts, recv, recv_counts);
      return;
    }
    std::vector<int64_t> sent(size_t(comm_.size()), 0), received(size_t(comm_.size()), 0);
    std::copy(send_counts.begin(), send_counts.end(), sent.begin() + first_);
    std::copy(recv_counts.begin(), recv_counts.end(), received.begin() + first_);
    comm_.all_to_all(send, sent, recv, received);
  }

 private:
  dist::Communicator& comm_;
  int group_, first_;
};

}  // namespace

std::unique_ptr<model::RowExchange> make_row_exchange(dist::Communicator& comm, int group) {
  return std::make_unique<CommunicatorRowExchange>(comm, group);
}

namespace {

// dist.expert_parallel, checked against the number of ranks.
int64_t expert_parallel_ranks(const Config& config, const dist::Communicator& comm) {
  const int64_t ranks = config.get_int("dist.expert_parallel");
  if (ranks != 1 && comm.size() % ranks != 0)
    throw UsageError(str("dist.expert_parallel ", ranks, " must divide the number of ranks (", comm.size(),
                         "): the routed experts are split over groups of that many consecutive ranks"));
  return ranks;
}

}  // namespace

model::ModelOptions expert_share(const Config& config, const dist::Communicator& comm) {
  model::ModelOptions options;
  const int64_t ranks = expert_parallel_ranks(config, comm);
  if (ranks == 1) return options;
  options.expert_rank = int(comm.rank() % ranks);
  options.expert_ranks = int(ranks);
  return options;
}

std::unique_ptr<model::RowExchange> enable_expert_parallel(const Config& config, dist::Communicator& comm,
                                                           model::Model& model) {
  const int64_t ranks = expert_parallel_ranks(config, comm);
  if (ranks == 1) return nullptr;
  const model::Architecture& arch = model.architecture();
  if (arch.n_routed == 0)
    throw UsageError(str("dist.expert_parallel ", ranks, ": the model has no routed experts (a deepseek_v3 MoE "
                         "model has them)"));
  std::unique_ptr<model::RowExchange> exchange = make_row_exchange(comm, int(ranks));
  model.set_expert_exchange(exchange.get());
  if (comm.rank() == 0)  // before the trainer quiets the other ranks
    log_info("expert parallel: ", arch.n_routed / ranks, " of the ", arch.n_routed, " routed experts per rank, ",
             comm.size() / ranks, comm.size() / ranks == 1 ? " group" : " groups", " of ", ranks, " ranks");
  return exchange;
}

std::unique_ptr<ExpertOwnership> make_expert_ownership(const Config& config, dist::Communicator& comm,
                                                       model::Model& model, tensor::Buf trainable) {
  const int64_t ranks = config.get_int("dist.expert_parallel");
  // Adapters (dsk-finetune) train other parameters than the experts: nothing to split there.
  const bool whole_model = trainable.data == model.master().data && trainable.numel == model.master().numel;
  if (ranks == 1 || !whole_model) {
    if (!model.dropped_weights().empty())
      throw InternalError("the model lacks the other ranks' experts, but this rank does not own its experts alone");
    return nullptr;
  }
  auto ownership = std::make_unique<ExpertOwnership>(model, comm, int(ranks));
  std::vector<model::FlatSpan> others;
  for (const FlatRange& range : ownership->foreign()) others.push_back({size_t(range.begin), size_t(range.length)});
  // The model of expert_share() never held them (its ranges merged where they touch); another
  // one (a tool's own) is built whole first.
  std::vector<model::FlatSpan> merged;
  for (const model::FlatSpan& span : others) {
    if (!merged.empty() && merged.back().offset + merged.back().numel == span.offset)
      merged.back().numel += span.numel;
    else
      merged.push_back(span);
  }
  const std::vector<model::FlatSpan>& held_out = model.dropped_weights();
  if (std::equal(held_out.begin(), held_out.end(), merged.begin(), merged.end(),
                 [](const model::FlatSpan& a, const model::FlatSpan& b) { return a.offset == b.offset && a.numel == b.numel; }))
    return ownership;
  if (!model.dropped_weights().empty())
    throw InternalError("the model holds another share of the routed experts than this rank owns");
  model.drop_gradients(others);
  model.drop_weights(std::move(others));
  return ownership;
}

ExpertGradientSplit expert_gradient_split(const ExpertOwnership* ownership, const model::Model& model) {
  ExpertGradientSplit split;
  if (!ownership) return split;
  const bool dropped = model.gradient_offset(model.parameter_count()) < model.parameter_count();
  // Without the others' gradients, the routed experts in the gradient buffer are this rank's.
  for (const FlatRange& range : dropped ? ownership->owned() : ownership->routed())
    split.routed.push_back({int64_t(model.gradient_offset(size_t(range.begin))), range.length});
  for (const FlatRange& range : ownership->owned())
    split.owned.push_back({int64_t(model.gradient_offset(size_t(range.begin))), range.length});
  split.replicas = &ownership->replicas();
  return split;
}

std::string parameter_memory(model::Model& model, const ExpertOwnership* ownership) {
  const tensor::Buf master = model.master(), working = model.working(), grads = model.gradient_buffer();
  const size_t working_bytes = working.data == master.data ? 0 : working.bytes();
  const size_t total = master.bytes() + grads.bytes() + working_bytes;
  std::string line = str("parameter memory: ", double(total) / double(1 << 20), " MiB on rank 0 (", master.bytes(),
                         " bytes of fp32 master weights, ", grads.bytes(), " of fp32 gradients, ", working_bytes,
                         " of working copy)");
  if (!ownership) return line;
  const int64_t count = int64_t(model.parameter_count()), bytes = int64_t(sizeof(float));
  return line + str("; the other ranks' routed experts: ", (count - master.numel) * bytes, " bytes of master weights and ",
                    (count - grads.numel) * bytes, " bytes of gradients not held");
}

}  // namespace dsk::train
