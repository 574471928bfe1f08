#include "train/expert_parallel.hpp"

#include "core/error.hpp"

namespace dsk::train {
namespace {

class CommunicatorRowExchange : public model::RowExchange {
 public:
  explicit CommunicatorRowExchange(dist::Communicator& comm) : comm_(comm) {}
  int rank() const override { return comm_.rank(); }
  int ranks() const override { return comm_.size(); }
  void all_to_all(tensor::Buf send, std::span<const int64_t> send_counts, tensor::Buf recv,
                  std::span<const int64_t> recv_counts) override {
    comm_.all_to_all(send, send_counts, recv, recv_counts);
  }

 private:
  dist::Communicator& comm_;
};

}  // namespace

std::unique_ptr<model::RowExchange> make_row_exchange(dist::Communicator& comm) {
  return std::make_unique<CommunicatorRowExchange>(comm);
}

std::unique_ptr<model::RowExchange> enable_expert_parallel(const Config& config, dist::Communicator& comm,
                                                           model::Model& model) {
  const int64_t ranks = config.get_int("dist.expert_parallel");
  if (ranks == 1) return nullptr;
  if (ranks != comm.size())
    throw UsageError(str("dist.expert_parallel ", ranks, " must be 1 or the number of ranks (", comm.size(),
                         "): the routed experts are split over all the ranks of the run"));
  const model::Architecture& arch = model.architecture();
  if (arch.n_routed == 0)
    throw UsageError(str("dist.expert_parallel ", ranks, ": the model has no routed experts (a deepseek_v3 MoE "
                         "model has them)"));
  std::unique_ptr<model::RowExchange> exchange = make_row_exchange(comm);
  model.set_expert_exchange(exchange.get());
  return exchange;
}

}  // namespace dsk::train
