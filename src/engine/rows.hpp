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

namespace normkit::engine::rows {

// The mean as two T values whose sum is the double `m` to T's precision squared.
template <class T>
struct SplitMean {
  T hi, lo;
  explicit SplitMean(double m) : hi(T(m)), lo(T(m - double(T(m)))) {}
};

// s1 = sum d, s2 = sum d^2
void dev_sums(const float* x, int64_t len, SplitMean<float> m, double* s1, double* s2);
void dev_sums(const double* x, int64_t len, SplitMean<double> m, double* s1, double* s2);

// y = d * alpha + beta
void scale_shift(const float* x, float* y, int64_t len, SplitMean<float> m, float alpha, float beta);
void scale_shift(const double* x, double* y, int64_t len, SplitMean<double> m, double alpha, double beta);

// y = d * rstd * w[i] + b[i]   (w or b may be null: 1 or 0)
void scale_shift_rows(const float* x, float* y, int64_t len, SplitMean<float> m, float rstd,
                      const float* w, const float* b);
void scale_shift_rows(const double* x, double* y, int64_t len, SplitMean<double> m, double rstd,
                      const double* w, const double* b);

// With g = dy * w[i] (w null: dy): s1 = sum g, s2 = sum g * d
void grad_sums(const float* dy, const float* x, int64_t len, SplitMean<float> m, const float* w,
               double* s1, double* s2);
void grad_sums(const double* dy, const double* x, int64_t len, SplitMean<double> m, const double* w,
               double* s1, double* s2);

// dx = P * g + Q * d + R,  g = dy * w[i] (w null: dy)
void grad_input(const float* dy, const float* x, float* dx, int64_t len, SplitMean<float> m,
                const float* w, float P, float Q, float R);
void grad_input(const double* dy, const double* x, double* dx, int64_t len, SplitMean<double> m,
                const double* w, double P, double Q, double R);

}  // namespace normkit::engine::rows
