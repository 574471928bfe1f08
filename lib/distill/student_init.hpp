// `dsk-distill init`: a student made from a teacher. Its shape is the teacher's with fewer layers,
// a smaller hidden size, a smaller MLP (intermediate) size or fewer routed experts, each given
// explicitly or found for a target parameter count (of the shapes within 2% of it, the one whose
// deeper cut, of layers or of width, is the mildest); its weights come from the teacher:
//   - student layer i is teacher layer round(i (L - 1) / (L' - 1)) (even spacing, first and last
//     kept); DeepSeek's dense-first layers stay first (first_k_dense_replace follows);
//   - routed experts the same way, at even spacing, with their router rows and routing biases;
//   - every other tensor is sliced: the first hidden_size channels of every hidden-sized axis
//     (embeddings, norms, attention inputs and outputs, the LM head), the first intermediate
//     channels of each MLP; attention's heads and head sizes stay the teacher's;
// or at random (HF's init) with --random. The student checkpoint is an HF directory beside the
// teacher's tokenizer and generation config, loadable by dsk-train and transformers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/architecture.hpp"

namespace dsk::distill {

// What the user asked for; anything unset is the teacher's or, with a target, searched for.
struct StudentRequest {
  std::optional<int> layers, hidden, intermediate, experts;
  std::optional<double> ratio;          // of the teacher's parameter count
  std::optional<int64_t> parameters;    // an absolute target
};

struct StudentPlan {
  model::Architecture arch;
  std::vector<int> layer_sources;   // teacher layer of each student layer
  std::vector<int> expert_sources;  // teacher expert of each student expert (MoE)
  int64_t parameters = 0, teacher_parameters = 0;
};

// UsageError for a shape the teacher cannot give (more layers than it has, a hidden size that is
// not a multiple of 2, top-k above the expert count, ...).
StudentPlan plan_student(const model::Architecture& teacher, const StudentRequest& request);

int64_t parameter_count(const model::Architecture& arch);

struct InitOutcome {
  std::filesystem::path path;
  StudentPlan plan;
  bool random = false;
};

// Loads the teacher (CPU), makes the student and writes it to `output` (a new directory, written
// whole under a temporary name; UsageError when it exists). dtype: of model.safetensors.
InitOutcome init_student(const std::filesystem::path& teacher, const std::filesystem::path& output,
                         const StudentRequest& request, bool random, uint64_t seed, const std::string& dtype);

}  // namespace dsk::distill
