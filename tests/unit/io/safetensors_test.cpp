// safetensors reader: byte-exact files assembled here per the spec (u64 LE header length, JSON,
// data), read back through mmap; and every malformed header rejected with a DataError that
// names the file and the tensor.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "io/safetensors.hpp"
#include "scratch_dir.hpp"

namespace fs = std::filesystem;
using namespace dsk;
using namespace dsk::io;

namespace {

// 8-byte little-endian length, the header, then the data section.
std::string assemble(const std::string& header, const std::string& data) {
  std::string bytes;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  return bytes + header + data;
}

fs::path write(const std::string& name, const std::string& bytes) {
  static fs::path dir = scratch_dir("safetensors");
  auto path = dir / name;
  write_file_atomic(path, bytes);
  return path;
}

// The error message for opening a file with this header over `data_bytes` zero bytes.
std::string error_for(const std::string& header, size_t data_bytes = 16) {
  auto path = write("bad.safetensors", assemble(header, std::string(data_bytes, '\0')));
  try {
    SafetensorsFile file(path);
  } catch (const DataError& e) {
    std::string message = e.what();
    CHECK(message.find("bad.safetensors") != std::string::npos);
    return message;
  }
  FAIL("no DataError for " << header);
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("reads a hand-assembled file: views, dtypes, shapes, metadata") {
  // weight: F32 [2,2] = 1,2,3,4 ; bias: BF16 [2] = 1.0, -2.0 ; mask: BOOL [3]; empty: I64 [0,5]
  std::string data(16 + 4 + 3, '\0');
  const float weights[] = {1, 2, 3, 4};
  std::memcpy(data.data(), weights, 16);
  const unsigned char bias[] = {0x80, 0x3F, 0x00, 0xC0};
  std::memcpy(data.data() + 16, bias, 4);
  data[20] = 1, data[21] = 0, data[22] = 1;
  std::string header =
      R"({"__metadata__":{"format":"pt"},"bias":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]},)"
      R"("weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("mask":{"dtype":"BOOL","shape":[3],"data_offsets":[20,23]},)"
      R"("empty":{"dtype":"I64","shape":[0,5],"data_offsets":[23,23]}})";
  SafetensorsFile file(write("good.safetensors", assemble(header, data)));

  REQUIRE(file.tensors().size() == 4);
  CHECK(file.tensors()[0].name == "weight");  // data order
  CHECK(file.metadata().at("format") == "pt");
  auto weight = file.at("weight");
  CHECK(weight.dtype() == DType::F32);
  CHECK(weight.shape() == std::vector<int64_t>{2, 2});
  CHECK(weight.byte_size() == 16);
  CHECK(weight.info->element_count() == 4);
  CHECK(element_to_float(weight.data, DType::F32, 3) == 4.0f);
  auto b = file.at("bias");
  CHECK(element_to_float(b.data, DType::BF16, 0) == 1.0f);
  CHECK(element_to_float(b.data, DType::BF16, 1) == -2.0f);
  CHECK(element_to_float(file.at("mask").data, DType::BOOL, 1) == 0.0f);
  CHECK(file.at("empty").byte_size() == 0);
  CHECK(file.contains("mask"));
  CHECK(!file.contains("nope"));
  CHECK_THROWS_WITH_AS(file.at("nope"), doctest::Contains("no tensor 'nope'"), DataError);

  SafetensorsFile moved(std::move(file));
  CHECK(element_to_float(moved.at("weight").data, DType::F32, 0) == 1.0f);
}

TEST_CASE("an empty header and an empty file") {
  SafetensorsFile file(write("empty.safetensors", assemble("{}", "")));
  CHECK(file.tensors().empty());
  CHECK_THROWS_WITH_AS(SafetensorsFile(write("zero.safetensors", "")), doctest::Contains("shorter than"), DataError);
  CHECK_THROWS_AS(SafetensorsFile(write("seven.safetensors", "1234567")), DataError);
  CHECK_THROWS_WITH_AS(SafetensorsFile(scratch_dir("st-missing") / "absent.safetensors"),
                       doctest::Contains("cannot open"), DataError);
}

TEST_CASE("header length beyond the file or the cap") {
  std::string bytes = assemble("{}", "");
  bytes[0] = 100;  // claims 100 header bytes, has 2
  CHECK_THROWS_WITH_AS(SafetensorsFile(write("long.safetensors", bytes)), doctest::Contains("past the end"), DataError);
  bytes[0] = 0, bytes[7] = 0x7F;  // about 2^62 bytes
  CHECK_THROWS_WITH_AS(SafetensorsFile(write("huge.safetensors", bytes)), doctest::Contains("exceeds the limit"),
                       DataError);
}

TEST_CASE("malformed headers are DataErrors naming the file and tensor") {
  const std::string f32 = R"("dtype":"F32")";
  CHECK(contains(error_for("{not json"), "not valid JSON"));
  CHECK(contains(error_for("[1,2]"), "not a JSON object"));
  CHECK(contains(error_for(R"({"t":5})"), "tensor 't': entry is not a JSON object"));
  CHECK(contains(error_for(R"({"t":{"shape":[1],"data_offsets":[0,4]}})"), "tensor 't': missing \"dtype\""));
  CHECK(contains(error_for(R"({"t":{"dtype":"F4","shape":[1],"data_offsets":[0,4]}})"), "unknown dtype 'F4'"));
  CHECK(contains(error_for(R"({"t":{)" + f32 + R"(,"shape":[-1],"data_offsets":[0,4]}})"), "tensor 't': \"shape\""));
  CHECK(contains(error_for(R"({"t":{)" + f32 + R"(,"shape":[1.5],"data_offsets":[0,4]}})"), "\"shape\""));
  CHECK(contains(error_for(R"({"t":{)" + f32 + R"(,"shape":"1","data_offsets":[0,4]}})"), "\"shape\""));
  CHECK(contains(error_for(R"({"t":{)" + f32 + R"(,"shape":[1],"data_offsets":[0]}})"), "\"data_offsets\""));
  CHECK(contains(error_for(R"({"t":{)" + f32 + R"(,"shape":[1]}})"), "\"data_offsets\""));
  CHECK(contains(error_for(R"({"t":{)" + f32 + R"(,"shape":[1],"data_offsets":[0,4,4]}})"), "\"data_offsets\""));
  CHECK(contains(error_for(R"({"t":{)" + f32 + R"(,"shape":[1],"data_offsets":[0,1e309]}})"), "not valid JSON"));
  CHECK(contains(error_for(R"({"t":{)" + f32 + R"(,"shape":[1],"data_offsets":[4,0]}})"), "outside the data section"));
  CHECK(contains(error_for(R"({"t":{)" + f32 + R"(,"shape":[8],"data_offsets":[0,32]}})"), "outside the data section"));
  CHECK(contains(error_for(R"({"t":{)" + f32 + R"(,"shape":[2],"data_offsets":[0,4]}})"), "tensor 't': holds 4 bytes"));
  CHECK(contains(error_for(R"({"t":{)" + f32 + R"(,"shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})"),
                 "overflows"));
  CHECK(contains(error_for(R"({"a":{)" + f32 + R"(,"shape":[2],"data_offsets":[0,8]},"b":{)" + f32 +
                           R"(,"shape":[2],"data_offsets":[4,12]}})"),
                 "'a' and 'b' overlap"));
  CHECK(contains(error_for(R"({"t":{)" + f32 + R"(,"shape":[1],"data_offsets":[0,4]},"t":{)" + f32 +
                           R"(,"shape":[1],"data_offsets":[4,8]}})"),
                 "tensor 't' appears twice"));
  CHECK(contains(error_for(R"({"__metadata__":{"k":1}})"), "__metadata__"));
  CHECK(contains(error_for(R"({"__metadata__":[]})"), "__metadata__"));
}

TEST_CASE("a nested key with a repeated name is not a duplicate tensor") {
  std::string header = R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"__metadata__":{"t":"x"}})";
  SafetensorsFile file(write("nested.safetensors", assemble(header, "A")));
  CHECK(file.tensors().size() == 1);
  CHECK(file.metadata().at("t") == "x");
}

