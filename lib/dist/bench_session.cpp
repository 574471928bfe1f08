#include "dist/bench_session.hpp"

#include <cstring>

#include "core/error.hpp"

namespace dsk::dist {

namespace {

std::pair<std::string, std::string> split_hello(const std::string& blob) {
  size_t newline = blob.find('\n');
  if (newline == std::string::npos) throw RemoteError("rendezvous: a rank sent a malformed hello");
  return {blob.substr(0, newline), blob.substr(newline + 1)};
}

// The first differing "key=value" word of two signatures, for the message.
std::string first_difference(const std::string& a, const std::string& b) {
  size_t start = 0;
  while (start < a.size() && start < b.size() && a[start] == b[start]) ++start;
  size_t word_start = a.rfind(' ', start);
  word_start = word_start == std::string::npos ? 0 : word_start + 1;
  auto word = [&](const std::string& s) { return s.substr(word_start, s.find(' ', word_start) - word_start); };
  return str("'", word(a), "' vs '", word(b), "'");
}

}  // namespace

std::string hello_blob(const std::string& signature, const std::string& probe_error) {
  return signature + "\n" + probe_error;
}

void check_hellos(const std::vector<std::string>& blobs) {
  auto [reference, unused] = split_hello(blobs.at(0));
  for (size_t rank = 1; rank < blobs.size(); ++rank) {
    auto [signature, probe] = split_hello(blobs[rank]);
    if (signature != reference)
      throw UsageError(str("ranks were started with different flags: rank 0 and rank ", rank, " differ in ",
                           first_difference(reference, signature), "; start every rank with the same flags"));
  }
  for (size_t rank = 0; rank < blobs.size(); ++rank) {
    auto [signature, probe] = split_hello(blobs[rank]);
    if (!probe.empty()) throw ResourceError(str("rank ", rank, ": ", probe));
  }
}

std::string encode_timings(const std::vector<double>& gpu_times_us, int64_t wrong) {
  std::string blob(sizeof(int64_t) + gpu_times_us.size() * sizeof(double), '\0');
  std::memcpy(blob.data(), &wrong, sizeof wrong);
  std::memcpy(blob.data() + sizeof wrong, gpu_times_us.data(), gpu_times_us.size() * sizeof(double));
  return blob;
}

void decode_timings(const std::vector<std::string>& blobs, std::vector<double>& times_us, int64_t& wrong) {
  times_us.clear();
  wrong = 0;
  for (const std::string& blob : blobs) {
    if (blob.size() < sizeof(int64_t) || (blob.size() - sizeof(int64_t)) % sizeof(double) != 0)
      throw RemoteError("rendezvous: a rank sent malformed timings");
    int64_t rank_wrong = 0;
    std::memcpy(&rank_wrong, blob.data(), sizeof rank_wrong);
    wrong = (wrong < 0 || rank_wrong < 0) ? -1 : wrong + rank_wrong;
    size_t gpus = (blob.size() - sizeof(int64_t)) / sizeof(double);
    for (size_t g = 0; g < gpus; ++g) {
      double time = 0;
      std::memcpy(&time, blob.data() + sizeof(int64_t) + g * sizeof(double), sizeof time);
      times_us.push_back(time);
    }
  }
}

}  // namespace dsk::dist
