// rows.hpp — the row primitives the engine drivers call on one contiguous run of `len`
// elements. SIMD lives behind these (rows_simd.cpp, Highway with runtime dispatch); the
// drivers never see a vector. Lanes accumulate in T and each call returns double sums, so
// a result depends on the run's length alone, never on threads.
//
// Accuracy: d = (x - m_hi) - m_lo, where m_hi + m_lo is the statistic's mean split into
// two T values; x - m_hi is exact when x is near the mean, so a large offset does not
// cancel away the spread (the failure of E[x^2] - E[x]^2 and of folded x*A + B).
#pragma once

#include <cstdint>

#include "normkit/half.hpp"

namespace normkit::engine::rows {

using normkit::compute_t;

// The mean as two T values whose sum is the double `m` to T's precision squared.
template <class T>
struct SplitMean {
  T hi, lo;
  explicit SplitMean(double m) : hi(T(m)), lo(T(m - double(T(m)))) {}
};

// Each primitive is defined for storage S = float, double, bfloat16 and float16 (explicit
// instantiations in rows_simd.cpp). Lanes compute in C = compute_t<S>: half elements are
// widened on load and rounded to nearest even on store, one vector at a time (never a
// converted copy of the row).

// s1 = sum d, s2 = sum d^2
template <class S>
void dev_sums(const S* x, int64_t len, SplitMean<compute_t<S>> m, double* s1, double* s2);

// y = d * alpha + beta
template <class S>
void scale_shift(const S* x, S* y, int64_t len, SplitMean<compute_t<S>> m, compute_t<S> alpha,
                 compute_t<S> beta);

// y = d * rstd * w[i] + b[i]   (w or b may be null: 1 or 0). round_xhat: d * rstd is
// rounded to S before the multiply (LLaMA's RMSNorm order; b must be null then).
template <class S>
void scale_shift_rows(const S* x, S* y, int64_t len, SplitMean<compute_t<S>> m, compute_t<S> rstd,
                      const compute_t<S>* w, const compute_t<S>* b, bool round_xhat = false);

// With g = dy * w[i] (w null: dy): s1 = sum g, s2 = sum g * d
template <class S>
void grad_sums(const S* dy, const S* x, int64_t len, SplitMean<compute_t<S>> m,
               const compute_t<S>* w, double* s1, double* s2);

// dx = P * g + Q * d + R,  g = dy * w[i] (w null: dy)
template <class S>
void grad_input(const S* dy, const S* x, S* dx, int64_t len, SplitMean<compute_t<S>> m,
                const compute_t<S>* w, compute_t<S> P, compute_t<S> Q, compute_t<S> R);

// Column sums along a run whose elements share one statistic (m, r): the dweight / dbias
// sums of LayerNorm and RMSNorm. s1[i] += dy[i], s2[i] += dy[i] * ((x[i] - m) * r), in
// double; SIMD (halves widened on load). Hidden explicitly: a specialization over builtin
// and exported types only would otherwise leave libnormkit.so (tests/consumer checks).
template <class S>
__attribute__((visibility("hidden"))) void col_grad_sums_one(double* s1, double* s2, const S* dy, const S* x,
                                                             int64_t len, double m, double r);

// ---- column mode: the statistic changes along the run (channels-last BatchNorm and
// InstanceNorm), one accumulator or coefficient per element. Plain loops over contiguous
// runs, in double, which the compiler vectorizes; the order of additions per element is
// fixed.

template <class T>
void col_add(double* acc, const T* x, int64_t len) {
  for (int64_t i = 0; i < len; ++i) acc[i] += double(x[i]);
}

template <class T>
void col_add_sq_dev(double* acc, const T* x, int64_t len, const double* mean) {
  for (int64_t i = 0; i < len; ++i) {
    const double d = double(x[i]) - mean[i];
    acc[i] += d * d;
  }
}

// s1[i] += dy[i],  s2[i] += dy[i] * (x[i] - mean[i]) * rstd[i]
template <class T>
void col_grad_sums(double* s1, double* s2, const T* dy, const T* x, int64_t len, const double* mean,
                   const double* rstd) {
  for (int64_t i = 0; i < len; ++i) {
    const double g = double(dy[i]);
    s1[i] += g, s2[i] += g * ((double(x[i]) - mean[i]) * rstd[i]);
  }
}

// y = (x - mean) * alpha + beta
template <class T>
void col_scale_shift(const T* x, T* y, int64_t len, const double* mean, const double* alpha,
                     const double* beta) {
  for (int64_t i = 0; i < len; ++i) y[i] = T((double(x[i]) - mean[i]) * alpha[i] + beta[i]);
}

// dx = P * dy + Q * (x - mean) + R
template <class T>
void col_grad_input(const T* dy, const T* x, T* dx, int64_t len, const double* mean, const double* P,
                    const double* Q, const double* R) {
  for (int64_t i = 0; i < len; ++i) dx[i] = T(P[i] * double(dy[i]) + Q[i] * (double(x[i]) - mean[i]) + R[i]);
}

}  // namespace normkit::engine::rows
