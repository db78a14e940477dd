// scratch.hpp — vectors for a call's scratch (partials, per-statistic sums, coefficients)
// whose memory each thread keeps for its next call. Returned to the system after every call,
// a buffer of more than ~128 KiB is a fresh mapping that page-faults on first touch, and
// with two threads each unmap shoots down the other core's TLB: on this project's 2-core VM
// that made LayerNorm's backward over [32, 50176] 13x slower at 2 threads than at 1.
#pragma once

#include <cstddef>
#include <vector>

namespace normkit::engine {

namespace pool {
// `bytes` of memory, from this thread's free blocks when one of the size class is there.
void* take(std::size_t bytes);
// Back to this thread's free blocks (a few per size class), or to the system.
void give(void* p, std::size_t bytes) noexcept;
}  // namespace pool

template <class T>
struct ScratchAllocator {
  using value_type = T;
  ScratchAllocator() = default;
  template <class U>
  ScratchAllocator(const ScratchAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(pool::take(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { pool::give(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const ScratchAllocator<U>&) const noexcept {
    return true;
  }
};

template <class T>
using Scratch = std::vector<T, ScratchAllocator<T>>;

}  // namespace normkit::engine
