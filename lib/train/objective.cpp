#include "train/objective.hpp"

namespace dsk::train {

namespace {

// Weight decay on matrices only: not on norms, biases, embeddings or the routing-bias buffer.
std::vector<uint8_t> build_decay_mask(const model::Model& model, bool decay_everything) {
  std::vector<uint8_t> mask(model.parameter_count(), 0);
  for (const auto& view : model.parameter_views()) {
    if (!view.trainable) continue;
    const bool matrix = view.shape.size() == 2 && view.name.find("embed_tokens") == std::string::npos;
    if (decay_everything || matrix) std::fill_n(mask.begin() + view.offset, view.numel, 1);
  }
  return mask;
}

}  // namespace

NextTokenObjective::NextTokenObjective(model::Model& model, const Config& config)
    : model_(model),
      decay_mask_(build_decay_mask(model, config.get_bool("optim.decay_norms_biases_embeddings"))),
      aux_alpha_(float(config.get_double("moe.aux_loss_alpha"))),
      bias_update_speed_(float(config.get_double("moe.bias_update_speed"))) {
  model_.set_sequence_aux_loss(aux_alpha_);
}

TrainableSet NextTokenObjective::trainable() {
  return TrainableSet{model_.master(), model_.working(), model_.gradient_buffer(), decay_mask_};
}

void NextTokenObjective::start_step() {
  model_.zero_grad();
  model_.reset_expert_load();
}

double NextTokenObjective::forward_backward(const Batch& batch, int B, int T, float loss_scale) {
  return model_.forward_backward(batch.tokens.data(), batch.targets.data(), B, T, -100, loss_scale);
}

double NextTokenObjective::evaluate(const Batch& batch, int B, int T) {
  model_.set_sequence_aux_loss(0);  // plain cross-entropy: comparable across runs
  const double loss = model_.forward(batch.tokens.data(), batch.targets.data(), B, T);
  model_.set_sequence_aux_loss(aux_alpha_);
  return loss;
}

void NextTokenObjective::finish_step() {
  if (model_.architecture().n_routed > 0) model_.update_expert_bias(bias_update_speed_);
}

}  // namespace dsk::train
