// What the fixtures cannot show: error messages with the template's name and position, bounds
// on nesting, {% generation %} spans, named templates, special tokens as AddedToken objects, and
// the loss split refusing templates that rewrite earlier turns.
#include <doctest/doctest.h>

#include <string>

#include "chat/chat_template.hpp"
#include "core/error.hpp"

using namespace dsk::chat;

namespace {

std::string render(const std::string& source, const Dict& variables = {}) {
  return Template::parse(source, "t.jinja").render(variables).text;
}

std::string error_of(const std::string& source, const Dict& variables = {}) {
  try {
    render(source, variables);
  } catch (const dsk::DataError& e) {
    return e.what();
  }
  return "(no error)";
}

Value conversation(std::initializer_list<std::pair<const char*, const char*>> turns) {
  List messages;
  for (auto [role, content] : turns) {
    Dict m;
    m.set("role", Value(role));
    m.set("content", Value(content));
    messages.push_back(Value(std::move(m)));
  }
  return Value(std::move(messages));
}

}  // namespace

TEST_CASE("errors name the template, the line and the column") {
  CHECK(error_of("line one\n{{ 'a' + 1 }}") == "t.jinja:2:8: unsupported operand type(s) for +: 'str' and 'int'");
  CHECK(error_of("{% if x %}never closed") == "t.jinja:1:23: unexpected end of template, expected '{% elif %}'");
  CHECK(error_of("{{ missing.attr }}") == "t.jinja:1:11: 'missing' is undefined");
  CHECK(error_of("{% for %}") .find("t.jinja:1:8: expected a name") == 0);
  CHECK(error_of("{% include 'x' %}") == "t.jinja:1:4: unknown or unsupported tag 'include'");
  CHECK(error_of("{{ 'unterminated }}").find("unterminated string literal") != std::string::npos);
  CHECK(error_of("{% set l = [] %}{{ l.append(1) }}").find("unsafe") != std::string::npos);
}

TEST_CASE("raise_exception is a DataError carrying the template's message") {
  std::string template_text = "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% endfor %}";
  ChatTemplate chat = ChatTemplate::from_string(template_text, "gemma chat_template");
  try {
    chat.render(conversation({{"system", "x"}}));
    FAIL("expected a DataError");
  } catch (const dsk::DataError& e) {
    CHECK(std::string(e.what()) == "gemma chat_template:1:54: raise_exception: System role not supported");
  }
  CHECK(chat.render(conversation({{"user", "x"}})).empty());
}

TEST_CASE("deep nesting is a DataError, not a stack overflow") {
  std::string parens(100000, '(');
  CHECK(error_of("{{ " + parens + "1" + std::string(100000, ')') + " }}").find("nested too deeply") != std::string::npos);
  std::string chain = "{{ 1";
  for (int i = 0; i < 100000; ++i) chain += " + 1";
  CHECK(error_of(chain + " }}").find("nested too deeply") != std::string::npos);
  std::string blocks;
  for (int i = 0; i < 50000; ++i) blocks += "{% if true %}";
  CHECK(error_of(blocks).find("nested too deeply") != std::string::npos);
  CHECK(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("macro calls nested deeper than 64") != std::string::npos);
  // Within the bounds, it works.
  CHECK(render("{{ " + std::string(50, '(') + "7" + std::string(50, ')') + " }}") == "7");
}

TEST_CASE("{% generation %} marks assistant output and decides the loss split") {
  std::string source =
      "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}</s>{% endgeneration %}"
      "{% else %}{{ m.content }}{% endif %}{% endfor %}";
  ChatTemplate chat = ChatTemplate::from_string(source, "tracked");
  Value messages = conversation({{"user", "hi"}, {"assistant", "hello"}, {"user", "bye"}, {"assistant", "ciao"}});
  std::vector<Segment> parts = chat.split_for_loss(messages);
  REQUIRE(parts.size() == 4);
  CHECK(parts[0].text == "<user>hi<assistant>");
  CHECK(!parts[0].trained);
  CHECK(parts[1].text == "hello</s>");
  CHECK(parts[1].trained);
  CHECK(parts[3].text == "ciao</s>");
  Rendered r = Template::parse(source, "tracked").render([&] {
    Dict d;
    d.set("messages", messages);
    return d;
  }());
  REQUIRE(r.generation_spans.size() == 2);
  CHECK(r.text.substr(r.generation_spans[0].first, r.generation_spans[0].second - r.generation_spans[0].first) == "hello</s>");
}

TEST_CASE("the loss split refuses a template that rewrites earlier turns") {
  // DeepSeek-R1 style: reasoning is dropped from earlier assistant turns, so prefixes do not nest.
  std::string source =
      "{% for m in messages %}{% if m.role == 'user' %}<U>{{ m.content }}{% else %}{% set c = m.content %}"
      "{% if not loop.last and '</think>' in c %}{% set c = c.split('</think>')[-1] %}{% endif %}<A>{{ c }}<E>{% endif %}{% endfor %}"
      "{% if add_generation_prompt %}<A>{% endif %}";
  ChatTemplate chat = ChatTemplate::from_string(source, "r1-like");
  Value one_turn = conversation({{"user", "q"}, {"assistant", "<think>r</think>a"}});
  std::vector<Segment> parts = chat.split_for_loss(one_turn);
  REQUIRE(parts.size() == 2);
  CHECK(parts[1].text == "<think>r</think>a<E>");
  Value two_turns = conversation({{"user", "q"}, {"assistant", "<think>r</think>a"}, {"user", "q2"}, {"assistant", "b"}});
  CHECK_THROWS_AS(chat.split_for_loss(two_turns), dsk::DataError);
}

