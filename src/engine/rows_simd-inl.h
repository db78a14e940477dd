// rows_simd-inl.h — the row primitives of rows.hpp, written once over a Highway vector tag.
// rows_simd_<type>.cpp compile them for one storage type each, for every x86/Arm target (the
// four files build side by side: one file for all four types was the longest step of every
// build, over 8 minutes under the sanitizers); the best target is picked at run time.
// Four independent accumulators per sum: enough to hide the add latency (4 cycles) on two
// FMA ports. The tail is one masked vector, not a scalar loop.
// Storage S may be a half type: lanes compute in float, loads widen and stores round to
// nearest even with integer ops (Highway 1.0.3's bf16 DemoteTo truncates and its emulated
// f16 conversions neither round nor keep inf), so every target gives PyTorch's bits.
//
// Included once per target (foreach_target.h re-includes the .cpp that includes this), hence
// the toggling guard instead of #pragma once; the entry and dispatch macros at the end are
// defined once.
#if defined(NORMKIT_ENGINE_ROWS_SIMD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef NORMKIT_ENGINE_ROWS_SIMD_INL_H_
#undef NORMKIT_ENGINE_ROWS_SIMD_INL_H_
#else
#define NORMKIT_ENGINE_ROWS_SIMD_INL_H_
#endif

#include "hwy/cache_control.h"
#include "hwy/highway.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>

#include "engine/rows.hpp"

// The lambdas of a primitive's loop are inlined into it (a call would keep what they capture
// in memory, reloaded after every store). Not in sanitizer builds: there, forced inlining of
// every loop variant for every target made this file take over 15 minutes to compile.
#ifndef NORMKIT_INLINE_LAMBDA
#if defined(__SANITIZE_ADDRESS__)
#define NORMKIT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NORMKIT_SANITIZED 1
#endif
#endif
#if (defined(__GNUC__) || defined(__clang__)) && !defined(NORMKIT_SANITIZED)
#define NORMKIT_INLINE_LAMBDA __attribute__((always_inline))
#else
#define NORMKIT_INLINE_LAMBDA
#endif
#endif

// The loops that only speed things up (half rows' whole-line stores, the backward walk of
// BytesAhead) are left out of sanitizer builds: with them clang's instrumented build of this
// file took over 18 minutes. Those builds take the other loops, which give the same values.
#ifdef NORMKIT_SANITIZED
#define NORMKIT_SPEED_LOOPS 0
#else
#define NORMKIT_SPEED_LOOPS 1
#endif

HWY_BEFORE_NAMESPACE();
namespace normkit::engine::rows {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---- storage: load/store S as vectors of C = compute_t<S> ---------------------------------
using normkit::bfloat16;
using normkit::compute_t;
using normkit::float16;

// Half S as 32-bit lanes holding its bit pattern, and back.
template <class S, class D>
HWY_INLINE hn::Vec<D> FromBits(D d, hn::Vec<hn::RebindToUnsigned<D>> u) {
  const hn::RebindToUnsigned<D> du;
  if constexpr (std::is_same_v<S, bfloat16>) {
    return hn::BitCast(d, hn::ShiftLeft<16>(u));
  } else {  // float16: c10's fp16_ieee_to_fp32_value
    const auto m = hn::And(u, hn::Set(du, 0x7FFFu));
    const auto sub = hn::Sub(hn::BitCast(d, hn::Or(m, hn::Set(du, 0x3F000000u))), hn::Set(d, 0.5f));
    const auto nrm = hn::Mul(hn::BitCast(d, hn::Add(hn::ShiftLeft<13>(m), hn::Set(du, 0x70000000u))),
                             hn::Set(d, 0x1.0p-112f));
    const hn::RebindToSigned<D> di;
    const auto is_sub = hn::RebindMask(d, hn::Lt(hn::BitCast(di, m), hn::Set(di, 0x400)));
    const auto sign = hn::ShiftLeft<16>(hn::And(u, hn::Set(du, 0x8000u)));
    return hn::BitCast(d, hn::Or(sign, hn::BitCast(du, hn::IfThenElse(is_sub, sub, nrm))));
  }
}

// c10::BFloat16's round_to_nearest_even of float lanes, in the upper 16 bits of each lane
// (the lower 16 are garbage); a NaN gives 0x7FC0.
template <class D>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<D>> BF16High(D /*d*/, hn::Vec<D> v) {
  const hn::RebindToUnsigned<D> du;
  const auto w = hn::BitCast(du, v);
  const auto bias = hn::Add(hn::And(hn::ShiftRight<16>(w), hn::Set(du, 1u)), hn::Set(du, 0x7FFFu));
  return hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), hn::Set(du, 0x7FC00000u), hn::Add(w, bias));
}

template <class S, class D>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<D>> ToBits(D d, hn::Vec<D> v) {
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  const auto w = hn::BitCast(du, v);
  if constexpr (std::is_same_v<S, bfloat16>) {
    return hn::ShiftRight<16>(BF16High(d, v));
  } else {  // float16: c10's fp16_ieee_from_fp32_value
    const auto a = hn::And(w, hn::Set(du, 0x7FFFFFFFu));
    auto base = hn::Mul(hn::Mul(hn::BitCast(d, a), hn::Set(d, 0x1.0p+112f)), hn::Set(d, 0x1.0p-110f));
    const auto e = hn::Max(hn::BitCast(di, hn::And(a, hn::Set(du, 0x7F800000u))), hn::Set(di, 0x38800000));
    base = hn::Add(hn::BitCast(d, hn::Add(hn::BitCast(du, e), hn::Set(du, 0x07800000u))), base);
    const auto b = hn::BitCast(du, base);
    const auto nonsign = hn::Add(hn::And(hn::ShiftRight<13>(b), hn::Set(du, 0x7C00u)), hn::And(b, hn::Set(du, 0x0FFFu)));
    const auto is_nan = hn::RebindMask(du, hn::Gt(hn::BitCast(di, a), hn::Set(di, 0x7F800000)));
    const auto sign = hn::And(hn::ShiftRight<16>(w), hn::Set(du, 0x8000u));
    return hn::Or(sign, hn::IfThenElse(is_nan, hn::Set(du, 0x7E00u), nonsign));
  }
}

// x86 from AVX2 up has F16C: vcvtph2ps is exact and vcvtps2ph (MXCSR's round to nearest
// even) gives c10's bits for every non-NaN value (a NaN stays a NaN, its payload may differ).
#undef NORMKIT_HW_F16  // this file is compiled once per target
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2 && !defined(HWY_DISABLE_F16C)
#define NORMKIT_HW_F16 1
#else
#define NORMKIT_HW_F16 0
#endif

// Lanes(d) elements at p.
template <class D, class S>
HWY_INLINE hn::Vec<D> LoadFull(D d, const S* HWY_RESTRICT p) {
  if constexpr (std::is_same_v<S, hn::TFromD<D>>) {
    return hn::LoadU(d, p);
#if NORMKIT_HW_F16
  } else if constexpr (std::is_same_v<S, float16>) {
    const hn::Rebind<hwy::float16_t, D> dh;
    return hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p)));
#endif
  } else {
    const hn::RebindToUnsigned<D> du;
    const hn::Rebind<uint16_t, D> d16;
    return FromBits<S>(d, hn::PromoteTo(du, hn::LoadU(d16, reinterpret_cast<const uint16_t*>(p))));
  }
}

// Half tails: AVX-512 (BW) masks 16-bit lanes, so a tail is one masked load or store; other
// targets (AVX2 emulates 16-bit masked loads with a full load, which may cross into an
// unmapped page) go through a buffer of one vector.
#undef NORMKIT_MASKED_16  // this file is compiled once per target
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#define NORMKIT_MASKED_16 1
#else
#define NORMKIT_MASKED_16 0
#endif
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

// The column blocks' sums keep this many column vectors of each accumulator in registers
// across their runs, in two sets (even and odd runs: one chain of adds per run measured up to
// 1.5x slower out of cache): 4 where the target has 32 vector registers, 2 on x86 before
// AVX-512 (16).
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3
constexpr size_t kColVecs = 2;
#else
constexpr size_t kColVecs = 4;
#endif

// The first n < Lanes(d) elements at p; the other lanes are 0.
template <class D, class S>
HWY_INLINE hn::Vec<D> LoadPartial(D d, const S* HWY_RESTRICT p, size_t n) {
  if constexpr (std::is_same_v<S, hn::TFromD<D>>) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
    return hn::MaskedLoad(hn::FirstN(d, n), d, p);
#else  // Highway 1.0.3 emulates MaskedLoad with an aligned whole-vector load (SSE4: a fault
       // on an unaligned p; anywhere: a read past the row's end)
    S buf[kMaxLanes] = {};
    std::memcpy(buf, p, n * sizeof(S));
    return hn::LoadU(d, buf);
#endif
  } else {
#if NORMKIT_MASKED_16
    const hn::Rebind<uint16_t, D> d16;
    const auto bits = hn::MaskedLoad(hn::FirstN(d16, n), d16, reinterpret_cast<const uint16_t*>(p));
#if NORMKIT_HW_F16
    if constexpr (std::is_same_v<S, float16>) return hn::PromoteTo(d, hn::BitCast(hn::Rebind<hwy::float16_t, D>(), bits));
#endif
    return FromBits<S>(d, hn::PromoteTo(hn::RebindToUnsigned<D>(), bits));
#else
    S buf[kMaxLanes] = {};
    std::memcpy(buf, p, n * sizeof(S));
    return LoadFull(d, buf);
#endif
  }
}

// k <= Lanes(d) elements at p (fewer: the rest 0).
template <class D, class S>
HWY_INLINE hn::Vec<D> LoadN(D d, const S* HWY_RESTRICT p, size_t k) {
  return k == hn::Lanes(d) ? LoadFull(d, p) : LoadPartial(d, p, k);
}

// The tail of a row: its last k = n - i < Lanes(d) elements. A row of at least one vector
// reads it as the whole vector that ends the row (at n - Lanes(d)) with the lanes before i
// dropped: no masked load, which costs several times a plain one on AMD cores (the tail of
// BatchNorm's 196-element runs was 40% of the statistics pass). Shorter rows: a masked load.
struct Tail {
  size_t at;    // where the vector is read
  bool whole;   // a whole vector (else the first k lanes of a masked one)
  template <class D>
  Tail(D d, size_t i, size_t n) : at(n >= hn::Lanes(d) ? n - hn::Lanes(d) : i), whole(n >= hn::Lanes(d)) {}
};
template <class D>
HWY_INLINE hn::Mask<D> TailLanes(D d, const Tail& t, size_t i, size_t n) {
  return t.whole ? hn::Not(hn::FirstN(d, hn::Lanes(d) - (n - i))) : hn::FirstN(d, n - i);
}
template <class D, class S>
HWY_INLINE hn::Vec<D> LoadTail(D d, const S* HWY_RESTRICT p, const Tail& t, size_t i, size_t n) {
  return t.whole ? LoadFull(d, p + t.at) : LoadPartial(d, p + i, n - i);
}

template <class D, class S>
HWY_INLINE void StoreFull(D d, hn::Vec<D> v, S* HWY_RESTRICT p) {
  if constexpr (std::is_same_v<S, hn::TFromD<D>>) {
    hn::StoreU(v, d, p);
#if NORMKIT_HW_F16
  } else if constexpr (std::is_same_v<S, float16>) {
    const hn::Rebind<hwy::float16_t, D> dh;
    hn::StoreU(hn::DemoteTo(dh, v), dh, reinterpret_cast<hwy::float16_t*>(p));
#endif
  } else {
    const hn::RebindToSigned<D> di;
    const hn::Rebind<uint16_t, D> d16;
    hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, ToBits<S>(d, v))), d16, reinterpret_cast<uint16_t*>(p));
  }
}

// StoreFull, or with stream: a non-temporal store (outputs larger than the cache, which
// would otherwise be read into it first), where p is aligned to a whole vector of S of at
// least 16 bytes (Highway rounds a smaller stream up to 16 bytes).
template <class D, class S>
HWY_INLINE void StoreOut(D d, hn::Vec<D> v, S* HWY_RESTRICT p, bool stream) {
  constexpr size_t kBytes = hn::MaxLanes(D()) * sizeof(S);
  if constexpr (kBytes >= 16) {
    if (stream && hn::Lanes(d) == hn::MaxLanes(d) && reinterpret_cast<uintptr_t>(p) % kBytes == 0) {
      if constexpr (std::is_same_v<S, hn::TFromD<D>>) {
        return hn::Stream(v, d, p);
#if NORMKIT_HW_F16
      } else if constexpr (std::is_same_v<S, float16>) {
        const hn::Rebind<hwy::float16_t, D> dh;
        const hn::Rebind<uint16_t, D> d16;
        return hn::Stream(hn::BitCast(d16, hn::DemoteTo(dh, v)), d16, reinterpret_cast<uint16_t*>(p));
#endif
      } else {
        const hn::RebindToSigned<D> di;
        const hn::Rebind<uint16_t, D> d16;
        return hn::Stream(hn::DemoteTo(d16, hn::BitCast(di, ToBits<S>(d, v))), d16, reinterpret_cast<uint16_t*>(p));
      }
    }
  }
  StoreFull(d, v, p);
}

// After a primitive's non-temporal stores: they are ordered before what follows.
HWY_INLINE void EndStream(bool stream) {
  if (stream) hwy::FlushStream();
}

// Writes the first n < Lanes(d) lanes of v to p.
template <class D, class S>
HWY_INLINE void StorePartial(D d, hn::Vec<D> v, S* HWY_RESTRICT p, size_t n) {
  if constexpr (std::is_same_v<S, hn::TFromD<D>>) {
    hn::BlendedStore(v, hn::FirstN(d, n), d, p);
  } else {
#if NORMKIT_MASKED_16
    const hn::Rebind<uint16_t, D> d16;
#if NORMKIT_HW_F16
    if constexpr (std::is_same_v<S, float16>) {
      const hn::Rebind<hwy::float16_t, D> dh;
      return hn::BlendedStore(hn::BitCast(d16, hn::DemoteTo(dh, v)), hn::FirstN(d16, n), d16,
                              reinterpret_cast<uint16_t*>(p));
    }
#endif
    const hn::RebindToSigned<D> di;
    hn::BlendedStore(hn::DemoteTo(d16, hn::BitCast(di, ToBits<S>(d, v))), hn::FirstN(d16, n), d16,
                     reinterpret_cast<uint16_t*>(p));
#else
    S buf[kMaxLanes];
    StoreFull(d, v, buf);
    std::memcpy(p, buf, n * sizeof(S));
#endif
  }
}

// Half S: two vectors of C (lo, then hi) as one vector of 2 * Lanes(d) 16-bit lanes, one store
// (a whole 64-byte line on AVX-512, which a non-temporal store wants) and one shuffle for
// both halves instead of a narrowing pack per vector.
#if HWY_TARGET != HWY_SCALAR
template <class D, class S>
HWY_INLINE auto PairBits(D d, hn::Vec<D> lo, hn::Vec<D> hi) {
  const hn::Repartition<uint16_t, D> d16;
  if constexpr (std::is_same_v<S, bfloat16>) {
    return hn::ConcatOdd(d16, hn::BitCast(d16, BF16High(d, hi)), hn::BitCast(d16, BF16High(d, lo)));
#if NORMKIT_HW_F16
  } else if constexpr (std::is_same_v<S, float16>) {
    const hn::Rebind<hwy::float16_t, D> dh;
    const hn::Half<decltype(d16)> d16h;
    return hn::Combine(d16, hn::BitCast(d16h, hn::DemoteTo(dh, hi)), hn::BitCast(d16h, hn::DemoteTo(dh, lo)));
#endif
  } else {
    return hn::ConcatEven(d16, hn::BitCast(d16, ToBits<S>(d, hi)), hn::BitCast(d16, ToBits<S>(d, lo)));
  }
}

template <class D, class S>
HWY_INLINE void StorePair(D d, hn::Vec<D> lo, hn::Vec<D> hi, S* HWY_RESTRICT p, bool stream) {
  const hn::Repartition<uint16_t, D> d16;
  const auto bits = PairBits<D, S>(d, lo, hi);
  auto* out = reinterpret_cast<uint16_t*>(p);
  constexpr size_t kBytes = hn::MaxLanes(decltype(d16)()) * sizeof(uint16_t);
  if (stream && hn::Lanes(d16) == hn::MaxLanes(d16) && reinterpret_cast<uintptr_t>(p) % kBytes == 0) {
    return hn::Stream(bits, d16, out);
  }
  hn::StoreU(bits, d16, out);
}
#endif

// Whether every whole-vector store of a loop at p, p + step, p + 2 * step, ... can be
// non-temporal (StoreOut's and StorePair's test, made once for a loop that then streams
// unchecked).
template <class D, class S>
HWY_INLINE bool StreamsAligned(D d, const S* p, size_t step) {
  constexpr size_t kBytes = hn::MaxLanes(D()) * sizeof(S) < 16 ? 0 : hn::MaxLanes(D()) * sizeof(S);
  return kBytes != 0 && hn::Lanes(d) == hn::MaxLanes(d) && reinterpret_cast<uintptr_t>(p) % kBytes == 0 &&
         step * sizeof(S) % kBytes == 0;
}

// A whole vector (float S) or a pair (half S) to p: non-temporal where kStream (p aligned as
// StreamsAligned checked), else a plain store.
template <bool kStream, class D, class S>
HWY_INLINE void PutFull(D d, hn::Vec<D> v, S* HWY_RESTRICT p) {
  if constexpr (kStream) {
    hn::Stream(v, d, p);
  } else {
    hn::StoreU(v, d, p);
  }
}
#if HWY_TARGET != HWY_SCALAR
template <bool kStream, class D, class S>
HWY_INLINE void PutPair(D d, hn::Vec<D> lo, hn::Vec<D> hi, S* HWY_RESTRICT p) {
  const hn::Repartition<uint16_t, D> d16;
  const auto bits = PairBits<D, S>(d, lo, hi);
  if constexpr (kStream) {
    hn::Stream(bits, d16, reinterpret_cast<uint16_t*>(p));
  } else {
    hn::StoreU(bits, d16, reinterpret_cast<uint16_t*>(p));
  }
}
#endif

