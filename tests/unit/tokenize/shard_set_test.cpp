// Splits written as shards of whole documents, and the statistics read back from them.
#include <doctest/doctest.h>


#include <cmath>
#include <filesystem>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/sha256.hpp"
#include "io/token_shard.hpp"
#include "tokenize/shard_set_writer.hpp"
#include "tokenize/shard_stats.hpp"
#include "../io/scratch_dir.hpp"

namespace fs = std::filesystem;
using namespace dsk;
using namespace dsk::tokenize;

TEST_CASE("shards close before a document would overflow them; long documents get their own") {
  fs::path dir = scratch_dir("sizes");
  ShardSetWriter writer(dir, "train", 8, 100, 1, io::kNoBos);
  writer.add_document(std::vector<uint32_t>{5, 6, 7}, 10);           // 4 tokens
  writer.add_document(std::vector<uint32_t>{8, 9}, 6);               // 3: 7 in shard 0
  writer.add_document(std::vector<uint32_t>{10, 11}, 6);             // 3: would be 10 -> shard 1
  writer.add_document(std::vector<uint32_t>(20, 12), 40);            // 21: shard 2 alone
  writer.add_document(std::vector<uint32_t>{13}, 2);                 // 2: shard 3
  io::ShardSplit split = writer.finish();
  REQUIRE(split.shards.size() == 4);
  CHECK(split.shards[0].file == "train-00000.tok");
  CHECK(split.shards[0].tokens == 7);
  CHECK(split.shards[0].documents == 2);
  CHECK(split.shards[2].tokens == 21);
  CHECK(split.documents == 5);
  CHECK(split.tokens == 33);
  CHECK(split.text_bytes == 64);
  CHECK(split.shards[1].sha256 == sha256_file(dir / "train-00001.tok"));
  io::ShardReader first(dir / "train-00000.tok");
  std::vector<uint32_t> tokens;
  first.read(0, first.size(), tokens);
  CHECK(tokens == std::vector<uint32_t>{5, 6, 7, 1, 8, 9, 1});
}

TEST_CASE("statistics: counts from the shards, unigram entropy in bits and nats") {
  fs::path dir = scratch_dir("stats");
  ShardSetWriter train(dir, "train", 100, 16, 1, 0);
  train.add_document(std::vector<uint32_t>{0, 2}, 8);  // tokens 0 2 1
  train.add_document(std::vector<uint32_t>{0, 3}, 8);  // tokens 0 3 1
  ShardSetWriter val(dir, "val", 100, 16, 1, 0);
  val.add_document(std::vector<uint32_t>{0, 2}, 4);
  io::ShardIndex index;
  index.tokenizer = "t.json";
  index.vocab_size = 16;
  index.token_bytes = 2;
  index.eos_id = 1;
  index.bos_id = 0;
  index.train = train.finish();
  index.val = val.finish();
  write_file_atomic(dir / io::kShardIndexName, io::shard_index_to_yaml(index));

  ShardStats stats = compute_shard_stats(dir);
  CHECK(stats.train.documents == 2);
  CHECK(stats.train.tokens == 6);
  CHECK(stats.train.bytes_per_token() == doctest::Approx(16.0 / 6));
  // train: p(0) = p(1) = 1/3, p(2) = p(3) = 1/6.
  double expected = -(2 * (1.0 / 3) * std::log2(1.0 / 3) + 2 * (1.0 / 6) * std::log2(1.0 / 6));
  CHECK(stats.train.entropy_bits == doctest::Approx(expected));
  CHECK(stats.train.entropy_nats() == doctest::Approx(expected * std::log(2.0)));
  CHECK(stats.train.distinct_tokens == 4);
  CHECK(stats.val.entropy_bits == doctest::Approx(std::log2(3.0)));
  CHECK(stats.all.tokens == 9);
  CHECK(stats.all.distinct_tokens == 4);

  // The shards must agree with the index: counts, the header's ids, and the bytes' sha256.
  io::ShardIndex changed = index;
  changed.train.shards[0].tokens = 7;
  changed.train.tokens = 7;
  write_file_atomic(dir / io::kShardIndexName, io::shard_index_to_yaml(changed));
  CHECK_THROWS_WITH_AS(compute_shard_stats(dir), doctest::Contains("header says tokens 6 but index.yaml says 7"), DataError);
  changed = index;
  changed.bos_id = 3;
  write_file_atomic(dir / io::kShardIndexName, io::shard_index_to_yaml(changed));
  CHECK_THROWS_WITH_AS(compute_shard_stats(dir), doctest::Contains("header says bos_id 0 but index.yaml says 3"), DataError);
  changed = index;
  changed.train.shards[0].sha256[0] = changed.train.shards[0].sha256[0] == '0' ? '1' : '0';
  write_file_atomic(dir / io::kShardIndexName, io::shard_index_to_yaml(changed));
  CHECK_THROWS_WITH_AS(compute_shard_stats(dir), doctest::Contains("sha256 differs"), DataError);
}
