// rows_simd.cpp — the row primitives of rows.hpp, written once over a Highway vector tag
// and compiled for every x86/Arm target; the best one is picked at run time.
// Four independent accumulators per sum: enough to hide the add latency (4 cycles) on two
// FMA ports. The tail is one masked vector, not a scalar loop.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/rows_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "engine/rows.hpp"

HWY_BEFORE_NAMESPACE();
namespace normkit::engine::rows {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Sums the lanes of four accumulators, in a fixed order (a tree within the vector). Each
// lane holds a partial of len / (4 * lanes) elements, so this last step costs no accuracy.
template <class D, class V>
double lane_sum(D d, V a, V b, V c, V e) {
  return double(hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a, b), hn::Add(c, e)))));
}

template <class T>
void DevSums(const T* HWY_RESTRICT x, int64_t len, T m_hi, T m_lo, double* s1, double* s2) {
  const hn::ScalableTag<T> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len);
  const auto hi = hn::Set(d, m_hi), lo = hn::Set(d, m_lo);
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  auto q0 = hn::Zero(d), q1 = hn::Zero(d), q2 = hn::Zero(d), q3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    const auto d0 = hn::Sub(hn::Sub(hn::LoadU(d, x + i), hi), lo);
    const auto d1 = hn::Sub(hn::Sub(hn::LoadU(d, x + i + N), hi), lo);
    const auto d2 = hn::Sub(hn::Sub(hn::LoadU(d, x + i + 2 * N), hi), lo);
    const auto d3 = hn::Sub(hn::Sub(hn::LoadU(d, x + i + 3 * N), hi), lo);
    a0 = hn::Add(a0, d0), a1 = hn::Add(a1, d1), a2 = hn::Add(a2, d2), a3 = hn::Add(a3, d3);
    q0 = hn::MulAdd(d0, d0, q0), q1 = hn::MulAdd(d1, d1, q1), q2 = hn::MulAdd(d2, d2, q2), q3 = hn::MulAdd(d3, d3, q3);
  }
  for (; i < n; i += N) {
    const auto mask = hn::FirstN(d, n - i);
    const auto v = hn::IfThenElseZero(mask, hn::Sub(hn::Sub(hn::MaskedLoad(mask, d, x + i), hi), lo));
    a0 = hn::Add(a0, v), q0 = hn::MulAdd(v, v, q0);
  }
  *s1 = lane_sum(d, a0, a1, a2, a3);
  *s2 = lane_sum(d, q0, q1, q2, q3);
}

template <class T>
void ScaleShift(const T* HWY_RESTRICT x, T* y, int64_t len, T m_hi, T m_lo, T alpha, T beta) {
  const hn::ScalableTag<T> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len);
  const auto hi = hn::Set(d, m_hi), lo = hn::Set(d, m_lo), a = hn::Set(d, alpha), b = hn::Set(d, beta);
  size_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::MulAdd(hn::Sub(hn::Sub(hn::LoadU(d, x + i), hi), lo), a, b), d, y + i);
  if (i < n) {
    const auto mask = hn::FirstN(d, n - i);
    const auto v = hn::MulAdd(hn::Sub(hn::Sub(hn::MaskedLoad(mask, d, x + i), hi), lo), a, b);
    hn::BlendedStore(v, mask, d, y + i);
  }
}

template <class T>
void ScaleShiftRows(const T* HWY_RESTRICT x, T* y, int64_t len, T m_hi, T m_lo, T rstd,
                    const T* HWY_RESTRICT w, const T* HWY_RESTRICT b) {
  const hn::ScalableTag<T> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len);
  const auto hi = hn::Set(d, m_hi), lo = hn::Set(d, m_lo), r = hn::Set(d, rstd);
  const auto one = hn::Set(d, T(1));
  auto step = [&](size_t i, auto mask) {
    const auto xh = hn::Mul(hn::Sub(hn::Sub(hn::MaskedLoad(mask, d, x + i), hi), lo), r);
    const auto wv = w ? hn::MaskedLoad(mask, d, w + i) : one;
    const auto bv = b ? hn::MaskedLoad(mask, d, b + i) : hn::Zero(d);
    return hn::MulAdd(xh, wv, bv);
  };
  size_t i = 0;
  const auto all = hn::FirstN(d, N);
  for (; i + N <= n; i += N) hn::StoreU(step(i, all), d, y + i);
  if (i < n) {
    const auto mask = hn::FirstN(d, n - i);
    hn::BlendedStore(step(i, mask), mask, d, y + i);
  }
}