// How far the output y lies ahead of the input x modulo 4 KiB, in bytes. A row pass with y
// 1 to 767 bytes ahead loads x at the page offsets of the stores it has just issued. Measured
// (Zen 3), LayerNorm 4096x4096 forward, one thread, y - x = 64 MiB + 32..700 bytes: 10-100 ms
// with non-temporal stores, 8 ms with plain ones, 5-6 ms at other offsets (768 bytes and up,
// or y - x a multiple of 4 KiB); the likely cause, a load matching an older store's low 12
// bits waits for it, and a non-temporal store leaves only when its line goes to memory.
// Walking the rows from their end streams at full speed from 64 to 512 bytes ahead (6.2-6.8
// ms; the loads then precede the stores they match) but not at 32 or 600-700. The row pairs
// stall so; single rows (WeightNorm) measured not. The bench's allocations hit it after
// gn32_detect (ln_last 44 ms instead of 6).
HWY_INLINE uintptr_t BytesAhead(const void* y, const void* x) {
  return (reinterpret_cast<uintptr_t>(y) - reinterpret_cast<uintptr_t>(x)) % 4096;
}

// Whether rows [a, a + n) and [b, b + n) share no element.
template <class S>
HWY_INLINE bool Apart(const S* a, const S* b, size_t n) {
  return a + n <= b || b + n <= a;
}

// Elements of a streamed row before its first one at a whole vector's alignment (0 where the
// row does not stream, is aligned, or is shorter): the row writers store them first, plainly,
// so that every whole vector after them streams. StoreOut and StorePair stream only aligned
// vectors, so a row 16 bytes off (NumPy's and malloc's alignment) wrote every vector plainly:
// RMSNorm and LayerNorm 4096x4096 forward 2.5 -> 4.0 ms at 2 threads (Zen 5 VM), where the
// cache lines read for ownership double the traffic. Each element's value is the same wherever
// its vector starts, so the bits are too.
// Rows under a page keep the plain stores: with a plain head and tail around every 1 KiB run,
// channels-last BatchNorm's and GroupNorm's backward (16x64x112x112, 16 bytes off) ran
// 7.3 -> 7.6-8.5 ms.
template <class D, class S>
HWY_INLINE size_t StreamHead(D d, const S* y, size_t n, bool stream) {
  constexpr size_t kBytes = hn::MaxLanes(D()) * sizeof(hn::TFromD<D>);  // a vector, or a pair of half S
  constexpr size_t kMinRowBytes = 4096;
  if (!stream || kBytes < 16 || hn::Lanes(d) != hn::MaxLanes(d) || n * sizeof(S) < kMinRowBytes) return 0;
  const size_t off = reinterpret_cast<uintptr_t>(y) % kBytes;
  if (off == 0 || off % sizeof(S) != 0) return 0;
  const size_t head = (kBytes - off) / sizeof(S);
  return head < n ? head : 0;
}

// A row's first `head` elements (StreamHead), plainly: out of line, so that the row writers
// stay small enough to be inlined where they were (ScaleShift into BatchNorm's run lists: the
// head inline made that call per run and BatchNorm 32x256x14x14 forward 8-10% slower).
template <class D, class S, class Value>
HWY_NOINLINE void WriteHead(D d, S* HWY_RESTRICT y, size_t head, Value& value) {
  const size_t N = hn::Lanes(d);
  for (size_t j = 0; j < head; j += N) {  // two steps at most (half S aligns to a pair)
    const size_t k = std::min(N, head - j);
    if (k == N) {
      StoreFull(d, value(j, k), y + j);
    } else {
      StorePartial(d, value(j, k), y + j, k);
    }
  }
}

// WriteHead for WriteRowPair's two rows.
template <class D, class S, class Value>
HWY_NOINLINE void WriteHeadPair(D d, S* HWY_RESTRICT y0, S* HWY_RESTRICT y1, size_t head, Value& value) {
  const size_t N = hn::Lanes(d);
  for (size_t j = 0; j < head; j += N) {
    const size_t k = std::min(N, head - j);
    const auto v = value(j, k);
    if (k == N) {
      StoreFull(d, v.first, y0 + j), StoreFull(d, v.second, y1 + j);
    } else {
      StorePartial(d, v.first, y0 + j, k), StorePartial(d, v.second, y1 + j, k);
    }
  }
}

template <class D, class S, class Value>
HWY_NOINLINE void WriteRowFromHead(D d, S* HWY_RESTRICT y, size_t n, size_t head, const S* fetch, Value& value,
                                   const S* fetch2);

// y[i] = value(i, k) over a row of n elements (value returns lanes [i, i + k), k <= Lanes(d)):
// whole vectors (half S in pairs), then the tail. Half S computes two pairs before storing
// them: on AVX2 a pair is half a cache line, and with the conversions' work between a line's
// two non-temporal halves LayerNorm/RMSNorm over 4096x4096 bf16 ran 15-25% slower (2 threads:
// LN 4.6 -> 4.0 ms, RMS bf16 4.4 -> 3.8, f16 4.2 -> 3.2). `apart`: y overlaps none of the rows value
// reads, so the tail may be written as the whole vector that ends the row (the elements before
// it computed and stored again, the same values) instead of a masked store. With fetch (and
// fetch2), the lines at fetch + i (fetch2 + i) are requested meanwhile: the rows read next.
template <bool kPeel = true, class D, class S, class Value>
HWY_INLINE void WriteRow(D d, S* HWY_RESTRICT y, size_t n, bool stream, bool apart, const S* fetch, Value&& value,
                         const S* fetch2 = nullptr) {
  if constexpr (kPeel) {  // a streamed row off a vector's alignment: its head first (StreamHead)
    const size_t head = stream ? StreamHead(d, y, n, stream) : 0;
    if (head > 0) return WriteRowFromHead(d, y, n, head, fetch, value, fetch2);
  }
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  auto whole = [&](auto fetching) NORMKIT_INLINE_LAMBDA {
    auto prefetch = [&](size_t j) NORMKIT_INLINE_LAMBDA {
      if constexpr (fetching) {
        hwy::Prefetch(fetch + j);
        if (fetch2) hwy::Prefetch(fetch2 + j);
      }
    };
#if HWY_TARGET != HWY_SCALAR
    if constexpr (!std::is_same_v<S, hn::TFromD<D>>) {
      for (; NORMKIT_SPEED_LOOPS && i + 4 * N <= n; i += 4 * N) {  // both pairs first (see above)
        prefetch(i);
        const auto a = value(i, N), b = value(i + N, N), c = value(i + 2 * N, N), e = value(i + 3 * N, N);
        StorePair(d, a, b, y + i, stream);
        StorePair(d, c, e, y + i + 2 * N, stream);
      }
      for (; i + 2 * N <= n; i += 2 * N) {
        prefetch(i);
        StorePair(d, value(i, N), value(i + N, N), y + i, stream);
      }
    }
#endif
    for (; i + N <= n; i += N) {
      prefetch(i);
      StoreOut(d, value(i, N), y + i, stream);
    }
  };
  if (fetch) {
    whole(std::true_type{});
  } else {
    whole(std::false_type{});
  }
  if (i < n) {
    if (apart && n >= N) return StoreFull(d, value(n - N, N), y + n - N);
    StorePartial(d, value(i, n - i), y + i, n - i);
  }
}

// WriteRow of a streamed row whose first `head` elements lie before a vector's alignment:
// those plainly (WriteHead), then the rest from the aligned one, streamed, its tail not over
// the lines just streamed (a plain store to a line still being written non-temporally waits
// for it: channels-last BatchNorm's 1 KiB runs, 16 bytes off, backward 5 -> 13 ms at 2
// threads). Out of line, so that the inlined writers keep their code (with the head inline,
// BatchNorm's run lists measured 4-10% slower).
template <class D, class S, class Value>
HWY_NOINLINE void WriteRowFromHead(D d, S* HWY_RESTRICT y, size_t n, size_t head, const S* fetch, Value& value,
                                   const S* fetch2) {
  WriteHead(d, y, head, value);
  WriteRow<false>(d, y + head, n - head, true, false, fetch ? fetch + head : nullptr,
                  [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA { return value(head + i, k); },
                  fetch2 ? fetch2 + head : nullptr);
}

template <class D, class S, class Value>
HWY_NOINLINE void WriteRowPairFromHead(D d, S* HWY_RESTRICT y0, S* HWY_RESTRICT y1, size_t n, size_t head,
                                       const S* fetch0, const S* fetch1, Value& value);

// WriteRow for two rows at once: value(i, k) returns lanes [i, i + k) of both (a std::pair), so
// what the rows share (an affine weight and bias along them) is loaded once for the two.
// fetch0/fetch1 as WriteRow's fetch/fetch2, both or neither.
// backward: from the row's end, in steps of 4 * Lanes(d), which must divide n (see
// BytesAhead).
template <bool kPeel = true, class D, class S, class Value>
HWY_INLINE void WriteRowPair(D d, S* HWY_RESTRICT y0, S* HWY_RESTRICT y1, size_t n, bool stream, bool apart,
                             const S* fetch0, const S* fetch1, Value&& value, bool backward = false) {
  if constexpr (kPeel) {  // as WriteRow's, where both rows lie equally far off the alignment
    const size_t head = stream && !backward ? StreamHead(d, y0, n, stream) : 0;
    if (head > 0 && StreamHead(d, y1, n, stream) == head)
      return WriteRowPairFromHead(d, y0, y1, n, head, fetch0, fetch1, value);
  }
  const size_t N = hn::Lanes(d);
#if NORMKIT_SPEED_LOOPS
  if (backward) {
    for (size_t j = n; j > 0;) {
      j -= 4 * N;
      if (fetch0) {
        hwy::Prefetch(fetch0 + j), hwy::Prefetch(fetch1 + j);
        if constexpr (std::is_same_v<S, hn::TFromD<D>>) hwy::Prefetch(fetch0 + j + 2 * N), hwy::Prefetch(fetch1 + j + 2 * N);
      }
      const auto a = value(j, N), b = value(j + N, N), c = value(j + 2 * N, N), e = value(j + 3 * N, N);
#if HWY_TARGET != HWY_SCALAR
      if constexpr (!std::is_same_v<S, hn::TFromD<D>>) {
        StorePair(d, a.first, b.first, y0 + j, stream), StorePair(d, c.first, e.first, y0 + j + 2 * N, stream);
        StorePair(d, a.second, b.second, y1 + j, stream), StorePair(d, c.second, e.second, y1 + j + 2 * N, stream);
        continue;
      }
#endif
      StoreOut(d, a.first, y0 + j, stream), StoreOut(d, b.first, y0 + j + N, stream);
      StoreOut(d, c.first, y0 + j + 2 * N, stream), StoreOut(d, e.first, y0 + j + 3 * N, stream);
      StoreOut(d, a.second, y1 + j, stream), StoreOut(d, b.second, y1 + j + N, stream);
      StoreOut(d, c.second, y1 + j + 2 * N, stream), StoreOut(d, e.second, y1 + j + 3 * N, stream);
    }
    return;
  }
#endif
  size_t i = 0;
  auto whole = [&](auto fetching) NORMKIT_INLINE_LAMBDA {
    auto prefetch = [&](size_t j) NORMKIT_INLINE_LAMBDA {
      if constexpr (fetching) hwy::Prefetch(fetch0 + j), hwy::Prefetch(fetch1 + j);
    };
#if HWY_TARGET != HWY_SCALAR
    if constexpr (!std::is_same_v<S, hn::TFromD<D>>) {
      for (; NORMKIT_SPEED_LOOPS && i + 4 * N <= n; i += 4 * N) {  // both pairs of each row first, as WriteRow
        prefetch(i);
        const auto a = value(i, N), b = value(i + N, N), c = value(i + 2 * N, N), e = value(i + 3 * N, N);
        StorePair(d, a.first, b.first, y0 + i, stream);
        StorePair(d, c.first, e.first, y0 + i + 2 * N, stream);
        StorePair(d, a.second, b.second, y1 + i, stream);
        StorePair(d, c.second, e.second, y1 + i + 2 * N, stream);
      }
      for (; i + 2 * N <= n; i += 2 * N) {
        prefetch(i);
        const auto a = value(i, N), b = value(i + N, N);
        StorePair(d, a.first, b.first, y0 + i, stream);
        StorePair(d, a.second, b.second, y1 + i, stream);
      }
    }
#endif
    for (; i + N <= n; i += N) {
      prefetch(i);
      const auto v = value(i, N);
      StoreOut(d, v.first, y0 + i, stream);
      StoreOut(d, v.second, y1 + i, stream);
    }
  };
  if (fetch0) {
    whole(std::true_type{});
  } else {
    whole(std::false_type{});
  }
  if (i < n) {
    const size_t at = apart && n >= N ? n - N : i, k = n - at;
    const auto v = value(at, k);
    if (k == N) return StoreFull(d, v.first, y0 + at), StoreFull(d, v.second, y1 + at);
    StorePartial(d, v.first, y0 + at, k), StorePartial(d, v.second, y1 + at, k);
  }
}

// WriteRowFromHead for WriteRowPair's two rows.
template <class D, class S, class Value>
HWY_NOINLINE void WriteRowPairFromHead(D d, S* HWY_RESTRICT y0, S* HWY_RESTRICT y1, size_t n, size_t head,
                                       const S* fetch0, const S* fetch1, Value& value) {
  WriteHeadPair(d, y0, y1, head, value);
  WriteRowPair<false>(d, y0 + head, y1 + head, n - head, true, false, fetch0 ? fetch0 + head : nullptr,
                      fetch1 ? fetch1 + head : nullptr,
                      [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA { return value(head + i, k); });
}

// v rounded to S and widened back (identity for float/double storage).
template <class S, class D>
HWY_INLINE hn::Vec<D> RoundTo(D d, hn::Vec<D> v) {
  if constexpr (std::is_same_v<S, hn::TFromD<D>>) {
    return v;
  } else {
    return FromBits<S>(d, ToBits<S>(d, v));
  }
}

// ---- bfloat16 rows as their even and odd elements -------------------------------------------
// 2 * Lanes(d) bfloat16 at p read as 32-bit lanes hold an even element in each lane's low half
// and the next odd one in its high half: the odd elements are the lanes masked, the even ones
// the lanes shifted, and back one shift, a mask and an OR, the halves in place. No shuffle,
// against a widening shuffle and a shift per vector in and a shift per vector, a pack and a
// permutation per pair out, which on Zen 3 queue on the two ports the multiplies use too.
// Little-endian targets only; the lanes are then in even/odd order, so an affine along the row
// must be too (EvenOddAffine).
#undef NORMKIT_EVEN_ODD  // this file is compiled once per target
#if HWY_TARGET != HWY_SCALAR && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NORMKIT_EVEN_ODD 1
#else
#define NORMKIT_EVEN_ODD 0
#endif

// The first elements of a row of n that the even/odd loop takes: whole lines of 4 * Lanes(d)
// (on AVX2 one 64-byte line), the rest in natural order.
template <class D>
HWY_INLINE size_t EvenOddSpan(D d, size_t n) {
  return NORMKIT_EVEN_ODD ? n - n % (4 * hn::Lanes(d)) : 0;
}

// out = v[0, len) in the order the even/odd loop reads an affine along its rows: each stretch
// of 2 * Lanes(d) within EvenOddSpan its even elements, then its odd ones; after it, as v.
// Returns whether that loop exists for S (bfloat16 on a little-endian vector target); if not,
// out is not written.
template <class S, class C = compute_t<S>>
bool EvenOddAffine(const C* HWY_RESTRICT v, int64_t len, C* HWY_RESTRICT out) {
  if (!(NORMKIT_EVEN_ODD && std::is_same_v<S, bfloat16>)) return false;
  const hn::ScalableTag<C> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len), span = EvenOddSpan(d, n);
  for (size_t i = 0; i < span; i += 2 * N)
    for (size_t j = 0; j < N; ++j) out[i + j] = v[i + 2 * j], out[i + N + j] = v[i + 2 * j + 1];
  std::copy(v + span, v + n, out + span);
  return true;
}

#if NORMKIT_EVEN_ODD
template <class D>
HWY_INLINE void LoadEvenOdd(D d, const bfloat16* HWY_RESTRICT p, hn::Vec<D>& even, hn::Vec<D>& odd) {
  const hn::RebindToUnsigned<D> du;
  const auto u = hn::LoadU(du, reinterpret_cast<const uint32_t*>(p));
  even = hn::BitCast(d, hn::ShiftLeft<16>(u));
  odd = hn::BitCast(d, hn::And(u, hn::Set(du, 0xFFFF0000u)));
}

// even and odd rounded to bfloat16 (as ToBits) and written to p as 2 * Lanes(d) elements;
// non-temporal where kStream (p aligned to a whole vector).
template <bool kStream, class D>
HWY_INLINE void PutEvenOdd(D d, hn::Vec<D> even, hn::Vec<D> odd, bfloat16* HWY_RESTRICT p) {
  const hn::RebindToUnsigned<D> du;
  const auto bits =
      hn::Or(hn::ShiftRight<16>(BF16High(d, even)), hn::And(BF16High(d, odd), hn::Set(du, 0xFFFF0000u)));
  auto* out = reinterpret_cast<uint32_t*>(p);
  if constexpr (kStream) {
    hn::Stream(bits, du, out);
  } else {
    hn::StoreU(bits, du, out);
  }
}
#endif

// ---- the primitives ------------------------------------------------------------------------

// Sums the lanes of four accumulators, in a fixed order (a tree within the vector). Each
// lane holds a partial of len / (4 * lanes) elements, so this last step costs no accuracy.
template <class D, class V>
double lane_sum(D d, V a, V b, V c, V e) {
  return double(hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a, b), hn::Add(c, e)))));
}

// Calls body(std::bool_constant<b>()) for the runtime b: a loop compiled both ways, so a flag
// that holds for a whole row is not tested per vector.
template <class Body>
HWY_INLINE void WithFlag(bool b, Body&& body) {
  if (b) {
    body(std::true_type());
  } else {
    body(std::false_type());
  }
}

