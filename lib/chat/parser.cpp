// Recursive descent over the lexer's tokens, with Jinja2's precedence (lowest first):
//   conditional (a if c else b) < or < and < not < comparisons and `in` < + - < ~ < * / // %
//   < ** < unary - + < postfix (.attr [item] (call)) with filters (|f) and tests (is t).
// Operand shapes per ExprKind: attribute {object}; item {object, key}; slice {object, start,
// stop, step} (nulls allowed); call {callee, args...}; filter/test {subject, args...};
// binary {left, right}; compare {first, rest...}; conditional {then, condition, else|null};
// dict {key, value, key, value...}.
#include "chat/ast.hpp"
#include "core/error.hpp"

namespace dsk::chat::detail {
namespace {

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& name) : tokens_(std::move(tokens)), name_(name) {}

  Body parse_template() {
    Body body = parse_body({});
    if (peek().kind != TokenKind::end) fail(peek(), "unexpected '" + peek_tag_name() + "' tag");
    return body;
  }

 private:
  std::vector<Token> tokens_;
  size_t at_ = 0;
  const std::string& name_;
  int depth_ = 0;

  struct DepthGuard {
    Parser& parser;
    explicit DepthGuard(Parser& p, const Token& where) : parser(p) {
      if (++parser.depth_ > kMaxNesting) parser.fail(where, "template nested too deeply");
    }
    ~DepthGuard() { --parser.depth_; }
  };

