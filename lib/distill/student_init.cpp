#include "distill/student_init.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <regex>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/json.hpp"
#include "model/hf_config.hpp"
#include "model/model.hpp"
#include "model/parameters.hpp"

namespace dsk::distill {
namespace fs = std::filesystem;
using model::Architecture;

namespace {

// n indices spread evenly over [0, total): the first and the last always in.
std::vector<int> even_spacing(int n, int total) {
  std::vector<int> picked;
  for (int i = 0; i < n; i++)
    picked.push_back(n == 1 ? 0 : int(std::lround(double(i) * double(total - 1) / double(n - 1))));
  return picked;
}

// Sizes of a model of GPU scale (256 and up) stay multiples of 8, which the GEMMs want; tiny ones
// (the tests') only even.
int alignment_of(int teacher_size) { return teacher_size >= 256 ? 8 : 1; }

int scaled(int size, int hidden, int teacher_hidden) {
  const int alignment = alignment_of(size);
  const double exact = double(size) * hidden / teacher_hidden / alignment;
  return std::max(alignment, int(std::lround(exact)) * alignment);
}

// The teacher's shape with the request's sizes (hidden also scales the MLPs it does not fix).
Architecture shaped(const Architecture& teacher, const StudentRequest& request, int layers, int hidden) {
  Architecture a = teacher;
  a.layers = layers;
  a.hidden = hidden;
  a.intermediate = request.intermediate ? *request.intermediate : scaled(teacher.intermediate, hidden, teacher.hidden);
  if (teacher.n_routed > 0) {
    a.moe_intermediate =
        request.intermediate ? *request.intermediate : scaled(teacher.moe_intermediate, hidden, teacher.hidden);
    if (request.experts) {
      a.n_routed = *request.experts;
      a.top_k = std::min(teacher.top_k, a.n_routed);
      if (a.n_routed % teacher.n_group != 0 || a.n_routed / teacher.n_group < a.top_k) a.n_group = a.topk_group = 1;
    }
    const std::vector<int> sources = even_spacing(layers, teacher.layers);
    a.first_k_dense = int(std::count_if(sources.begin(), sources.end(), [&](int l) { return l < teacher.first_k_dense; }));
  }
  return a;
}

void check_request(const Architecture& teacher, const StudentRequest& request) {
  auto within = [](const char* what, std::optional<int> value, int low, int high) {
    if (value && (*value < low || *value > high))
      throw UsageError(str("--", what, " ", *value, ": the teacher allows ", low, " to ", high));
  };
  within("layers", request.layers, 1, teacher.layers);
  within("hidden", request.hidden, 2, teacher.hidden);
  within("intermediate", request.intermediate, 1, std::max(teacher.intermediate, teacher.moe_intermediate));
  if (request.experts && teacher.n_routed == 0) throw UsageError("--experts: the teacher has no routed experts");
  within("experts", request.experts, 1, teacher.n_routed);
  if (request.hidden && *request.hidden % 2 != 0) throw UsageError("--hidden must be even (RoPE and the norms pair channels)");
  if (request.hidden && teacher.heads > 0 && *request.hidden % teacher.heads != 0)
    throw UsageError(str("--hidden ", *request.hidden, ": must be a multiple of the ", teacher.heads,
                         " attention heads (transformers refuses other configs)"));
  if (request.ratio && request.parameters) throw UsageError("give --ratio or --parameters, not both");
  if (request.ratio && !(*request.ratio > 0 && *request.ratio <= 1))
    throw UsageError(str("--ratio ", *request.ratio, ": must be above 0 and at most 1"));
}

// Hidden sizes to try: the teacher's down to an eighth of it, in steps of about a 64th of it. Even,
// multiples of 8 from 256 up, and multiples of the head count: transformers refuses a config whose
// hidden_size is not, even when head_dim is given.
std::vector<int> hidden_candidates(int teacher_hidden, int heads) {
  const int alignment = std::lcm(std::max(2, alignment_of(teacher_hidden)), std::max(1, heads));
  const int step = std::max(alignment, (teacher_hidden / 64) / alignment * alignment);
  std::vector<int> sizes{teacher_hidden};
  for (int h = teacher_hidden / alignment * alignment; h >= std::max(2, teacher_hidden / 8); h -= step)
    if (h != teacher_hidden) sizes.push_back(h);
  return sizes;
}

// The student tensor `name` from the teacher's: layer and expert indices mapped, each axis sliced
// to its leading entries, the router's expert axis picked by expert_sources.
void copy_tensor(const model::ParamView& view, model::Model& student, const model::Model& teacher,
                 const StudentPlan& plan) {
  static const std::regex layer_pattern(R"(^model\.layers\.(\d+)\.)"), expert_pattern(R"(\.experts\.(\d+)\.)");
  std::string name = view.name;
  std::smatch match;
  if (std::regex_search(name, match, layer_pattern))
    name = "model.layers." + std::to_string(plan.layer_sources[std::stoul(match[1])]) + "." + match.suffix().str();
  if (std::regex_search(name, match, expert_pattern))
    name = match.prefix().str() + ".experts." + std::to_string(plan.expert_sources[std::stoul(match[1])]) + "." +
           match.suffix().str();
  const bool router = name.ends_with(".mlp.gate.weight") || name.ends_with(".mlp.gate.e_score_correction_bias");
  const model::ParamView& source = teacher.view(name);
  const std::span<const float> from(teacher.parameters().data() + source.offset, source.numel);
  std::span<float> to = student.parameter(view.name);
  const int64_t rows = view.shape[0], columns = view.shape.size() > 1 ? view.shape[1] : 1;
  const int64_t source_columns = source.shape.size() > 1 ? source.shape[1] : 1;
  for (int64_t r = 0; r < rows; r++) {
    const int64_t source_row = router ? plan.expert_sources[size_t(r)] : r;
    std::copy_n(from.begin() + source_row * source_columns, columns, to.begin() + r * columns);
  }
}

void copy_beside(const fs::path& teacher, const fs::path& directory) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    if (fs::is_regular_file(teacher / name)) fs::copy_file(teacher / name, directory / name);
  // The special ids generation needs, which the Architecture does not carry.
  const nlohmann::json teacher_config = parse_json(read_file(teacher / "config.json"), (teacher / "config.json").string());
  nlohmann::json config = parse_json(read_file(directory / "config.json"), "student config.json");
  for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"})
    if (teacher_config.contains(key)) config[key] = teacher_config[key];
  write_file_atomic(directory / "config.json", config.dump(2) + "\n");
}

}  // namespace

