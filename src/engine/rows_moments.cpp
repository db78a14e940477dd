// rows_moments.cpp — rows.hpp's row_moments: the per-statistic arithmetic of a block of rows,
// vectorized across the rows, compiled for every target and dispatched at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/rows_moments.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "engine/rows_simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace normkit::engine::rows {
namespace HWY_NAMESPACE {

// rows.hpp's row_moments: the engine's moments_of, finish_stats and rstd_of, the same formulas
// Lanes(d) rows at a time (where the target has FMA the compiler may fuse s2 - s1 * md into one
// rounding; every row of every block takes this path, so the thread count changes no bit).
bool RowMoments(int64_t count, double n, bool centered, bool l2, double eps, const double* shift, const double* s1,
                const double* s2, double* mean, double* second, double* rstd, double* far_rows) {
  const hn::ScalableTag<double> d;
  const size_t N = hn::Lanes(d), rows = static_cast<size_t>(count);
  const auto vn = hn::Set(d, n), zero = hn::Zero(d), one = hn::Set(d, 1.0), ve = hn::Set(d, eps);
  const auto sixteen = hn::Set(d, 16.0);
  bool far = false;
  for (size_t k = 0; k < rows; k += N) {
    const size_t c = std::min(N, rows - k);
    const auto a = LoadN(d, s1 + k, c), b = LoadN(d, s2 + k, c);
    auto m = zero, sec = b, f = zero;
    if (centered) {
      const auto md = hn::Div(a, vn), m2 = hn::Sub(b, hn::Mul(a, md));
      const auto near = hn::Le(hn::Mul(hn::Mul(md, md), vn), hn::Mul(sixteen, m2));  // false for NaN
      far = far || !hn::AllTrue(d, hn::Or(near, hn::Not(hn::FirstN(d, c))));
      f = hn::IfThenZeroElse(near, one);
      m = hn::Add(LoadN(d, shift + k, c), md);
      sec = hn::Div(hn::IfThenElse(hn::Lt(m2, zero), zero, m2), vn);  // NaN stays NaN
    } else if (!l2) {
      sec = hn::Div(b, vn);
    }
    auto r = zero;
    if (l2) {
      const auto root = hn::Sqrt(sec);
      r = hn::Div(one, hn::IfThenElse(hn::Lt(root, ve), ve, root));  // std::max(root, eps)
    } else {
      r = hn::Div(one, hn::Sqrt(hn::Add(sec, ve)));
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
}  // namespace normkit::engine::rows
#endif  // HWY_ONCE
