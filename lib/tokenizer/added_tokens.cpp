#include "tokenizer/added_tokens.hpp"

#include <algorithm>
#include <cctype>

#include "core/error.hpp"
#include "tokenizer/bpe.hpp"

namespace dsk::tokenizer {
namespace {

// HF's lstrip/rstrip skip Unicode whitespace; ASCII whitespace covers the files dsk reads.
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// single_word: a word character (alphanumeric or '_', any non-ASCII byte counts as one) must not
// touch the token on either side.
bool is_word_byte(char c) {
  auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || std::isalnum(u) || c == '_';
}

}  // namespace

AddedTokens AddedTokens::from_json(const JsonField& list) {
  AddedTokens added;
  if (list.json().is_null()) return added;
  for (size_t i = 0; i < list.size(); ++i) {
    const JsonField node = list.item(i).object();
    AddedToken token{uint32_t(node.at("id").unsigned_integer(kMaxTokenId)), node.at("content").string(),
                     node.boolean_or("special", false), node.boolean_or("lstrip", false),
                     node.boolean_or("rstrip", false), node.boolean_or("single_word", false)};
    if (token.content.empty()) throw DataError(str(node.where(), ".content: empty"));
    added.tokens_.push_back(std::move(token));
  }
  for (uint32_t i = 0; i < added.tokens_.size(); ++i)
    added.by_first_byte_[static_cast<unsigned char>(added.tokens_[i].content[0])].push_back(i);
  for (auto& bucket : added.by_first_byte_)
    std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t a, uint32_t b) {
      return added.tokens_[a].content.size() > added.tokens_[b].content.size();
    });
  return added;
}

bool AddedTokens::match_at(std::string_view text, size_t at, bool match_special, const AddedToken*& found) const {
  for (uint32_t index : by_first_byte_[static_cast<unsigned char>(text[at])]) {
    const AddedToken& token = tokens_[index];
    if (token.special && !match_special) continue;
    if (text.compare(at, token.content.size(), token.content) != 0) continue;
    found = &token;
    return true;
  }
  return false;
}

void AddedTokens::split(std::string_view text, bool match_special, std::vector<Segment>& segments) const {
  segments.clear();
  size_t plain_begin = 0;
  for (size_t at = 0; at < text.size();) {
    const AddedToken* token = nullptr;
    if (by_first_byte_[static_cast<unsigned char>(text[at])].empty() || !match_at(text, at, match_special, token)) {
      ++at;
      continue;
    }
    size_t begin = at, end = at + token->content.size();
    if (token->single_word && ((begin > 0 && is_word_byte(text[begin - 1])) ||
                               (end < text.size() && is_word_byte(text[end])))) {
      ++at;
      continue;
    }
    if (token->lstrip)
      while (begin > plain_begin && is_space(text[begin - 1])) --begin;
    if (token->rstrip)
      while (end < text.size() && is_space(text[end])) ++end;
    if (begin > plain_begin) segments.push_back({plain_begin, begin, false, 0});
    segments.push_back({begin, end, true, token->id});
    plain_begin = at = end;
  }
  if (plain_begin < text.size()) segments.push_back({plain_begin, text.size(), false, 0});
}

}  // namespace dsk::tokenizer