// x - hi - lo, or x itself where the shift is 0 (RMSNorm: the same bits, two subtractions fewer).
template <bool kCentered, class V>
HWY_INLINE V Center(V x, V hi, V lo) {
  if constexpr (kCentered) {
    return hn::Sub(hn::Sub(x, hi), lo);
  } else {
    return x;
  }
}

template <class C>
HWY_INLINE bool Shifted(C m_hi, C m_lo) {
  return m_hi != C(0) || m_lo != C(0);
}

// DevSums's loop, calling then(i, k) after summing each stretch [i, i + k) (4 vectors, one,
// or the tail's k < Lanes(d) elements): the fused pass below does its own work there.
template <class S, class C, class Then>
HWY_INLINE void DevSumsThen(const S* HWY_RESTRICT x, int64_t len, C m_hi, C m_lo, double* s1, double* s2,
                            Then&& then) {
  const hn::ScalableTag<C> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len);
  const auto hi = hn::Set(d, m_hi), lo = hn::Set(d, m_lo);
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  auto q0 = hn::Zero(d), q1 = hn::Zero(d), q2 = hn::Zero(d), q3 = hn::Zero(d);
  size_t i = 0;
  WithFlag(Shifted(m_hi, m_lo), [&](auto centered) NORMKIT_INLINE_LAMBDA {
    for (; i + 4 * N <= n; i += 4 * N) {
      hn::Vec<decltype(d)> v0, v1, v2, v3;
#if NORMKIT_EVEN_ODD
      if constexpr (std::is_same_v<S, bfloat16>) {  // the same stretch, its lanes in even/odd order
        LoadEvenOdd(d, x + i, v0, v1), LoadEvenOdd(d, x + i + 2 * N, v2, v3);
      } else
#endif
      {
        v0 = LoadFull(d, x + i), v1 = LoadFull(d, x + i + N), v2 = LoadFull(d, x + i + 2 * N);
        v3 = LoadFull(d, x + i + 3 * N);
      }
      const auto d0 = Center<centered>(v0, hi, lo), d1 = Center<centered>(v1, hi, lo);
      const auto d2 = Center<centered>(v2, hi, lo), d3 = Center<centered>(v3, hi, lo);
      a0 = hn::Add(a0, d0), a1 = hn::Add(a1, d1), a2 = hn::Add(a2, d2), a3 = hn::Add(a3, d3);
      q0 = hn::MulAdd(d0, d0, q0), q1 = hn::MulAdd(d1, d1, q1), q2 = hn::MulAdd(d2, d2, q2), q3 = hn::MulAdd(d3, d3, q3);
      then(i, 4 * N);
    }
  });
  for (; i + N <= n; i += N) {
    const auto v = hn::Sub(hn::Sub(LoadFull(d, x + i), hi), lo);
    a0 = hn::Add(a0, v), q0 = hn::MulAdd(v, v, q0);
    then(i, N);
  }
  if (i < n) {
    const Tail t(d, i, n);
    const auto v = hn::IfThenElseZero(TailLanes(d, t, i, n), hn::Sub(hn::Sub(LoadTail(d, x, t, i, n), hi), lo));
    a0 = hn::Add(a0, v), q0 = hn::MulAdd(v, v, q0);
    then(i, n - i);
  }
  *s1 = lane_sum(d, a0, a1, a2, a3);
  *s2 = lane_sum(d, q0, q1, q2, q3);
}

template <class S, class C = compute_t<S>>
void DevSums(const S* HWY_RESTRICT x, int64_t len, C m_hi, C m_lo, double* s1, double* s2) {
  DevSumsThen(x, len, m_hi, m_lo, s1, s2, [](size_t, size_t) NORMKIT_INLINE_LAMBDA {});
}

