// The block manager of the paged KV cache (vLLM's KVCacheManager, without the model): which
// blocks of the pool each sequence owns, in position order (its block table), a free list, and
// prefix sharing. Pure host bookkeeping; the pool itself is the model's (model/paged_forward.hpp).
//
// A block holds block_size positions. Admission and growth are counted in free blocks. With
// prefix sharing, a block that a sequence has filled completely is registered under a hash of
// its tokens chained with the hash of everything before it, so two sequences whose first k full
// blocks hold the same tokens share those k blocks (reference counted, never copied). When the
// last owner lets go, a registered block stays findable in the free list (least recently freed
// reused first), so a later request with the same prefix still finds it until it is reused.
//
//   BlockManager blocks(1024, 16, true);
//   int cached = blocks.open(id, prompt);        // positions already in shared blocks (a multiple of 16)
//   if (blocks.can_grow(id, cached + chunk)) blocks.grow(id, cached + chunk);  // room for the chunk
//   ... the model writes the chunk's keys/values to blocks.table(id) ...
//   blocks.filled(id, tokens, cached + chunk);   // registers the now-full blocks for sharing
//   blocks.close(id);                            // the sequence ends or is preempted
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace dsk::serve {

class BlockManager {
 public:
  BlockManager(int blocks, int block_size, bool prefix_sharing);

  int block_size() const { return block_size_; }
  int total_blocks() const { return int(blocks_.size()); }
  int free_blocks() const { return int(free_.size()); }  // includes cached blocks nobody owns
  int used_blocks() const { return total_blocks() - free_blocks(); }
  int blocks_for(int positions) const { return (positions + block_size_ - 1) / block_size_; }

  // Starts a sequence and attaches the longest run of shared full blocks that hold its first
  // tokens; returns how many positions they cover. At least one token is always left to compute
  // (its logits give the next token), so a prompt of k full blocks reuses at most k - 1 of them.
  int open(uint64_t id, std::span<const int32_t> tokens);
  // Whether the sequence's table can cover `positions` positions with the free blocks left.
  bool can_grow(uint64_t id, int positions) const;
  // Extends the table to cover `positions` positions; InternalError when blocks are short.
  void grow(uint64_t id, int positions);
  // The sequence's keys and values now fill positions [0, computed) of tokens: registers every
  // full block among them for sharing (a no-op without prefix sharing).
  void filled(uint64_t id, std::span<const int32_t> tokens, int computed);
  // Returns the sequence's blocks (shared ones when their last owner goes).
  void close(uint64_t id);

  const std::vector<int32_t>& table(uint64_t id) const;
  bool has(uint64_t id) const { return sequences_.count(id) != 0; }
  // Blocks found shared at open() since construction (a test and metrics counter).
  uint64_t shared_hits() const { return shared_hits_; }

 private:
  struct Block {
    int references = 0;
    bool registered = false;
    uint64_t hash = 0;
    std::vector<int32_t> tokens;  // a registered block's tokens (to rule out hash collisions)
    uint64_t parent = 0;          // the chained hash before it
    std::list<int32_t>::iterator free_position;
    bool in_free_list = false;
  };
  struct Sequence {
    std::vector<int32_t> table;
    int registered = 0;   // leading blocks already registered (or attached shared)
    uint64_t chain = 0;   // the chained hash through those blocks
  };

  static uint64_t chain_hash(uint64_t parent, std::span<const int32_t> tokens);
  int32_t take_free_block();
  void release(int32_t block);
  int32_t find_shared(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const;
  Sequence& sequence(uint64_t id);
  const Sequence& sequence(uint64_t id) const;

  int block_size_;
  bool prefix_sharing_;
  std::vector<Block> blocks_;
  std::list<int32_t> free_;  // front: reused first
  std::unordered_multimap<uint64_t, int32_t> registered_;  // hash -> block
  std::unordered_map<uint64_t, Sequence> sequences_;
  uint64_t shared_hits_ = 0;
};

}  // namespace dsk::serve
