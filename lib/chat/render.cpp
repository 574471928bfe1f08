// Walks a parsed template. Scoping is Jinja2's: a for loop body and a macro body are new scopes
// (a {% set %} inside them is gone after them), an if is not; namespace() objects carry state
// out of loops. An EvalError thrown anywhere below an expression becomes a DataError naming the
// template and the position of the innermost expression being evaluated.
#include <chrono>
#include <ctime>

#include "chat/ast.hpp"
#include "chat/eval_error.hpp"
#include "chat/operations.hpp"
#include "chat/template.hpp"
#include "core/error.hpp"

namespace dsk::chat {

using namespace detail;

namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

// A scope holds a handful of names (a loop's variables, a macro's parameters): a Dict, searched
// in order, costs less to make per loop iteration than a hash map.
struct Scope {
  Dict variables;
  Scope* parent = nullptr;

  const Value* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent)
      if (const Value* v = s->variables.find(name)) return v;
    return nullptr;
  }
  void set(const std::string& name, Value value) { variables.set(name, std::move(value)); }
};

enum class Flow { normal, break_loop, continue_loop };

class Renderer {
 public:
  Renderer(const Program& program, const RenderLimits& limits, Rendered& result)
      : program_(program), limits_(limits), result_(result) {
    install_globals();
  }

  void run(const Dict& variables) {
    Scope root;
    root.parent = &globals_;
    for (const auto& [k, v] : variables.items()) root.set(k, v);
    root_ = &root;
    exec_body(program_.body, root, result_.text);
  }

 private:
  const Program& program_;
  const RenderLimits& limits_;
  Rendered& result_;
  Scope globals_;
  Scope* root_ = nullptr;
  int call_depth_ = 0;
  uint64_t iterations_ = 0;

  [[noreturn]] void fail(Position p, const std::string& message) const {
    throw DataError(str(program_.name, ":", p.line, ":", p.column, ": ", message));
  }

  void append(std::string& out, const std::string& text) {
    if (out.size() + text.size() > kMaxOutputBytes) throw EvalError("rendered text larger than the limit of 256 MiB");
    out += text;
  }

  void install_globals() {
    auto define = [&](const std::string& name, std::function<Value(const CallArguments&)> fn) {
      globals_.set(name, Value(Callable{name, std::move(fn)}));
    };
    define("range", [](const CallArguments& a) {
      std::vector<int64_t> bounds;
      for (const Value& v : a.positional) {
        if (!is_integral_value(v)) throw EvalError("range() expects integers, got " + v.type_name());
        bounds.push_back(integral_value(v));
      }
      if (bounds.empty() || bounds.size() > 3) throw EvalError("range expected 1 to 3 arguments, got " + std::to_string(bounds.size()));
      int64_t start = bounds.size() == 1 ? 0 : bounds[0], stop = bounds.size() == 1 ? bounds[0] : bounds[1];
      int64_t step = bounds.size() == 3 ? bounds[2] : 1;
      if (step == 0) throw EvalError("range() arg 3 must not be zero");
      List out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (int64_t(out.size()) >= kMaxRange) throw EvalError("range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
        out.push_back(Value(i));
      }
      return Value(std::move(out));
    });
    define("namespace", [](const CallArguments& a) {
      auto attributes = std::make_shared<Dict>();
      for (const Value& v : a.positional) {
        if (!v.is_dict()) throw EvalError("namespace() takes a mapping or keyword arguments");
        for (const auto& [k, item] : v.as_dict().items()) attributes->set(k, item);
      }
      for (const auto& [k, v] : a.keyword) attributes->set(k, v);
      return Value(Namespace{attributes});
    });
    define("dict", [](const CallArguments& a) {
      Dict out;
      for (const Value& v : a.positional) {
        if (!v.is_dict()) throw EvalError("dict() takes a mapping or keyword arguments");
        for (const auto& [k, item] : v.as_dict().items()) out.set(k, item);
      }
      for (const auto& [k, v] : a.keyword) out.set(k, v);
      return Value(std::move(out));
    });
    define("raise_exception", [](const CallArguments& a) -> Value {
      const Value* message = argument(a, 0, "message");
      throw EvalError("raise_exception: " + (message ? message->str() : std::string()));
    });
    define("strftime_now", [](const CallArguments& a) {
      const Value* format = argument(a, 0, "format");
      if (!format || !format->is_string()) throw EvalError("strftime_now() expects a format string");
      std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
      std::tm local{};
      localtime_r(&now, &local);
      char buffer[512];
      size_t n = std::strftime(buffer, sizeof buffer, format->as_string().c_str(), &local);
      return Value(std::string(buffer, n));
    });
  }

