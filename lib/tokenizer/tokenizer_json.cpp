#include "tokenizer/tokenizer_json.hpp"

#include "core/error.hpp"
#include "core/json.hpp"

namespace dsk::tokenizer {
namespace {

using json = nlohmann::json;

// Hands every event to nlohmann's tree builder, except those inside the root's model.vocab
// object and model.merges array, which it keeps in lists (the tree gets an empty object / array
// there). An event the lists cannot take stops the parse (false), and the caller falls back to
// parse_json, so that the tree's checks report it as before.
class Capture {
 public:
  explicit Capture(std::string where) : where_(std::move(where)), builder_(tree_) {}

  json& tree() { return tree_; }
  BpeInput& bpe() { return bpe_; }

  bool null() { return mode_ == Mode::none && builder_.null(); }
  bool boolean(bool value) { return mode_ == Mode::none && builder_.boolean(value); }
  bool number_integer(json::number_integer_t value) { return mode_ == Mode::none && builder_.number_integer(value); }
  bool number_float(json::number_float_t value, const std::string& text) {
    return mode_ == Mode::none && builder_.number_float(value, text);
  }
  bool binary(json::binary_t& value) { return mode_ == Mode::none && builder_.binary(value); }

  bool number_unsigned(json::number_unsigned_t value) {
    if (mode_ == Mode::none) return builder_.number_unsigned(value);
    if (mode_ != Mode::vocab || value > kMaxTokenId) return false;
    bpe_.vocab->emplace_back(std::move(key_), TokenId(value));
    return true;
  }

  bool string(std::string& value) {
    switch (mode_) {
      case Mode::none:
        return builder_.string(value);
      case Mode::merges: {
        size_t space = value.find(' ', 1);
        if (space == std::string::npos) return false;
        bpe_.merges->emplace_back(value.substr(0, space), value.substr(space + 1));
        return true;
      }
      case Mode::merge_pair:
        if (pair_.size() == 2) return false;
        pair_.push_back(std::move(value));
        return true;
      case Mode::vocab:
        return false;
    }
    return false;
  }

  bool key(std::string& value) {
    if (mode_ == Mode::vocab) {
      key_ = std::move(value);
      return true;
    }
    // A repeated key replaces the value before it, as in the tree: what was captured for it goes.
    if (depth_ == 1) {
      root_key_ = value;
      if (root_key_ == "model") bpe_ = {};
    }
    if (depth_ == 2 && in_model_) {
      model_key_ = value;
      if (model_key_ == "vocab") bpe_.vocab.reset();
      if (model_key_ == "merges") bpe_.merges.reset();
    }
    return builder_.key(value);
  }

  bool start_object(std::size_t length) {
    if (mode_ != Mode::none) return false;
    if (in_model_key("vocab")) {
      mode_ = Mode::vocab;
      bpe_.vocab.emplace();
      return builder_.start_object(0);
    }
    if (depth_ == 1 && root_key_ == "model") in_model_ = true;
    ++depth_;
    return builder_.start_object(length);
  }

  bool end_object() {
    if (mode_ == Mode::vocab) mode_ = Mode::none;
    else if (--depth_ == 1) in_model_ = false;
    return builder_.end_object();
  }

  bool start_array(std::size_t length) {
    if (mode_ == Mode::merges) {
      mode_ = Mode::merge_pair;
      pair_.clear();
      return true;
    }
    if (mode_ != Mode::none) return false;
    if (in_model_key("merges")) {
      mode_ = Mode::merges;
      bpe_.merges.emplace();
      return builder_.start_array(0);
    }
    ++depth_;
    return builder_.start_array(length);
  }

  bool end_array() {
    if (mode_ == Mode::merge_pair) {
      if (pair_.size() != 2) return false;
      bpe_.merges->emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      mode_ = Mode::merges;
      return true;
    }
    if (mode_ == Mode::merges) mode_ = Mode::none;
    else --depth_;
    return builder_.end_array();
  }

  // A syntax error, or a number out of double's range (1e309): parse_json's message.
  [[noreturn]] bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& error) {
    throw DataError(str(where_, ": not valid JSON (", error.what(), ")"));
  }

 private:
  enum class Mode { none, vocab, merges, merge_pair };

  bool in_model_key(const char* name) const { return in_model_ && depth_ == 2 && model_key_ == name; }

  std::string where_;
  json tree_;
  nlohmann::detail::json_sax_dom_parser<json> builder_;
  BpeInput bpe_;
  Mode mode_ = Mode::none;
  int depth_ = 0;          // of the containers the tree builder has open
  bool in_model_ = false;  // inside the root's "model" object
  std::string root_key_, model_key_, key_;
  std::vector<std::string> pair_;
};

}  // namespace

TokenizerJson read_tokenizer_json(std::string_view text, const std::string& where) {
  check_json_depth(text, where);
  Capture capture(where);
  if (!json::sax_parse(text.begin(), text.end(), &capture)) return {parse_json(text, where), {}};
  return {std::move(capture.tree()), std::move(capture.bpe())};
}

}  // namespace dsk::tokenizer
