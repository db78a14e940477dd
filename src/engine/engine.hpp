// engine.hpp — the one engine every op runs on. It knows nothing about BatchNorm or
// LayerNorm: it reduces over a ReductionPlan and applies per-statistic coefficients.
// Arguments are trusted (the op files check them); accumulation is in double; every
// reduction is split into chunks fixed by the shape alone and merged in a fixed order, so
// results are bitwise identical for any thread count.
#pragma once

#include <cstdint>

#include "normkit/ops.hpp"
#include "normkit/plan.hpp"

namespace normkit::engine {

// Per statistic s: mean[s], and second[s] = biased variance (Variance), mean of squares
// (MeanSquare) or sum of squares (L2Norm). mean[s] = 0 for the last two.
template <class T>
void reduce_stats(const ReductionPlan& plan, const T* x, Statistic statistic, double* mean,
                  double* second);

// y = (x * A[s] + B[s]) * w[a] + b[a]   (w, b may be null: 1 and 0). s is the statistic
// index of the element and a its affine index.
template <class T>
void apply_forward(const ReductionPlan& plan, const T* x, T* y, const double* A, const double* B,
                   const T* w, const T* b);

// Sums for the backward pass, with xhat = x * A[s] + B[s]:
//  by statistic: sum_g[s] = sum dy*w[a],  sum_gx[s] = sum dy*w[a]*xhat   (w may be null)
//  by affine:    sum_g[a] = sum dy,       sum_gx[a] = sum dy*xhat        (w unused)
enum class GroupBy { Statistic, Affine };
template <class T>
void reduce_grads(const ReductionPlan& plan, GroupBy by, const T* dy, const T* x, const double* A,
                  const double* B, const T* w, double* sum_g, double* sum_gx);

// dx = P[s] * dy * w[a] + Q[s] * x + R[s]   (w may be null: 1)
template <class T>
void apply_backward(const ReductionPlan& plan, const T* dy, const T* x, T* dx, const double* P,
                    const double* Q, const double* R, const T* w);

}  // namespace normkit::engine
