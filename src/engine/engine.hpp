// engine.hpp — the one engine every op runs on. It knows nothing about BatchNorm or
// LayerNorm: it reduces over a ReductionPlan and normalizes with per-statistic values.
// Arguments are trusted (the op files check them). Every reduction is split into chunks
// fixed by the shape alone, each chunk's partial is accumulated in a fixed order and
// partials are merged in chunk order, so results are bitwise identical for any thread
// count. xhat = (x - mean[s]) * rstd[s] throughout; s is an element's statistic index and
// a its affine index.
// T is the storage type (float, double, bfloat16, float16); lanes, parameters (w, b) and
// the row coefficients are compute_t<T> (float for the half types), statistics double.
#pragma once

#include <cstdint>

#include "normkit/ops.hpp"
#include "normkit/plan.hpp"
#include "engine/scratch.hpp"

namespace normkit::engine {

// Per statistic s: mean[s] (0 unless Variance) and second[s] = biased variance
// (Variance), mean of squares (MeanSquare) or sum of squares (L2Norm).
template <class T>
void reduce_stats(const ReductionPlan& plan, const T* x, Statistic statistic, double* mean,
                  double* second);

// y = xhat * w[a] + b[a]   (w, b may be null: 1 and 0). round_xhat: xhat is rounded to T
// before it is multiplied by w (LLaMA's RMSNorm order; b must be null).
template <class T>
void apply_forward(const ReductionPlan& plan, const T* x, T* y, const double* mean,
                   const double* rstd, const compute_t<T>* w, const compute_t<T>* b,
                   bool round_xhat = false);

// The whole forward with statistics taken from x: reduce_stats, rstd = rstd_of(second),
// apply_forward; fused per statistic (one trip through memory) when a statistic's elements
// fit in cache. Writes mean, second and rstd (num_stats values each).
template <class T>
void forward(const ReductionPlan& plan, Statistic statistic, double eps, const T* x, T* y,
             const compute_t<T>* w, const compute_t<T>* b, double* mean, double* second,
             double* rstd, bool round_xhat = false);

// Merges the fine statistics s*r .. s*r+r-1 (each of n elements; mean and second as
// reduce_stats writes them) into the coarse statistic s, in order (Chan's formula), for the
// `coarse` statistics. See grouped.hpp.
void merge_fine(Statistic statistic, int64_t coarse, int64_t r, double n, const double* fmean,
                const double* fsecond, double* mean, double* second);

// forward() fused per cached group of column-mode statistics (InstanceNorm on NHWC, per image),
// with r > 1 for a coarse plan run on its fine one (GroupNorm on NHWC, see grouped.hpp): r
// consecutive fine statistics merged (merge_fine) into each coarse one, whose mean, second and
// rstd are written. Returns false, having done nothing, where that path does not apply.
template <class T>
bool forward_columns(const ReductionPlan& plan, int64_t r, Statistic statistic, double eps, const T* x, T* y,
                     const compute_t<T>* w, const compute_t<T>* b, double* mean, double* second, double* rstd);

// The backward with batch statistics fused per cached group of column-mode statistics, each
// with one weight (InstanceNorm on NHWC, per image; with r > 1, GroupNorm on NHWC run on its
// fine plan as backward_grouped does: mean, second and rstd are the coarse statistics'): writes
// dx and, per (fine) statistic, sum_dy and sum_dy_xhat, and with `recompute` the statistics.
// Returns false, having done nothing, where that path does not apply (dx null among them).
template <class T>
bool backward_columns(const ReductionPlan& plan, int64_t r, Statistic statistic, bool recompute, double eps,
                      const T* dy, const T* x, T* dx, const compute_t<T>* w, double* mean, double* second,
                      double* rstd, double* sum_dy, double* sum_dy_xhat);

// 1/sqrt(second + eps); for L2Norm 1/max(sqrt(second), eps).
double rstd_of(Statistic statistic, double second, double eps);

// Sums for the backward pass:
//  by statistic: sum_g[s] = sum dy*w[a],  sum_gx[s] = sum dy*w[a]*xhat   (w may be null)
//  by affine:    sum_g[a] = sum dy,       sum_gx[a] = sum dy*xhat        (w unused)
enum class GroupBy { Statistic, Affine };
template <class T>
void reduce_grads(const ReductionPlan& plan, GroupBy by, const T* dy, const T* x,
                  const double* mean, const double* rstd, const compute_t<T>* w, double* sum_g,
                  double* sum_gx);

// dx = P[s] * dy * w[a] + Q[s] * (x - mean[s]) + R[s]   (w may be null: 1)
template <class T>
void apply_backward(const ReductionPlan& plan, const T* dy, const T* x, T* dx, const double* mean,
                    const double* P, const double* Q, const double* R, const compute_t<T>* w);

// The whole backward pass for dx. With batch_stats the statistics come from x (training)
// and mean, second and rstd are written; otherwise they are read (fixed statistics) and dx
// = rstd * dy * w, x not involved (as PyTorch's eval backward: an Inf in x leaves dx finite). Fused per statistic when its elements fit in cache. When every affine
// axis is a kept axis (w is constant over each statistic: BatchNorm, InstanceNorm,
// WeightNorm), also writes sum_dy[s] and sum_dy_xhat[s] per statistic and returns true, so
// dweight and dbias need no pass of their own; otherwise returns false and leaves them.
// recompute = false: training's formula with the statistics read from mean, second and rstd
// (those the forward saved) instead of taken from x again — two passes fewer.
// affine_dy / affine_dy_xhat (num_affine values, optional): where the affine axes are not all
// kept, the per-affine sums of dy and dy * xhat are taken in the same pass where that is
// possible, and *affine_done is set; otherwise they are left for reduce_grads(GroupBy::Affine).
// Possible: each statistic one contiguous run along which the affine index steps by one
// (LayerNorm, RMSNorm: the very sums reduce_grads would give, bit for bit), or each run of a
// statistic one affine index (GroupNorm on NCHW: the runs' sums added in a fixed order).
template <class T>
bool backward(const ReductionPlan& plan, Statistic statistic, bool batch_stats, double eps,
              const T* dy, const T* x, T* dx, const compute_t<T>* w, double* mean, double* second,
              double* rstd, double* sum_dy, double* sum_dy_xhat, bool recompute = true,
              double* affine_dy = nullptr, double* affine_dy_xhat = nullptr, bool* affine_done = nullptr);

// dx = P * g + Q * (x - mean) + R with P = rstd, from one statistic's sums of g = dy * w
// and g * xhat over its M elements (second: its statistic, for L2Norm's clamp at eps):
//   dx = rstd * g - rstd^2 * mean(g * xhat) * (x - mean) - rstd * mean(g)   (Variance)
// MeanSquare drops the mean(g) term; L2Norm uses sums for means, and below eps, where the
// divisor is the constant eps (rstd_of), dx = rstd * g.
void dx_coefficients(Statistic statistic, double M, double rstd, double second, double eps, double sg,
                     double sgx, double* Q, double* R);

// affine[s] = the affine index of statistic s, for plans whose affine axes are all kept.
void affine_of_stats(const ReductionPlan& plan, int64_t* affine);

}  // namespace normkit::engine