TEST_CASE("tokenizer_config.json: AddedToken special tokens, named templates, errors") {
  std::string config = R"({
    "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
    "eos_token": "</s>", "unk_token": null,
    "chat_template": [
      {"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}{{ unk_token is defined }}"},
      {"name": "tool_use", "template": "tools:{{ tools | length }}"}]})";
  ChatTemplate chat = ChatTemplate::from_tokenizer_config(config, "tokenizer_config.json");
  Value messages = conversation({{"user", "x"}});
  CHECK(chat.render(messages) == "<s>x</s>False");
  RenderOptions with_tools;
  with_tools.tools = Value(List{Value(Dict{}), Value(Dict{})});
  CHECK(chat.render(messages, with_tools) == "tools:2");
  with_tools.template_name = "default";
  CHECK(chat.render(messages, with_tools) == "<s>x</s>False");
  with_tools.template_name = "nope";
  CHECK_THROWS_WITH_AS(chat.render(messages, with_tools), "tokenizer_config.json: no chat template named 'nope' (it has: default, tool_use)", dsk::DataError);
  CHECK_THROWS_WITH_AS(ChatTemplate::from_tokenizer_config(R"({"eos_token": "</s>"})", "cfg.json"),
                       "cfg.json: has no chat_template (the model is not a chat model)", dsk::DataError);
  CHECK_THROWS_AS(ChatTemplate::from_tokenizer_config(R"({"chat_template": 3})", "cfg.json"), dsk::DataError);
  CHECK_THROWS_AS(ChatTemplate::from_tokenizer_config(R"({"chat_template": "{% if %}"})", "cfg.json"), dsk::DataError);
  RenderOptions extra;
  extra.extra.set("eos_token", Value("<override>"));
  CHECK(chat.render(messages, extra) == "<s>x<override>False");
}

TEST_CASE("messages must be a list of objects with a string role") {
  using nlohmann::ordered_json;
  CHECK_THROWS_WITH_AS(messages_from_json(ordered_json::parse(R"({"role": "user"})"), "line 3 messages"),
                       "line 3 messages: expected a list of messages, got object", dsk::DataError);
  CHECK_THROWS_WITH_AS(messages_from_json(ordered_json::parse(R"([{"role": "user"}, {"content": "x"}])"), "m"),
                       "m[1].role: expected a string", dsk::DataError);
  Value ok = messages_from_json(ordered_json::parse(R"([{"role": "user", "content": "x", "z": 1, "a": 2}])"), "m");
  CHECK(ok.as_list()[0].as_dict().items()[2].first == "z");  // key order kept, as Python's dicts keep it
}

TEST_CASE("python_float_repr and json dumps follow Python") {
  CHECK(python_float_repr(1.0) == "1.0");
  CHECK(python_float_repr(0.1) == "0.1");
  CHECK(python_float_repr(1e16) == "1e+16");
  CHECK(python_float_repr(123456789012345.6) == "123456789012345.6");
  CHECK(python_float_repr(-2.5e-7) == "-2.5e-07");
  CHECK(python_float_repr(0.0001) == "0.0001");
  JsonDumpOptions ascii;
  ascii.ensure_ascii = true;
  CHECK(python_json_dumps(Value("é🌅\x01"), ascii) == "\"\\u00e9\\ud83c\\udf05\\u0001\"");
  CHECK_THROWS(python_json_dumps(Value(Undefined{"x"}), {}));
}

TEST_CASE("runaway templates stop with a DataError: loops, sizes") {
  RenderLimits limits;
  limits.max_loop_iterations = 5000;
  Template nested = Template::parse("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", "t.jinja");
  CHECK_THROWS_WITH_AS(nested.render({}, limits), "t.jinja:1:29: more than 5000 loop iterations: the template does not finish",
                       dsk::DataError);
  limits.max_loop_iterations = 10100;  // 100 outer + 100 * 100 inner
  CHECK_NOTHROW(nested.render({}, limits));
  CHECK(error_of("{% set s = 'abcdefgh' * 20000000 %}{{ s ~ s }}").find("larger than the limit") != std::string::npos);
  CHECK(render("{{ 'abc' * 5 }}|{{ ('xy' * 3) | length }}|{{ 'a' * 0 }}|{{ 'a' * -2 }}") == "abcabcabcabcabc|6||");
  CHECK(error_of("{{ 'ab' * 200000000 }}").find("larger than the limit") != std::string::npos);
  CHECK(error_of("{{ range(100001) | length }}").find("MAX_RANGE") != std::string::npos);
}