template <class T>
void GradSums(const T* HWY_RESTRICT dy, const T* HWY_RESTRICT x, int64_t len, T m_hi, T m_lo,
              const T* HWY_RESTRICT w, double* s1, double* s2) {
  const hn::ScalableTag<T> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len);
  const auto hi = hn::Set(d, m_hi), lo = hn::Set(d, m_lo);
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), q0 = hn::Zero(d), q1 = hn::Zero(d);
  auto step = [&](size_t i, auto mask, auto& a, auto& q) {
    auto g = hn::MaskedLoad(mask, d, dy + i);
    if (w) g = hn::Mul(g, hn::MaskedLoad(mask, d, w + i));
    const auto dv = hn::IfThenElseZero(mask, hn::Sub(hn::Sub(hn::MaskedLoad(mask, d, x + i), hi), lo));
    a = hn::Add(a, g), q = hn::MulAdd(g, dv, q);
  };
  const auto all = hn::FirstN(d, N);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) step(i, all, a0, q0), step(i + N, all, a1, q1);
  for (; i < n; i += N) step(i, hn::FirstN(d, n - i), a0, q0);
  *s1 = lane_sum(d, a0, a1, hn::Zero(d), hn::Zero(d));
  *s2 = lane_sum(d, q0, q1, hn::Zero(d), hn::Zero(d));
}

template <class T>
void GradInput(const T* HWY_RESTRICT dy, const T* HWY_RESTRICT x, T* dx, int64_t len, T m_hi, T m_lo,
               const T* HWY_RESTRICT w, T P, T Q, T R) {
  const hn::ScalableTag<T> d;
  const size_t N = hn::Lanes(d), n = static_cast<size_t>(len);
  const auto hi = hn::Set(d, m_hi), lo = hn::Set(d, m_lo);
  const auto p = hn::Set(d, P), q = hn::Set(d, Q), r = hn::Set(d, R);
  auto step = [&](size_t i, auto mask) {
    auto g = hn::MaskedLoad(mask, d, dy + i);
    if (w) g = hn::Mul(g, hn::MaskedLoad(mask, d, w + i));
    const auto dv = hn::Sub(hn::Sub(hn::MaskedLoad(mask, d, x + i), hi), lo);
    return hn::MulAdd(g, p, hn::MulAdd(dv, q, r));
  };
  const auto all = hn::FirstN(d, N);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(step(i, all), d, dx + i);
  if (i < n) {
    const auto mask = hn::FirstN(d, n - i);
    hn::BlendedStore(step(i, mask), mask, d, dx + i);
  }
}