// DevSums of xs (the same loop, so its bits) and in it ScaleShift of xn into y: per element
// ScaleShift's value, stored as WriteRow stores it.
template <class S, class C = compute_t<S>>
void DevSumsScaleShift(const S* HWY_RESTRICT xs, int64_t len, C s_hi, C s_lo, double* s1, double* s2,
                       const S* HWY_RESTRICT xn, S* y, C m_hi, C m_lo, C alpha, C beta, bool stream) {
  const hn::ScalableTag<C> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len);
  const auto mh = hn::Set(d, m_hi), ml = hn::Set(d, m_lo), a = hn::Set(d, alpha), b = hn::Set(d, beta);
  auto value = [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA {
    return hn::MulAdd(hn::Sub(hn::Sub(LoadN(d, xn + i, k), mh), ml), a, b);
  };
  DevSumsThen(xs, len, s_hi, s_lo, s1, s2, [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA {
    if (k >= N) {
      for (size_t j = 0; j < k; j += N) StoreOut(d, value(i + j, N), y + i + j, stream);
    } else if (n >= N && Apart<S>(xn, y, n)) {
      StoreFull(d, value(n - N, N), y + n - N);
    } else {
      StorePartial(d, value(i, k), y + i, k);
    }
  });
}

#if NORMKIT_EVEN_ODD
// WriteRow for a bfloat16 row whose every element depends on inputs at its own index only:
// its stretches of 2 * Lanes(d) computed even/odd (eo(i, even, odd) sets stretch i's results),
// two at a time (a line's halves stored together, see WriteRow), the rest as WriteRow does it
// with value; fetch and fetch2 (either null) as WriteRow's.
template <class D, class EvenOdd, class Value>
HWY_INLINE void WriteRowEvenOdd(D d, bfloat16* HWY_RESTRICT y, size_t n, bool stream, bool apart,
                                const bfloat16* fetch, const bfloat16* fetch2, EvenOdd&& eo, Value&& value) {
  const size_t N = hn::Lanes(d), span = n - n % (2 * N);
  const hn::RebindToUnsigned<D> du;
  WithFlag(stream && StreamsAligned(du, reinterpret_cast<const uint32_t*>(y), N), [&](auto kStream)
               NORMKIT_INLINE_LAMBDA {
                 auto put = [&](size_t i) NORMKIT_INLINE_LAMBDA {
                   hn::Vec<D> e, o;
                   eo(i, e, o);
                   PutEvenOdd<kStream>(d, e, o, y + i);
                 };
                 size_t i = 0;
                 for (; i + 4 * N <= span; i += 4 * N) {
                   if (fetch) hwy::Prefetch(fetch + i);
                   if (fetch2) hwy::Prefetch(fetch2 + i);
                   put(i), put(i + 2 * N);
                 }
                 if (i < span) put(i);
               });
  if (span == n) return;
  if (apart && n - span < N && n >= N) return StoreFull(d, value(n - N, N), y + n - N);  // as WriteRow's tail
  WriteRow(d, y + span, n - span, stream, apart, static_cast<const bfloat16*>(nullptr),
           [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA { return value(span + i, k); });
}
#endif

// Inlined into its callers: called per run as a function (BatchNorm's lists of 196-element
// runs), BatchNorm 32x256x14x14 forward ran 8-10% slower (Zen 5 VM, 2026-11-29).
template <class S, class C = compute_t<S>>
HWY_INLINE void ScaleShift(const S* HWY_RESTRICT x, S* y, int64_t len, C m_hi, C m_lo, C alpha, C beta, bool stream,
                           const S* next = nullptr) {  // next: the row to fetch meanwhile, if any
  const hn::ScalableTag<C> d;
  const auto hi = hn::Set(d, m_hi), lo = hn::Set(d, m_lo), a = hn::Set(d, alpha), b = hn::Set(d, beta);
  const size_t n = static_cast<size_t>(len);
  auto value = [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA {
    return hn::MulAdd(hn::Sub(hn::Sub(LoadN(d, x + i, k), hi), lo), a, b);
  };
#if NORMKIT_EVEN_ODD
  if constexpr (std::is_same_v<S, bfloat16>) {
    return WriteRowEvenOdd(d, y, n, stream, Apart<S>(x, y, n), next, nullptr, [&](size_t i, auto& e, auto& o)
                               NORMKIT_INLINE_LAMBDA {
                                 LoadEvenOdd(d, x + i, e, o);
                                 e = hn::MulAdd(hn::Sub(hn::Sub(e, hi), lo), a, b);
                                 o = hn::MulAdd(hn::Sub(hn::Sub(o, hi), lo), a, b);
                               }, value);
  }
#endif
  WriteRow(d, y, n, stream, Apart<S>(x, y, n), next, value);
}

// fetch: the row to request meanwhile (out of cache: the one read next), or null.
template <class S, class C = compute_t<S>>
void ScaleShiftRows(const S* HWY_RESTRICT x, S* y, int64_t len, C m_hi, C m_lo, C rstd,
                    const C* HWY_RESTRICT w, const C* HWY_RESTRICT b, bool round_xhat, bool stream,
                    const S* fetch) {
  const hn::ScalableTag<C> d;
  const size_t n = static_cast<size_t>(len);
  const auto hi = hn::Set(d, m_hi), lo = hn::Set(d, m_lo), r = hn::Set(d, rstd);
  WithFlag(Shifted(m_hi, m_lo), [&](auto centered) NORMKIT_INLINE_LAMBDA {
    WithFlag(w != nullptr, [&](auto has_w) NORMKIT_INLINE_LAMBDA {
      WithFlag(b != nullptr, [&](auto has_b) NORMKIT_INLINE_LAMBDA {
        WriteRow(d, y, n, stream, Apart<S>(x, y, n), fetch, [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA {
          auto xh = hn::Mul(Center<centered>(LoadN(d, x + i, k), hi, lo), r);
          if (round_xhat) xh = RoundTo<S>(d, xh);
          const auto wv = has_w ? LoadN(d, w + i, k) : hn::Set(d, C(1));
          return hn::MulAdd(xh, wv, has_b ? LoadN(d, b + i, k) : hn::Zero(d));
        });
      });
    });
  });
}

// ScaleShiftRows for rows x0 and x1 (y0, y1; means s0, s1; rstd r0, r1) side by side, the
// same bits: each vector of w and b loaded once for both rows. One row a time, the affine rows'
// loads (x, w, b) cost LayerNorm 4096x4096 out of cache a fifth of its time against RMSNorm's.
template <class S, class C = compute_t<S>>
void ScaleShiftRowPair(const S* x0, const S* x1, S* y0, S* y1, int64_t len, SplitMean<C> s0, SplitMean<C> s1,
                       C r0, C r1, const C* HWY_RESTRICT w, const C* HWY_RESTRICT b, bool round_xhat, bool stream,
                       const S* fetch0, const S* fetch1, bool backward = false) {
  const hn::ScalableTag<C> d;
  const size_t n = static_cast<size_t>(len);
  const auto hi0 = hn::Set(d, s0.hi), lo0 = hn::Set(d, s0.lo), rv0 = hn::Set(d, r0);
  const auto hi1 = hn::Set(d, s1.hi), lo1 = hn::Set(d, s1.lo), rv1 = hn::Set(d, r1);
  const bool apart = Apart<S>(x0, y0, n) && Apart<S>(x0, y1, n) && Apart<S>(x1, y0, n) && Apart<S>(x1, y1, n);
  WithFlag(Shifted(s0.hi, s0.lo) || Shifted(s1.hi, s1.lo), [&](auto centered) NORMKIT_INLINE_LAMBDA {
    WithFlag(w != nullptr, [&](auto has_w) NORMKIT_INLINE_LAMBDA {
      WithFlag(b != nullptr, [&](auto has_b) NORMKIT_INLINE_LAMBDA {
        WriteRowPair(d, y0, y1, n, stream, apart, fetch0, fetch1, [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA {
          auto xh0 = hn::Mul(Center<centered>(LoadN(d, x0 + i, k), hi0, lo0), rv0);
          auto xh1 = hn::Mul(Center<centered>(LoadN(d, x1 + i, k), hi1, lo1), rv1);
          if (round_xhat) xh0 = RoundTo<S>(d, xh0), xh1 = RoundTo<S>(d, xh1);
          const auto wv = has_w ? LoadN(d, w + i, k) : hn::Set(d, C(1));
          const auto bv = has_b ? LoadN(d, b + i, k) : hn::Zero(d);
          return std::make_pair(hn::MulAdd(xh0, wv, bv), hn::MulAdd(xh1, wv, bv));
        }, backward);
      });
    });
  });
}

#if NORMKIT_EVEN_ODD
// ScaleShiftRows (kRows 1) or ScaleShiftRowPair (kRows 2) of bfloat16 rows (x[k], y[k]; means
// s[k], rstd r[k]; fetch[k] or null as WriteRowPair's): [0, EvenOddSpan) even/odd, with w and
// b (either may be null) in EvenOddAffine's order, the rest by those kernels. The same bits:
// each element computed as there. backward: the line stretches from the row's end (see
// BytesAhead).
template <size_t kRows, class C>
void ScaleShiftEvenOdd(const bfloat16* const* x, bfloat16* const* y, size_t n, const SplitMean<C>* s, const C* r,
                       const C* HWY_RESTRICT w, const C* HWY_RESTRICT b, bool round_xhat, bool stream,
                       const bfloat16* const* fetch, bool backward) {
  const hn::ScalableTag<C> d;
  const hn::RebindToUnsigned<decltype(d)> du;
  const size_t N = hn::Lanes(d), span = EvenOddSpan(d, n);
  hn::Vec<decltype(d)> hi[kRows], lo[kRows], rv[kRows];
  bool centered = false, aligned = stream && hn::Lanes(du) == hn::MaxLanes(du);
  for (size_t k = 0; k < kRows; ++k) {
    hi[k] = hn::Set(d, s[k].hi), lo[k] = hn::Set(d, s[k].lo), rv[k] = hn::Set(d, r[k]);
    centered = centered || Shifted(s[k].hi, s[k].lo);
    aligned = aligned && reinterpret_cast<uintptr_t>(y[k]) % (hn::MaxLanes(du) * sizeof(uint32_t)) == 0;
  }
  WithFlag(centered, [&](auto kCentered) NORMKIT_INLINE_LAMBDA {
    WithFlag(round_xhat, [&](auto kRound) NORMKIT_INLINE_LAMBDA {
      WithFlag(w != nullptr, [&](auto has_w) NORMKIT_INLINE_LAMBDA {
        WithFlag(b != nullptr, [&](auto has_b) NORMKIT_INLINE_LAMBDA {
          auto stretch = [&](size_t i) NORMKIT_INLINE_LAMBDA {  // 4 * N elements of each row from i
            if (fetch)
              for (size_t k = 0; k < kRows; ++k) hwy::Prefetch(fetch[k] + i);
            for (size_t k = 0; k < kRows; ++k) {  // a row's line computed, then stored
              hn::Vec<decltype(d)> v[4];
              LoadEvenOdd(d, x[k] + i, v[0], v[1]);
              LoadEvenOdd(d, x[k] + i + 2 * N, v[2], v[3]);
              for (size_t q = 0; q < 4; ++q) {
                auto xh = hn::Mul(Center<kCentered>(v[q], hi[k], lo[k]), rv[k]);
                if constexpr (kRound) xh = RoundTo<bfloat16>(d, xh);
                v[q] = hn::MulAdd(xh, has_w ? hn::LoadU(d, w + i + q * N) : hn::Set(d, C(1)),
                                  has_b ? hn::LoadU(d, b + i + q * N) : hn::Zero(d));
              }
              if (aligned) {
                PutEvenOdd<true>(d, v[0], v[1], y[k] + i), PutEvenOdd<true>(d, v[2], v[3], y[k] + i + 2 * N);
              } else {
                PutEvenOdd<false>(d, v[0], v[1], y[k] + i), PutEvenOdd<false>(d, v[2], v[3], y[k] + i + 2 * N);
              }
            }
          };
          if (backward) {
            for (size_t i = span; i > 0;) stretch(i -= 4 * N);
          } else {
            for (size_t i = 0; i < span; i += 4 * N) stretch(i);
          }
        });
      });
    });
  });
  if (span == n) return;
  // The rest in natural order (w and b are too there), as the row kernels take it.
  const C* w_rest = w ? w + span : w;
  const C* b_rest = b ? b + span : b;
  if constexpr (kRows == 2) {
    ScaleShiftRowPair(x[0] + span, x[1] + span, y[0] + span, y[1] + span, int64_t(n - span), s[0], s[1], r[0], r[1],
                      w_rest, b_rest, round_xhat, stream, fetch ? fetch[0] + span : nullptr,
                      fetch ? fetch[1] + span : nullptr);
  } else {
    static_assert(kRows == 1);
    ScaleShiftRows(x[0] + span, y[0] + span, int64_t(n - span), s[0].hi, s[0].lo, r[0], w_rest, b_rest, round_xhat,
                   stream, fetch ? fetch[0] + span : nullptr);
  }
}
#endif

// GradSums's loop, calling then(i, k) after summing each stretch [i, i + k) (two vectors, one,
// or the tail's k < Lanes(d) elements), as DevSumsThen.
template <class S, class C, class Then>
HWY_INLINE void GradSumsThen(const S* HWY_RESTRICT dy, const S* HWY_RESTRICT x, int64_t len, C m_hi, C m_lo,
                             const C* HWY_RESTRICT w, double* s1, double* s2, Then&& then) {
  const hn::ScalableTag<C> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len);
  const auto hi = hn::Set(d, m_hi), lo = hn::Set(d, m_lo);
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), q0 = hn::Zero(d), q1 = hn::Zero(d);
  size_t i = 0;
  WithFlag(Shifted(m_hi, m_lo), [&](auto centered) NORMKIT_INLINE_LAMBDA {
    WithFlag(w != nullptr, [&](auto has_w) NORMKIT_INLINE_LAMBDA {
      auto step = [&](size_t j, auto& a, auto& q) NORMKIT_INLINE_LAMBDA {
        auto g = LoadFull(d, dy + j);
        if constexpr (has_w) g = hn::Mul(g, hn::LoadU(d, w + j));
        const auto dv = Center<centered>(LoadFull(d, x + j), hi, lo);
        a = hn::Add(a, g), q = hn::MulAdd(g, dv, q);
      };
      // Two streams from memory (or the LLC): within a long row each is requested 4 KiB ahead,
      // which the hardware prefetcher alone does not keep up with (GroupNorm 2x256x100x152
      // backward 10% faster). Short runs (BatchNorm's 196 elements) fetch nothing: their next
      // 4 KiB belong to other statistics.
      auto step2 = [&](size_t j) NORMKIT_INLINE_LAMBDA {  // [j, j + 2N)
#if NORMKIT_EVEN_ODD
        // (S tested on its own: clang checks a branch whose condition still depends on has_w)
        if constexpr (std::is_same_v<S, bfloat16>) {
          if constexpr (!has_w) {  // lanes in even/odd order
            hn::Vec<decltype(d)> ge, go, xe, xo;
            LoadEvenOdd(d, dy + j, ge, go), LoadEvenOdd(d, x + j, xe, xo);
            a0 = hn::Add(a0, ge), q0 = hn::MulAdd(ge, Center<centered>(xe, hi, lo), q0);
            a1 = hn::Add(a1, go), q1 = hn::MulAdd(go, Center<centered>(xo, hi, lo), q1);
            return;
          }
        }
#endif
        step(j, a0, q0), step(j + N, a1, q1);
      };
      constexpr size_t kAhead = 4096 / sizeof(S);
      for (; i + 2 * N + kAhead <= n; i += 2 * N) {
        hwy::Prefetch(dy + i + kAhead), hwy::Prefetch(x + i + kAhead);
        if constexpr (2 * sizeof(S) * hn::MaxLanes(d) > 64) {  // two lines per step
          hwy::Prefetch(dy + i + kAhead + N), hwy::Prefetch(x + i + kAhead + N);
        }
        step2(i);
        then(i, 2 * N);
      }
      for (; i + 2 * N <= n; i += 2 * N) step2(i), then(i, 2 * N);
    });
  });
  for (; i + N <= n; i += N) {
    auto g = LoadFull(d, dy + i);
    if (w) g = hn::Mul(g, hn::LoadU(d, w + i));
    a0 = hn::Add(a0, g), q0 = hn::MulAdd(g, hn::Sub(hn::Sub(LoadFull(d, x + i), hi), lo), q0);
    then(i, N);
  }
  if (i < n) {
    const Tail t(d, i, n);
    const auto live = TailLanes(d, t, i, n);
    auto g = LoadTail(d, dy, t, i, n);
    if (w) g = hn::Mul(g, LoadTail(d, w, t, i, n));
    g = hn::IfThenElseZero(live, g);
    const auto dv = hn::IfThenElseZero(live, hn::Sub(hn::Sub(LoadTail(d, x, t, i, n), hi), lo));
    a0 = hn::Add(a0, g), q0 = hn::MulAdd(g, dv, q0);
    then(i, n - i);
  }
  *s1 = lane_sum(d, a0, a1, hn::Zero(d), hn::Zero(d));
  *s2 = lane_sum(d, q0, q1, hn::Zero(d), hn::Zero(d));
}

template <class S, class C = compute_t<S>>
void GradSums(const S* HWY_RESTRICT dy, const S* HWY_RESTRICT x, int64_t len, C m_hi, C m_lo,
              const C* HWY_RESTRICT w, double* s1, double* s2) {
  GradSumsThen(dy, x, len, m_hi, m_lo, w, s1, s2, [](size_t, size_t) NORMKIT_INLINE_LAMBDA {});
}

// GradSums of dy and x, unweighted (the same loop, so its bits), and in it dx = dy * P: the
// backward through fixed statistics (BatchNorm in eval mode), whose dx does not involve x.
template <class S, class C = compute_t<S>>
void GradSumsScale(const S* HWY_RESTRICT dy, const S* HWY_RESTRICT x, S* dx, int64_t len, C m_hi, C m_lo, C P,
                   double* s1, double* s2, bool stream) {
  const hn::ScalableTag<C> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len);
  const auto p = hn::Set(d, P);
  auto value = [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA { return hn::Mul(LoadN(d, dy + i, k), p); };
  GradSumsThen(dy, x, len, m_hi, m_lo, static_cast<const C*>(nullptr), s1, s2,
               [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA {
                 if (k >= N) {
                   for (size_t j = 0; j < k; j += N) StoreOut(d, value(i + j, N), dx + i + j, stream);
                 } else if (n >= N && Apart<S>(dx, dy, n)) {  // elements before i: their values again
                   StoreFull(d, value(n - N, N), dx + n - N);
                 } else {
                   StorePartial(d, value(i, k), dx + i, k);
                 }
               });
}

// GradInput's fetch_at, besides an offset >= 0: streaming, the next row's lines (rows that follow
// each other: LayerNorm's, a GroupNorm group's channels), or none (the rows read next lie
// elsewhere: BatchNorm's next statistic).
constexpr int64_t kFetchNextRow = -1, kFetchNone = -2;

template <class S, class C = compute_t<S>>
void GradInput(const S* HWY_RESTRICT dy, const S* HWY_RESTRICT x, S* dx, int64_t len, C m_hi, C m_lo,
               const C* HWY_RESTRICT w, C P, C Q, C R, bool stream, int64_t fetch_at = kFetchNextRow) {
  // fetch_at >= 0: the lines fetch_at elements further on in dy and x are requested meanwhile.
  const bool next_row = stream && fetch_at == kFetchNextRow;
  const S* fetch_dy = fetch_at >= 0 ? dy + fetch_at : next_row ? dy + len : nullptr;
  const S* fetch_x = fetch_at >= 0 ? x + fetch_at : next_row ? x + len : nullptr;
  const hn::ScalableTag<C> d;
  const auto hi = hn::Set(d, m_hi), lo = hn::Set(d, m_lo);
  const auto p = hn::Set(d, P), q = hn::Set(d, Q), r = hn::Set(d, R);
  const size_t n = static_cast<size_t>(len);
#if NORMKIT_EVEN_ODD
  if constexpr (std::is_same_v<S, bfloat16>) {
    if (!w) {  // (a w along the row would have to be in even/odd order)
      return WithFlag(Shifted(m_hi, m_lo), [&](auto centered) NORMKIT_INLINE_LAMBDA {
        WriteRowEvenOdd(
            d, dx, n, stream, Apart<S>(dx, dy, n) && Apart<S>(dx, x, n), fetch_dy, fetch_x,
            [&](size_t i, auto& e, auto& o) NORMKIT_INLINE_LAMBDA {
              hn::Vec<decltype(d)> xe, xo;
              LoadEvenOdd(d, dy + i, e, o), LoadEvenOdd(d, x + i, xe, xo);
              e = hn::MulAdd(e, p, hn::MulAdd(Center<centered>(xe, hi, lo), q, r));
              o = hn::MulAdd(o, p, hn::MulAdd(Center<centered>(xo, hi, lo), q, r));
            },
            [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA {
              return hn::MulAdd(LoadN(d, dy + i, k), p, hn::MulAdd(Center<centered>(LoadN(d, x + i, k), hi, lo), q, r));
            });
      });
    }
  }
#endif
  WithFlag(Shifted(m_hi, m_lo), [&](auto centered) NORMKIT_INLINE_LAMBDA {
    WithFlag(w != nullptr, [&](auto has_w) NORMKIT_INLINE_LAMBDA {
      WriteRow(
          d, dx, n, stream, Apart<S>(dx, dy, n) && Apart<S>(dx, x, n), fetch_dy,
          [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA {
            auto g = LoadN(d, dy + i, k);
            if constexpr (has_w) g = hn::Mul(g, LoadN(d, w + i, k));
            const auto dv = Center<centered>(LoadN(d, x + i, k), hi, lo);
            return hn::MulAdd(g, p, hn::MulAdd(dv, q, r));
          },
          fetch_x);
    });
  });
}

// ---- lists of runs: one dispatched call per statistic -------------------------------------

// A list's runs (BatchNorm NCHW: one per image, H*W elements, C*H*W apart) are each too short
// for the hardware prefetcher to find before the run ends, so every run waits on the LLC's
// latency line by line. The run kListAhead further on is requested whole meanwhile: its x
// (and dy) in the sums pass, its output lines (written next, a read for ownership each)
// in the pass that writes. Longer runs are left to the hardware. BatchNorm 32x256x14x14
// forward+backward in cache, Zen 3, 2 threads: 2.25 -> 1.33 ms.
constexpr int64_t kListAhead = 2;
constexpr int64_t kListFetchMax = 4096;  // bytes of a run, at most

template <class S>
HWY_INLINE bool FetchesRuns(int64_t len) {
  return len * int64_t(sizeof(S)) <= kListFetchMax;
}

template <class S>
HWY_INLINE void FetchRun(const S* p, int64_t len) {
  const char* c = reinterpret_cast<const char*>(p);
  const int64_t bytes = len * int64_t(sizeof(S));
  for (int64_t o = 0; o < bytes; o += 64) hwy::Prefetch(c + o);
  hwy::Prefetch(c + bytes - 1);  // the last line, where the run does not start on one
}

template <class S, class C = compute_t<S>>
void DevSumsList(const S* x, const int64_t* offs, int64_t count, int64_t len, C hi, C lo, double* s1, double* s2) {
  double a = 0, b = 0;
  const bool fetch = FetchesRuns<S>(len);
  for (int64_t r = 0; r < count; ++r) {
    double p, q;
    if (fetch && r + kListAhead < count) FetchRun(x + offs[r + kListAhead], len);
    DevSums(x + offs[r], len, hi, lo, &p, &q);
    a += p, b += q;
  }
  *s1 = a, *s2 = b;
}

template <class S, class C = compute_t<S>>
void ScaleShiftList(const S* x, S* y, const int64_t* offs, int64_t count, int64_t len, C hi, C lo, C alpha, C beta,
                    bool stream) {
  const bool fetch = !stream && FetchesRuns<S>(len);  // streamed lines are not read
  for (int64_t r = 0; r < count; ++r) {
    if (fetch && r + kListAhead < count) FetchRun(y + offs[r + kListAhead], len);
    ScaleShift(x + offs[r], y + offs[r], len, hi, lo, alpha, beta, stream);
  }
}

// The runs' sums added in run order, run(r, &p, &q) giving run r's (and writing its output in
// the same loop, if any); the runs kListAhead further on requested meanwhile: their dy and x,
// and their output lines where `out` (written next, a read for ownership each) is given.
template <class S, class Run>
HWY_INLINE void SumRunList(const S* dy, const S* x, const S* out, const int64_t* offs, int64_t count, int64_t len,
                           double* s1, double* s2, Run&& run) {
  double a = 0, b = 0;
  const bool fetch = FetchesRuns<S>(len);
  for (int64_t r = 0; r < count; ++r) {
    double p, q;
    if (fetch && r + kListAhead < count) {
      FetchRun(x + offs[r + kListAhead], len);
      FetchRun(dy + offs[r + kListAhead], len);
      if (out) FetchRun(out + offs[r + kListAhead], len);
    }
    run(r, &p, &q);
    a += p, b += q;
  }
  *s1 = a, *s2 = b;
}

template <class S, class C = compute_t<S>>
void GradSumsList(const S* dy, const S* x, const int64_t* offs, int64_t count, int64_t len, C hi, C lo, double* s1,
                  double* s2) {
  SumRunList(dy, x, static_cast<const S*>(nullptr), offs, count, len, s1, s2,
             [&](int64_t r, double* p, double* q) NORMKIT_INLINE_LAMBDA {
               GradSums(dy + offs[r], x + offs[r], len, hi, lo, static_cast<const C*>(nullptr), p, q);
             });
}

// Per run: GradSumsScale, the sums added in run order (as GradSumsList's).
template <class S, class C = compute_t<S>>
void GradSumsScaleList(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t count, int64_t len, C hi, C lo,
                       C P, double* s1, double* s2, bool stream) {
  SumRunList(dy, x, stream ? nullptr : dx, offs, count, len, s1, s2,  // streamed lines are not read
             [&](int64_t r, double* p, double* q) NORMKIT_INLINE_LAMBDA {
               GradSumsScale(dy + offs[r], x + offs[r], dx + offs[r], len, hi, lo, P, p, q, stream);
             });
}

// Whether `count` runs of len at offs follow each other in memory (a GroupNorm group's channels;
// not BatchNorm's runs, an image apart): then the row after a run is the one read next.
HWY_INLINE bool RunsFollow(const int64_t* offs, int64_t count, int64_t len) {
  return count > 0 && offs[count - 1] - offs[0] == (count - 1) * len;
}

template <class S, class C = compute_t<S>>
void GradInputList(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t count, int64_t len, C hi, C lo, C P,
                   C Q, C R, bool stream) {
  const bool fetch = !stream && FetchesRuns<S>(len);  // streamed lines are not read
  // Streaming, a run's next row is the next statistic's (BatchNorm: the next channel) unless the
  // runs follow each other: not requested then (see grad_input's next_row_follows).
  const bool follow = RunsFollow(offs, count, len);
  for (int64_t r = 0; r < count; ++r) {
    if (fetch && r + kListAhead < count) FetchRun(dx + offs[r + kListAhead], len);
    GradInput(dy + offs[r], x + offs[r], dx + offs[r], len, hi, lo, static_cast<const C*>(nullptr), P, Q, R, stream,
              follow ? kFetchNextRow : kFetchNone);
  }
}

// Per run: y = d * alpha[r] + beta[r]. Runs that follow each other (a GroupNorm group's
// channels): the next statistic's x, which the sums read next, is requested meanwhile.
template <class S, class C = compute_t<S>>
void ScaleShiftRuns(const S* x, S* y, const int64_t* offs, int64_t count, int64_t len, C hi, C lo, const C* alpha,
                    const C* beta, bool stream) {
  const int64_t span = count * len;
  const bool fetch = RunsFollow(offs, count, len) && span * int64_t(sizeof(S)) <= kFetchNextMax;
  for (int64_t r = 0; r < count; ++r)
    ScaleShift(x + offs[r], y + offs[r], len, hi, lo, alpha[r], beta[r], stream, fetch ? x + offs[r] + span : nullptr);
}

// Requests the line holding element i of `base` into L2 (prefetcht1). The address is computed
// as an integer: it may lie past the end of base's array (the next block, or none), where
// pointer arithmetic would be undefined; a request there faults nothing.
template <class S>
HWY_INLINE void RequestL2(const S* base, size_t i) {
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(base) + i * sizeof(S)), 0, 2);
}

// The walk of a span: `total` elements in runs of L >= one vector that follow each other in
// memory, written at out as whole vectors aligned to out. vectors(i, stop, r) writes run r's
// whole vectors from i while they end by stop and returns where it stopped; edge(i, k, r, end)
// gives lanes [i, i + k) (k <= N) of run r, those from `end` on (if any) of run r + 1: the
// partial vectors at the span's two ends and the vector across each run's end.
template <class D, class S, class Vectors, class Edge>
HWY_INLINE void WriteSpan(D d, S* out, size_t total, size_t L, bool stream, Vectors&& vectors, Edge&& edge) {
  const size_t N = hn::Lanes(d), align = N * sizeof(S), at = reinterpret_cast<uintptr_t>(out) % align;
  size_t i = std::min(total, at == 0 ? 0 : (align - at) / sizeof(S)), r = 0;  // i: out + i is aligned
  if (i > 0) StorePartial(d, edge(0, i, 0, L), out, i);
  while (i + N <= total) {
    while (i >= (r + 1) * L) ++r;
    const size_t end = (r + 1) * L;
    i = vectors(i, std::min(end, total), r);
    if (i + N <= total && i < end) {  // the vector across this run's end
      StoreOut(d, edge(i, N, r, end), out + i, stream);
      i += N;
    }
  }
  if (i < total) {
    while (i >= (r + 1) * L) ++r;
    StorePartial(d, edge(i, total - i, r, (r + 1) * L), out + i, total - i);
  }
}

// y = (x - (hi[r] + lo[r])) * alpha[r] + beta[r] over `count` runs of len elements that follow
// each other in memory (BatchNorm on NCHW: a thread's channels), each element as ScaleShift
// computes it, written as one span (WriteSpan): whole vectors aligned to y, a vector that
// straddles two runs taking each lane's parameters from its own run (len >= one vector: at
// most two). Streamed run by run instead, every run's first and last cache lines would be
// partial, and a partial line's non-temporal stores cost more than the read for ownership they
// avoid; rows shorter than a vector go run by run. fetch: the span read next (InstanceNorm's
// next block of rows), requested into L2 a vector ahead of each one written here, or null.
template <class S, class C = compute_t<S>>
void ScaleShiftSpan(const S* HWY_RESTRICT x, S* y, int64_t count, int64_t len, const C* hi, const C* lo,
                    const C* alpha, const C* beta, bool stream, const S* fetch = nullptr) {
  const hn::ScalableTag<C> d;
  const size_t N = hn::Lanes(d), L = static_cast<size_t>(len);
  if (L < N || reinterpret_cast<uintptr_t>(y) % sizeof(S) != 0) {
    for (int64_t r = 0; r < count; ++r)
      ScaleShift(x + r * len, y + r * len, len, hi[r], lo[r], alpha[r], beta[r], stream);
    return;
  }
  auto f = [](auto v, auto h, auto l, auto a, auto b)
               NORMKIT_INLINE_LAMBDA { return hn::MulAdd(hn::Sub(hn::Sub(v, h), l), a, b); };
  auto edge = [&](size_t i, size_t k, size_t r, size_t end) NORMKIT_INLINE_LAMBDA {
    auto h = hn::Set(d, hi[r]), l = hn::Set(d, lo[r]), a = hn::Set(d, alpha[r]), b = hn::Set(d, beta[r]);
    if (i + k > end) {
      const auto mine = hn::FirstN(d, end - i);
      h = hn::IfThenElse(mine, h, hn::Set(d, hi[r + 1])), l = hn::IfThenElse(mine, l, hn::Set(d, lo[r + 1]));
      a = hn::IfThenElse(mine, a, hn::Set(d, alpha[r + 1])), b = hn::IfThenElse(mine, b, hn::Set(d, beta[r + 1]));
    }
    return f(LoadN(d, x + i, k), h, l, a, b);
  };
  WithFlag(fetch != nullptr, [&](auto fetching) NORMKIT_INLINE_LAMBDA {
    WriteSpan(d, y, static_cast<size_t>(count) * L, L, stream, [&](size_t i, size_t stop, size_t r) NORMKIT_INLINE_LAMBDA {
      const auto h = hn::Set(d, hi[r]), l = hn::Set(d, lo[r]), a = hn::Set(d, alpha[r]), b = hn::Set(d, beta[r]);
      for (; i + N <= stop; i += N) {
        if constexpr (fetching) RequestL2(fetch, i);
        StoreOut(d, f(LoadFull(d, x + i), h, l, a, b), y + i, stream);
      }
      return i;
    }, edge);
  });
}

// Per run: a[r], b[r] = GradSums of run r (unweighted), and dx = P[r] * dy + Q * d + R.
template <class S, class C = compute_t<S>>
void GradSumsRuns(const S* dy, const S* x, const int64_t* offs, int64_t count, int64_t len, C hi, C lo, double* a,
                  double* b) {
  for (int64_t r = 0; r < count; ++r)
    GradSums(dy + offs[r], x + offs[r], len, hi, lo, static_cast<const C*>(nullptr), a + r, b + r);
}

template <class S, class C = compute_t<S>>
void GradInputRuns(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t count, int64_t len, C hi, C lo,
                   const C* P, C Q, C R, bool stream) {
  // Runs that follow each other (a GroupNorm group's channels), a small statistic: the next
  // statistic's, which the sums read next, are requested meanwhile (in cache, GroupNorm
  // 32x256x14x14 backward 15% faster).
  const int64_t span = count * len;
  const bool fetch = RunsFollow(offs, count, len) && span * int64_t(sizeof(S)) <= kFetchNextMax;
  for (int64_t r = 0; r < count; ++r)
    GradInput(dy + offs[r], x + offs[r], dx + offs[r], len, hi, lo, static_cast<const C*>(nullptr), P[r], Q, R,
              stream, fetch ? span : -1);
}

template <class S, class C = compute_t<S>>
void DevSumsRows(const S* x, const int64_t* offs, int64_t count, int64_t len, const double* m, double* s1,
                 double* s2, S* const* copies) {
  for (int64_t k = 0; k < count; ++k) {
    const SplitMean<C> split(m ? m[k] : 0.0);
    const S* HWY_RESTRICT row = x + offs[k];
    if (!copies) {
      DevSums(row, len, split.hi, split.lo, s1 + k, s2 + k);
      continue;
    }
    S* HWY_RESTRICT copy = copies[k];
    DevSumsThen(row, len, split.hi, split.lo, s1 + k, s2 + k, [&](size_t i, size_t n) NORMKIT_INLINE_LAMBDA {
      std::memcpy(copy + i, row + i, n * sizeof(S));
    });
  }
}

template <class S, class C = compute_t<S>>
void GradSumsRows(const S* dy, const S* x, const int64_t* offs, int64_t count, int64_t len, const double* mean,
                  double* s1, double* s2) {
  for (int64_t k = 0; k < count; ++k) {
    const SplitMean<C> split(mean[k]);
    double p, q;
    GradSums(dy + offs[k], x + offs[k], len, split.hi, split.lo, static_cast<const C*>(nullptr), &p, &q);
    s1[k] = 0.0 + p, s2[k] = 0.0 + q;  // as GradSumsList's sum of one run
  }
}

// dx = P[r] * dy + Q[r] * ((x - hi[r]) - lo[r]) + R[r] over `count` runs of len >= one vector
// that follow each other at dy, x and dx (InstanceNorm on NCHW: a block of rows), each element
// as GradInput computes it, written as one span of vectors aligned to dx, as ScaleShiftSpan
// writes y: streamed, only the span's two ends are partial cache lines. With fetch_next, the
// spans of dy and x that follow (the next block of rows, whose sums are taken next) are
// requested into L2 meanwhile, as ScaleShiftSpan's `fetch`.
template <class S, class C = compute_t<S>>
void GradInputSpan(const S* HWY_RESTRICT dy, const S* HWY_RESTRICT x, S* dx, int64_t count, int64_t len,
                   const double* mean, const C* P, const C* Q, const C* R, bool stream, bool fetch_next) {
  const hn::ScalableTag<C> d;
  const size_t N = hn::Lanes(d), L = static_cast<size_t>(len), total = static_cast<size_t>(count) * L;
  auto edge = [&](size_t i, size_t k, size_t r, size_t end) NORMKIT_INLINE_LAMBDA {
    const SplitMean<C> m(mean[r]);
    auto hi = hn::Set(d, m.hi), lo = hn::Set(d, m.lo), p = hn::Set(d, P[r]), q = hn::Set(d, Q[r]), rr = hn::Set(d, R[r]);
    if (i + k > end) {
      const SplitMean<C> m1(mean[r + 1]);
      const auto mine = hn::FirstN(d, end - i);
      hi = hn::IfThenElse(mine, hi, hn::Set(d, m1.hi)), lo = hn::IfThenElse(mine, lo, hn::Set(d, m1.lo));
      p = hn::IfThenElse(mine, p, hn::Set(d, P[r + 1])), q = hn::IfThenElse(mine, q, hn::Set(d, Q[r + 1]));
      rr = hn::IfThenElse(mine, rr, hn::Set(d, R[r + 1]));
    }
    return hn::MulAdd(LoadN(d, dy + i, k), p, hn::MulAdd(Center<true>(LoadN(d, x + i, k), hi, lo), q, rr));
  };
  WithFlag(fetch_next, [&](auto fetching) NORMKIT_INLINE_LAMBDA {
    WriteSpan(d, dx, total, L, stream, [&](size_t i, size_t stop, size_t r) NORMKIT_INLINE_LAMBDA {
      const SplitMean<C> m(mean[r]);
      const auto hi = hn::Set(d, m.hi), lo = hn::Set(d, m.lo);
      const auto p = hn::Set(d, P[r]), q = hn::Set(d, Q[r]), rr = hn::Set(d, R[r]);
      for (; i + N <= stop; i += N) {
        if constexpr (fetching) RequestL2(dy, total + i), RequestL2(x, total + i);
        const auto g = LoadFull(d, dy + i), dv = Center<true>(LoadFull(d, x + i), hi, lo);
        StoreOut(d, hn::MulAdd(g, p, hn::MulAdd(dv, q, rr)), dx + i, stream);
      }
      return i;
    }, edge);
  });
}

template <class S, class C = compute_t<S>>
void GradInputRows(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t count, int64_t len,
                   const double* mean, const C* P, const C* Q, const C* R, bool stream, bool fetch_next) {
  if constexpr (sizeof(S) >= 4) {  // rows that follow each other: one span (GradInputSpan)
    bool follow = count > 1 && len >= int64_t(hn::Lanes(hn::ScalableTag<C>())) &&
                  reinterpret_cast<uintptr_t>(dx) % sizeof(S) == 0;
    for (int64_t k = 1; k < count && follow; ++k) follow = offs[k] == offs[0] + k * len;
    if (follow)
      return GradInputSpan(dy + offs[0], x + offs[0], dx + offs[0], count, len, mean, P, Q, R, stream, fetch_next);
  }
  for (int64_t k = 0; k < count; ++k) {
    const SplitMean<C> split(mean[k]);
    GradInput(dy + offs[k], x + offs[k], dx + offs[k], len, split.hi, split.lo, static_cast<const C*>(nullptr), P[k],
              Q[k], R[k], stream);
  }
}

template <class S, class C = compute_t<S>>
void ScaleShiftRowsList(const S* x, S* y, const int64_t* offs, int64_t count, int64_t len, const double* mean,
                        const double* alpha, const double* beta, bool stream) {
  // Out of cache, each row fetches its twin in the next block (the same spacing assumed): the
  // statistics pass reads them next. Fetching the next row of this block instead (which that
  // pass has just read) left WeightNorm's 4096x4096 statistics waiting on memory: 5.5 -> 4.2 ms.
  const int64_t step = count > 1 ? offs[1] - offs[0] : len;
  for (int64_t k = 0; k < count; ++k) {
    const SplitMean<C> split(mean[k]);
    const S* next = stream ? x + offs[k] + count * step : nullptr;
    ScaleShift(x + offs[k], y + offs[k], len, split.hi, split.lo, C(alpha[k]), C(beta[k]), stream, next);
  }
}

template <class S, class C = compute_t<S>>
void ScaleShiftRowsAffineList(const S* x, S* y, const int64_t* offs, int64_t count, int64_t len, const double* mean,
                              const double* rstd, const C* w, const C* b, bool round_xhat, bool stream,
                              const S* const* copies, bool even_odd) {
  static_cast<void>(even_odd);  // read only where the even/odd loop exists
  // Out of cache, the rows of the next block (the same spacing assumed) are fetched meanwhile:
  // the statistics pass reads them next.
  const int64_t step = count > 1 ? offs[1] - offs[0] : len;
  // Output just ahead of an input (BytesAhead; the weight and bias read along the rows count as
  // x does: y 16-448 bytes ahead of w made RMSNorm 4096x4096 forward 9-105 ms instead of 6,
  // one thread): the pairs walk their rows from the end where that streams at full speed and
  // the length allows, else store plainly. Out of cache the driver passes copies of x's rows, w
  // and b placed where that cannot happen where it can (engine.cpp, AwayFromStores): forward
  // streams faster still. Each row is assessed with the source it reads.
  auto source = [&](int64_t k) { return copies ? copies[k] : x + offs[k]; };
  auto assess = [&](int64_t k, bool& ahead, bool& walkable) {
    const S* row_y = y + offs[k];
    for (const uintptr_t d : {BytesAhead(row_y, source(k)), w ? BytesAhead(row_y, w) : uintptr_t{0},
                              b ? BytesAhead(row_y, b) : uintptr_t{0}}) {
      if (d == 0 || d >= kStoresNear) continue;  // as stores_just_ahead (d is needed below)
      ahead = true;
      walkable = walkable && d >= 64 && d <= 512;
    }
  };
  const bool walk_fits = NORMKIT_SPEED_LOOPS && stream && size_t(len) % (4 * hn::Lanes(hn::ScalableTag<C>())) == 0;
  int64_t k = 0;
  for (; k + 2 <= count; k += 2) {
    const S* x0 = x + offs[k];
    const S* x1 = x + offs[k + 1];
    bool ahead = false, walkable = true;
    assess(k, ahead, walkable), assess(k + 1, ahead, walkable);
    const bool backward = walk_fits && ahead && walkable, nt = stream && (!ahead || backward);
#if NORMKIT_EVEN_ODD
    if constexpr (std::is_same_v<S, bfloat16>) {
      if (even_odd || (!w && !b)) {  // the line stretches even/odd, the rest below as ever
        const S* xs[2] = {source(k), source(k + 1)};
        S* ys[2] = {y + offs[k], y + offs[k + 1]};
        const S* next[2] = {x0 + count * step, x1 + count * step};
        const SplitMean<C> sm[2] = {SplitMean<C>(mean[k]), SplitMean<C>(mean[k + 1])};
        const C rs[2] = {C(rstd[k]), C(rstd[k + 1])};
        ScaleShiftEvenOdd<2>(xs, ys, size_t(len), sm, rs, w, b, round_xhat, nt, stream ? next : nullptr, backward);
        continue;
      }
    }
#endif
    ScaleShiftRowPair(source(k), source(k + 1), y + offs[k], y + offs[k + 1], len, SplitMean<C>(mean[k]),
                      SplitMean<C>(mean[k + 1]), C(rstd[k]), C(rstd[k + 1]), w, b, round_xhat, nt,
                      stream ? x0 + count * step : nullptr, stream ? x1 + count * step : nullptr, backward);
  }
  for (; k < count; ++k) {
    const SplitMean<C> split(mean[k]);
    bool ahead = false, walkable = true;
    assess(k, ahead, walkable);
#if NORMKIT_EVEN_ODD
    if constexpr (std::is_same_v<S, bfloat16>) {
      if (even_odd || (!w && !b)) {
        const S* xs[1] = {source(k)};
        S* ys[1] = {y + offs[k]};
        const S* next[1] = {x + offs[k] + count * step};
        const C rs[1] = {C(rstd[k])};
        ScaleShiftEvenOdd<1>(xs, ys, size_t(len), &split, rs, w, b, round_xhat, stream && !ahead,
                             stream ? next : nullptr, false);
        continue;
      }
    }
#endif
    ScaleShiftRows(source(k), y + offs[k], len, split.hi, split.lo, C(rstd[k]), w, b, round_xhat, stream && !ahead,
                   stream ? x + offs[k] + count * step : nullptr);
  }
}

// ---- column mode: double lanes, one accumulator or coefficient per element -------------

// k <= Lanes(dd) elements of S at p, widened to double (the rest 0).
template <class DD, class S>
HWY_INLINE hn::Vec<DD> LoadWide(DD dd, const S* HWY_RESTRICT p, size_t k) {
  if constexpr (std::is_same_v<S, double>) {
    return k == hn::Lanes(dd) ? hn::LoadU(dd, p) : LoadPartial(dd, p, k);
  } else {
    const hn::Rebind<float, DD> df;
    return hn::PromoteTo(dd, k == hn::Lanes(dd) ? LoadFull(df, p) : LoadPartial(df, p, k));
  }
}

// Writes the first k lanes of v to p as S (double -> float -> half, each rounding to nearest
// even, as the scalar T(double) conversions do).
template <class DD, class S>
HWY_INLINE void StoreNarrow(DD dd, hn::Vec<DD> v, S* HWY_RESTRICT p, size_t k, bool stream = false) {
  if constexpr (std::is_same_v<S, double>) {
    if (k == hn::Lanes(dd)) return StoreOut(dd, v, p, stream);
    hn::BlendedStore(v, hn::FirstN(dd, k), dd, p);
  } else {
    const hn::Rebind<float, DD> df;
    const auto f = hn::DemoteTo(df, v);
    if (k == hn::Lanes(dd)) return StoreOut(df, f, p, stream);
    StorePartial(df, f, p, k);
  }
}

template <class DD>
HWY_INLINE hn::Vec<DD> LoadAcc(DD dd, const double* HWY_RESTRICT p, size_t k) {
  return LoadWide(dd, p, k);
}
template <class DD>
HWY_INLINE void StoreAcc(DD dd, hn::Vec<DD> v, double* HWY_RESTRICT p, size_t k) {
  StoreNarrow(dd, v, p, k);
}

// Calls step(i, k) over [0, n) in vectors of k = Lanes lanes (the last one partial).
template <class DD, class Step>
HWY_INLINE void ForLanes(DD dd, int64_t len, Step&& step) {
  const size_t N = hn::Lanes(dd), n = static_cast<size_t>(len);
  for (size_t i = 0; i < n; i += N) step(i, std::min(N, n - i));
}

template <class S>
void ColAddSqDev(double* HWY_RESTRICT acc, const S* HWY_RESTRICT x, int64_t len, const double* HWY_RESTRICT mean) {
  const hn::ScalableTag<double> dd;
  ForLanes(dd, len, [&](size_t i, size_t k) {
    const auto d = hn::Sub(LoadWide(dd, x + i, k), LoadAcc(dd, mean + i, k));
    StoreAcc(dd, hn::MulAdd(d, d, LoadAcc(dd, acc + i, k)), acc + i, k);
  });
}

// dx = P[i] * dy + Q[i] * (x - mean[i]) + R[i] on one run.
template <class S>
void ColGradInput(const S* HWY_RESTRICT dy, const S* HWY_RESTRICT x, S* HWY_RESTRICT dx, int64_t len,
                  const double* HWY_RESTRICT mean, const double* HWY_RESTRICT P, const double* HWY_RESTRICT Q,
                  const double* HWY_RESTRICT R, bool stream) {
  const hn::ScalableTag<double> dd;
  ForLanes(dd, len, [&](size_t i, size_t k) {
    const auto d = hn::Sub(LoadWide(dd, x + i, k), LoadAcc(dd, mean + i, k));
    const auto v = hn::MulAdd(LoadAcc(dd, P + i, k), LoadWide(dd, dy + i, k),
                              hn::MulAdd(LoadAcc(dd, Q + i, k), d, LoadAcc(dd, R + i, k)));
    StoreNarrow(dd, v, dx + i, k, stream);
  });
}

// ---- column blocks: `rows` runs of `len` elements at x + offs[r]; element i of every run
// is column i.

// p[0, k) += v's first k lanes, widened to double.
template <class D>
HWY_INLINE void AddWide(D d, hn::Vec<D> v, double* HWY_RESTRICT p, size_t k, bool assign = false) {
  using C = hn::TFromD<D>;
  if constexpr (std::is_same_v<C, double>) {
    const auto sum = hn::Add(assign ? hn::Zero(d) : LoadAcc(d, p, k), v);
    return StoreAcc(d, sum, p, k);
  } else {
    C tmp[kMaxLanes];
    hn::StoreU(v, d, tmp);
    const hn::ScalableTag<double> dd;
    ForLanes(dd, int64_t(k), [&](size_t j, size_t kk) {
      StoreAcc(dd, hn::Add(assign ? hn::Zero(dd) : LoadAcc(dd, p + j, kk), LoadWide(dd, tmp + j, kk)), p + j, kk);
    });
  }
}

// Column blocks (channels-last) visit short runs through a list of offsets, and the forward's
// few instructions per line keep too few lines in flight: the lines [i, i + n) of the run
// kRunsAhead further down the list are requested meanwhile (past the block's end too). Out of
// cache this made the channels-last BatchNorm forward about 20% faster (16x64x112x112, 2
// threads); in the backward, with more arithmetic per line, and in the row lists it measured
// no better or worse.
inline constexpr int64_t kRunsAhead = 2;

// The address of the run kRunsAhead after run r; past the block's end, the block's last step
// continued (where the next block's runs lie on channels-last data). Only ever prefetched.
template <class S>
HWY_INLINE const char* RunAhead(const S* x, const int64_t* HWY_RESTRICT offs, int64_t r, int64_t rows) {
  const int64_t a = r + kRunsAhead, last = offs[rows - 1];
  const int64_t off = a < rows ? offs[a] : rows < 2 ? last : last + (a - rows + 1) * (last - offs[rows - 2]);
  return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(x) + uintptr_t(off) * sizeof(S));
}

template <class S>
HWY_INLINE void FetchAhead(const S* HWY_RESTRICT x, const int64_t* HWY_RESTRICT offs, int64_t r, int64_t rows,
                           size_t i, size_t n) {
  const char* p = RunAhead(x, offs, r, rows) + i * sizeof(S);
  for (size_t b = 0; b < n * sizeof(S); b += 64) hwy::Prefetch(p + b);
}

// Consecutive runs: the lines of k elements at p, requested a block (kColRows runs) ahead of
// their use. A block of runs walks its columns in chunks, each a stride of one run through
// the block, so the hardware's sequential prefetch sees no stream (in cache: GroupNorm
// 32x256x14x14 NHWC forward 0.42 -> 0.38 ms; 2 and 8 runs ahead gained less).
template <class S>
HWY_INLINE void FetchColumns(const S* p, size_t k) {
  for (size_t b = 0; b < k * sizeof(S); b += 64) hwy::Prefetch(reinterpret_cast<const char*>(p) + b);
}

// A column block's two sums over columns [i, i + kColVecs * Lanes(d)): step(r, a0..a3, q0..q3)
// adds run r into one set of accumulators (the first kColVecs of each used). Even and odd runs
// go to separate sets (independent chains), added together and then to s1 / s2 in double.
template <class D, class Step>
HWY_INLINE void PairedColumnSums(D d, int64_t rows, size_t i, double* HWY_RESTRICT s1, double* HWY_RESTRICT s2,
                                 Step&& step) {
  const size_t N = hn::Lanes(d);
  auto a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0, q0 = a0, q1 = a0, q2 = a0, q3 = a0;
  auto b0 = a0, b1 = a0, b2 = a0, b3 = a0, p0 = a0, p1 = a0, p2 = a0, p3 = a0;
  int64_t r = 0;
  for (; r + 2 <= rows; r += 2) {
    step(r, a0, a1, a2, a3, q0, q1, q2, q3);
    step(r + 1, b0, b1, b2, b3, p0, p1, p2, p3);
  }
  if (r < rows) step(r, a0, a1, a2, a3, q0, q1, q2, q3);
  AddWide(d, hn::Add(a0, b0), s1 + i, N), AddWide(d, hn::Add(a1, b1), s1 + i + N, N);
  AddWide(d, hn::Add(q0, p0), s2 + i, N), AddWide(d, hn::Add(q1, p1), s2 + i + N, N);
  if constexpr (kColVecs == 4) {
    AddWide(d, hn::Add(a2, b2), s1 + i + 2 * N, N), AddWide(d, hn::Add(a3, b3), s1 + i + 3 * N, N);
    AddWide(d, hn::Add(q2, p2), s2 + i + 2 * N, N), AddWide(d, hn::Add(q3, p3), s2 + i + 3 * N, N);
  }
}

// s1[i] += sum over the runs of d, s2[i] += sum of d^2, d = x - shift[i]. kColVecs column
// vectors at a time stay in registers over all the runs (at most kColRows), even and odd runs
// in separate accumulators, then go to double. at(r): run r; fetch(r, i, k): request what a
// later run needs of columns [i, i + k).
template <class S, class C, class At, class Fetch>
HWY_INLINE void ColDevSumsOf(At&& at, Fetch&& fetch, int64_t rows, int64_t len, const C* HWY_RESTRICT shift,
                             double* HWY_RESTRICT s1, double* HWY_RESTRICT s2) {
  const hn::ScalableTag<C> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len);
  size_t i = 0;
  for (; i + kColVecs * N <= n; i += kColVecs * N) {
    const auto k0 = hn::LoadU(d, shift + i), k1 = hn::LoadU(d, shift + i + N);
    auto k2 = hn::Zero(d), k3 = k2;
    if constexpr (kColVecs == 4) k2 = hn::LoadU(d, shift + i + 2 * N), k3 = hn::LoadU(d, shift + i + 3 * N);
    PairedColumnSums(d, rows, i, s1, s2, [&](int64_t r, auto& A0, auto& A1, auto& A2, auto& A3, auto& Q0,
                                             auto& Q1, auto& Q2, auto& Q3) NORMKIT_INLINE_LAMBDA {
      fetch(r, i, kColVecs * N);
      const S* p = at(r) + i;
      const auto d0 = hn::Sub(LoadFull(d, p), k0), d1 = hn::Sub(LoadFull(d, p + N), k1);
      A0 = hn::Add(A0, d0), A1 = hn::Add(A1, d1), Q0 = hn::MulAdd(d0, d0, Q0), Q1 = hn::MulAdd(d1, d1, Q1);
      if constexpr (kColVecs == 4) {
        const auto d2 = hn::Sub(LoadFull(d, p + 2 * N), k2), d3 = hn::Sub(LoadFull(d, p + 3 * N), k3);
        A2 = hn::Add(A2, d2), A3 = hn::Add(A3, d3), Q2 = hn::MulAdd(d2, d2, Q2), Q3 = hn::MulAdd(d3, d3, Q3);
      }
    });
  }
  for (; i < n; i += N) {
    const size_t k = std::min(N, n - i);
    const auto kv = LoadN(d, shift + i, k);
    auto a = hn::Zero(d), q = hn::Zero(d);
    for (int64_t r = 0; r < rows; ++r) {
      fetch(r, i, k);
      const auto dv = hn::IfThenElseZero(hn::FirstN(d, k), hn::Sub(LoadN(d, at(r) + i, k), kv));
      a = hn::Add(a, dv), q = hn::MulAdd(dv, dv, q);
    }
    AddWide(d, a, s1 + i, k), AddWide(d, q, s2 + i, k);
  }
}

// ColDevSumsOf over the runs at x + offs[r]; offs null: `rows` consecutive runs from x, in
// blocks of kColRows (the blocks the listed form is given, so the same sums).
template <class S, class C = compute_t<S>>
void ColDevSums(const S* HWY_RESTRICT x, const int64_t* HWY_RESTRICT offs, int64_t rows, int64_t len,
                const C* HWY_RESTRICT shift, double* HWY_RESTRICT s1, double* HWY_RESTRICT s2) {
  if (offs) {
    return ColDevSumsOf<S>([&](int64_t r) NORMKIT_INLINE_LAMBDA { return x + offs[r]; },
                           [&](int64_t r, size_t i, size_t k) NORMKIT_INLINE_LAMBDA { FetchAhead(x, offs, r, rows, i, k); },
                           rows, len, shift, s1, s2);
  }
  // One chunk of columns: the block is read in order, which the hardware follows by itself.
  const bool chunked = size_t(len) > kColVecs * hn::Lanes(hn::ScalableTag<C>());
  for (int64_t b = 0; b < rows; b += kColRows) {
    const S* xb = x + b * len;
    auto at = [&](int64_t r) NORMKIT_INLINE_LAMBDA { return xb + r * len; };
    if (chunked) {
      ColDevSumsOf<S>(at, [&](int64_t r, size_t i, size_t k) NORMKIT_INLINE_LAMBDA {
        FetchColumns(xb + (r + kColRows) * len + i, k);
      }, std::min(kColRows, rows - b), len, shift, s1, s2);
    } else {
      ColDevSumsOf<S>(at, [](int64_t, size_t, size_t) NORMKIT_INLINE_LAMBDA {}, std::min(kColRows, rows - b), len,
                      shift, s1, s2);
    }
  }
}

// LayerNorm's and RMSNorm's dweight / dbias sums over a block of rows, each row its own
// statistic (hi[r] + lo[r], rstd[r]): s1[i] += sum dy, s2[i] += sum dy * (x - mean_r) * rstd_r.
// Four column vectors at a time stay in registers over the block's rows, then go to double.
template <class S, class C = compute_t<S>>
void ColGradSumsRows(const S* HWY_RESTRICT dy, const S* HWY_RESTRICT x, const int64_t* HWY_RESTRICT offs,
                     int64_t rows, int64_t len, const C* HWY_RESTRICT hi, const C* HWY_RESTRICT lo,
                     const C* HWY_RESTRICT rstd, double* HWY_RESTRICT s1, double* HWY_RESTRICT s2, bool assign) {
  const hn::ScalableTag<C> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    auto q0 = hn::Zero(d), q1 = hn::Zero(d), q2 = hn::Zero(d), q3 = hn::Zero(d);
    for (int64_t r = 0; r < rows; ++r) {
      const auto h = hn::Set(d, hi[r]), l = hn::Set(d, lo[r]), rs = hn::Set(d, rstd[r]);
      const S* pg = dy + offs[r] + i;
      const S* px = x + offs[r] + i;
      const auto g0 = LoadFull(d, pg), g1 = LoadFull(d, pg + N), g2 = LoadFull(d, pg + 2 * N), g3 = LoadFull(d, pg + 3 * N);
      a0 = hn::Add(a0, g0), a1 = hn::Add(a1, g1), a2 = hn::Add(a2, g2), a3 = hn::Add(a3, g3);
      q0 = hn::MulAdd(g0, hn::Mul(hn::Sub(hn::Sub(LoadFull(d, px), h), l), rs), q0);
      q1 = hn::MulAdd(g1, hn::Mul(hn::Sub(hn::Sub(LoadFull(d, px + N), h), l), rs), q1);
      q2 = hn::MulAdd(g2, hn::Mul(hn::Sub(hn::Sub(LoadFull(d, px + 2 * N), h), l), rs), q2);
      q3 = hn::MulAdd(g3, hn::Mul(hn::Sub(hn::Sub(LoadFull(d, px + 3 * N), h), l), rs), q3);
    }
    AddWide(d, a0, s1 + i, N, assign), AddWide(d, a1, s1 + i + N, N, assign);
    AddWide(d, a2, s1 + i + 2 * N, N, assign), AddWide(d, a3, s1 + i + 3 * N, N, assign);
    AddWide(d, q0, s2 + i, N, assign), AddWide(d, q1, s2 + i + N, N, assign);
    AddWide(d, q2, s2 + i + 2 * N, N, assign), AddWide(d, q3, s2 + i + 3 * N, N, assign);
  }
  for (; i < n; i += N) {
    const size_t k = std::min(N, n - i);
    const auto live = hn::FirstN(d, k);
    auto a = hn::Zero(d), q = hn::Zero(d);
    for (int64_t r = 0; r < rows; ++r) {
      const auto g = LoadN(d, dy + offs[r] + i, k);
      const auto xh = hn::Mul(hn::Sub(hn::Sub(LoadN(d, x + offs[r] + i, k), hn::Set(d, hi[r])), hn::Set(d, lo[r])),
                              hn::Set(d, rstd[r]));
      a = hn::Add(a, g), q = hn::MulAdd(g, hn::IfThenElseZero(live, xh), q);
    }
    AddWide(d, a, s1 + i, k, assign), AddWide(d, q, s2 + i, k, assign);
  }
}

// The backward's column blocks keep double lanes: a statistic of a few elements (RMSNorm or
// WeightNorm over a trailing dim of 1 or 2) makes dx a difference of nearly equal terms.
// With g = dy: s1[i] += sum g, s2[i] += sum g * (x - mean[i]).
template <class S>
void ColGradSumsBlock(const S* HWY_RESTRICT dy, const S* HWY_RESTRICT x, const int64_t* HWY_RESTRICT offs,
                      int64_t rows, int64_t len, const double* HWY_RESTRICT mean, double* HWY_RESTRICT s1,
                      double* HWY_RESTRICT s2) {
  const hn::ScalableTag<double> dd;
  const size_t N = hn::Lanes(dd), n = static_cast<size_t>(len);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    const auto m0 = hn::LoadU(dd, mean + i), m1 = hn::LoadU(dd, mean + i + N);
    const auto m2 = hn::LoadU(dd, mean + i + 2 * N), m3 = hn::LoadU(dd, mean + i + 3 * N);
    auto a0 = hn::Zero(dd), a1 = hn::Zero(dd), a2 = hn::Zero(dd), a3 = hn::Zero(dd);
    auto q0 = hn::Zero(dd), q1 = hn::Zero(dd), q2 = hn::Zero(dd), q3 = hn::Zero(dd);
    for (int64_t r = 0; r < rows; ++r) {
      const S* px = x + offs[r] + i;
      const S* pg = dy + offs[r] + i;
      const auto g0 = LoadWide(dd, pg, N), g1 = LoadWide(dd, pg + N, N);
      const auto g2 = LoadWide(dd, pg + 2 * N, N), g3 = LoadWide(dd, pg + 3 * N, N);
      a0 = hn::Add(a0, g0), a1 = hn::Add(a1, g1), a2 = hn::Add(a2, g2), a3 = hn::Add(a3, g3);
      q0 = hn::MulAdd(g0, hn::Sub(LoadWide(dd, px, N), m0), q0);
      q1 = hn::MulAdd(g1, hn::Sub(LoadWide(dd, px + N, N), m1), q1);
      q2 = hn::MulAdd(g2, hn::Sub(LoadWide(dd, px + 2 * N, N), m2), q2);
      q3 = hn::MulAdd(g3, hn::Sub(LoadWide(dd, px + 3 * N, N), m3), q3);
    }
    AddWide(dd, a0, s1 + i, N), AddWide(dd, a1, s1 + i + N, N), AddWide(dd, a2, s1 + i + 2 * N, N);
    AddWide(dd, a3, s1 + i + 3 * N, N), AddWide(dd, q0, s2 + i, N), AddWide(dd, q1, s2 + i + N, N);
    AddWide(dd, q2, s2 + i + 2 * N, N), AddWide(dd, q3, s2 + i + 3 * N, N);
  }
  for (; i < n; i += N) {
    const size_t k = std::min(N, n - i);
    const auto m = LoadAcc(dd, mean + i, k);
    auto a = hn::Zero(dd), q = hn::Zero(dd);
    for (int64_t r = 0; r < rows; ++r) {
      const auto g = LoadWide(dd, dy + offs[r] + i, k);
      a = hn::Add(a, g), q = hn::MulAdd(g, hn::Sub(LoadWide(dd, x + offs[r] + i, k), m), q);
    }
    AddWide(dd, a, s1 + i, k), AddWide(dd, q, s2 + i, k);
  }
}

