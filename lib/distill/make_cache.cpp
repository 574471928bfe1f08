#include "distill/make_cache.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/progress.hpp"
#include "core/signals.hpp"
#include "distill/distill_schema.hpp"
#include "distill/model_identity.hpp"
#include "distill/teacher_cache.hpp"
#include "distill/teacher_rows.hpp"
#include "model/model.hpp"
#include "tensor/device.hpp"
#include "train/token_windows.hpp"
#include "train/train_data.hpp"

namespace dsk::distill {
namespace fs = std::filesystem;
namespace {

// Parts of whole micro-batches: about 64 MiB decompressed, or `asked` windows rounded up.
uint64_t windows_per_part(const TeacherCacheSpec& spec, int micro_batch, int64_t asked) {
  if (asked > 0) return (uint64_t(asked) + uint64_t(micro_batch) - 1) / uint64_t(micro_batch) * uint64_t(micro_batch);
  const uint64_t window_bytes = uint64_t(spec.seq_len) * spec.bytes_per_position() + uint64_t(spec.seq_len + 1) * 4;
  const uint64_t batches = std::max<uint64_t>(1, (uint64_t(64) << 20) / (window_bytes * uint64_t(micro_batch)));
  return batches * uint64_t(micro_batch);
}

fs::path required_path(const Config& config, const char* key, const char* what) {
  if (!config.has(key)) throw UsageError(str("dsk-distill cache needs ", what, " (", key, ")"));
  return config.get_string(key);
}

// One part's windows through the teacher, a micro-batch at a time.
void make_part(const fs::path& cache, uint64_t part, const TeacherCacheSpec& spec, const train::TokenWindows& windows,
               model::Model& teacher, TeacherRows& rows, int micro_batch) {
  const uint64_t first = part * spec.windows_per_part, n = spec.windows_in_part(part);
  const int T = int(spec.seq_len), K = int(spec.top_k);
  const size_t window = size_t(T) + 1;
  std::vector<uint32_t> tokens;
  tokens.reserve(n * window);
  std::vector<int32_t> ids(n * T * K);
  std::vector<float> logprobs(n * T * K), rest(n * T);
  std::vector<int32_t> inputs;
  for (uint64_t done = 0; done < n; done += uint64_t(micro_batch)) {
    const int B = int(std::min<uint64_t>(uint64_t(micro_batch), n - done));
    inputs.clear();
    for (int b = 0; b < B; b++) {
      windows.window(first + done + uint64_t(b), tokens);
      const uint32_t* w = tokens.data() + (done + uint64_t(b)) * window;
      inputs.insert(inputs.end(), w, w + T);
    }
    rows.compute(teacher, inputs.data(), B, T, float(spec.temperature));
    const size_t offset = done * size_t(T);
    rows.download(ids.data() + offset * K, logprobs.data() + offset * K, rest.data() + offset, int64_t(B) * T);
  }
  write_cache_part(cache, part, spec, tokens, ids, logprobs, rest);
}

uint64_t bytes_of_parts(const fs::path& cache, uint64_t parts) {
  uint64_t bytes = 0;
  for (uint64_t part = 0; part < parts; part++) bytes += fs::file_size(cache_part_path(cache, part));
  return bytes;
}

// What a killed run left of the part it was writing (ZstdWriter's NAME.tmp.PID).
void remove_unfinished_parts(const fs::path& cache) {
  std::vector<fs::path> leftovers;
  for (const auto& entry : fs::directory_iterator(cache))
    if (entry.path().filename().string().find(".zst.tmp.") != std::string::npos) leftovers.push_back(entry.path());
  for (const fs::path& leftover : leftovers) fs::remove(leftover);
}

}  // namespace

CacheOutcome make_teacher_cache(const Config& config) {
  install_stop_signal_handlers();
  const fs::path teacher_dir = required_path(config, "distill.teacher", "a teacher checkpoint");
  const fs::path cache = required_path(config, "distill.cache", "an output directory");
  const train::TrainData data = train::resolve_train_data(config.get_strings("data.train"), {});
  const int T = int(config.get_int("data.seq_len")), micro_batch = int(config.get_int("data.micro_batch"));
  const train::TokenWindows windows(data.train, T, uint64_t(config.get_int("seed")));
  auto ops = tensor::make_ops(config.get_string("device"), config.get_string("precision"));
  model::Model teacher = model::Model::load_hf_checkpoint(teacher_dir, ops);
  const int64_t vocab = teacher.architecture().vocab;
  if (data.vocab_size > uint64_t(vocab))
    throw UsageError(str("the shards use a vocabulary of ", data.vocab_size, " tokens but the teacher has ", vocab));

  TeacherCacheSpec spec;
  spec.teacher = fs::absolute(teacher_dir).lexically_normal().string();
  spec.teacher_sha256 = checkpoint_sha256(teacher_dir);
  spec.tokenizer_sha256 = tokenizer_sha256(data.tokenizer);
  spec.vocab_size = vocab;
  spec.seq_len = T;
  spec.seed = uint64_t(config.get_int("seed"));
  spec.windows = run_windows(config);
  spec.top_k = config.get_int("distill.top_k");
  spec.temperature = config.get_double("distill.temperature");
  spec.dtype = config.get_string("distill.cache_dtype");
  if (spec.top_k > vocab) throw UsageError(str("distill.top_k ", spec.top_k, " is more than the vocabulary, ", vocab));
  spec.windows_per_part = windows_per_part(spec, micro_batch, config.get_int("distill.cache_part_windows"));

  if (fs::exists(cache_manifest_path(cache))) {
    const std::string difference = first_difference(read_cache_manifest(cache), spec);
    if (!difference.empty())
      throw UsageError(str(cache.string(), ": a teacher cache made with other settings is there (", difference,
                           "); name another directory or remove it"));
    remove_unfinished_parts(cache);
  } else {
    if (fs::exists(cache) && !fs::is_empty(cache))
      throw UsageError(str(cache.string(), ": exists and is not a teacher cache; name another directory"));
    fs::create_directories(cache);
    write_cache_manifest(cache, spec);
  }

  CacheOutcome outcome;
  outcome.path = cache;
  outcome.teacher_sha256 = spec.teacher_sha256;
  outcome.tokenizer_sha256 = spec.tokenizer_sha256;
  outcome.windows = spec.windows;
  outcome.parts = spec.parts();
  outcome.top_k = spec.top_k;
  outcome.seq_len = spec.seq_len;
  TeacherRows rows(*ops, int64_t(micro_batch) * T, int(spec.top_k));
  Progress progress("cache", spec.windows, "windows");
  uint64_t done = 0;
  for (uint64_t part = 0; part < spec.parts(); part++) {
    if (!fs::exists(cache_part_path(cache, part))) {
      make_part(cache, part, spec, windows, teacher, rows, micro_batch);
      outcome.parts_made++;
    }
    done += spec.windows_in_part(part);
    progress.set(done);
    if (stop_requested() && part + 1 < spec.parts()) {
      progress.finish();
      throw Interrupted(stop_exit_code(), str("stopped by a signal after ", part + 1, " of ", spec.parts(),
                                              " parts; rerun the same command to finish the cache"));
    }
  }
  progress.finish();
  outcome.bytes = bytes_of_parts(cache, spec.parts());
  log_info("teacher cache ", cache.string(), ": ", spec.windows, " windows in ", spec.parts(), " parts (",
           outcome.parts_made, " made now), ", outcome.bytes, " bytes");
  return outcome;
}

}  // namespace dsk::distill
