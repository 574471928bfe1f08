// libFuzzer target: tokenizer.json NUL tokenizer_config.json NUL text (the last two optional).
// Loading must succeed or throw DataError; a loaded tokenizer must encode the text (made valid
// UTF-8) into ids below its vocab_size, BOS and EOS among them, and decode those ids.
#include <cstdlib>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "fuzz_input.hpp"
#include "tokenizer/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsk::tokenizer;
  auto parts = dsk::fuzz::split_input(data, size, 3);
  std::optional<std::string> config;
  if (parts.size() > 1) config = std::string(parts[1]);
  std::string text = parts.size() > 2 ? replace_invalid_utf8(parts[2]) : "Hello world<|endoftext|> 123";
  try {
    Tokenizer tokenizer = Tokenizer::from_json(parts[0], "tokenizer.json", config, "tokenizer_config.json");
    for (auto id : {tokenizer.bos_id(), tokenizer.eos_id()})
      if (id && *id >= tokenizer.vocab_size()) std::abort();
    EncodeOptions options;
    options.add_special_tokens = true;
    auto ids = tokenizer.encode(text, options);
    for (TokenId id : ids)
      if (id >= tokenizer.vocab_size()) std::abort();
    tokenizer.decode(ids);
    tokenizer.decode(ids, /*skip_special_tokens=*/true);
  } catch (const dsk::DataError&) {
  }
  return 0;
}
