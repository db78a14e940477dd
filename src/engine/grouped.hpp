// grouped.hpp — statistics made of r consecutive finer ones. Some plans' innermost reduced
// block is too short to run along: GroupNorm on channels-last memory reduces C/G channels
// (often 8) that sit contiguously, then steps a whole pixel. Such a plan is run as a finer
// plan — the same axes with that short block kept (InstanceNorm's plan, whose runs follow
// all C channels, the column fast path) — and the fine statistics f = s * r + i (i < r) are
// merged into the coarse statistic s in order of i (Chan's formula), so results stay
// independent of the thread count. Then every element is normalized with its coarse
// statistic on the fine plan.
#pragma once

#include <cstdint>

#include "engine/engine.hpp"

namespace normkit::engine {

// As forward() on the coarse plan: writes mean, second and rstd for its
// fine.num_stats() / r statistics. Needs the fine plan's affine axes all kept.
template <class T>
void forward_grouped(const ReductionPlan& fine, int64_t r, Statistic statistic, double eps, const T* x,
                     T* y, const compute_t<T>* w, const compute_t<T>* b, double* mean, double* second,
                     double* rstd);

// As backward() on the coarse plan (batch_stats: the coarse statistics are taken from x and
// written, or read with recompute = false; otherwise read and fixed). Always writes the fine per-statistic sums fine_sum_dy[f] = sum dy
// and fine_sum_dy_xhat[f] = sum dy * xhat, from which dweight and dbias follow (the fine
// plan's affine index is a function of its statistic: affine_of_stats).
template <class T>
void backward_grouped(const ReductionPlan& fine, int64_t r, Statistic statistic, bool batch_stats, double eps,
                      const T* dy, const T* x, T* dx, const compute_t<T>* w, double* mean, double* second,
                      double* rstd, double* fine_sum_dy, double* fine_sum_dy_xhat, bool recompute = true);

}  // namespace normkit::engine