int64_t parameter_count(const Architecture& arch) { return int64_t(model::layout_parameters(arch).total); }

StudentPlan plan_student(const Architecture& teacher, const StudentRequest& request) {
  check_request(teacher, request);
  StudentPlan plan;
  plan.teacher_parameters = parameter_count(teacher);
  const std::vector<int> layer_options = request.layers ? std::vector<int>{*request.layers} : [&] {
    std::vector<int> all;
    for (int l = teacher.layers; l >= 1; l--) all.push_back(l);
    return all;
  }();
  const std::vector<int> hidden_options =
      request.hidden ? std::vector<int>{*request.hidden} : hidden_candidates(teacher.hidden, teacher.heads);
  const bool searched = request.ratio || request.parameters;
  const double target = request.parameters ? double(*request.parameters)
                        : request.ratio    ? *request.ratio * double(plan.teacher_parameters)
                                           : 0.0;
  // Without a target, the unset sizes stay the teacher's. With one, of the shapes within 2% of it
  // the most balanced wins: the one whose deeper cut (of layers or of width) is the mildest, so
  // that a large vocabulary's embeddings do not leave a one-layer student; when no shape comes
  // within 2%, the closest.
  struct Candidate {
    Architecture arch;
    int64_t count;
    double distance, balance;
  };
  std::vector<Candidate> candidates;
  for (int hidden : searched ? hidden_options : std::vector<int>{hidden_options.front()})
    for (int layers : searched ? layer_options : std::vector<int>{layer_options.front()}) {
      Architecture arch = shaped(teacher, request, layers, hidden);
      const int64_t count = parameter_count(arch);
      const double distance = searched ? std::abs(double(count) - target) / target : 0.0;
      const double balance = std::min(double(layers) / teacher.layers, double(hidden) / teacher.hidden);
      candidates.push_back({arch, count, distance, balance});
    }
  const auto closest = std::min_element(candidates.begin(), candidates.end(),
                                        [](const Candidate& a, const Candidate& b) { return a.distance < b.distance; });
  const Candidate* best = &*closest;
  for (const Candidate& candidate : candidates)
    if (candidate.distance <= 0.02 && (candidate.balance > best->balance ||
                                       (candidate.balance == best->balance && candidate.distance < best->distance)))
      best = &candidate;
  plan.arch = best->arch;
  plan.parameters = best->count;
  plan.arch.validate();
  plan.layer_sources = even_spacing(plan.arch.layers, teacher.layers);
  plan.expert_sources = even_spacing(plan.arch.n_routed, teacher.n_routed);
  return plan;
}

InitOutcome init_student(const fs::path& teacher_dir, const fs::path& output, const StudentRequest& request,
                         bool random, uint64_t seed, const std::string& dtype) {
  if (fs::exists(output)) throw UsageError(str(output.string(), ": exists; name a new directory for the student"));
  const model::Model teacher = model::Model::load_hf_checkpoint(teacher_dir);
  InitOutcome outcome;
  outcome.plan = plan_student(teacher.architecture(), request);
  outcome.random = random;
  outcome.path = output;
  model::Model student(outcome.plan.arch, seed);
  if (!random)
    for (const model::ParamView& view : student.parameter_views()) copy_tensor(view, student, teacher, outcome.plan);
  student.set_parameters(student.copy_parameters());  // refreshes the working copy
  AtomicDirectory directory(output);
  student.save_hf_checkpoint(directory.path(), dtype);
  copy_beside(teacher_dir, directory.path());
  directory.commit();
  return outcome;
}

}  // namespace dsk::distill
