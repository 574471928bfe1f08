// config.json -> Architecture: the values a mutation run got through (exit 0, an internal error,
// or a model build without end) are DataErrors naming the file and field.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <limits>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "model/hf_config.hpp"

using namespace dsk;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kDeepSeek = fs::path(DSK_SOURCE_DIR) / "tests/fixtures/models/deepseek_v3/checkpoint/config.json";

std::string error_with(const json& fields) {
  json config = json::parse(read_file(kDeepSeek));
  config.update(fields);
  try {
    model::architecture_from_hf_config(config, "config.json");
  } catch (const DataError& e) {
    return e.what();
  }
  return "accepted";
}

}  // namespace

TEST_CASE("sizes out of bounds, negative or not finite are refused before a model is built") {
  CHECK(error_with({{"n_routed_experts", 323948858}}).find("\"n_routed_experts\" must be an integer from 0 to 4096") !=
        std::string::npos);
  CHECK(error_with({{"vocab_size", (int64_t(1) << 40) + 16}}).find("\"vocab_size\" must be an integer from 0 to") !=
        std::string::npos);  // once cut to 16 by a cast
  CHECK(error_with({{"num_hidden_layers", 1000}, {"n_routed_experts", 4096}}).find("must be at most 65536") !=
        std::string::npos);
  CHECK(error_with({{"rms_norm_eps", -1}}).find("\"rms_norm_eps\" must be a positive number") != std::string::npos);
  CHECK(error_with({{"rms_norm_eps", std::numeric_limits<double>::infinity()}}).find("\"rms_norm_eps\" must be a positive") !=
        std::string::npos);  // .inf in an inline YAML model.config
  CHECK(error_with({{"max_position_embeddings", -7}}).find("\"max_position_embeddings\" must be an integer from 0") !=
        std::string::npos);
  CHECK(error_with({{"hidden_size", 64.5}}).find("\"hidden_size\" must be an integer") != std::string::npos);
  CHECK(error_with({{"hidden_size", 64.0}}) == "accepted");  // a whole float is an integer, as in Python
  // A YAML model.config can hold bytes that are not UTF-8; the message once threw on them (exit 1).
  CHECK(error_with({{"hidden_size", "\xfe\xff"}}).find("\"hidden_size\" must be an integer from 0 to 1048576, got \"\xef\xbf\xbd") !=
        std::string::npos);
}

TEST_CASE("a number beyond a double in config.json is a DataError naming the file, not an internal error") {
  fs::path dir = fs::temp_directory_path() / ("dsk-hf-config-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string text = read_file(kDeepSeek);
  text.insert(text.find('{') + 1, "\"rope_theta\": 1e309, ");
  write_file_atomic(dir / "config.json", text);
  CHECK_THROWS_WITH_AS(model::read_hf_config(dir / "config.json"), doctest::Contains("config.json: not valid JSON"),
                       DataError);
  fs::remove_all(dir);
}
