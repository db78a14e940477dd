// rows_moments.cpp — rows.hpp's row_moments, merge_chunk_moments and finish_moments: the
// per-statistic arithmetic after the sums, vectorized across the statistics, compiled for
// every target and dispatched at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/rows_moments.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "engine/rows_simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace normkit::engine::rows {
namespace HWY_NAMESPACE {

// The moments of n elements from the sums a, b of their deviations from `shift` (the engine's
// shifted_moments): mean = shift + a/n, m2 = max(b - a * (a/n), 0), NaN staying NaN; far = 1
// where the shift lay too far from the mean for b (shift_too_far; also NaN), else 0. Returns
// whether any of the first c lanes is far.
template <class D, class V = hn::Vec<D>>
HWY_INLINE bool CenteredMoments(D d, V a, V b, V vn, V shift, size_t c, V& mean, V& m2, V& far) {
  const auto md = hn::Div(a, vn), dev = hn::Sub(b, hn::Mul(a, md));
  const auto near = hn::Le(hn::Mul(hn::Mul(md, md), vn), hn::Mul(hn::Set(d, 16.0), dev));  // false for NaN
  mean = hn::Add(shift, md);
  m2 = hn::IfThenElse(hn::Lt(dev, hn::Zero(d)), hn::Zero(d), dev);
  far = hn::IfThenZeroElse(near, hn::Set(d, 1.0));
  return !hn::AllTrue(d, hn::Or(near, hn::Not(hn::FirstN(d, c))));
}

// rstd_of of a variance: 1 / sqrt(second + eps).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V RstdOf(D d, V second, V eps) {
  return hn::Div(hn::Set(d, 1.0), hn::Sqrt(hn::Add(second, eps)));
}

// rows.hpp's row_moments: the engine's moments_of, finish_stats and rstd_of, the same formulas
// Lanes(d) rows at a time, so the same bits: this file is compiled with -ffp-contract=off
// (CMakeLists.txt), so that s2 - s1 * md rounds twice as the scalar code does.
bool RowMoments(int64_t count, double n, bool centered, bool l2, double eps, const double* shift, const double* s1,
                const double* s2, double* mean, double* second, double* rstd, double* far_rows) {
  const hn::ScalableTag<double> d;
  const size_t N = hn::Lanes(d), rows = static_cast<size_t>(count);
  const auto vn = hn::Set(d, n), zero = hn::Zero(d), one = hn::Set(d, 1.0), ve = hn::Set(d, eps);
  bool far = false;
  for (size_t k = 0; k < rows; k += N) {
    const size_t c = std::min(N, rows - k);
    const auto a = LoadN(d, s1 + k, c), b = LoadN(d, s2 + k, c);
    auto m = zero, sec = b, f = zero;
    if (centered) {
      hn::Vec<decltype(d)> m2;
      far = CenteredMoments(d, a, b, vn, LoadN(d, shift + k, c), c, m, m2, f) || far;
      sec = hn::Div(m2, vn);
    } else if (!l2) {
      sec = hn::Div(b, vn);
    }
    auto r = zero;
    if (l2) {
      const auto root = hn::Sqrt(sec);
      r = hn::Div(one, hn::IfThenElse(hn::Lt(root, ve), ve, root));  // std::max(root, eps)
    } else {
      r = RstdOf(d, sec, ve);
    }
    if (c == N) {
      hn::StoreU(m, d, mean + k), hn::StoreU(sec, d, second + k), hn::StoreU(r, d, rstd + k);
      hn::StoreU(f, d, far_rows + k);
    } else {
      StorePartial(d, m, mean + k, c), StorePartial(d, sec, second + k, c), StorePartial(d, r, rstd + k, c);
      StorePartial(d, f, far_rows + k, c);
    }
  }
  return far;
}

// rows.hpp's merge_chunk_moments: the engine's shifted_moments, then chan_merge into the
// running moments, in the order of their scalar expressions.
bool MergeChunkMoments(int64_t count, double acc_n, double n, const double* shift, const double* s1, const double* s2,
                       double* mean, double* m2, double* far_keys) {
  const hn::ScalableTag<double> d;
  const size_t N = hn::Lanes(d), keys = static_cast<size_t>(count);
  const auto vn = hn::Set(d, n);
  const double total = acc_n + n;  // chan_merge's n, y.n / n and x.n * y.n / n: one per chunk
  const auto weight = hn::Set(d, n / total), cross = hn::Set(d, acc_n * n / total);
  bool far = false;
  for (size_t k = 0; k < keys; k += N) {
    const size_t c = std::min(N, keys - k);
    hn::Vec<decltype(d)> m, q, f;
    far = CenteredMoments(d, LoadN(d, s1 + k, c), LoadN(d, s2 + k, c), vn, LoadN(d, shift + k, c), c, m, q, f) || far;
    if (acc_n != 0) {
      const auto am = LoadN(d, mean + k, c), aq = LoadN(d, m2 + k, c);
      const auto delta = hn::Sub(m, am);
      m = hn::Add(am, hn::Mul(delta, weight));
      q = hn::Add(hn::Add(aq, q), hn::Mul(hn::Mul(delta, delta), cross));
    }
    StorePartial(d, m, mean + k, c), StorePartial(d, q, m2 + k, c);
    StorePartial(d, f, far_keys + k, c);
  }
  return far;
}

// rows.hpp's finish_moments: finish_stats and rstd_of of a variance's moments.
void FinishMoments(int64_t count, double n, double eps, const double* m2, double* second, double* rstd) {
  const hn::ScalableTag<double> d;
  const size_t N = hn::Lanes(d), keys = static_cast<size_t>(count);
  const auto vn = hn::Set(d, n), ve = hn::Set(d, eps);
  for (size_t k = 0; k < keys; k += N) {
    const size_t c = std::min(N, keys - k);
    const auto sec = hn::Div(LoadN(d, m2 + k, c), vn);
    StorePartial(d, sec, second + k, c), StorePartial(d, RstdOf(d, sec, ve), rstd + k, c);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace normkit::engine::rows
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace normkit::engine::rows {
HWY_EXPORT(RowMoments);
bool row_moments(int64_t count, double n, bool centered, bool l2, double eps, const double* shift, const double* s1,
                 const double* s2, double* mean, double* second, double* rstd, double* far) {
  return HWY_DYNAMIC_DISPATCH(RowMoments)(count, n, centered, l2, eps, shift, s1, s2, mean, second, rstd, far);
}
HWY_EXPORT(MergeChunkMoments);
bool merge_chunk_moments(int64_t count, double acc_n, double n, const double* shift, const double* s1,
                         const double* s2, double* mean, double* m2, double* far) {
  return HWY_DYNAMIC_DISPATCH(MergeChunkMoments)(count, acc_n, n, shift, s1, s2, mean, m2, far);
}
HWY_EXPORT(FinishMoments);
void finish_moments(int64_t count, double n, double eps, const double* m2, double* second, double* rstd) {
  HWY_DYNAMIC_DISPATCH(FinishMoments)(count, n, eps, m2, second, rstd);
}
}  // namespace normkit::engine::rows
#endif  // HWY_ONCE
