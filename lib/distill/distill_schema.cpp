#include "distill/distill_schema.hpp"

#include "core/error.hpp"
#include "train/train_schema.hpp"

namespace dsk::distill {
namespace {

Schema build_schema() {
  Schema s = train::train_schema();
  s.path("distill.teacher", std::nullopt, "teacher checkpoint directory");
  s.path("distill.cache", std::nullopt, "teacher cache directory (dsk-distill cache); unset: run the teacher online");
  s.choice("distill.loss", "forward_kl", {"forward_kl", "reverse_kl", "jsd"},
           "divergence between the teacher's and the student's softened distributions");
  auto& alpha = s.number("distill.alpha", 0.5, "weight of the divergence; 1 - alpha weighs the data's cross-entropy");
  alpha.minimum = 0;
  alpha.maximum = 1;
  s.number("distill.temperature", 1.0, "softening of both distributions (logits / temperature)").minimum = 0.01;
  auto& beta = s.number("distill.beta", 0.5, "jsd: weight of the teacher in the mixture, strictly between 0 and 1");
  beta.minimum = 0;
  beta.maximum = 1;
  auto& top_k = s.integer("distill.top_k", 64, "teacher tokens kept per position (the rest is one bucket)");
  top_k.minimum = 1;
  top_k.maximum = 1024;
  s.integer("distill.cache_part_windows", 0,
            "windows per cache part, rounded up to whole micro-batches (0: about 64 MiB a part)").minimum = 0;
  s.choice("distill.cache_dtype", "BF16", {"BF16", "F16", "F32"}, "dtype of the cached log-probabilities");
  return s;
}

}  // namespace

const Schema& distill_schema() {
  static const Schema schema = build_schema();
  return schema;
}

kernels::cpu::DistillLoss distill_loss_from(const Config& config) {
  using kernels::cpu::Divergence;
  kernels::cpu::DistillLoss loss;
  const std::string kind = config.get_string("distill.loss");
  loss.divergence = kind == "reverse_kl" ? Divergence::reverse_kl : kind == "jsd" ? Divergence::jsd
                                                                                  : Divergence::forward_kl;
  loss.alpha = float(config.get_double("distill.alpha"));
  loss.temperature = float(config.get_double("distill.temperature"));
  loss.beta = float(config.get_double("distill.beta"));
  if (loss.divergence == Divergence::jsd && (loss.beta <= 0 || loss.beta >= 1))
    throw UsageError(str(config.where("distill.beta"), ": distill.beta must be strictly between 0 and 1 for jsd, got ",
                         loss.beta));
  return loss;
}

uint64_t run_windows(const Config& config) {
  const int64_t per_step = config.get_int("data.micro_batch") * config.get_int("data.grad_accum");
  if (config.has("steps") && config.has("tokens"))
    throw UsageError(str(config.source(), ": give steps or tokens, not both"));
  if (config.has("steps")) return uint64_t(config.get_int("steps") * per_step);
  if (config.has("tokens")) {
    const int64_t tokens_per_step = per_step * config.get_int("data.seq_len");
    return uint64_t((config.get_int("tokens") + tokens_per_step - 1) / tokens_per_step * per_step);
  }
  throw UsageError(str(config.source(), ": give the run's length as steps or tokens"));
}

}  // namespace dsk::distill