// The same sums in compute_t<S> lanes for a statistic of many elements (the driver decides):
// s1[i] += sum dy, s2[i] += sum dy * (x - hi[i] - lo[i]), in registers across the block as
// the forward's ColDevSums, then double.
template <class S, class C, class At>
HWY_INLINE void ColGradSumsColsOf(const S* HWY_RESTRICT dy, const S* HWY_RESTRICT x, At&& at, int64_t rows,
                                  int64_t len, const C* HWY_RESTRICT hi, const C* HWY_RESTRICT lo,
                                  double* HWY_RESTRICT s1, double* HWY_RESTRICT s2) {
  const hn::ScalableTag<C> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len);
  size_t i = 0;
  for (; i + kColVecs * N <= n; i += kColVecs * N) {
    const auto h0 = hn::LoadU(d, hi + i), h1 = hn::LoadU(d, hi + i + N);
    const auto l0 = hn::LoadU(d, lo + i), l1 = hn::LoadU(d, lo + i + N);
    auto h2 = hn::Zero(d), h3 = h2, l2 = h2, l3 = h2;
    if constexpr (kColVecs == 4) {
      h2 = hn::LoadU(d, hi + i + 2 * N), h3 = hn::LoadU(d, hi + i + 3 * N);
      l2 = hn::LoadU(d, lo + i + 2 * N), l3 = hn::LoadU(d, lo + i + 3 * N);
    }
    PairedColumnSums(d, rows, i, s1, s2, [&](int64_t r, auto& A0, auto& A1, auto& A2, auto& A3, auto& Q0,
                                             auto& Q1, auto& Q2, auto& Q3) NORMKIT_INLINE_LAMBDA {
      const int64_t o = at(r);
      const S* pg = dy + o + i;
      const S* px = x + o + i;
      const auto g0 = LoadFull(d, pg), g1 = LoadFull(d, pg + N);
      A0 = hn::Add(A0, g0), A1 = hn::Add(A1, g1);
      Q0 = hn::MulAdd(g0, hn::Sub(hn::Sub(LoadFull(d, px), h0), l0), Q0);
      Q1 = hn::MulAdd(g1, hn::Sub(hn::Sub(LoadFull(d, px + N), h1), l1), Q1);
      if constexpr (kColVecs == 4) {
        const auto g2 = LoadFull(d, pg + 2 * N), g3 = LoadFull(d, pg + 3 * N);
        A2 = hn::Add(A2, g2), A3 = hn::Add(A3, g3);
        Q2 = hn::MulAdd(g2, hn::Sub(hn::Sub(LoadFull(d, px + 2 * N), h2), l2), Q2);
        Q3 = hn::MulAdd(g3, hn::Sub(hn::Sub(LoadFull(d, px + 3 * N), h3), l3), Q3);
      }
    });
  }
  for (; i < n; i += N) {
    const size_t k = std::min(N, n - i);
    const auto live = hn::FirstN(d, k);
    const auto h = LoadN(d, hi + i, k), l = LoadN(d, lo + i, k);
    auto a = hn::Zero(d), q = hn::Zero(d);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t o = at(r);
      const auto g = LoadN(d, dy + o + i, k);
      const auto dv = hn::IfThenElseZero(live, hn::Sub(hn::Sub(LoadN(d, x + o + i, k), h), l));
      a = hn::Add(a, g), q = hn::MulAdd(g, dv, q);
    }
    AddWide(d, a, s1 + i, k), AddWide(d, q, s2 + i, k);
  }
}

