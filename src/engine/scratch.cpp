// scratch.cpp — the per-thread pool behind Scratch (see scratch.hpp).
#include "engine/scratch.hpp"

#include <bit>
#include <new>

namespace normkit::engine::pool {
namespace {
// Smaller: malloc's own bins serve well. Not the 64-byte-aligned requests of a few KiB (per
// channel coefficients and sums), which went through memalign and malloc_consolidate at every
// call: 5% of GroupNorm 32x256x14x14 channels-last forward's profile at 2 threads.
constexpr std::size_t kMinPooled = 256;
constexpr int kMaxClass = 30;  // 1 GiB; larger: straight to the system
// Blocks kept per size class: more of the small ones, which a call holds several of at once
// (forward_columns: four per-channel coefficient arrays and the shifts, all of one class).
constexpr int kSmallClass = 14;  // below 16 KiB
constexpr std::size_t kKeepSmall = 8, kKeepLarge = 4;
std::size_t keep_of(int cls) { return cls < kSmallClass ? kKeepSmall : kKeepLarge; }
// Whole cache lines: per-element coefficients read as vectors next to a streamed tensor
// (channels-last BatchNorm's hi, lo, alpha, beta) cost twice the time from 16-byte-aligned
// memory, where three of every five vector loads straddled two lines.
constexpr std::align_val_t kAlign{64};

int class_of(std::size_t bytes) { return std::bit_width(bytes - 1); }  // 2^class >= bytes

struct Pool {
  std::vector<void*> free[kMaxClass + 1];
  Pool() {
    for (int c = 0; c <= kMaxClass; ++c) free[c].reserve(keep_of(c));
  }
  ~Pool() {
    for (auto& blocks : free)
      for (void* p : blocks) ::operator delete(p, kAlign);
  }
};
thread_local Pool local;

bool pooled(std::size_t bytes) { return bytes >= kMinPooled && class_of(bytes) <= kMaxClass; }
}  // namespace

void* take(std::size_t bytes) {
  if (!pooled(bytes)) return ::operator new(bytes, kAlign);
  auto& blocks = local.free[class_of(bytes)];
  if (!blocks.empty()) {
    void* p = blocks.back();
    blocks.pop_back();
    return p;
  }
  return ::operator new(std::size_t{1} << class_of(bytes), kAlign);
}

void give(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  if (pooled(bytes)) {
    auto& blocks = local.free[class_of(bytes)];
    if (blocks.size() < keep_of(class_of(bytes))) {  // reserved: push_back does not allocate
      blocks.push_back(p);
      return;
    }
  }
  ::operator delete(p, kAlign);
}
}  // namespace normkit::engine::pool
