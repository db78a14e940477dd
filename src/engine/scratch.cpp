// scratch.cpp — the per-thread pool behind Scratch (see scratch.hpp).
#include "engine/scratch.hpp"

#include <bit>
#include <new>

namespace normkit::engine::pool {
namespace {
constexpr std::size_t kMinPooled = std::size_t{16} << 10;  // smaller: malloc's own bins serve well
constexpr int kMaxClass = 30;                              // 1 GiB; larger: straight to the system
constexpr std::size_t kKeepPerClass = 4;
// Whole cache lines: per-element coefficients read as vectors next to a streamed tensor
// (channels-last BatchNorm's hi, lo, alpha, beta) cost twice the time from 16-byte-aligned
// memory, where three of every five vector loads straddled two lines.
constexpr std::align_val_t kAlign{64};

int class_of(std::size_t bytes) { return std::bit_width(bytes - 1); }  // 2^class >= bytes

struct Pool {
  std::vector<void*> free[kMaxClass + 1];
  Pool() {
    for (auto& blocks : free) blocks.reserve(kKeepPerClass);
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
    if (blocks.size() < kKeepPerClass) {  // reserved: push_back does not allocate
      blocks.push_back(p);
      return;
    }
  }
  ::operator delete(p, kAlign);
}
}  // namespace normkit::engine::pool