// ColGradSumsColsOf over the runs at offs[r]; offs null: `rows` consecutive runs from dy and x,
// in blocks of kColRows (the blocks the listed form is given, so the same sums).
template <class S, class C = compute_t<S>>
void ColGradSumsCols(const S* HWY_RESTRICT dy, const S* HWY_RESTRICT x, const int64_t* HWY_RESTRICT offs,
                     int64_t rows, int64_t len, const C* HWY_RESTRICT hi, const C* HWY_RESTRICT lo,
                     double* HWY_RESTRICT s1, double* HWY_RESTRICT s2) {
  if (offs) {
    return ColGradSumsColsOf(dy, x, [&](int64_t r) NORMKIT_INLINE_LAMBDA { return offs[r]; }, rows, len, hi, lo,
                             s1, s2);
  }
  for (int64_t b = 0; b < rows; b += kColRows) {
    ColGradSumsColsOf(dy + b * len, x + b * len, [&](int64_t r) NORMKIT_INLINE_LAMBDA { return r * len; },
                      std::min(kColRows, rows - b), len, hi, lo, s1, s2);
  }
}

// y = (x - hi[i] - lo[i]) * alpha[i] + beta[i] on every run of the block. fetch: where the
// runs are consecutive whole vectors, as many elements from there (the next group's, read
// next) requested into L2 meanwhile, a vector (a pair in half types) ahead of each written.
template <class S, class C = compute_t<S>>
void ColScaleShiftBlock(const S* HWY_RESTRICT x, S* HWY_RESTRICT y, const int64_t* HWY_RESTRICT offs, int64_t rows,
                        int64_t len, const C* HWY_RESTRICT hi, const C* HWY_RESTRICT lo,
                        const C* HWY_RESTRICT alpha, const C* HWY_RESTRICT beta, bool stream,
                        const S* fetch = nullptr) {
  if (rows <= 0 || len <= 0) return;  // nothing to write
  const hn::ScalableTag<C> d;
  const size_t N = hn::Lanes(d);
  constexpr bool kPairs = HWY_TARGET != HWY_SCALAR;  // half S: stored as pairs of vectors
  if (!offs && size_t(len) % N == 0 && (std::is_same_v<S, C> || (kPairs && size_t(len) % (2 * N) == 0))) {
    // Consecutive runs of whole vectors: one plain loop over them (the hardware prefetcher's
    // pattern), the stores' alignment tested once.
    // kRunsTogether runs at a time share each vector of coefficients they load: with four
    // loads from L1 beside each vector of x, one run at a time, the loop ran 25-40% slower than a
    // plain scaling loop over the same lines; four runs at a time level with it (model loops,
    // 32x256x14x14 channels-last in cache, Zen 5 VM, 1 and 2 threads).
    constexpr size_t kRunsTogether = 4;
    const size_t n = static_cast<size_t>(len), total = size_t(rows) * n, together = kRunsTogether * n;
    using V = hn::Vec<decltype(d)>;
    auto scaled = [&](const S* px, size_t i, V h, V l, V a, V b) NORMKIT_INLINE_LAMBDA {
      return hn::MulAdd(hn::Sub(hn::Sub(LoadFull(d, px + i), h), l), a, b);
    };
    auto value = [&](const S* px, size_t i) NORMKIT_INLINE_LAMBDA {
      return scaled(px, i, hn::LoadU(d, hi + i), hn::LoadU(d, lo + i), hn::LoadU(d, alpha + i), hn::LoadU(d, beta + i));
    };
    auto loop = [&](auto streaming) NORMKIT_INLINE_LAMBDA {
      constexpr bool kStream = decltype(streaming)::value;
      WithFlag(fetch != nullptr, [&](auto fetching) NORMKIT_INLINE_LAMBDA {
        size_t at = 0;
        if constexpr (std::is_same_v<S, C>) {
          for (; at + together <= total; at += together) {
            for (size_t i = 0; i < n; i += N) {
              const V h = hn::LoadU(d, hi + i), l = hn::LoadU(d, lo + i);
              const V a = hn::LoadU(d, alpha + i), b = hn::LoadU(d, beta + i);
              for (size_t k = at; k < at + together; k += n) {
                if constexpr (fetching) RequestL2(fetch, k + i);
                PutFull<kStream>(d, scaled(x + k, i, h, l, a, b), y + k + i);
              }
            }
          }
          for (; at < total; at += n) {
            for (size_t i = 0; i < n; i += N) {
              if constexpr (fetching) RequestL2(fetch, at + i);
              PutFull<kStream>(d, value(x + at, i), y + at + i);
            }
          }
#if HWY_TARGET != HWY_SCALAR
        } else {
          for (; at + together <= total; at += together) {
            for (size_t i = 0; i < n; i += 2 * N) {
              const V h0 = hn::LoadU(d, hi + i), l0 = hn::LoadU(d, lo + i);
              const V a0 = hn::LoadU(d, alpha + i), b0 = hn::LoadU(d, beta + i);
              const V h1 = hn::LoadU(d, hi + i + N), l1 = hn::LoadU(d, lo + i + N);
              const V a1 = hn::LoadU(d, alpha + i + N), b1 = hn::LoadU(d, beta + i + N);
              for (size_t k = at; k < at + together; k += n) {
                if constexpr (fetching) RequestL2(fetch, k + i);
                PutPair<kStream>(d, scaled(x + k, i, h0, l0, a0, b0), scaled(x + k, i + N, h1, l1, a1, b1), y + k + i);
              }
            }
          }
          for (; at < total; at += n) {
            for (size_t i = 0; i < n; i += 2 * N) {
              if constexpr (fetching) RequestL2(fetch, at + i);
              PutPair<kStream>(d, value(x + at, i), value(x + at, i + N), y + at + i);
            }
          }
#endif
        }
      });
    };
    bool aligned = StreamsAligned(d, y, n);
#if HWY_TARGET != HWY_SCALAR
    if constexpr (!std::is_same_v<S, C>) {
      const hn::Repartition<uint16_t, decltype(d)> d16;
      aligned = StreamsAligned(d16, reinterpret_cast<const uint16_t*>(y), n);
    }
#endif
    if (stream && aligned) {
      loop(std::true_type{});
    } else {
      loop(std::false_type{});
    }
    return;
  }
  if (!offs) {  // consecutive runs with a tail each
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t o = r * len;
      ColScaleShiftBlock(x, y, &o, 1, len, hi, lo, alpha, beta, stream);
    }
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const S* px = x + offs[r];
    const size_t n = static_cast<size_t>(len);
    const S* ahead = reinterpret_cast<const S*>(RunAhead(x, offs, r, rows));
    WriteRow(d, y + offs[r], n, stream, Apart<S>(px, y + offs[r], n), ahead, [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA {
      const auto dv = hn::Sub(hn::Sub(LoadN(d, px + i, k), LoadN(d, hi + i, k)), LoadN(d, lo + i, k));
      return hn::MulAdd(dv, LoadN(d, alpha + i, k), LoadN(d, beta + i, k));
    });
  }
}