  // ---- statements ----

  Flow exec_body(const Body& body, Scope& scope, std::string& out) {
    for (const auto& stmt : body) {
      Flow flow = exec(*stmt, scope, out);
      if (flow != Flow::normal) return flow;
    }
    return Flow::normal;
  }

  Flow exec(const Stmt& stmt, Scope& scope, std::string& out) {
    try {
      return exec_unchecked(stmt, scope, out);
    } catch (const EvalError& e) {
      fail(stmt.position, e.what());
    }
  }

  Flow exec_unchecked(const Stmt& stmt, Scope& scope, std::string& out) {
    switch (stmt.kind) {
      case StmtKind::text: append(out, stmt.text); return Flow::normal;
      case StmtKind::output: append(out, eval(*stmt.expr, scope).str()); return Flow::normal;
      case StmtKind::if_chain:
        for (const Branch& branch : stmt.branches)
          if (!branch.condition || eval(*branch.condition, scope).truthy()) return exec_body(branch.body, scope, out);
        return Flow::normal;
      case StmtKind::for_loop: exec_for(stmt, scope, out); return Flow::normal;
      case StmtKind::set: assign(stmt, eval(*stmt.expr, scope), scope); return Flow::normal;
      case StmtKind::set_block: {
        std::string captured;
        Scope inner;
        inner.parent = &scope;
        exec_body(stmt.body, inner, captured);
        scope.set(stmt.targets[0], Value(captured));
        return Flow::normal;
      }
      case StmtKind::macro: define_macro(stmt, scope); return Flow::normal;
      case StmtKind::loop_break: return Flow::break_loop;
      case StmtKind::loop_continue: return Flow::continue_loop;
      case StmtKind::generation: {
        size_t begin = out.size();
        Flow flow = exec_body(stmt.body, scope, out);
        if (&out == &result_.text) result_.generation_spans.emplace_back(begin, out.size());
        return flow;
      }
    }
    return Flow::normal;
  }

  void bind_targets(const std::vector<std::string>& targets, const Value& value, Scope& scope) {
    if (targets.size() == 1) {
      scope.set(targets[0], value);
      return;
    }
    List items = iterate(value);
    if (items.size() != targets.size())
      throw EvalError(str("cannot unpack ", items.size(), " values into ", targets.size(), " names"));
    for (size_t i = 0; i < targets.size(); ++i) scope.set(targets[i], items[i]);
  }

  void assign(const Stmt& stmt, const Value& value, Scope& scope) {
    if (!stmt.attribute_target) {
      bind_targets(stmt.targets, value, scope);
      return;
    }
    const Value* target = scope.find(stmt.targets[0]);
    if (!target || target->kind() != Value::Kind::name_space)
      throw EvalError("can only assign attributes on a namespace() object, and '" + stmt.targets[0] + "' is not one");
    target->as_namespace().attributes->set(stmt.targets[1], value);
  }

