// Token shards: the byte layout of io/token_shard.hpp, and every way a shard can be wrong.
#include <doctest/doctest.h>


#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "io/token_shard.hpp"
#include "scratch_dir.hpp"

namespace fs = std::filesystem;
using namespace dsk;
using namespace dsk::io;

namespace {

// Two documents: [5, 6] and [7]; EOS is 1, BOS 0.
fs::path write_small_shard(const fs::path& path, uint64_t vocab_size) {
  ShardWriter writer(path, vocab_size, 1, 0);
  std::vector<uint32_t> first{0, 5, 6}, second{0, 7};
  writer.append(first);
  writer.end_document();
  writer.append(second);
  writer.end_document();
  writer.commit();
  return path;
}

void patch_bytes(const fs::path& path, size_t offset, const std::string& bytes) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string error_of(const fs::path& path) {
  try {
    ShardReader reader(path);
    reader.check_token_ids();
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("a u16 shard has the documented bytes") {
  fs::path path = write_small_shard(scratch_dir("layout") / "a.tok", 1000);
  std::string bytes = read_file(path);
  REQUIRE(bytes.size() == 64 + 7 * 2);
  CHECK(bytes.substr(0, 8) == "DSKTOKS1");
  CHECK(bytes[8] == 1);            // version
  CHECK(bytes[12] == 2);           // token_bytes
  CHECK((unsigned char)bytes[16] == (1000 & 0xFF));
  CHECK((unsigned char)bytes[17] == (1000 >> 8));
  CHECK(bytes[24] == 7);           // token_count
  CHECK(bytes[32] == 2);           // document_count
  CHECK(bytes[40] == 1);           // eos_id
  CHECK(bytes[44] == 0);           // bos_id
  CHECK(bytes.substr(48, 16) == std::string(16, '\0'));
  CHECK(bytes.substr(64, 4) == std::string("\0\0\5\0", 4));  // BOS then 5, little-endian u16
  CHECK(std::distance(fs::directory_iterator(path.parent_path()), fs::directory_iterator()) == 1);
}

TEST_CASE("the reader gives tokens by index and by span, for u16 and u32") {
  for (uint64_t vocab : {uint64_t{1000}, uint64_t{129280}}) {
    fs::path path = write_small_shard(scratch_dir("read") / "a.tok", vocab);
    ShardReader reader(path);
    CHECK(reader.header().token_bytes == token_bytes_for_vocab(vocab));
    CHECK(reader.size() == 7);
    CHECK(reader.header().document_count == 2);
    CHECK(reader.token(2) == 6);
    CHECK(reader.token(6) == 1);
    CHECK_THROWS_AS(reader.token(7), std::out_of_range);
    std::vector<uint32_t> out;
    reader.read(1, 3, out);
    CHECK(out == std::vector<uint32_t>{5, 6, 1});
    CHECK_THROWS_AS(reader.read(5, 3, out), std::out_of_range);
    if (vocab <= 65536) {
      CHECK(reader.u16_tokens().size() == 7);
      CHECK(reader.u32_tokens().empty());
      CHECK(reader.u16_tokens()[4] == 0);
    } else {
      CHECK(reader.u32_tokens().size() == 7);
      CHECK(reader.u32_tokens()[5] == 7);
    }
    reader.check_token_ids();
  }
}

TEST_CASE("token width follows the vocabulary") {
  CHECK(token_bytes_for_vocab(65536) == 2);
  CHECK(token_bytes_for_vocab(65537) == 4);
  CHECK(dtype_name(2) == "u16");
}

TEST_CASE("bad shards are DataErrors that name the file and the problem") {
  fs::path dir = scratch_dir("bad");
  fs::path path = dir / "s.tok";

  write_small_shard(path, 1000);
  patch_bytes(path, 0, "XXXX");
  CHECK(error_of(path).find("bad magic") != std::string::npos);
  CHECK(error_of(path).find(path.string()) != std::string::npos);

  write_small_shard(path, 1000);
  patch_bytes(path, 8, std::string("\7", 1));
  CHECK(error_of(path).find("version 7") != std::string::npos);

  write_small_shard(path, 1000);
  fs::resize_file(path, 64 + 5 * 2);
  CHECK(error_of(path).find("truncated") != std::string::npos);

  write_small_shard(path, 1000);
  fs::resize_file(path, 30);
  CHECK(error_of(path).find("truncated") != std::string::npos);

  write_small_shard(path, 1000);
  patch_bytes(path, 24, std::string("\5", 1));  // token_count 5, file holds 7
  CHECK(error_of(path).find("file has") != std::string::npos);

  write_small_shard(path, 1000);
  patch_bytes(path, 64 + 2 * 2, std::string("\xff\xff", 2));  // id 65535 >= 1000
  CHECK(error_of(path).find("token 2 has id 65535") != std::string::npos);

  write_small_shard(path, 1000);
  patch_bytes(path, 64 + 6 * 2, std::string("\5\0", 2));  // last EOS replaced
  CHECK(error_of(path).find("last token") != std::string::npos);

  CHECK_THROWS_AS(ShardReader(dir / "missing.tok"), DataError);
}

TEST_CASE("an uncommitted writer leaves nothing behind; ids past the vocabulary are refused") {
  fs::path dir = scratch_dir("abandon");
  {
    ShardWriter writer(dir / "a.tok", 100, 1);
    std::vector<uint32_t> bad{100};
    CHECK_THROWS_AS(writer.append(bad), InternalError);
  }
  CHECK(fs::is_empty(dir));
}

TEST_CASE("index.yaml round-trips, keeping the producer's extra fields") {
  fs::path dir = scratch_dir("index");
  ShardIndex index;
  index.tokenizer = "tok/tokenizer.json";
  index.vocab_size = 129280;
  index.token_bytes = 4;
  index.eos_id = 1;
  index.bos_id = kNoBos;
  index.train = {3, 30, 120, {{"train-00000.tok", 3, 30, std::string(64, 'a')}}};
  index.val = {1, 5, 20, {{"val-00000.tok", 1, 5, std::string(64, 'c')}}};
  index.extra = {{"errors", "{policy: skip, invalid_utf8: 2}"}};
  write_file_atomic(dir / kShardIndexName, shard_index_to_yaml(index));
  ShardIndex loaded = load_shard_index(dir);
  CHECK(loaded.documents() == 4);
  CHECK(loaded.tokens() == 35);
  CHECK(loaded.text_bytes() == 140);
  CHECK(loaded.bos_id == kNoBos);
  CHECK(loaded.val.shards.at(0).file == "val-00000.tok");
  CHECK(loaded.train.shards.at(0).sha256 == std::string(64, 'a'));
  REQUIRE(loaded.extra.size() == 1);
  CHECK(loaded.extra[0].first == "errors");
  CHECK(shard_index_to_yaml(loaded) == shard_index_to_yaml(index));

  write_file_atomic(dir / kShardIndexName, "format: dsk-token-shards\nversion: 1\ntokenizer: x\n");
  CHECK_THROWS_WITH_AS(load_shard_index(dir), doctest::Contains("missing key 'vocab_size'"), DataError);
}

TEST_CASE("index.yaml names its tokenizer relative to the shard directory, symlinks kept by name") {
  const fs::path dir = fs::absolute(scratch_dir("index-tokenizer"));
  fs::create_directories(dir / "blobs");
  fs::create_directories(dir / "snapshot");
  fs::create_directories(dir / "out" / "shards");
  std::ofstream(dir / "blobs" / "abc123") << "{}";
  // Hugging Face's cache: snapshot/tokenizer.json is a link to a blob named by its hash.
  fs::create_symlink("../blobs/abc123", dir / "snapshot" / "tokenizer.json");
  const fs::path working = fs::current_path();
  fs::current_path(dir);
  CHECK(index_tokenizer_reference("snapshot/tokenizer.json", "out/shards") == "../../snapshot/tokenizer.json");
  CHECK(index_tokenizer_reference("snapshot/tokenizer.json", "out/shards/") == "../../snapshot/tokenizer.json");
  CHECK(index_tokenizer_reference("/abs/tok.json", "out") == "/abs/tok.json");

  ShardIndex index;
  index.tokenizer = "../../snapshot/tokenizer.json";
  fs::current_path("/");  // found from anywhere
  CHECK(find_index_tokenizer(index, dir / "out" / "shards") == dir / "snapshot" / "tokenizer.json");
  index.tokenizer = "snapshot/tokenizer.json";  // an older index: relative to where it was made
  CHECK_FALSE(find_index_tokenizer(index, dir / "out" / "shards").has_value());
  fs::current_path(dir);
  CHECK(find_index_tokenizer(index, "out/shards") == fs::path("snapshot/tokenizer.json"));
  fs::current_path(working);
}

TEST_CASE("index.yaml: totals that are not whole numbers or differ from their parts are refused") {
  ShardIndex index;
  index.tokenizer = "t.json";
  index.vocab_size = 100;
  index.token_bytes = 2;
  index.eos_id = 1;
  index.train = {3, 30, 120, {{"train-00000.tok", 3, 30, std::string(64, 'a')}}};
  const std::string good = shard_index_to_yaml(index);
  CHECK(parse_shard_index(good, "index.yaml").tokens() == 30);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
  };
  auto error = [](const std::string& text) {
    try {
      parse_shard_index(text, "index.yaml");
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  // Once exit 0: the top-level totals were never read.
  CHECK(error(with("documents: 3\ntokens: 30", "documents: 0.5\ntokens: 30")).find("key 'documents' has a malformed value") !=
        std::string::npos);
  CHECK(error(with("documents: 3\ntokens: 30", "documents: 3\ntokens: -.inf")).find("key 'tokens' has a malformed value") !=
        std::string::npos);
  CHECK(error(with("documents: 3\ntokens: 30", "documents: 4\ntokens: 30")).find("documents is 4 but its parts add up to 3") !=
        std::string::npos);
  CHECK(error(with("bos_id: -1", "bos_id: 4294967296")).find("bos_id 4294967296 is neither") != std::string::npos);
  CHECK(error(with("eos_id: 1", "eos_id: 100")).find("eos_id 100 is not below") != std::string::npos);
  CHECK(error(with("file: train-00000.tok", "file: ../x.tok")).find("must be a file name") != std::string::npos);
}

TEST_CASE("a shard's header must agree with index.yaml; reserved header bytes must be zero") {
  fs::path dir = scratch_dir("against-index");
  fs::path path = write_small_shard(dir / "s.tok", 1000);
  ShardIndex index;
  index.vocab_size = 1000;
  index.token_bytes = 2;
  index.eos_id = 1;
  index.bos_id = 0;
  ShardFileEntry entry{"s.tok", 2, 7, ""};
  ShardReader reader(path);
  CHECK_NOTHROW(check_shard_against_index(reader.header(), index, entry, "s.tok"));
  index.vocab_size = 1001;
  CHECK_THROWS_WITH_AS(check_shard_against_index(reader.header(), index, entry, "s.tok"),
                       doctest::Contains("header says vocab_size 1000 but index.yaml says 1001"), DataError);
  index.vocab_size = 1000;
  index.bos_id = kNoBos;
  CHECK_THROWS_WITH_AS(check_shard_against_index(reader.header(), index, entry, "s.tok"),
                       doctest::Contains("bos_id"), DataError);

  patch_bytes(path, 50, std::string("\1", 1));
  CHECK(error_of(path).find("reserved header byte 50 is 1") != std::string::npos);
}
