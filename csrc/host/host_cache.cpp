// A caching allocator for host (CPU) tensors, installed as c10's CPU allocator by
// scdepth.host_memory (config host_memory: cache).
//
// Why: glibc serves every block above its mmap threshold (at most 32 MiB) with a fresh mmap
// and unmaps it on free, so each training step maps its activations and gradients anew and
// the kernel zero-fills them page by page on first touch. At KITTI size (256x832, B = 4) that
// is millions of page faults a step. Here a freed block of 1 MiB or more is kept for the next
// request of its size class (8 classes per power of two: at most 12.5% rounding); a training
// step repeats the previous step's requests, so after the first step they are all hits.
// Smaller blocks go straight to c10::alloc_cpu, as with torch's default allocator (glibc keeps
// those in its heap). On a miss, cached blocks are freed, largest first, while the process
// would otherwise hold more than limit_factor x its peak of live blocks: the cache is bounded
// by the workload's own peak. Allocation and free report to the profiler as torch's
// default allocator does, so memory profiles read the same.
#include "host/host_cache.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <pthread.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace scdepth::host_cache {
namespace {

constexpr size_t kMinCached = size_t(1) << 20;

void delete_block(void* ptr);

class HostCache final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t nbytes) override {
    if (nbytes == 0) return {nullptr, nullptr, &delete_block, c10::Device(c10::DeviceType::CPU)};
    void* ptr = take(size_class(nbytes));
    c10::profiledCPUMemoryReporter().New(ptr, nbytes);
    return {ptr, ptr, &delete_block, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &delete_block; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  void give_back(void* ptr) {
    if (ptr == nullptr) return;
    std::unique_lock<std::mutex> lock(mutex_);
    auto it = live_.find(ptr);
    if (it == live_.end()) {
      // Not ours: allocated before the install, and freed through the current CPU
      // allocator's raw_deleter (oneDNN's memory is) by the allocator that made it.
      lock.unlock();
      TORCH_INTERNAL_ASSERT(previous_ != nullptr && previous_->raw_deleter() != nullptr);
      previous_->raw_deleter()(ptr);
      return;
    }
    c10::profiledCPUMemoryReporter().Delete(ptr);
    const size_t size = it->second;
    live_.erase(it);
    in_use_ -= size;
    if (size < kMinCached || !installed_) {
      c10::free_cpu(ptr);
      return;
    }
    free_[size].push_back(ptr);
    cached_ += size;
  }

  void install(double limit_factor) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_factor_ = limit_factor;
      if (installed_) return;
      installed_ = true;
    }
    if (previous_ == nullptr) previous_ = c10::GetCPUAllocator();
    c10::SetCPUAllocator(this, kPriority);
  }

  void uninstall() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!installed_) return;
      installed_ = false;
    }
    c10::SetCPUAllocator(previous_, kPriority);
    empty();
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!free_.empty()) evict_largest();
  }

  Stats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {installed_, in_use_, cached_, peak_, hits_, misses_, evicted_};
  }

  std::mutex mutex_;  // public for the fork handlers

 private:
  // Above torch's default (0), so a later default registration does not displace it.
  static constexpr uint8_t kPriority = 1;

  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    void* ptr = nullptr;
    auto it = size >= kMinCached ? free_.find(size) : free_.end();
    if (it != free_.end()) {
      ptr = it->second.back();
      it->second.pop_back();
      if (it->second.empty()) free_.erase(it);
      cached_ -= size;
      ++hits_;
    } else {
      if (size >= kMinCached) {
        ++misses_;
        const double limit = std::max(limit_factor_ * double(peak_), double(in_use_ + size));
        while (cached_ > 0 && double(in_use_ + cached_ + size) > limit) evict_largest();
      }
      ptr = c10::alloc_cpu(size);  // throws on failure; the lock is released by its guard
    }
    // A block of ours freed past the cache leaves a stale entry (after the uninstall, oneDNN
    // frees through torch's allocator again), which a new block at its address replaces.
    auto [entry, fresh] = live_.try_emplace(ptr, size);
    if (!fresh) {
      in_use_ -= entry->second;
      entry->second = size;
    }
    in_use_ += size;
    peak_ = std::max(peak_, in_use_);
    return ptr;
  }

  void evict_largest() {  // mutex_ held
    auto it = std::prev(free_.end());
    c10::free_cpu(it->second.back());
    it->second.pop_back();
    cached_ -= it->first;
    evicted_ += it->first;
    if (it->second.empty()) free_.erase(it);
  }

  at::Allocator* previous_ = nullptr;
  bool installed_ = false;
  double limit_factor_ = 2.0;
  std::unordered_map<void*, size_t> live_;  // every block handed out, with its size
  std::map<size_t, std::vector<void*>> free_;  // cached blocks by size class
  size_t in_use_ = 0, cached_ = 0, peak_ = 0, hits_ = 0, misses_ = 0, evicted_ = 0;
};

// Never destroyed: tensors freed during interpreter shutdown still find it.
HostCache& cache() {
  static HostCache* instance = new HostCache();
  return *instance;
}

void delete_block(void* ptr) { cache().give_back(ptr); }

// A fork (DataLoader workers) while another thread holds the mutex would leave the child's
// copy locked forever: the fork waits for the mutex and both sides release it after.
void register_fork_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    pthread_atfork([] { cache().mutex_.lock(); }, [] { cache().mutex_.unlock(); },
                   [] { cache().mutex_.unlock(); });
  });
}

}  // namespace

size_t size_class(size_t nbytes) {
  if (nbytes < kMinCached) return nbytes;
  size_t octave = size_t(1) << (63 - __builtin_clzll(nbytes));  // largest power of 2 <= n
  size_t step = octave / 8;
  return (nbytes + step - 1) / step * step;
}

void enable(double limit_factor) {
  TORCH_CHECK_VALUE(limit_factor >= 1.0, "limit_factor must be >= 1, got ", limit_factor);
  register_fork_handlers();
  cache().install(limit_factor);
}

void disable() { cache().uninstall(); }

void empty() { cache().empty(); }

Stats stats() { return cache().stats(); }

}  // namespace scdepth::host_cache
