#include "train/optimizer_state.hpp"

#include <cstring>
#include <string>

#include "core/error.hpp"
#include "io/zstd_stream.hpp"

namespace dsk::train {
namespace {

constexpr char kMagic[8] = {'D', 'S', 'K', 'A', 'D', 'A', 'M', '1'};

}  // namespace

void read_exactly(io::ZstdReader& in, void* out, std::size_t size) {
  char* bytes = static_cast<char*>(out);
  std::size_t done = 0;
  while (done < size) {
    std::size_t n = in.read(bytes + done, size - done);
    if (n == 0) throw DataError(in.name() + ": optimizer state ends early (truncated)");
    done += n;
  }
}

void save_optimizer_state(const std::filesystem::path& path, std::int64_t adam_steps, std::span<const float> master,
                          std::span<const float> m, std::span<const float> v) {
  if (m.size() != master.size() || v.size() != master.size())
    throw InternalError("save_optimizer_state: master, m and v differ in length");
  io::ZstdWriter out(path, {});
  std::uint64_t count = master.size();
  out.write(kMagic, sizeof kMagic);
  out.write(reinterpret_cast<const char*>(&count), sizeof count);
  out.write(reinterpret_cast<const char*>(&adam_steps), sizeof adam_steps);
  for (auto values : {master, m, v}) out.write(reinterpret_cast<const char*>(values.data()), values.size_bytes());
  out.commit();
}

OptimizerState load_optimizer_state(const std::filesystem::path& path, std::uint64_t expected_count) {
  io::ZstdReader in(path);
  char magic[8];
  read_exactly(in, magic, sizeof magic);
  if (std::memcmp(magic, kMagic, sizeof kMagic) != 0)
    throw DataError(path.string() + ": not a dsk optimizer state (bad magic)");
  std::uint64_t count = 0;
  read_exactly(in, &count, sizeof count);
  if (count != expected_count)
    throw DataError(path.string() + ": optimizer state holds " + std::to_string(count) + " parameters, the model has " +
                    std::to_string(expected_count));
  OptimizerState state;
  read_exactly(in, &state.adam_steps, sizeof state.adam_steps);
  for (auto* values : {&state.master, &state.m, &state.v}) {
    values->resize(count);
    read_exactly(in, values->data(), count * sizeof(float));
  }
  return state;
}

}  // namespace dsk::train
