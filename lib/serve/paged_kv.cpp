#include "serve/paged_kv.hpp"

#include "core/error.hpp"

namespace dsk::serve {

BlockManager::BlockManager(int blocks, int block_size, bool prefix_sharing)
    : block_size_(block_size), prefix_sharing_(prefix_sharing), blocks_(size_t(std::max(blocks, 0))) {
  if (blocks <= 0 || block_size <= 0)
    throw UsageError(str("paged KV cache: ", blocks, " blocks of ", block_size, " positions (both must be > 0)"));
  for (int32_t b = 0; b < blocks; b++) {
    blocks_[b].free_position = free_.insert(free_.end(), b);
    blocks_[b].in_free_list = true;
  }
}

// FNV-1a over the parent hash and the tokens' bytes, then a final avalanche (splitmix64).
uint64_t BlockManager::chain_hash(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](uint64_t value) {
    for (int i = 0; i < 8; i++) {
      h ^= (value >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(parent);
  for (int32_t t : tokens) mix(uint64_t(uint32_t(t)));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

BlockManager::Sequence& BlockManager::sequence(uint64_t id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) throw InternalError(str("block manager: no sequence ", id));
  return it->second;
}
const BlockManager::Sequence& BlockManager::sequence(uint64_t id) const {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) throw InternalError(str("block manager: no sequence ", id));
  return it->second;
}
const std::vector<int32_t>& BlockManager::table(uint64_t id) const { return sequence(id).table; }

int32_t BlockManager::find_shared(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const {
  auto [first, last] = registered_.equal_range(hash);
  for (auto it = first; it != last; ++it) {
    const Block& b = blocks_[it->second];
    if (b.parent == parent && std::equal(tokens.begin(), tokens.end(), b.tokens.begin(), b.tokens.end()))
      return it->second;
  }
  return -1;
}

int BlockManager::open(uint64_t id, std::span<const int32_t> tokens) {
  if (sequences_.count(id)) throw InternalError(str("block manager: sequence ", id, " is already open"));
  Sequence& s = sequences_[id];
  if (!prefix_sharing_ || tokens.empty()) return 0;
  const int reusable = (int(tokens.size()) - 1) / block_size_;  // leave the last token to compute
  for (int i = 0; i < reusable; i++) {
    auto chunk = tokens.subspan(size_t(i) * block_size_, size_t(block_size_));
    const uint64_t hash = chain_hash(s.chain, chunk);
    const int32_t b = find_shared(hash, s.chain, chunk);
    if (b < 0) break;
    Block& block = blocks_[b];
    if (block.in_free_list) {
      free_.erase(block.free_position);
      block.in_free_list = false;
    }
    block.references++;
    s.table.push_back(b);
    s.registered++;
    s.chain = hash;
    shared_hits_++;
  }
  return s.registered * block_size_;
}

bool BlockManager::can_grow(uint64_t id, int positions) const {
  return blocks_for(positions) - int(sequence(id).table.size()) <= free_blocks();
}

int32_t BlockManager::take_free_block() {
  if (free_.empty()) throw InternalError("block manager: no free block");
  const int32_t b = free_.front();
  free_.pop_front();
  Block& block = blocks_[b];
  block.in_free_list = false;
  if (block.registered) {  // its cached content is overwritten from now on
    auto [first, last] = registered_.equal_range(block.hash);
    for (auto it = first; it != last; ++it)
      if (it->second == b) {
        registered_.erase(it);
        break;
      }
    block.registered = false;
    block.tokens.clear();
  }
  block.references = 1;
  return b;
}

void BlockManager::grow(uint64_t id, int positions) {
  Sequence& s = sequence(id);
  const int needed = blocks_for(positions) - int(s.table.size());
  if (needed > free_blocks())
    throw InternalError(str("block manager: sequence ", id, " needs ", needed, " blocks, ", free_blocks(), " free"));
  for (int i = 0; i < needed; i++) s.table.push_back(take_free_block());
}

void BlockManager::filled(uint64_t id, std::span<const int32_t> tokens, int computed) {
  if (!prefix_sharing_) return;
  Sequence& s = sequence(id);
  const int full = std::min(computed / block_size_, int(s.table.size()));
  for (int i = s.registered; i < full; i++) {
    auto chunk = tokens.subspan(size_t(i) * block_size_, size_t(block_size_));
    const uint64_t hash = chain_hash(s.chain, chunk);
    Block& block = blocks_[s.table[i]];
    // A block with the same content already registered (another sequence computed it first):
    // keep that one findable and this one private.
    if (!block.registered && find_shared(hash, s.chain, chunk) < 0) {
      block.registered = true;
      block.hash = hash;
      block.parent = s.chain;
      block.tokens.assign(chunk.begin(), chunk.end());
      registered_.emplace(hash, s.table[i]);
    }
    s.chain = hash;
    s.registered = i + 1;
  }
}

void BlockManager::release(int32_t b) {
  Block& block = blocks_[b];
  if (--block.references > 0) return;
  // Unregistered blocks go to the front (nothing to keep); cached ones to the back, so they are
  // reused last.
  block.free_position = block.registered ? free_.insert(free_.end(), b) : free_.insert(free_.begin(), b);
  block.in_free_list = true;
}

void BlockManager::close(uint64_t id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return;
  // Last blocks first, so that a prefix's first block is the last of its chain to be reused.
  for (auto b = it->second.table.rbegin(); b != it->second.table.rend(); ++b) release(*b);
  sequences_.erase(it);
}

}  // namespace dsk::serve
