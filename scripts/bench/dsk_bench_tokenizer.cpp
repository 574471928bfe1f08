// dsk-bench-tokenizer: encode throughput of lib/tokenizer on a corpus, and the ids for the
// parity test. The corpus holds documents separated by "\x1e\n" (tests/tokenizer/make_corpus.py);
// invalid UTF-8 in a document is replaced by U+FFFD first, as Python's errors="replace" does.
//
//   dsk-bench-tokenizer TOKENIZER_JSON CORPUS [--threads N] [--repeat R] [--ids OUT] [--roundtrip]
//
// Prints "threads N mb_per_s X tokens T" on stdout. With --ids, writes one line of ids per
// document (single thread), the format tests/tokenizer/encode_js.mjs writes. With --roundtrip,
// checks decode(encode(doc)) == doc for every (replaced, so valid) document; exit 3 if not.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

using dsk::tokenizer::Tokenizer;
using dsk::tokenizer::TokenId;

std::vector<std::string> read_documents(const std::string& path, size_t& total_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw dsk::DataError(dsk::str(path, ": cannot open"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string corpus = buffer.str();
  total_bytes = corpus.size();
  std::vector<std::string> documents;
  for (size_t start = 0; start < corpus.size();) {
    size_t end = corpus.find("\x1e\n", start);
    if (end == std::string::npos) end = corpus.size();
    documents.push_back(dsk::tokenizer::replace_invalid_utf8(std::string_view(corpus).substr(start, end - start)));
    start = end + 2;
  }
  return documents;
}

// Encodes documents [i for i % threads == t] on each thread t, `repeat` times; returns seconds.
double encode_all(const Tokenizer& tokenizer, const std::vector<std::string>& documents, size_t threads,
                  size_t repeat, size_t& tokens) {
  std::vector<size_t> counts(threads, 0);
  auto begin = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (size_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::vector<TokenId> ids;
      for (size_t r = 0; r < repeat; ++r)
        for (size_t i = t; i < documents.size(); i += threads) {
          ids.clear();
          tokenizer.encode_into(documents[i], ids);
          counts[t] += ids.size();
        }
    });
  }
  for (auto& worker : workers) worker.join();
  tokens = 0;
  for (size_t count : counts) tokens += count;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
}

int run(int argc, char** argv) {
  std::vector<std::string> positional;
  size_t threads = 1, repeat = 1;
  std::string ids_path;
  bool roundtrip = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw dsk::UsageError(dsk::str(arg, " needs a value"));
      return argv[++i];
    };
    if (arg == "--threads") threads = std::stoul(value());
    else if (arg == "--repeat") repeat = std::stoul(value());
    else if (arg == "--ids") ids_path = value();
    else if (arg == "--roundtrip") roundtrip = true;
    else if (!arg.empty() && arg[0] == '-') throw dsk::UsageError(dsk::str("unknown option ", arg));
    else positional.push_back(arg);
  }
  if (positional.size() != 2 || threads == 0 || repeat == 0)
    throw dsk::UsageError("usage: dsk-bench-tokenizer TOKENIZER_JSON CORPUS [--threads N] [--repeat R] [--ids OUT] [--roundtrip]");

  Tokenizer tokenizer = Tokenizer::load(positional[0]);
  size_t bytes = 0;
  auto documents = read_documents(positional[1], bytes);

  if (!ids_path.empty()) {
    std::ofstream out(ids_path, std::ios::binary);
    std::vector<TokenId> ids;
    for (const auto& document : documents) {
      ids.clear();
      tokenizer.encode_into(document, ids);
      for (size_t k = 0; k < ids.size(); ++k) out << (k ? " " : "") << ids[k];
      out << '\n';
    }
    if (!out) throw dsk::ResourceError(dsk::str(ids_path, ": write failed"));
  }

  if (roundtrip)
    for (size_t i = 0; i < documents.size(); ++i)
      if (tokenizer.decode(tokenizer.encode(documents[i])) != documents[i])
        throw dsk::DataError(dsk::str("document ", i + 1, ": decode(encode(text)) differs from the text"));

  size_t tokens = 0;
  encode_all(tokenizer, documents, threads, 1, tokens);  // page in the corpus and the tables (the piece caches are per thread, so they start cold again below)
  double seconds = encode_all(tokenizer, documents, threads, repeat, tokens);
  double mb_per_s = double(bytes) * double(repeat) / 1e6 / seconds;
  std::printf("threads %zu mb_per_s %.3f tokens %zu\n", threads, mb_per_s, tokens / repeat);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const dsk::Error& e) {
    std::fprintf(stderr, "dsk-bench-tokenizer: error: %s\n", e.what());
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsk-bench-tokenizer: error: %s\n", e.what());
    return 1;
  }
}