// dx = P[i] * dy + Q[i] * (x - mean[i]) + R[i] on every run of the block (double lanes).
template <class S>
void ColGradInputBlock(const S* HWY_RESTRICT dy, const S* HWY_RESTRICT x, S* HWY_RESTRICT dx,
                       const int64_t* HWY_RESTRICT offs, int64_t rows, int64_t len, const double* HWY_RESTRICT mean,
                       const double* HWY_RESTRICT P, const double* HWY_RESTRICT Q, const double* HWY_RESTRICT R,
                       bool stream) {
  for (int64_t r = 0; r < rows; ++r) ColGradInput(dy + offs[r], x + offs[r], dx + offs[r], len, mean, P, Q, R, stream);
}

// One vector of the column dx in compute_t<S> lanes: P * dy + Q * ((x - hi) - lo) + R, as the
// row mode's GradInput.
template <class V>
HWY_INLINE V ColGrad(V dy, V x, V hi, V lo, V P, V Q, V R) {
  return hn::MulAdd(dy, P, hn::MulAdd(hn::Sub(hn::Sub(x, hi), lo), Q, R));
}

// ColGradInputBlock's dx for statistics of many elements in compute_t<S> lanes, as the row
// primitive GradInput computes it (P[i] * dy + ((x - hi[i] - lo[i]) * Q[i] + R[i])), over
// `rows` consecutive runs from dy, x and dx.
template <class S, class C = compute_t<S>>
void ColGradInputLanes(const S* HWY_RESTRICT dy, const S* HWY_RESTRICT x, S* dx, int64_t rows, int64_t len,
                       const C* HWY_RESTRICT hi, const C* HWY_RESTRICT lo, const C* HWY_RESTRICT P,
                       const C* HWY_RESTRICT Q, const C* HWY_RESTRICT R, bool stream) {
  const hn::ScalableTag<C> d;
  const size_t n = static_cast<size_t>(len);
#if HWY_TARGET != HWY_SCALAR
  // As ColScaleShiftBlock: runs of whole vectors kRunsTogether at a time, sharing each vector
  // of the five coefficients they load. Two, not four: reading dy and x, four runs at a time
  // made InstanceNorm and GroupNorm 32x256x14x14 channels-last backward 5-10% slower; two
  // measured level with one there and BatchNorm's 0.30 -> 0.29 ms (Zen 5 VM, 2 threads, old
  // and new libraries alternating 8 rounds). The runs left over go below.
  constexpr size_t kRunsTogether = 2;
  constexpr bool kPairs = !std::is_same_v<S, C>;  // half S: stored as pairs of vectors
  const size_t N = hn::Lanes(d), step = kPairs ? 2 * N : N;
  if (n > 0 && n % step == 0 && rows >= int64_t(kRunsTogether)) {
    using V = hn::Vec<decltype(d)>;
    auto grad = [&](size_t at, size_t i, V h, V l, V p, V q, V r) NORMKIT_INLINE_LAMBDA {
      return ColGrad(LoadFull(d, dy + at + i), LoadFull(d, x + at + i), h, l, p, q, r);
    };
    const size_t total = n * size_t(rows), together = kRunsTogether * n;
    bool aligned = StreamsAligned(d, dx, n);
    if constexpr (kPairs) {
      const hn::Repartition<uint16_t, decltype(d)> d16;
      aligned = StreamsAligned(d16, reinterpret_cast<const uint16_t*>(dx), n);
    }
    size_t start = 0;
    WithFlag(stream && aligned, [&](auto streaming) NORMKIT_INLINE_LAMBDA {
      constexpr bool kStream = decltype(streaming)::value;
      for (; start + together <= total; start += together) {
        for (size_t i = 0; i < n; i += step) {
          const V h0 = hn::LoadU(d, hi + i), l0 = hn::LoadU(d, lo + i), p0 = hn::LoadU(d, P + i);
          const V q0 = hn::LoadU(d, Q + i), r0 = hn::LoadU(d, R + i);
          if constexpr (kPairs) {
            const V h1 = hn::LoadU(d, hi + i + N), l1 = hn::LoadU(d, lo + i + N), p1 = hn::LoadU(d, P + i + N);
            const V q1 = hn::LoadU(d, Q + i + N), r1 = hn::LoadU(d, R + i + N);
            for (size_t k = start; k < start + together; k += n)
              PutPair<kStream>(d, grad(k, i, h0, l0, p0, q0, r0), grad(k, i + N, h1, l1, p1, q1, r1), dx + k + i);
          } else {
            for (size_t k = start; k < start + together; k += n)
              PutFull<kStream>(d, grad(k, i, h0, l0, p0, q0, r0), dx + k + i);
          }
        }
      }
    });
    dy += start, x += start, dx += start;
    rows -= int64_t(start / n);
  }
#endif
  const bool apart = Apart<S>(dx, dy, n * size_t(rows)) && Apart<S>(dx, x, n * size_t(rows));
  for (int64_t r = 0; r < rows; ++r, dy += n, x += n, dx += n) {
    WriteRow(d, dx, n, stream, apart, static_cast<const S*>(nullptr), [&](size_t i, size_t k) NORMKIT_INLINE_LAMBDA {
      return ColGrad(LoadN(d, dy + i, k), LoadN(d, x + i, k), LoadN(d, hi + i, k), LoadN(d, lo + i, k),
                     LoadN(d, P + i, k), LoadN(d, Q + i, k), LoadN(d, R + i, k));
    });
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace normkit::engine::rows
HWY_AFTER_NAMESPACE();

#endif  // the per-target part

#ifndef NORMKIT_ENGINE_ROWS_SIMD_MACROS_
#define NORMKIT_ENGINE_ROWS_SIMD_MACROS_

// Monomorphic entry points for HWY_EXPORT, one set per storage type.
#define NORMKIT_ROWS_ENTRIES(S, SUF)                                                                      \
  using C##SUF = compute_t<S>;                                                                            \
  void DevSums##SUF(const S* x, int64_t n, C##SUF h, C##SUF l, double* a, double* b) {                    \
    DevSums(x, n, h, l, a, b);                                                                            \
  }                                                                                                       \
  void ScaleShift##SUF(const S* x, S* y, int64_t n, C##SUF h, C##SUF l, C##SUF a, C##SUF b, bool st) {    \
    ScaleShift(x, y, n, h, l, a, b, st), EndStream(st);                                                   \
  }                                                                                                       \
  void DevSumsScaleShift##SUF(const S* xs, int64_t n, C##SUF sh, C##SUF sl, double* s1, double* s2,       \
                              const S* xn, S* y, C##SUF h, C##SUF l, C##SUF a, C##SUF b, bool st) {       \
    DevSumsScaleShift(xs, n, sh, sl, s1, s2, xn, y, h, l, a, b, st), EndStream(st);                       \
  }                                                                                                       \
  void ScaleShiftRows##SUF(const S* x, S* y, int64_t n, C##SUF h, C##SUF l, C##SUF r, const C##SUF* w,    \
                           const C##SUF* b, bool rx, bool st) {                                           \
    ScaleShiftRows(x, y, n, h, l, r, w, b, rx, st, st ? x + n : nullptr), EndStream(st);                  \
  }                                                                                                       \
  void GradSums##SUF(const S* dy, const S* x, int64_t n, C##SUF h, C##SUF l, const C##SUF* w, double* a,  \
                     double* b) {                                                                         \
    GradSums(dy, x, n, h, l, w, a, b);                                                                    \
  }                                                                                                       \
  void GradInput##SUF(const S* dy, const S* x, S* dx, int64_t n, C##SUF h, C##SUF l, const C##SUF* w,     \
                      C##SUF P, C##SUF Q, C##SUF R, bool st, bool nf) {                                   \
    GradInput(dy, x, dx, n, h, l, w, P, Q, R, st, nf ? kFetchNextRow : kFetchNone), EndStream(st);        \
  }                                                                                                       \
  void DevSumsList##SUF(const S* x, const int64_t* o, int64_t c, int64_t n, C##SUF h, C##SUF l, double* a, \
                        double* b) {                                                                      \
    DevSumsList(x, o, c, n, h, l, a, b);                                                                  \
  }                                                                                                       \
  void ScaleShiftList##SUF(const S* x, S* y, const int64_t* o, int64_t c, int64_t n, C##SUF h, C##SUF l,   \
                           C##SUF a, C##SUF b, bool st) {                                                 \
    ScaleShiftList(x, y, o, c, n, h, l, a, b, st), EndStream(st);                                         \
  }                                                                                                       \
  void GradSumsList##SUF(const S* dy, const S* x, const int64_t* o, int64_t c, int64_t n, C##SUF h,       \
                         C##SUF l, double* a, double* b) {                                                \
    GradSumsList(dy, x, o, c, n, h, l, a, b);                                                             \
  }                                                                                                       \
  void GradInputList##SUF(const S* dy, const S* x, S* dx, const int64_t* o, int64_t c, int64_t n, C##SUF h, \
                          C##SUF l, C##SUF P, C##SUF Q, C##SUF R, bool st) {                              \
    GradInputList(dy, x, dx, o, c, n, h, l, P, Q, R, st), EndStream(st);                                  \
  }                                                                                                       \
  void GradSumsScaleList##SUF(const S* dy, const S* x, S* dx, const int64_t* o, int64_t c, int64_t n,     \
                              C##SUF h, C##SUF l, C##SUF P, double* a, double* b, bool st) {              \
    GradSumsScaleList(dy, x, dx, o, c, n, h, l, P, a, b, st), EndStream(st);                              \
  }                                                                                                       \
  void ScaleShiftRuns##SUF(const S* x, S* y, const int64_t* o, int64_t c, int64_t n, C##SUF h, C##SUF l,  \
                           const C##SUF* a, const C##SUF* b, bool st) {                                   \
    ScaleShiftRuns(x, y, o, c, n, h, l, a, b, st), EndStream(st);                                         \
  }                                                                                                       \
  void ScaleShiftSpan##SUF(const S* x, S* y, int64_t c, int64_t n, const C##SUF* h, const C##SUF* l,      \
                           const C##SUF* a, const C##SUF* b, bool st, const S* f) {                       \
    ScaleShiftSpan(x, y, c, n, h, l, a, b, st, f), EndStream(st);                                         \
  }                                                                                                       \
  void GradSumsRuns##SUF(const S* dy, const S* x, const int64_t* o, int64_t c, int64_t n, C##SUF h,       \
                         C##SUF l, double* a, double* b) {                                                \
    GradSumsRuns(dy, x, o, c, n, h, l, a, b);                                                             \
  }                                                                                                       \
  void GradInputRuns##SUF(const S* dy, const S* x, S* dx, const int64_t* o, int64_t c, int64_t n, C##SUF h, \
                          C##SUF l, const C##SUF* P, C##SUF Q, C##SUF R, bool st) {                       \
    GradInputRuns(dy, x, dx, o, c, n, h, l, P, Q, R, st), EndStream(st);                                  \
  }                                                                                                       \
  void DevSumsRows##SUF(const S* x, const int64_t* o, int64_t c, int64_t n, const double* m, double* a,   \
                        double* b, S* const* cp) {                                                        \
    DevSumsRows(x, o, c, n, m, a, b, cp);                                                                 \
  }                                                                                                       \
  void ScaleShiftRowsList##SUF(const S* x, S* y, const int64_t* o, int64_t c, int64_t n, const double* m, \
                               const double* a, const double* b, bool st) {                               \
    ScaleShiftRowsList(x, y, o, c, n, m, a, b, st), EndStream(st);                                        \
  }                                                                                                       \
  void GradSumsRows##SUF(const S* dy, const S* x, const int64_t* o, int64_t c, int64_t n, const double* m, \
                         double* a, double* b) {                                                          \
    GradSumsRows(dy, x, o, c, n, m, a, b);                                                                \
  }                                                                                                       \
  void GradInputRows##SUF(const S* dy, const S* x, S* dx, const int64_t* o, int64_t c, int64_t n,         \
                          const double* m, const C##SUF* P, const C##SUF* Q, const C##SUF* R, bool st,    \
                          bool f) {                                                                       \
    GradInputRows(dy, x, dx, o, c, n, m, P, Q, R, st, f), EndStream(st);                                  \
  }                                                                                                       \
  void ScaleShiftRowsAffineList##SUF(const S* x, S* y, const int64_t* o, int64_t c, int64_t n,          \
                                     const double* m, const double* r, const C##SUF* w, const C##SUF* b,  \
                                     bool rx, bool st, const S* const* cp, bool eo) {                     \
    ScaleShiftRowsAffineList(x, y, o, c, n, m, r, w, b, rx, st, cp, eo), EndStream(st);                   \
  }                                                                                                       \
  bool EvenOddAffine##SUF(const C##SUF* v, int64_t n, C##SUF* out) { return EvenOddAffine<S>(v, n, out); } \
  void ColAddSqDev##SUF(double* a, const S* x, int64_t n, const double* m) { ColAddSqDev(a, x, n, m); }  \
  void ColDevSums##SUF(const S* x, const int64_t* o, int64_t r, int64_t n, const C##SUF* k, double* a,   \
                       double* b) {                                                                       \
    ColDevSums(x, o, r, n, k, a, b);                                                                      \
  }                                                                                                       \
  void ColGradSumsRows##SUF(const S* dy, const S* x, const int64_t* o, int64_t r, int64_t n,             \
                            const C##SUF* h, const C##SUF* l, const C##SUF* rs, double* a, double* b,     \
                            bool as) {                                                                    \
    ColGradSumsRows(dy, x, o, r, n, h, l, rs, a, b, as);                                                  \
  }                                                                                                       \
  void ColGradSumsBlock##SUF(const S* dy, const S* x, const int64_t* o, int64_t r, int64_t n,            \
                             const double* m, double* a, double* b) {                                    \
    ColGradSumsBlock(dy, x, o, r, n, m, a, b);                                                            \
  }                                                                                                       \
  void ColScaleShiftBlock##SUF(const S* x, S* y, const int64_t* o, int64_t r, int64_t n, const C##SUF* h, \
                               const C##SUF* l, const C##SUF* a, const C##SUF* b, bool st, const S* f) { \
    ColScaleShiftBlock(x, y, o, r, n, h, l, a, b, st, f), EndStream(st);                                  \
  }                                                                                                       \
  void ColGradInputBlock##SUF(const S* dy, const S* x, S* dx, const int64_t* o, int64_t r, int64_t n,    \
                              const double* m, const double* P, const double* Q, const double* R,        \
                              bool st) {                                                                  \
    ColGradInputBlock(dy, x, dx, o, r, n, m, P, Q, R, st), EndStream(st);                                 \
  }                                                                                                       \
  void ColGradInputLanes##SUF(const S* dy, const S* x, S* dx, int64_t r, int64_t n, const C##SUF* h,     \
                              const C##SUF* l, const C##SUF* P, const C##SUF* Q, const C##SUF* R, bool st) { \
    ColGradInputLanes(dy, x, dx, r, n, h, l, P, Q, R, st), EndStream(st);                                 \
  }                                                                                                       \
  void ColGradSumsCols##SUF(const S* dy, const S* x, const int64_t* o, int64_t r, int64_t n,             \
                            const C##SUF* h, const C##SUF* l, double* a, double* b) {                     \
    ColGradSumsCols(dy, x, o, r, n, h, l, a, b);                                                          \
  }

