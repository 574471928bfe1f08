// The parsed form of a template (internal to lib/chat): tokens from the lexer, then a tree of
// statements and expressions that render.cpp walks. Nesting depth is bounded by the parser
// (kMaxNesting), so walking the tree cannot overflow the stack.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/value.hpp"

namespace dsk::chat::detail {

inline constexpr int kMaxNesting = 200;

struct Position {
  int line = 1;
  int column = 1;
};

enum class TokenKind { text, variable_begin, variable_end, block_begin, block_end, name, string, integer, number, op, end };

struct Token {
  TokenKind kind;
  std::string text;  // the text, name, operator, or the decoded string literal
  Value value;       // integer and number literals
  Position position;
};

// Splits a template into tokens exactly as Jinja2's lexer does with trim_blocks and
// lstrip_blocks on (whitespace control, comments dropped, newlines normalized, one trailing
// newline removed). `where` prefixes syntax errors ("<name>:<line>:<column>: ...").
std::vector<Token> tokenize(std::string_view source, const std::string& where);

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  literal, name, attribute, item, slice, call, filter, test, negate, plus, logical_not, binary,
  logical_and, logical_or, compare, conditional, list, tuple, dict
};

struct Expr {
  ExprKind kind;
  Position position;
  Value literal;                 // literal
  std::string name;              // name; attribute; filter/test name; binary operator
  std::vector<ExprPtr> operands; // subject first, then arguments (see parser.cpp per kind); may hold nulls (slice)
  std::vector<std::pair<std::string, ExprPtr>> keywords;  // call/filter/test keyword arguments
  std::vector<std::string> operators;  // compare: one per operand after the first
  bool negated = false;                // test: "is not"
  int height = 1;                      // longest path to a leaf (bounded by kMaxNesting)
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind { text, output, if_chain, for_loop, set, set_block, macro, loop_break, loop_continue, generation };

struct Branch {
  ExprPtr condition;  // null for else
  Body body;
};

struct Stmt {
  StmtKind kind;
  Position position;
  std::string text;                  // text
  ExprPtr expr;                      // output; set's value; for's iterable
  ExprPtr condition;                 // for's "if" filter
  std::vector<std::string> targets;  // set/for/set_block names; for a namespace attribute: {ns, attr}
  bool attribute_target = false;
  std::vector<Branch> branches;      // if_chain
  Body body, else_body;              // for, set_block, macro, generation
  std::string name;                  // macro
  std::vector<std::string> parameters;
  std::vector<ExprPtr> defaults;     // one per parameter, null when none
};

struct Program {
  std::string name;
  Body body;
};

std::unique_ptr<Program> parse_program(std::string_view source, const std::string& name);

}  // namespace dsk::chat::detail
