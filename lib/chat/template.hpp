// A Jinja2 template as Hugging Face transformers renders chat templates: the subset of Jinja2
// that real chat templates use, in the environment of transformers' chat_template_utils
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, the loopcontrols extension, the
// {% generation %} tag of its AssistantTracker, a json.dumps-based tojson filter, and the
// raise_exception and strftime_now globals).
//
//   Template t = Template::parse(source, "tokenizer_config.json chat_template");
//   Rendered r = t.render(variables);   // r.text; r.generation_spans for {% generation %} blocks
//
// Supported: {% if/elif/else %}, {% for %} (tuple targets, inline "if", else, loop.index/index0/
// revindex/revindex0/first/last/length/previtem/nextitem, break/continue), {% set %} (tuples,
// namespace attributes, block form), {% macro %} (positional, keyword, default arguments),
// {% generation %}; literals, slicing, `in`, `~`, arithmetic, comparisons, boolean operators,
// conditional expressions, filters and tests (chat/filters.cpp), str/dict methods, and the
// globals range, namespace, dict, raise_exception, strftime_now. Anything else is a DataError
// at parse time, not a silent difference.
//
// Known differences from Python, none of which the chat templates in tests/fixtures/chat touch:
// tuples are lists (a printed tuple shows as [1, 2]); lower/upper/title change ASCII letters
// only; str.format and printf-style '%' are refused with a DataError rather than guessed.
//
// Errors: DataError "<name>:<line>:<column>: <what>" for syntax, for evaluation errors (an
// undefined value used, a type error) and for raise_exception ("... raise_exception: <message>").
// Nesting is bounded (kMaxNesting in the parse tree, kMaxCallDepth for macro calls), range() is
// limited to 100000 items as in Jinja's sandbox, and output and values to kMaxOutputBytes; loop
// iterations of one render are bounded by RenderLimits.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/value.hpp"

namespace dsk::chat {

namespace detail {
struct Program;
}

inline constexpr int kMaxCallDepth = 64;
inline constexpr size_t kMaxOutputBytes = size_t(1) << 28;

struct RenderLimits {
  // All loops of one render together. A chat template makes a few per message; at ~1 us each the
  // default stops a runaway template (nested loops over big ranges) within seconds.
  uint64_t max_loop_iterations = 10'000'000;
};

struct Rendered {
  std::string text;
  // Byte ranges [begin, end) of text produced inside {% generation %} blocks, in order.
  std::vector<std::pair<size_t, size_t>> generation_spans;
};

class Template {
 public:
  // DataError naming `name`, the line and column on a syntax error or an unsupported tag.
  static Template parse(std::string_view source, std::string name);

  Rendered render(const Dict& variables, const RenderLimits& limits = {}) const;
  const std::string& name() const;
  // Whether the template has a {% generation %} block (the spans then mark assistant output).
  bool has_generation_blocks() const;

 private:
  explicit Template(std::shared_ptr<const detail::Program> program) : program_(std::move(program)) {}
  std::shared_ptr<const detail::Program> program_;
};

}  // namespace dsk::chat
