// The host caching allocator (host_cache.cpp): installed as c10's CPU allocator, it keeps
// freed blocks of 1 MiB or more for the next request of their size class.
#pragma once

#include <cstddef>

namespace scdepth::host_cache {

struct Stats {
  bool enabled;
  size_t in_use;   // bytes of the blocks handed out (by size class)
  size_t cached;   // bytes of the freed blocks kept
  size_t peak;     // most bytes in use at once since the first install
  size_t hits, misses;  // requests of >= 1 MiB served from the cache / freshly allocated
  size_t evicted;  // bytes of cached blocks freed to stay within the limit
};

// Installs the cache (again: sets the limit). On a miss, cached blocks are freed while the
// process would hold more than limit_factor x `peak` bytes (limit_factor >= 1).
void enable(double limit_factor);
// Puts the previous CPU allocator back and frees the cache; blocks still in use are freed
// when their tensors are.
void disable();
void empty();  // frees every cached block
Stats stats();
size_t size_class(size_t nbytes);  // the bytes a request of nbytes is served with

}  // namespace scdepth::host_cache