  void exec_for(const Stmt& stmt, Scope& scope, std::string& out) {
    List items = iterate(eval(*stmt.expr, scope));
    if (stmt.condition) {
      List kept;
      for (const Value& item : items) {
        Scope probe;
        probe.parent = &scope;
        bind_targets(stmt.targets, item, probe);
        if (eval(*stmt.condition, probe).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      Scope inner;
      inner.parent = &scope;
      exec_body(stmt.else_body, inner, out);
      return;
    }
    const int64_t n = int64_t(items.size());
    auto iteration = std::make_shared<int64_t>(0);
    Value cycle = cycle_callable(iteration);
    for (int64_t i = 0; i < n; ++i) {
      *iteration = i;
      if (++iterations_ > limits_.max_loop_iterations)
        throw EvalError(str("more than ", limits_.max_loop_iterations, " loop iterations: the template does not finish"));
      Scope inner;
      inner.parent = &scope;
      bind_targets(stmt.targets, items[size_t(i)], inner);
      inner.set("loop", loop_object(items, i, cycle));
      Flow flow = exec_body(stmt.body, inner, out);
      if (flow == Flow::break_loop) break;
    }
  }

  // The loop variable of iteration i. Built anew each iteration (a template may keep one in a
  // namespace), from a list of items rather than key by key, since it is the hot path of loops.
  static Value loop_object(const List& items, int64_t i, const Value& cycle_of_loop) {
    const int64_t n = int64_t(items.size());
    return Value(Dict({{"index", Value(i + 1)},
                       {"index0", Value(i)},
                       {"revindex", Value(n - i)},
                       {"revindex0", Value(n - i - 1)},
                       {"first", Value(i == 0)},
                       {"last", Value(i == n - 1)},
                       {"length", Value(n)},
                       {"depth", Value(int64_t(1))},
                       {"depth0", Value(int64_t(0))},
                       {"previtem", i > 0 ? items[size_t(i - 1)] : Value::undefined("there is no previous item")},
                       {"nextitem", i + 1 < n ? items[size_t(i + 1)] : Value::undefined("there is no next item")},
                       {"cycle", cycle_of_loop}}));
  }

  // loop.cycle(a, b, ...): the argument for the current iteration of its loop.
  static Value cycle_callable(std::shared_ptr<int64_t> iteration) {
    return Value(Callable{"loop.cycle", [iteration](const CallArguments& a) {
                            if (a.positional.empty()) throw EvalError("no items for cycling given");
                            return a.positional[size_t(*iteration) % a.positional.size()];
                          }});
  }

  void define_macro(const Stmt& stmt, Scope& scope) {
    const Stmt* macro = &stmt;
    scope.set(stmt.name, Value(Callable{stmt.name, [this, macro](const CallArguments& a) { return call_macro(*macro, a); }}));
  }

  Value call_macro(const Stmt& macro, const CallArguments& a) {
    if (call_depth_ >= kMaxCallDepth) throw EvalError(str("macro calls nested deeper than ", kMaxCallDepth));
    if (a.positional.size() > macro.parameters.size())
      throw EvalError(str("macro '", macro.name, "' takes ", macro.parameters.size(), " arguments, got ", a.positional.size()));
    Scope inner;
    inner.parent = root_;
    for (size_t i = 0; i < macro.parameters.size(); ++i) {
      const std::string& parameter = macro.parameters[i];
      if (i < a.positional.size()) {
        inner.set(parameter, a.positional[i]);
      } else if (const Value* given = argument(a, a.positional.size() + i, parameter.c_str())) {
        inner.set(parameter, *given);  // by keyword (index past the positional ones: never taken)
      } else if (macro.defaults[i]) {
        inner.set(parameter, eval(*macro.defaults[i], inner));
      } else {
        inner.set(parameter, Value::undefined("'" + parameter + "' is undefined (macro '" + macro.name + "' was called without it)"));
      }
    }
    for (const auto& [k, v] : a.keyword)
      if (std::find(macro.parameters.begin(), macro.parameters.end(), k) == macro.parameters.end())
        throw EvalError("macro '" + macro.name + "' takes no keyword argument '" + k + "'");
    ++call_depth_;
    std::string out;
    try {
      exec_body(macro.body, inner, out);
    } catch (...) {
      --call_depth_;
      throw;
    }
    --call_depth_;
    return Value(out);
  }

  // ---- expressions ----

  Value eval(const Expr& e, Scope& scope) {
    try {
      return eval_unchecked(e, scope);
    } catch (const EvalError& error) {
      fail(e.position, error.what());
    }
  }

  CallArguments eval_arguments(const Expr& e, Scope& scope, size_t first) {
    CallArguments a;
    for (size_t i = first; i < e.operands.size(); ++i) a.positional.push_back(eval(*e.operands[i], scope));
    for (const auto& [k, v] : e.keywords) a.keyword.emplace_back(k, eval(*v, scope));
    return a;
  }

  std::optional<int64_t> slice_bound(const ExprPtr& e, Scope& scope) {
    if (!e) return std::nullopt;
    Value v = eval(*e, scope);
    if (v.is_none()) return std::nullopt;
    if (!is_integral_value(v)) throw EvalError("slice indices must be integers or None, not " + v.type_name());
    return integral_value(v);
  }

  Value eval_unchecked(const Expr& e, Scope& scope) {
    switch (e.kind) {
      case ExprKind::literal: return e.literal;
      case ExprKind::name: {
        if (const Value* v = scope.find(e.name)) return *v;
        return Value::undefined("'" + e.name + "' is undefined");
      }
      case ExprKind::attribute: {
        Value object = eval(*e.operands[0], scope);
        require_defined(object);
        return get_attribute(object, e.name);
      }
      case ExprKind::item: {
        Value object = eval(*e.operands[0], scope);
        require_defined(object);
        return get_item(object, eval(*e.operands[1], scope));
      }
      case ExprKind::slice: {
        Value object = eval(*e.operands[0], scope);
        return detail::slice(object, slice_bound(e.operands[1], scope), slice_bound(e.operands[2], scope), slice_bound(e.operands[3], scope));
      }
      case ExprKind::call: {
        Value callee = eval(*e.operands[0], scope);
        require_defined(callee);
        if (callee.kind() != Value::Kind::callable) throw EvalError("'" + callee.type_name() + "' object is not callable");
        CallArguments a = eval_arguments(e, scope, 1);
        return callee.as_callable().call(a);
      }
      case ExprKind::filter: return apply_filter(e.name, eval(*e.operands[0], scope), eval_arguments(e, scope, 1));
      case ExprKind::test: {
        bool result = apply_test(e.name, eval(*e.operands[0], scope), eval_arguments(e, scope, 1));
        return Value(e.negated ? !result : result);
      }
      case ExprKind::negate: return negate(eval(*e.operands[0], scope));
      case ExprKind::plus: {
        Value v = eval(*e.operands[0], scope);
        if (!v.is_number()) throw EvalError("bad operand type for unary +: '" + v.type_name() + "'");
        return v;
      }
      case ExprKind::logical_not: return Value(!eval(*e.operands[0], scope).truthy());
      case ExprKind::logical_and: {
        Value left = eval(*e.operands[0], scope);
        return left.truthy() ? eval(*e.operands[1], scope) : left;
      }
      case ExprKind::logical_or: {
        Value left = eval(*e.operands[0], scope);
        return left.truthy() ? left : eval(*e.operands[1], scope);
      }
      case ExprKind::binary: return binary_operation(e.name, eval(*e.operands[0], scope), eval(*e.operands[1], scope));
      case ExprKind::compare: {
        Value left = eval(*e.operands[0], scope);
        for (size_t i = 0; i < e.operators.size(); ++i) {
          Value right = eval(*e.operands[i + 1], scope);
          if (!compare(e.operators[i], left, right)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case ExprKind::conditional: {
        if (eval(*e.operands[1], scope).truthy()) return eval(*e.operands[0], scope);
        if (e.operands[2]) return eval(*e.operands[2], scope);
        return Value::undefined("the conditional expression had no else branch");
      }
      case ExprKind::list:
      case ExprKind::tuple: {
        List items;
        for (const auto& operand : e.operands) items.push_back(eval(*operand, scope));
        return Value(std::move(items));
      }
      case ExprKind::dict: {
        Dict dict;
        for (size_t i = 0; i + 1 < e.operands.size(); i += 2) {
          Value key = eval(*e.operands[i], scope);
          if (!key.is_string()) throw EvalError("dict literal keys must be strings here, got " + key.type_name());
          dict.set(key.as_string(), eval(*e.operands[i + 1], scope));
        }
        return Value(std::move(dict));
      }
    }
    return Value();
  }
};

bool body_has_generation(const Body& body) {
  for (const auto& stmt : body) {
    if (stmt->kind == StmtKind::generation) return true;
    for (const Branch& branch : stmt->branches)
      if (body_has_generation(branch.body)) return true;
    if (body_has_generation(stmt->body) || body_has_generation(stmt->else_body)) return true;
  }
  return false;
}

}  // namespace

Template Template::parse(std::string_view source, std::string name) {
  return Template(std::shared_ptr<const Program>(parse_program(source, name)));
}

Rendered Template::render(const Dict& variables, const RenderLimits& limits) const {
  Rendered result;
  Renderer(*program_, limits, result).run(variables);
  return result;
}

const std::string& Template::name() const { return program_->name; }

bool Template::has_generation_blocks() const { return body_has_generation(program_->body); }

}  // namespace dsk::chat