// Their dispatch (in HWY_ONCE, namespace normkit::engine::rows): rows.hpp's functions for S.
#define NORMKIT_ROWS_DISPATCH(S, SUF)                                                                     \
  HWY_EXPORT(DevSums##SUF);                                                                               \
  HWY_EXPORT(ScaleShift##SUF);                                                                            \
  HWY_EXPORT(ScaleShiftRows##SUF);                                                                        \
  HWY_EXPORT(GradSums##SUF);                                                                              \
  HWY_EXPORT(GradInput##SUF);                                                                             \
  HWY_EXPORT(DevSumsList##SUF);                                                                           \
  HWY_EXPORT(ScaleShiftList##SUF);                                                                        \
  HWY_EXPORT(GradSumsList##SUF);                                                                          \
  HWY_EXPORT(GradInputList##SUF);                                                                         \
  HWY_EXPORT(GradSumsScaleList##SUF);                                                                     \
  template <>                                                                                             \
  void dev_sums_list<S>(const S* x, const int64_t* offs, int64_t count, int64_t len,                      \
                        SplitMean<compute_t<S>> m, double* s1, double* s2) {                              \
    HWY_DYNAMIC_DISPATCH(DevSumsList##SUF)(x, offs, count, len, m.hi, m.lo, s1, s2);                      \
  }                                                                                                       \
  template <>                                                                                             \
  void scale_shift_list<S>(const S* x, S* y, const int64_t* offs, int64_t count, int64_t len,             \
                           SplitMean<compute_t<S>> m, compute_t<S> alpha, compute_t<S> beta, bool stream) { \
    HWY_DYNAMIC_DISPATCH(ScaleShiftList##SUF)(x, y, offs, count, len, m.hi, m.lo, alpha, beta, stream);   \
  }                                                                                                       \
  template <>                                                                                             \
  void grad_sums_list<S>(const S* dy, const S* x, const int64_t* offs, int64_t count, int64_t len,        \
                         SplitMean<compute_t<S>> m, double* s1, double* s2) {                             \
    HWY_DYNAMIC_DISPATCH(GradSumsList##SUF)(dy, x, offs, count, len, m.hi, m.lo, s1, s2);                 \
  }                                                                                                       \
  template <>                                                                                             \
  void grad_input_list<S>(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t count, int64_t len, \
                          SplitMean<compute_t<S>> m, compute_t<S> P, compute_t<S> Q, compute_t<S> R,      \
                          bool stream) {                                                                  \
    HWY_DYNAMIC_DISPATCH(GradInputList##SUF)(dy, x, dx, offs, count, len, m.hi, m.lo, P, Q, R, stream);   \
  }                                                                                                       \
  template <>                                                                                             \
  void grad_sums_scale_list<S>(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t count,        \
                               int64_t len, SplitMean<compute_t<S>> m, compute_t<S> P, double* s1,        \
                               double* s2, bool stream) {                                                 \
    HWY_DYNAMIC_DISPATCH(GradSumsScaleList##SUF)(dy, x, dx, offs, count, len, m.hi, m.lo, P, s1, s2,      \
                                                 stream);                                                 \
  }                                                                                                       \
  HWY_EXPORT(ScaleShiftRuns##SUF);                                                                        \
  template <>                                                                                             \
  void scale_shift_runs<S>(const S* x, S* y, const int64_t* offs, int64_t count, int64_t len,             \
                           SplitMean<compute_t<S>> m, const compute_t<S>* alpha, const compute_t<S>* beta, \
                           bool stream) {                                                                 \
    HWY_DYNAMIC_DISPATCH(ScaleShiftRuns##SUF)(x, y, offs, count, len, m.hi, m.lo, alpha, beta, stream);   \
  }                                                                                                       \
  HWY_EXPORT(ScaleShiftSpan##SUF);                                                                        \
  template <>                                                                                             \
  void scale_shift_span<S>(const S* x, S* y, int64_t count, int64_t len, const compute_t<S>* hi,          \
                           const compute_t<S>* lo, const compute_t<S>* alpha, const compute_t<S>* beta,   \
                           bool stream, const S* fetch) {                                                 \
    HWY_DYNAMIC_DISPATCH(ScaleShiftSpan##SUF)(x, y, count, len, hi, lo, alpha, beta, stream, fetch);      \
  }                                                                                                       \
  HWY_EXPORT(GradSumsRuns##SUF);                                                                          \
  HWY_EXPORT(GradInputRuns##SUF);                                                                         \
  template <>                                                                                             \
  void grad_sums_runs<S>(const S* dy, const S* x, const int64_t* offs, int64_t count, int64_t len,        \
                         SplitMean<compute_t<S>> m, double* s1, double* s2) {                             \
    HWY_DYNAMIC_DISPATCH(GradSumsRuns##SUF)(dy, x, offs, count, len, m.hi, m.lo, s1, s2);                 \
  }                                                                                                       \
  template <>                                                                                             \
  void grad_input_runs<S>(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t count, int64_t len, \
                          SplitMean<compute_t<S>> m, const compute_t<S>* P, compute_t<S> Q, compute_t<S> R, \
                          bool stream) {                                                                  \
    HWY_DYNAMIC_DISPATCH(GradInputRuns##SUF)(dy, x, dx, offs, count, len, m.hi, m.lo, P, Q, R, stream);   \
  }                                                                                                       \
  HWY_EXPORT(DevSumsRows##SUF);                                                                           \
  HWY_EXPORT(ScaleShiftRowsList##SUF);                                                                    \
  template <>                                                                                             \
  void dev_sums_rows<S>(const S* x, const int64_t* offs, int64_t count, int64_t len, const double* m,     \
                        double* s1, double* s2, S* const* copies) {                                       \
    HWY_DYNAMIC_DISPATCH(DevSumsRows##SUF)(x, offs, count, len, m, s1, s2, copies);                       \
  }                                                                                                       \
  template <>                                                                                             \
  void scale_shift_rows_list<S>(const S* x, S* y, const int64_t* offs, int64_t count, int64_t len,        \
                                const double* mean, const double* alpha, const double* beta, bool stream) { \
    HWY_DYNAMIC_DISPATCH(ScaleShiftRowsList##SUF)(x, y, offs, count, len, mean, alpha, beta, stream);     \
  }                                                                                                       \
  HWY_EXPORT(GradSumsRows##SUF);                                                                          \
  HWY_EXPORT(GradInputRows##SUF);                                                                         \
  template <>                                                                                             \
  void grad_sums_rows<S>(const S* dy, const S* x, const int64_t* offs, int64_t count, int64_t len,        \
                         const double* mean, double* s1, double* s2) {                                    \
    HWY_DYNAMIC_DISPATCH(GradSumsRows##SUF)(dy, x, offs, count, len, mean, s1, s2);                       \
  }                                                                                                       \
  template <>                                                                                             \
  void grad_input_rows<S>(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t count, int64_t len, \
                          const double* mean, const compute_t<S>* P, const compute_t<S>* Q,               \
                          const compute_t<S>* R, bool stream, bool fetch_next) {                          \
    HWY_DYNAMIC_DISPATCH(GradInputRows##SUF)(dy, x, dx, offs, count, len, mean, P, Q, R, stream,          \
                                             fetch_next);                                                 \
  }                                                                                                       \
  HWY_EXPORT(ScaleShiftRowsAffineList##SUF);                                                              \
  template <>                                                                                             \
  void scale_shift_rows_affine_list<S>(const S* x, S* y, const int64_t* offs, int64_t count, int64_t len, \
                                       const double* mean, const double* rstd, const compute_t<S>* w,     \
                                       const compute_t<S>* b, bool round_xhat, bool stream,               \
                                       const S* const* copies, bool even_odd) {                           \
    HWY_DYNAMIC_DISPATCH(ScaleShiftRowsAffineList##SUF)(x, y, offs, count, len, mean, rstd, w, b,         \
                                                        round_xhat, stream, copies, even_odd);            \
  }                                                                                                       \
  HWY_EXPORT(EvenOddAffine##SUF);                                                                         \
  template <>                                                                                             \
  bool even_odd_affine<S>(const compute_t<S>* v, int64_t len, compute_t<S>* out) {                        \
    return HWY_DYNAMIC_DISPATCH(EvenOddAffine##SUF)(v, len, out);                                         \
  }                                                                                                       \
  HWY_EXPORT(ColAddSqDev##SUF);                                                                           \
  HWY_EXPORT(ColDevSums##SUF);                                                                            \
  HWY_EXPORT(ColGradSumsRows##SUF);                                                                       \
  HWY_EXPORT(ColGradSumsBlock##SUF);                                                                      \
  HWY_EXPORT(ColScaleShiftBlock##SUF);                                                                    \
  HWY_EXPORT(ColGradInputBlock##SUF);                                                                     \
  HWY_EXPORT(ColGradSumsCols##SUF);                                                                       \
  HWY_EXPORT(ColGradInputLanes##SUF);                                                                     \
  template <>                                                                                             \
  void col_grad_input_lanes<S>(const S* dy, const S* x, S* dx, int64_t rows, int64_t len,                 \
                               const compute_t<S>* hi, const compute_t<S>* lo, const compute_t<S>* P,     \
                               const compute_t<S>* Q, const compute_t<S>* R, bool stream) {               \
    HWY_DYNAMIC_DISPATCH(ColGradInputLanes##SUF)(dy, x, dx, rows, len, hi, lo, P, Q, R, stream);          \
  }                                                                                                       \
  template <>                                                                                             \
  void col_grad_sums_cols<S>(const S* dy, const S* x, const int64_t* offs, int64_t rows, int64_t len,     \
                             const compute_t<S>* hi, const compute_t<S>* lo, double* s1, double* s2) {    \
    HWY_DYNAMIC_DISPATCH(ColGradSumsCols##SUF)(dy, x, offs, rows, len, hi, lo, s1, s2);                   \
  }                                                                                                       \
  template <>                                                                                             \
  void col_dev_sums<S>(const S* x, const int64_t* offs, int64_t rows, int64_t len,                        \
                       const compute_t<S>* shift, double* s1, double* s2) {                               \
    HWY_DYNAMIC_DISPATCH(ColDevSums##SUF)(x, offs, rows, len, shift, s1, s2);                             \
  }                                                                                                       \
  template <>                                                                                             \
  void col_grad_sums_rows<S>(const S* dy, const S* x, const int64_t* offs, int64_t rows, int64_t len,     \
                             const compute_t<S>* hi, const compute_t<S>* lo, const compute_t<S>* rstd,    \
                             double* s1, double* s2, bool assign) {                                       \
    HWY_DYNAMIC_DISPATCH(ColGradSumsRows##SUF)(dy, x, offs, rows, len, hi, lo, rstd, s1, s2, assign);     \
  }                                                                                                       \
  template <>                                                                                             \
  void col_grad_sums_block<S>(const S* dy, const S* x, const int64_t* offs, int64_t rows, int64_t len,    \
                              const double* mean, double* s1, double* s2) {                               \
    HWY_DYNAMIC_DISPATCH(ColGradSumsBlock##SUF)(dy, x, offs, rows, len, mean, s1, s2);                    \
  }                                                                                                       \
  template <>                                                                                             \
  void col_scale_shift_block<S>(const S* x, S* y, const int64_t* offs, int64_t rows, int64_t len,         \
                                const compute_t<S>* hi, const compute_t<S>* lo, const compute_t<S>* alpha, \
                                const compute_t<S>* beta, bool stream, const S* fetch) {                  \
    HWY_DYNAMIC_DISPATCH(ColScaleShiftBlock##SUF)(x, y, offs, rows, len, hi, lo, alpha, beta, stream, fetch); \
  }                                                                                                       \
  template <>                                                                                             \
  void col_grad_input_block<S>(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t rows,         \
                               int64_t len, const double* mean, const double* P, const double* Q,         \
                               const double* R, bool stream) {                                            \
    HWY_DYNAMIC_DISPATCH(ColGradInputBlock##SUF)(dy, x, dx, offs, rows, len, mean, P, Q, R, stream);      \
  }                                                                                                       \
  template <>                                                                                             \
  void col_add_sq_dev<S>(double* acc, const S* x, int64_t len, const double* mean) {                      \
    HWY_DYNAMIC_DISPATCH(ColAddSqDev##SUF)(acc, x, len, mean);                                            \
  }                                                                                                       \
  template <>                                                                                             \
  void dev_sums<S>(const S* x, int64_t len, SplitMean<compute_t<S>> m, double* s1, double* s2) {          \
    HWY_DYNAMIC_DISPATCH(DevSums##SUF)(x, len, m.hi, m.lo, s1, s2);                                       \
  }                                                                                                       \
  HWY_EXPORT(DevSumsScaleShift##SUF);                                                                     \
  template <>                                                                                             \
  void dev_sums_scale_shift<S>(const S* xs, int64_t len, SplitMean<compute_t<S>> ms, double* s1, double* s2, \
                               const S* xn, S* y, SplitMean<compute_t<S>> mn, compute_t<S> alpha,         \
                               compute_t<S> beta, bool stream) {                                          \
    HWY_DYNAMIC_DISPATCH(DevSumsScaleShift##SUF)(xs, len, ms.hi, ms.lo, s1, s2, xn, y, mn.hi, mn.lo, alpha, \
                                                 beta, stream);                                           \
  }                                                                                                       \
  template <>                                                                                             \
  void scale_shift<S>(const S* x, S* y, int64_t len, SplitMean<compute_t<S>> m, compute_t<S> alpha,       \
                      compute_t<S> beta, bool stream) {                                                   \
    HWY_DYNAMIC_DISPATCH(ScaleShift##SUF)(x, y, len, m.hi, m.lo, alpha, beta, stream);                    \
  }                                                                                                       \
  template <>                                                                                             \
  void scale_shift_rows<S>(const S* x, S* y, int64_t len, SplitMean<compute_t<S>> m, compute_t<S> rstd,   \
                           const compute_t<S>* w, const compute_t<S>* b, bool round_xhat, bool stream) {  \
    HWY_DYNAMIC_DISPATCH(ScaleShiftRows##SUF)(x, y, len, m.hi, m.lo, rstd, w, b, round_xhat, stream);     \
  }                                                                                                       \
  template <>                                                                                             \
  void grad_sums<S>(const S* dy, const S* x, int64_t len, SplitMean<compute_t<S>> m,                      \
                    const compute_t<S>* w, double* s1, double* s2) {                                      \
    HWY_DYNAMIC_DISPATCH(GradSums##SUF)(dy, x, len, m.hi, m.lo, w, s1, s2);                               \
  }                                                                                                       \
  template <>                                                                                             \
  void grad_input<S>(const S* dy, const S* x, S* dx, int64_t len, SplitMean<compute_t<S>> m,              \
                     const compute_t<S>* w, compute_t<S> P, compute_t<S> Q, compute_t<S> R, bool stream,   \
                     bool next_row_follows) {                                                            \
    HWY_DYNAMIC_DISPATCH(GradInput##SUF)(dy, x, dx, len, m.hi, m.lo, w, P, Q, R, stream, next_row_follows); \
  }

#endif  // NORMKIT_ENGINE_ROWS_SIMD_MACROS_
