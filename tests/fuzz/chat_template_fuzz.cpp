// libFuzzer target: a chat template (the chat_template of a tokenizer_config.json, which dsk-serve
// and dsk-finetune render for every request and example), then after a NUL byte optionally the
// messages as JSON. Parsing and rendering must succeed or throw DataError (a syntax error, an
// undefined value used, raise_exception, a bound reached); a crash, a hang or any other exception
// is a bug. A rendering is also split for the loss mask, whose pieces must add up to it.
#include <cstdlib>
#include <string>

#include "chat/chat_template.hpp"
#include "core/error.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string_view> parts = dsk::fuzz::split_input(data, size, 2);
  using dsk::chat::Value;
  try {
    dsk::chat::Dict tokens;
    tokens.set("bos_token", Value("<s>"));
    tokens.set("eos_token", Value("</s>"));
    auto chat = dsk::chat::ChatTemplate::from_string(parts[0], "fuzz", tokens);
    Value messages = Value::from_json(nlohmann::ordered_json::parse(
        R"([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])"));
    if (parts.size() > 1) {
      auto json = nlohmann::ordered_json::parse(parts[1], nullptr, false);
      if (json.is_discarded()) return 0;
      messages = dsk::chat::messages_from_json(json, "messages");
    }
    std::string whole = chat.render(messages);
    std::string pieces;
    for (const auto& segment : chat.split_for_loss(messages)) pieces += segment.text;
    if (pieces != whole) std::abort();
  } catch (const dsk::DataError&) {
  }
  return 0;
}
