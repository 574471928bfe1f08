#include "train/batch_source.hpp"

#include <optional>

#include "core/error.hpp"
#include "core/log.hpp"
#include "train/token_windows.hpp"
#include "train/train_data.hpp"

namespace dsk::train {
namespace {

class TokenWindowSource final : public BatchSource {
 public:
  explicit TokenWindowSource(const Config& config)
      : data_(resolve_train_data(config.get_strings("data.train"), config.get_strings("data.val"))),
        train_(data_.train, config.get_int("data.seq_len"), uint64_t(config.get_int("seed"))) {
    if (data_.val.empty()) {
      log_warn("no validation shards (data.val, or a val split in the train directories): no evaluation");
      return;
    }
    // A fixed set of validation windows, the same at every evaluation.
    try {
      val_.emplace(data_.val, config.get_int("data.seq_len"), uint64_t(config.get_int("seed")) ^ 0x5eedull);
    } catch (const DataError& e) {
      throw DataError(str("validation data: ", e.what(), "; lower data.seq_len or name other data.val"));
    }
  }

  void next(Batch& batch, int B, int T) override {
    batch.fill(B, T, [&](std::vector<uint32_t>& out) { train_.next(out); });
  }
  uint64_t cursor() const override { return train_.cursor(); }
  void set_cursor(uint64_t cursor) override { train_.set_cursor(cursor); }
  bool has_validation() const override { return val_.has_value(); }
  void validation_batch(int64_t i, Batch& batch, int B, int T) const override {
    uint64_t k = uint64_t(i) * uint64_t(B);
    batch.fill(B, T, [&](std::vector<uint32_t>& out) { val_->window(k++, out); });
  }
  uint64_t vocab_size() const override { return data_.vocab_size; }
  void describe(CheckpointExtras& extras) const override {
    extras.tokenizer = data_.tokenizer;
    extras.bos_id = data_.bos_id;
    extras.eos_id = data_.eos_id;
  }

 private:
  TrainData data_;
  TokenWindows train_;
  std::optional<TokenWindows> val_;
};

}  // namespace

std::unique_ptr<BatchSource> token_window_source(const Config& config) {
  return std::make_unique<TokenWindowSource>(config);
}

}  // namespace dsk::train