// Monomorphic entry points for HWY_EXPORT.
void DevSumsF(const float* x, int64_t n, float h, float l, double* a, double* b) { DevSums(x, n, h, l, a, b); }
void DevSumsD(const double* x, int64_t n, double h, double l, double* a, double* b) { DevSums(x, n, h, l, a, b); }
void ScaleShiftF(const float* x, float* y, int64_t n, float h, float l, float a, float b) { ScaleShift(x, y, n, h, l, a, b); }
void ScaleShiftD(const double* x, double* y, int64_t n, double h, double l, double a, double b) { ScaleShift(x, y, n, h, l, a, b); }
void ScaleShiftRowsF(const float* x, float* y, int64_t n, float h, float l, float r, const float* w, const float* b) { ScaleShiftRows(x, y, n, h, l, r, w, b); }
void ScaleShiftRowsD(const double* x, double* y, int64_t n, double h, double l, double r, const double* w, const double* b) { ScaleShiftRows(x, y, n, h, l, r, w, b); }
void GradSumsF(const float* dy, const float* x, int64_t n, float h, float l, const float* w, double* a, double* b) { GradSums(dy, x, n, h, l, w, a, b); }
void GradSumsD(const double* dy, const double* x, int64_t n, double h, double l, const double* w, double* a, double* b) { GradSums(dy, x, n, h, l, w, a, b); }
void GradInputF(const float* dy, const float* x, float* dx, int64_t n, float h, float l, const float* w, float P, float Q, float R) { GradInput(dy, x, dx, n, h, l, w, P, Q, R); }
void GradInputD(const double* dy, const double* x, double* dx, int64_t n, double h, double l, const double* w, double P, double Q, double R) { GradInput(dy, x, dx, n, h, l, w, P, Q, R); }

}  // namespace HWY_NAMESPACE
}  // namespace normkit::engine::rows
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace normkit::engine::rows {
HWY_EXPORT(DevSumsF);
HWY_EXPORT(DevSumsD);
HWY_EXPORT(ScaleShiftF);
HWY_EXPORT(ScaleShiftD);
HWY_EXPORT(ScaleShiftRowsF);
HWY_EXPORT(ScaleShiftRowsD);
HWY_EXPORT(GradSumsF);
HWY_EXPORT(GradSumsD);
HWY_EXPORT(GradInputF);
HWY_EXPORT(GradInputD);

void dev_sums(const float* x, int64_t len, SplitMean<float> m, double* s1, double* s2) {
  HWY_DYNAMIC_DISPATCH(DevSumsF)(x, len, m.hi, m.lo, s1, s2);
}
void dev_sums(const double* x, int64_t len, SplitMean<double> m, double* s1, double* s2) {
  HWY_DYNAMIC_DISPATCH(DevSumsD)(x, len, m.hi, m.lo, s1, s2);
}
void scale_shift(const float* x, float* y, int64_t len, SplitMean<float> m, float alpha, float beta) {
  HWY_DYNAMIC_DISPATCH(ScaleShiftF)(x, y, len, m.hi, m.lo, alpha, beta);
}
void scale_shift(const double* x, double* y, int64_t len, SplitMean<double> m, double alpha, double beta) {
  HWY_DYNAMIC_DISPATCH(ScaleShiftD)(x, y, len, m.hi, m.lo, alpha, beta);
}
void scale_shift_rows(const float* x, float* y, int64_t len, SplitMean<float> m, float rstd,
                      const float* w, const float* b) {
  HWY_DYNAMIC_DISPATCH(ScaleShiftRowsF)(x, y, len, m.hi, m.lo, rstd, w, b);
}
void scale_shift_rows(const double* x, double* y, int64_t len, SplitMean<double> m, double rstd,
                      const double* w, const double* b) {
  HWY_DYNAMIC_DISPATCH(ScaleShiftRowsD)(x, y, len, m.hi, m.lo, rstd, w, b);
}
void grad_sums(const float* dy, const float* x, int64_t len, SplitMean<float> m, const float* w,
               double* s1, double* s2) {
  HWY_DYNAMIC_DISPATCH(GradSumsF)(dy, x, len, m.hi, m.lo, w, s1, s2);
}
void grad_sums(const double* dy, const double* x, int64_t len, SplitMean<double> m, const double* w,
               double* s1, double* s2) {
  HWY_DYNAMIC_DISPATCH(GradSumsD)(dy, x, len, m.hi, m.lo, w, s1, s2);
}
void grad_input(const float* dy, const float* x, float* dx, int64_t len, SplitMean<float> m,
                const float* w, float P, float Q, float R) {
  HWY_DYNAMIC_DISPATCH(GradInputF)(dy, x, dx, len, m.hi, m.lo, w, P, Q, R);
}
void grad_input(const double* dy, const double* x, double* dx, int64_t len, SplitMean<double> m,
                const double* w, double P, double Q, double R) {
  HWY_DYNAMIC_DISPATCH(GradInputD)(dy, x, dx, len, m.hi, m.lo, w, P, Q, R);
}
}  // namespace normkit::engine::rows
#endif  // HWY_ONCE
