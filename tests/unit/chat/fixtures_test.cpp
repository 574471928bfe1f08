// Renderings compared byte for byte with Jinja2 / transformers (tests/fixtures/chat/expected.json,
// written by tests/fixtures/chat/render_fixtures.py): real chat templates of DeepSeek-V3, Llama 3,
// Llama 3.1, Qwen2 and Qwen2.5 on a set of conversations, and one small template per Jinja feature.
#include <doctest/doctest.h>

#include <filesystem>

#include "chat/chat_template.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"

using namespace dsk::chat;
using nlohmann::ordered_json;

namespace {

const std::filesystem::path kFixtures = std::filesystem::path(DSK_SOURCE_DIR) / "tests/fixtures/chat";

ordered_json load(const char* name) { return ordered_json::parse(dsk::read_file(kFixtures / name)); }

ordered_json find_by_name(const ordered_json& list, const std::string& name) {
  for (const auto& item : list)
    if (item["name"] == name) return item;
  FAIL("no fixture named " << name);
  return {};
}

}  // namespace

TEST_CASE("real chat templates render as transformers renders them") {
  ordered_json expected = load("expected.json");
  ordered_json conversations = load("conversations.json");
  REQUIRE(expected["cases"].size() >= 50);
  for (const auto& c : expected["cases"]) {
    std::string label = c["template"].get<std::string>() + " / " + c["conversation"].get<std::string>();
    CAPTURE(label);
    ChatTemplate chat = ChatTemplate::load(kFixtures / c["template"].get<std::string>());
    ordered_json conversation = find_by_name(conversations, c["conversation"]);
    Value messages = messages_from_json(conversation["messages"], label);
    RenderOptions options;
    if (conversation.contains("tools")) options.tools = Value::from_json(conversation["tools"]);
    CHECK(chat.render(messages, options) == c["without_generation_prompt"].get<std::string>());
    options.add_generation_prompt = true;
    CHECK(chat.render(messages, options) == c["with_generation_prompt"].get<std::string>());
    options.add_generation_prompt = false;
    if (c["segments"].is_null()) {
      CHECK_THROWS_AS(chat.split_for_loss(messages, options), dsk::DataError);
      continue;
    }
    std::vector<Segment> segments = chat.split_for_loss(messages, options);
    REQUIRE(segments.size() == c["segments"].size());
    for (size_t i = 0; i < segments.size(); ++i) {
      CHECK(segments[i].text == c["segments"][i][0].get<std::string>());
      CHECK(segments[i].trained == c["segments"][i][1].get<bool>());
    }
  }
}

TEST_CASE("each Jinja feature renders as Jinja2 renders it, and fails where it fails") {
  ordered_json expected = load("expected.json");
  ordered_json snippets = load("snippets.json");
  REQUIRE(expected["snippets"].size() == snippets.size());
  for (const auto& result : expected["snippets"]) {
    std::string name = result["name"];
    CAPTURE(name);
    ordered_json snippet = find_by_name(snippets, name);
    Value variables = Value::from_json(snippet["variables"]);
    if (result.contains("expected")) {
      Template t = Template::parse(snippet["template"].get<std::string>(), name);
      CHECK(t.render(variables.as_dict()).text == result["expected"].get<std::string>());
    } else {
      CHECK_THROWS_AS(Template::parse(snippet["template"].get<std::string>(), name).render(variables.as_dict()), dsk::DataError);
    }
  }
}
