// `dsk-distill eval TEACHER STUDENT --data SHARDS`: how much of the teacher's quality a student
// keeps, on the validation windows dsk-train evaluates on (same seq_len, batch, batches, seed):
//   - each model's validation loss (mean next-token cross-entropy, nats) and perplexity;
//   - top-1 agreement: the share of positions where the student's most likely token is the
//     teacher's;
//   - KL(teacher || student) per position over the teacher's top min(V, 1024) tokens and the rest
//     as one bucket (exact when V <= 1024; otherwise a lower bound of the full KL);
//   - retained quality = teacher loss / student loss (1 when the student matches the teacher's
//     loss), and whether it reaches the bar;
//   - each model's parameters, weight bytes on disk, backend memory and greedy decode tokens/s
//     (batch 1, through the KV cache).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace dsk::distill {

struct EvalSettings {
  int seq_len = 256, batch = 8;
  int64_t batches = 16;
  uint64_t seed = 1;
  double bar = 0.98;
  int decode_tokens = 64;
  std::string device = "auto", precision = "auto";
};

struct ModelReport {
  std::filesystem::path path;
  int64_t parameters = 0;
  uint64_t weight_bytes = 0;
  double val_loss = 0, perplexity = 0;
  uint64_t memory_bytes = 0;
  double decode_tokens_per_s = 0;
};

struct DistillReport {
  ModelReport teacher, student;
  std::string split, device;
  int64_t tokens = 0;
  int top_k = 0;
  double top1_agreement = 0, kl = 0, retained_quality = 0, bar = 0;
  bool bar_met = false;
};

// data: a shard directory (its val split when it has one) or shard files.
DistillReport evaluate_distillation(const std::filesystem::path& teacher, const std::filesystem::path& student,
                                    const std::string& data, const EvalSettings& settings);

}  // namespace dsk::distill