  const Token& peek(size_t ahead = 0) const { return tokens_[std::min(at_ + ahead, tokens_.size() - 1)]; }
  const Token& next() {
    const Token& t = tokens_[at_];
    if (at_ + 1 < tokens_.size()) ++at_;
    return t;
  }
  [[noreturn]] void fail(const Token& at, const std::string& message) const {
    throw DataError(str(name_, ":", at.position.line, ":", at.position.column, ": ", message));
  }
  bool is_op(const char* op, size_t ahead = 0) const { return peek(ahead).kind == TokenKind::op && peek(ahead).text == op; }
  bool is_name(const char* word, size_t ahead = 0) const { return peek(ahead).kind == TokenKind::name && peek(ahead).text == word; }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(peek(), str("expected '", op, "', got ", describe(peek())));
    next();
  }
  std::string expect_name() {
    if (peek().kind != TokenKind::name) fail(peek(), "expected a name, got " + describe(peek()));
    return next().text;
  }
  void expect_block_end() {
    if (peek().kind != TokenKind::block_end) fail(peek(), "expected '%}', got " + describe(peek()));
    next();
  }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case TokenKind::end: return "end of template";
      case TokenKind::block_end: return "'%}'";
      case TokenKind::variable_end: return "'}}'";
      case TokenKind::string: return "a string";
      default: return "'" + t.text + "'";
    }
  }
  std::string peek_tag_name() const { return peek(1).text; }

  // Statements until a block tag whose name is in `stops` (left unconsumed, at its name).
  Body parse_body(const std::vector<std::string>& stops) {
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.kind == TokenKind::end) {
        if (!stops.empty()) fail(t, "unexpected end of template, expected '{% " + stops.front() + " %}'");
        return body;
      }
      if (t.kind == TokenKind::text) {
        auto stmt = std::make_unique<Stmt>();
        stmt->kind = StmtKind::text;
        stmt->position = t.position;
        stmt->text = t.text;
        body.push_back(std::move(stmt));
        next();
      } else if (t.kind == TokenKind::variable_begin) {
        next();
        auto stmt = std::make_unique<Stmt>();
        stmt->kind = StmtKind::output;
        stmt->position = t.position;
        stmt->expr = parse_expression();
        if (peek().kind != TokenKind::variable_end) fail(peek(), "expected '}}', got " + describe(peek()));
        next();
        body.push_back(std::move(stmt));
      } else {  // block_begin
        const Token& word = peek(1);
        if (word.kind != TokenKind::name) fail(word, "expected a tag name, got " + describe(word));
        if (std::find(stops.begin(), stops.end(), word.text) != stops.end()) {
          next();
          return body;
        }
        next();
        body.push_back(parse_statement());
      }
    }
  }

  StmtPtr parse_statement() {
    const Token& word = next();
    DepthGuard guard(*this, word);
    auto stmt = std::make_unique<Stmt>();
    stmt->position = word.position;
    const std::string& tag = word.text;
    if (tag == "if") return parse_if(std::move(stmt));
    if (tag == "for") return parse_for(std::move(stmt));
    if (tag == "set") return parse_set(std::move(stmt));
    if (tag == "macro") return parse_macro(std::move(stmt));
    if (tag == "break" || tag == "continue") {
      stmt->kind = tag == "break" ? StmtKind::loop_break : StmtKind::loop_continue;
      expect_block_end();
      return stmt;
    }
    if (tag == "generation") {
      stmt->kind = StmtKind::generation;
      expect_block_end();
      stmt->body = parse_body({"endgeneration"});
      end_tag();
      return stmt;
    }
    fail(word, "unknown or unsupported tag '" + tag + "'");
  }

  void end_tag() {  // after parse_body returned at a stop word: consume it and the '%}'
    next();
    expect_block_end();
  }

  StmtPtr parse_if(StmtPtr stmt) {
    stmt->kind = StmtKind::if_chain;
    ExprPtr condition = parse_expression();
    expect_block_end();
    while (true) {
      Branch branch{std::move(condition), parse_body({"elif", "else", "endif"})};
      stmt->branches.push_back(std::move(branch));
      std::string word = next().text;
      if (word == "endif") {
        expect_block_end();
        return stmt;
      }
      if (word == "else") {
        expect_block_end();
        stmt->branches.push_back(Branch{nullptr, parse_body({"endif"})});
        end_tag();
        return stmt;
      }
      condition = parse_expression();  // elif
      expect_block_end();
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names{expect_name()};
    while (is_op(",")) {
      next();
      names.push_back(expect_name());
    }
    return names;
  }

  StmtPtr parse_for(StmtPtr stmt) {
    stmt->kind = StmtKind::for_loop;
    stmt->targets = parse_targets();
    if (!is_name("in")) fail(peek(), "expected 'in', got " + describe(peek()));
    next();
    stmt->expr = parse_or();  // no conditional expression: its "if" is the loop filter
    if (is_name("if")) {
      next();
      stmt->condition = parse_expression();
    }
    if (is_name("recursive")) fail(peek(), "recursive loops are not supported");
    expect_block_end();
    stmt->body = parse_body({"else", "endfor"});
    if (next().text == "else") {
      expect_block_end();
      stmt->else_body = parse_body({"endfor"});
      end_tag();
    } else {
      expect_block_end();
    }
    return stmt;
  }

  StmtPtr parse_set(StmtPtr stmt) {
    if (peek(1).kind == TokenKind::op && peek(1).text == ".") {
      stmt->targets = {expect_name()};
      next();
      stmt->targets.push_back(expect_name());
      stmt->attribute_target = true;
    } else {
      stmt->targets = parse_targets();
    }
    if (peek().kind == TokenKind::block_end && !stmt->attribute_target && stmt->targets.size() == 1) {
      next();
      stmt->kind = StmtKind::set_block;
      stmt->body = parse_body({"endset"});
      end_tag();
      return stmt;
    }
    stmt->kind = StmtKind::set;
    expect_op("=");
    stmt->expr = parse_tuple_or_expression();
    expect_block_end();
    return stmt;
  }

  StmtPtr parse_macro(StmtPtr stmt) {
    stmt->kind = StmtKind::macro;
    stmt->name = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      stmt->parameters.push_back(expect_name());
      ExprPtr fallback;
      if (is_op("=")) {
        next();
        fallback = parse_expression();
      }
      stmt->defaults.push_back(std::move(fallback));
      if (!is_op(",")) break;
      next();
    }
    expect_op(")");
    expect_block_end();
    stmt->body = parse_body({"endmacro"});
    end_tag();
    return stmt;
  }

  // ---- expressions ----

  ExprPtr make(ExprKind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->position = at.position;
    return e;
  }

  ExprPtr parse_tuple_or_expression() {
    const Token& start = peek();
    ExprPtr first = parse_expression();
    if (!is_op(",")) return first;
    auto tuple = make(ExprKind::tuple, start);
    tuple->operands.push_back(std::move(first));
    while (is_op(",")) {
      next();
      if (peek().kind == TokenKind::block_end || peek().kind == TokenKind::variable_end) break;
      tuple->operands.push_back(parse_expression());
    }
    return tuple;
  }

  ExprPtr parse_expression() {
    const Token& start = peek();
    DepthGuard guard(*this, start);
    ExprPtr value = parse_or();
    while (is_name("if")) {
      next();
      auto conditional = make(ExprKind::conditional, start);
      conditional->operands.push_back(std::move(value));
      conditional->operands.push_back(parse_or());
      ExprPtr otherwise;
      if (is_name("else")) {
        next();
        otherwise = parse_or();
      }
      conditional->operands.push_back(std::move(otherwise));
      value = sealed(std::move(conditional));
    }
    return value;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      auto node = make(ExprKind::logical_or, next());
      node->operands.push_back(std::move(left));
      node->operands.push_back(parse_and());
      left = sealed(std::move(node));
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      auto node = make(ExprKind::logical_and, next());
      node->operands.push_back(std::move(left));
      node->operands.push_back(parse_not());
      left = sealed(std::move(node));
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      const Token& at = next();
      DepthGuard guard(*this, at);
      auto node = make(ExprKind::logical_not, at);
      node->operands.push_back(parse_not());
      return sealed(std::move(node));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Token& start = peek();
    ExprPtr first = parse_math1();
    ExprPtr node;
    while (true) {
      std::string op;
      if (peek().kind == TokenKind::op &&
          (peek().text == "==" || peek().text == "!=" || peek().text == "<" || peek().text == ">" ||
           peek().text == "<=" || peek().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      if (!node) {
        node = make(ExprKind::compare, start);
        node->operands.push_back(std::move(first));
      }
      node->operators.push_back(op);
      node->operands.push_back(parse_math1());
    }
    return node ? sealed(std::move(node)) : std::move(first);
  }

  ExprPtr binary(const Token& at, const std::string& op, ExprPtr left, ExprPtr right) {
    auto node = make(ExprKind::binary, at);
    node->name = op;
    node->operands.push_back(std::move(left));
    node->operands.push_back(std::move(right));
    return sealed(std::move(node));
  }

  // A node whose operands are all attached: its height is checked, so that chains that the
  // grammar builds by looping (a + b + c ..., x.a.b.c ..., f|g|h ...) are bounded like nesting.
  ExprPtr sealed(ExprPtr node) {
    int height = 0;
    for (const auto& operand : node->operands)
      if (operand) height = std::max(height, operand->height);
    for (const auto& [key, operand] : node->keywords) height = std::max(height, operand->height);
    node->height = height + 1;
    if (node->height > kMaxNesting) fail_at(node->position, "expression nested too deeply");
    return node;
  }
  [[noreturn]] void fail_at(Position p, const std::string& message) const {
    throw DataError(str(name_, ":", p.line, ":", p.column, ": ", message));
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& at = next();
      left = binary(at, at.text, std::move(left), parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const Token& at = next();
      left = binary(at, "~", std::move(left), parse_math2());
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& at = next();
      left = binary(at, at.text, std::move(left), parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary();
    while (is_op("**")) {
      const Token& at = next();
      left = binary(at, "**", std::move(left), parse_unary());
    }
    return left;
  }

  // As Jinja2: the operand of a unary minus takes no filters, so "-1 | abs" is (-1) | abs.
  ExprPtr parse_unary(bool with_filters = true) {
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Token& at = next();
      DepthGuard guard(*this, at);
      node = make(at.text == "-" ? ExprKind::negate : ExprKind::plus, at);
      node->operands.push_back(parse_unary(false));
      node = sealed(std::move(node));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    return with_filters ? parse_filters_and_tests(std::move(node)) : std::move(node);
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    DepthGuard guard(*this, t);
    if (t.kind == TokenKind::name) {
      next();
      if (t.text == "true" || t.text == "True") return literal(t, Value(true));
      if (t.text == "false" || t.text == "False") return literal(t, Value(false));
      if (t.text == "none" || t.text == "None") return literal(t, Value());
      auto node = make(ExprKind::name, t);
      node->name = t.text;
      return node;
    }
    if (t.kind == TokenKind::string) {
      next();
      std::string text = t.text;
      while (peek().kind == TokenKind::string) text += next().text;  // adjacent literals join
      return literal(t, Value(text));
    }
    if (t.kind == TokenKind::integer || t.kind == TokenKind::number) {
      next();
      return literal(t, t.value);
    }
    if (is_op("(")) {
      next();
      if (is_op(")")) {
        next();
        return make(ExprKind::tuple, t);
      }
      ExprPtr inner = parse_expression();
      if (is_op(",")) {
        auto tuple = make(ExprKind::tuple, t);
        tuple->operands.push_back(std::move(inner));
        while (is_op(",")) {
          next();
          if (is_op(")")) break;
          tuple->operands.push_back(parse_expression());
        }
        inner = sealed(std::move(tuple));
      }
      expect_op(")");
      return inner;
    }
    if (is_op("[")) {
      next();
      auto list = make(ExprKind::list, t);
      while (!is_op("]")) {
        list->operands.push_back(parse_expression());
        if (!is_op(",")) break;
        next();
      }
      expect_op("]");
      return sealed(std::move(list));
    }
    if (is_op("{")) {
      next();
      auto dict = make(ExprKind::dict, t);
      while (!is_op("}")) {
        dict->operands.push_back(parse_expression());
        expect_op(":");
        dict->operands.push_back(parse_expression());
        if (!is_op(",")) break;
        next();
      }
      expect_op("}");
      return sealed(std::move(dict));
    }
    fail(t, "unexpected " + describe(t));
  }

  ExprPtr literal(const Token& at, Value value) {
    auto node = make(ExprKind::literal, at);
    node->literal = std::move(value);
    return node;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".")) {
        const Token& at = next();
        auto attr = make(ExprKind::attribute, at);
        if (peek().kind == TokenKind::integer) {  // foo.0 is foo[0]
          attr->kind = ExprKind::item;
          attr->operands.push_back(std::move(node));
          attr->operands.push_back(literal(peek(), next().value));
        } else {
          attr->name = expect_name();
          attr->operands.push_back(std::move(node));
        }
        node = sealed(std::move(attr));
      } else if (is_op("[")) {
        node = sealed(parse_subscript(std::move(node)));
      } else if (is_op("(")) {
        node = sealed(parse_call(std::move(node), ExprKind::call));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr object) {
    const Token& at = next();
    DepthGuard guard(*this, at);
    ExprPtr parts[3];
    bool is_slice = false;
    for (int part = 0; part < 3; ++part) {
      if (!is_op(":") && !is_op("]")) parts[part] = parse_expression();
      if (part < 2 && is_op(":")) {
        next();
        is_slice = true;
      } else {
        break;
      }
    }
    expect_op("]");
    auto node = make(is_slice ? ExprKind::slice : ExprKind::item, at);
    node->operands.push_back(std::move(object));
    if (!is_slice) {
      if (!parts[0]) fail(at, "expected an index inside '[]'");
      node->operands.push_back(std::move(parts[0]));
    } else {
      for (auto& p : parts) node->operands.push_back(std::move(p));
    }
    return node;
  }

  // Arguments in parentheses onto node (a call's callee, or a filter's / test's subject).
  ExprPtr parse_call(ExprPtr node, ExprKind kind) {
    const Token& at = peek();
    expect_op("(");
    if (kind == ExprKind::call) {
      auto call = make(ExprKind::call, at);
      call->position = node->position;  // errors point at the callee, "raise_exception(...)"
      call->operands.push_back(std::move(node));
      node = std::move(call);
    }
    while (!is_op(")")) {
      if (peek().kind == TokenKind::name && is_op("=", 1)) {
        std::string key = next().text;
        next();
        node->keywords.emplace_back(key, parse_expression());
      } else {
        if (!node->keywords.empty()) fail(peek(), "positional argument after keyword argument");
        node->operands.push_back(parse_expression());
      }
      if (!is_op(",")) break;
      next();
    }
    expect_op(")");
    return node;
  }

  ExprPtr parse_filters_and_tests(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        const Token& at = next();
        auto filter = make(ExprKind::filter, at);
        filter->name = dotted_name();
        filter->operands.push_back(std::move(node));
        if (is_op("(")) filter = parse_call(std::move(filter), ExprKind::filter);
        node = sealed(std::move(filter));
      } else if (is_name("is")) {
        const Token& at = next();
        auto test = make(ExprKind::test, at);
        if (is_name("not")) {
          next();
          test->negated = true;
        }
        test->name = dotted_name();
        test->operands.push_back(std::move(node));
        if (is_op("(")) {
          test = parse_call(std::move(test), ExprKind::test);
        } else if (starts_test_argument()) {
          test->operands.push_back(parse_postfix(parse_primary()));  // "is divisibleby 3", "is sameas none"
        }
        node = sealed(std::move(test));
      } else {
        return node;
      }
    }
  }

  std::string dotted_name() {
    std::string name = expect_name();
    // "none", "true", "false" are names here ("is none"), not literals.
    return name;
  }

  bool starts_test_argument() const {
    const Token& t = peek();
    if (t.kind == TokenKind::string || t.kind == TokenKind::integer || t.kind == TokenKind::number) return true;
    if (t.kind == TokenKind::op) return t.text == "[" || t.text == "{" || t.text == "-";
    if (t.kind != TokenKind::name) return false;
    static const char* stop_words[] = {"else", "or", "and", "if", "in", "is", "not"};
    for (const char* w : stop_words)
      if (t.text == w) return false;
    return true;
  }
};

}  // namespace

std::unique_ptr<Program> parse_program(std::string_view source, const std::string& name) {
  auto program = std::make_unique<Program>();
  program->name = name;
  program->body = Parser(tokenize(source, name), name).parse_template();
  return program;
}

}  // namespace dsk::chat::detail