TEST_CASE("writer -> reader round trip, 8-aligned data, temp file renamed") {
  const float a[] = {1.5f, -2.0f, 3.25f};
  const uint16_t b[] = {float_to_bf16(0.5f), float_to_bf16(-4.0f)};
  const int64_t c[] = {7};
  auto dir = scratch_dir("st-write");
  auto path = dir / "out.safetensors";
  write_safetensors(path,
                    {{"a", DType::F32, {3}, a}, {"b.weight", DType::BF16, {1, 2}, b}, {"c", DType::I64, {}, c}},
                    {{"format", "pt"}});
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  std::string bytes = read_file(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  CHECK(header_len % 8 == 0);
  SafetensorsFile file(path);
  CHECK(file.metadata().at("format") == "pt");
  CHECK(element_to_float(file.at("a").data, DType::F32, 2) == 3.25f);
  CHECK(file.at("b.weight").shape() == std::vector<int64_t>{1, 2});
  CHECK(element_to_float(file.at("b.weight").data, DType::BF16, 1) == -4.0f);
  CHECK(file.at("c").shape().empty());
  CHECK(element_to_float(file.at("c").data, DType::I64, 0) == 7.0f);
  CHECK_THROWS_AS(write_safetensors(dir / "dup.safetensors", {{"a", DType::F32, {1}, a}, {"a", DType::F32, {1}, a}}),
                  UsageError);
  CHECK(!fs::exists(dir / "dup.safetensors"));
}
