#include "distill/distill_objective.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "distill/distill_schema.hpp"
#include "distill/model_identity.hpp"
#include "train/train_data.hpp"

namespace dsk::distill {
namespace fs = std::filesystem;

using tensor::Buf;
using tensor::DType;

namespace {

// The cache must come from this teacher (when one is named) and from shards of this tokenizer,
// at this temperature and top_k, over this vocabulary and seq_len.
void check_cache(const TeacherCacheSpec& spec, const fs::path& cache, const Config& config, int64_t vocab) {
  auto refuse = [&](const std::string& what) {
    throw UsageError(str(cache.string(), ": ", what, "; make a cache for this run with dsk-distill cache"));
  };
  if (config.has("distill.teacher")) {
    const std::string teacher = checkpoint_sha256(config.get_string("distill.teacher"));
    if (teacher != spec.teacher_sha256)
      refuse(str("made by another teacher (", spec.teacher, ", sha256 ", spec.teacher_sha256.substr(0, 12),
                 ") than distill.teacher (sha256 ", teacher.substr(0, 12), ")"));
  }
  const train::TrainData data = train::resolve_train_data(config.get_strings("data.train"), {});
  const std::string tokenizer = tokenizer_sha256(data.tokenizer);
  if (tokenizer != spec.tokenizer_sha256)
    refuse(str("made from shards of another tokenizer (sha256 ", spec.tokenizer_sha256.substr(0, 12),
               ") than data.train's (sha256 ", tokenizer.substr(0, 12), ")"));
  if (spec.vocab_size != vocab) refuse(str("its vocabulary is ", spec.vocab_size, ", the student's ", vocab));
  if (spec.seq_len != config.get_int("data.seq_len"))
    refuse(str("its seq_len is ", spec.seq_len, ", data.seq_len ", config.get_int("data.seq_len")));
  if (spec.top_k != config.get_int("distill.top_k"))
    refuse(str("its top_k is ", spec.top_k, ", distill.top_k ", config.get_int("distill.top_k")));
  if (float(spec.temperature) != float(config.get_double("distill.temperature")))
    refuse(str("its temperature is ", spec.temperature, ", distill.temperature ",
               config.get_double("distill.temperature")));
}

}  // namespace

DistillObjective::DistillObjective(model::Model& student, const Config& config)
    : NextTokenObjective(student, config),
      student_(student),
      loss_(distill_loss_from(config)),
      top_k_(int(config.get_int("distill.top_k"))) {
  // The sequence-wise balance loss is a cross-entropy run's; backward_from_hidden carries none.
  student_.set_sequence_aux_loss(0);
  const int64_t vocab = student_.architecture().vocab;
  if (top_k_ > vocab) throw UsageError(str("distill.top_k ", top_k_, " is more than the vocabulary, ", vocab));
  if (config.has("distill.cache")) {
    const fs::path cache = config.get_string("distill.cache");
    cache_ = std::make_unique<TeacherCache>(cache);
    check_cache(cache_->spec(), cache, config, vocab);
    log_info("teacher: cache ", cache.string(), " (", cache_->spec().windows, " windows, top ", top_k_, ")");
  } else if (config.has("distill.teacher")) {
    const fs::path teacher = config.get_string("distill.teacher");
    teacher_.emplace(model::Model::load_hf_checkpoint(teacher, student_.shared_ops()));
    if (teacher_->architecture().vocab != vocab)
      throw UsageError(str(teacher.string(), ": the teacher's vocabulary is ", teacher_->architecture().vocab,
                           ", the student's ", vocab, " (distillation needs the same token ids)"));
    const std::string teacher_tokenizer = tokenizer_sha256(teacher / "tokenizer.json");
    const std::string data_tokenizer =
        tokenizer_sha256(train::resolve_train_data(config.get_strings("data.train"), {}).tokenizer);
    if (teacher_tokenizer != "none" && data_tokenizer != "none" && teacher_tokenizer != data_tokenizer)
      throw UsageError(str(teacher.string(), ": the teacher's tokenizer.json is not the one data.train's shards were "
                                             "made with (the token ids would mean other things)"));
    log_info("teacher: ", teacher.string(), " online, ", teacher_->parameter_count(), " parameters");
  } else {
    throw UsageError("dsk-distill train needs distill.cache or distill.teacher (--cache, --teacher)");
  }
}

DistillObjective::LossBuffers::LossBuffers(tensor::Ops& ops, int64_t N)
    : targets(ops, DType::i32, N, "distillation targets"),
      divergences(ops, DType::f32, N, "distillation divergences"),
      cross_entropies(ops, DType::f32, N, "distillation cross-entropies") {}

void DistillObjective::fill_teacher_rows(const train::Batch& batch, int B, int T) {
  const int64_t N = int64_t(B) * T;
  tensor::Ops& ops = student_.ops();
  if (N > planned_rows_) {  // the first batch: nothing is allocated after it
    // The old loss buffers go before the new teacher rows come, the old rows after (the backend's
    // peak depends on this order).
    buffers_.reset();
    rows_ = std::make_unique<TeacherRows>(ops, N, top_k_);
    buffers_.emplace(ops, N);
    planned_rows_ = N;
  }
  if (teacher_) {
    rows_->compute(*teacher_, batch.tokens.data(), B, T, loss_.temperature);
    return;
  }
  host_ids_.resize(size_t(N) * top_k_);
  host_logprobs_.resize(size_t(N) * top_k_);
  host_rest_.resize(size_t(N));
  for (int b = 0; b < B; b++) {
    // The window is the row's tokens and, after them, its last target.
    window_.assign(batch.tokens.begin() + int64_t(b) * T, batch.tokens.begin() + int64_t(b + 1) * T);
    window_.push_back(uint32_t(batch.targets[size_t(b + 1) * T - 1]));
    const size_t row = size_t(b) * T;
    cache_->rows_of_window(window_.data(), {host_ids_.data() + row * top_k_, host_logprobs_.data() + row * top_k_,
                                            host_rest_.data() + row});
  }
  rows_->upload(host_ids_.data(), host_logprobs_.data(), host_rest_.data(), N);
}

double DistillObjective::forward_backward(const train::Batch& batch, int B, int T, float loss_scale) {
  const int64_t N = int64_t(B) * T;
  student_.forward_hidden(batch.tokens.data(), B, T, /*training=*/true);
  fill_teacher_rows(batch, B, T);
  tensor::Ops& ops = student_.ops();
  const Buf targets = buffers_->targets.buf().slice(0, N), divergences = buffers_->divergences.buf().slice(0, N),
            cross_entropies = buffers_->cross_entropies.buf().slice(0, N);
  ops.copy_from_host(targets, batch.targets.data());
  const model::Architecture& arch = student_.architecture();
  ops.lm_head_distill_loss(divergences, cross_entropies, student_.hidden_gradient(), student_.lm_head_gradient(),
                           student_.hidden(), student_.lm_head_weight(), targets, rows_->ids(N), rows_->logprobs(N),
                           rows_->rest(N), int(N), arch.hidden, arch.vocab, top_k_, -100, loss_,
                           loss_scale / float(N));
  student_.backward_from_hidden();
  const double divergence = ops.sum(divergences) / double(N), cross_entropy = ops.sum(cross_entropies) / double(N);
  log_debug("distill: divergence ", divergence, ", cross-entropy ", cross_entropy);
  return loss_.alpha * divergence + (1 - loss_.alpha) * cross_entropy;
}

double DistillObjective::evaluate(const train::Batch& batch, int B, int T) {
  return student_.forward(batch.tokens.data(), batch.targets.data(), B, T);
}

train::ObjectiveFactory distill_objective_factory() {
  return [](model::Model& student, const Config& config) -> std::unique_ptr<train::Objective> {
    return std::make_unique<DistillObjective>(student, config);
  };
}

}  // namespace dsk::distill
