#include "train/error_feedback_checkpoint.hpp"

#include <charconv>
#include <cstdio>
#include <map>

#include "core/error.hpp"
#include "core/log.hpp"
#include "io/safetensors.hpp"
#include "tensor/allocation.hpp"

namespace dsk::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFormat = "dsk-int8-residual-1";
constexpr const char* kTensor = "residual";

// A metadata entry of the residual file that must be an integer equal to `expected`.
void check_metadata(const io::SafetensorsFile& file, const std::string& key, int64_t expected) {
  const auto& metadata = file.metadata();
  const auto found = metadata.find(key);
  int64_t value = 0;
  if (found == metadata.end() ||
      std::from_chars(found->second.data(), found->second.data() + found->second.size(), value).ec != std::errc{})
    throw DataError(str(file.path().string(), ": metadata lacks an integer ", key, " (not a dsk int8 residual)"));
  if (value != expected)
    throw DataError(str(file.path().string(), ": written with ", key, " ", value, ", expected ", expected,
                        " (a residual of another rank or checkpoint)"));
}

}  // namespace

std::string error_feedback_file_name(int rank, int ranks) {
  char name[64];
  std::snprintf(name, sizeof name, "error_feedback.rank-%05d-of-%05d.safetensors", rank, ranks);
  return name;
}

std::vector<std::vector<float>> gather_error_feedback(dist::Communicator& comm, tensor::Ops& ops, tensor::Buf residual) {
  if (residual.empty()) return {};
  const tensor::Allocation whole(ops, tensor::DType::f32, comm.size() * residual.numel, "int8 residuals to save");
  ops.copy(whole.buf().slice(comm.rank() * residual.numel, residual.numel), residual);
  comm.all_gather(whole.buf(), residual.numel);
  if (comm.rank() != 0) return {};
  std::vector<float> host(size_t(whole.buf().numel));
  ops.copy_to_host(host.data(), whole.buf());
  std::vector<std::vector<float>> residuals;
  for (int rank = 0; rank < comm.size(); ++rank)
    residuals.emplace_back(host.begin() + rank * residual.numel, host.begin() + (rank + 1) * residual.numel);
  return residuals;
}

void save_error_feedback(const fs::path& dsk_dir, int rank, int ranks, int64_t step, std::span<const float> residual) {
  const std::map<std::string, std::string> metadata{
      {"format", kFormat}, {"rank", str(rank)}, {"ranks", str(ranks)}, {"step", str(step)}};
  io::write_safetensors(dsk_dir / error_feedback_file_name(rank, ranks),
                        {{kTensor, io::DType::F32, {int64_t(residual.size())}, residual.data()}}, metadata);
}

void restore_error_feedback(const fs::path& checkpoint, int64_t saved_ranks, int64_t step, int rank, int ranks,
                            tensor::Ops& ops, tensor::Buf residual) {
  const bool speaks = rank == 0;  // the decision is the same on every rank: one line for the run
  if (residual.empty()) {
    if (saved_ranks > 0 && speaks)
      log_warn("int8 error feedback: the residuals that ", saved_ranks, " ranks saved in ", checkpoint.string(),
               " are dropped (this run has ", ranks > 1 ? "no int8 error feedback" : "one rank", ")");
    return;
  }
  if (saved_ranks != ranks) {
    if (speaks)
      log_warn("int8 error feedback: the residual starts from zero: ", checkpoint.string(),
               saved_ranks > 0 ? str(" holds the residuals of ", saved_ranks, " ranks, which cannot be mapped onto ",
                                     ranks)
                               : std::string(" has none (written without int8 error feedback or on one rank)"));
    return;
  }
  const fs::path path = checkpoint / "dsk" / error_feedback_file_name(rank, ranks);
  if (!fs::exists(path))
    throw DataError(str(path.string(), ": missing (dsk/state.yaml says ", saved_ranks,
                        " ranks saved their int8 residuals): the checkpoint is not whole"));
  const io::SafetensorsFile file(path);  // DataError for a truncated or malformed file
  const auto format = file.metadata().find("format");
  if (format == file.metadata().end() || format->second != kFormat)
    throw DataError(str(path.string(), ": not a dsk int8 residual (metadata format ", kFormat, ")"));
  check_metadata(file, "rank", rank);
  check_metadata(file, "ranks", ranks);
  check_metadata(file, "step", step);
  const io::TensorView saved = file.at(kTensor);
  if (saved.dtype() != io::DType::F32 || saved.shape().size() != 1)
    throw DataError(str(path.string(), ": ", kTensor, " must be a F32 vector"));
  if (saved.shape()[0] != residual.numel) {
    // Same ranks, another buffer: dist.expert_parallel (which experts a rank holds) changed, on
    // every rank alike (each holds as many experts).
    if (speaks)
      log_warn("int8 error feedback: the residual starts from zero: ", path.string(), " holds ", saved.shape()[0],
               " values, this rank's gradients are ", residual.numel, " (another dist.expert_parallel?)");
    return;
  }
  ops.copy_from_host(residual, saved.data);
}

}  // namespace dsk::train
