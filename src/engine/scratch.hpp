// scratch.hpp — vectors for a call's scratch (partials, per-statistic sums, coefficients)
// whose memory each thread keeps for its next call. Returned to the system after every call,
// a buffer of more than ~128 KiB is a fresh mapping that page-faults on first touch, and
// with two threads each unmap shoots down the other core's TLB: on this project's 2-core VM
// that made LayerNorm's backward over [32, 50176] 13x slower at 2 threads than at 1.
#pragma once

#include <cstddef>
#include <type_traits>
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

// n elements of a trivial T from the same pool, left uninitialized (for partials that the
// threads filling them write before they read them).
template <class T>
class ScratchBuffer {
  static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>);

 public:
  explicit ScratchBuffer(std::size_t n) : n_(n), p_(static_cast<T*>(pool::take(n * sizeof(T)))) {}
  ~ScratchBuffer() { pool::give(p_, n_ * sizeof(T)); }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  T* data() { return p_; }
  T& operator[](std::size_t i) { return p_[i]; }

 private:
  std::size_t n_;
  T* p_;
};

}  // namespace normkit::engine
