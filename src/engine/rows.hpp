// rows.hpp — the row primitives the engine drivers call on one run of `len` elements
// spaced `ms` apart (ms == 1 on every contiguous plan). Per-statistic coefficients step by
// `ss` and affine parameters by `as` along the run (0: constant over the run). Everything
// accumulates in double; the order of additions is fixed (left to right), never threaded.
#pragma once

#include <cstdint>

namespace normkit::engine::rows {

template <class T>
double sum(const T* x, int64_t len, int64_t ms) {
  double s = 0;
  for (int64_t i = 0; i < len; ++i) s += double(x[i * ms]);
  return s;
}

// sum (x - m)^2; with m = 0, the sum of squares.
template <class T>
double sum_sq_dev(const T* x, int64_t len, int64_t ms, double m) {
  double s = 0;
  for (int64_t i = 0; i < len; ++i) {
    const double d = double(x[i * ms]) - m;
    s += d * d;
  }
  return s;
}

// acc[i] += x[i]  (column mode: one accumulator per element of the run)
template <class T>
void accumulate(double* acc, const T* x, int64_t len, int64_t ms) {
  for (int64_t i = 0; i < len; ++i) acc[i] += double(x[i * ms]);
}

// acc[i] += (x[i] - mean[i])^2
template <class T>
void accumulate_sq_dev(double* acc, const T* x, int64_t len, int64_t ms, const double* mean) {
  for (int64_t i = 0; i < len; ++i) {
    const double d = double(x[i * ms]) - mean[i];
    acc[i] += d * d;
  }
}

// With g = dy * w (w null: 1) and xhat = x * A + B:
//   column == 0:  s1[0] += sum g,   s2[0] += sum g * xhat
//   column == 1:  s1[i] += g[i],    s2[i] += g[i] * xhat[i]
template <class T>
void grad_sums(const T* dy, const T* x, int64_t len, int64_t ms, const double* A, const double* B,
               int64_t ss, const T* w, int64_t as, double* s1, double* s2, int64_t column) {
  double a1 = 0, a2 = 0;
  for (int64_t i = 0; i < len; ++i) {
    const double g = double(dy[i * ms]) * (w ? double(w[i * as]) : 1.0);
    const double xhat = double(x[i * ms]) * A[i * ss] + B[i * ss];
    if (column) {
      s1[i] += g, s2[i] += g * xhat;
    } else {
      a1 += g, a2 += g * xhat;
    }
  }
  if (!column) s1[0] += a1, s2[0] += a2;
}

// y = (x * A + B) * w + b   (w null: 1; b null: 0)
template <class T>
void affine_forward(const T* x, T* y, int64_t len, int64_t ms, const double* A, const double* B,
                    int64_t ss, const T* w, const T* b, int64_t as) {
  if (ss == 0 && as == 0) {  // one scale and shift for the whole run
    const double wv = w ? double(w[0]) : 1.0, bv = b ? double(b[0]) : 0.0;
    const double alpha = A[0] * wv, beta = B[0] * wv + bv;
    for (int64_t i = 0; i < len; ++i) y[i * ms] = T(double(x[i * ms]) * alpha + beta);
    return;
  }
  for (int64_t i = 0; i < len; ++i) {
    const double xhat = double(x[i * ms]) * A[i * ss] + B[i * ss];
    const double wv = w ? double(w[i * as]) : 1.0, bv = b ? double(b[i * as]) : 0.0;
    y[i * ms] = T(xhat * wv + bv);
  }
}

// dx = P * dy * w + Q * x + R   (w null: 1)
template <class T>
void affine_backward(const T* dy, const T* x, T* dx, int64_t len, int64_t ms, const double* P,
                     const double* Q, const double* R, int64_t ss, const T* w, int64_t as) {
  for (int64_t i = 0; i < len; ++i) {
    const double g = double(dy[i * ms]) * (w ? double(w[i * as]) : 1.0);
    dx[i * ms] = T(P[i * ss] * g + Q[i * ss] * double(x[i * ms]) + R[i * ss]);
  }
}

}  // namespace normkit::engine::rows
