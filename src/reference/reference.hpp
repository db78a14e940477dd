// reference.hpp — the plain-loop oracle every test compares the library with.
// Independent of the plan and the engine on purpose: contiguous row-major inputs, one
// readable loop per formula, double accumulators, no SIMD, no threads. Slow and obvious.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "normkit/ops.hpp"  // Statistic, Shape only: no plan, no engine

namespace normkit::reference {

// All functions are instantiated for T = float and T = double and compute in double.
// Pointer arguments marked "or null" are optional. `mean` / `rstd` outputs receive the
// statistics used to normalize (one per statistic). Backward functions OVERWRITE their
// outputs (dx, dweight, dbias) and never touch running statistics.

// ---- BatchNorm: x is (N, C, S); one statistic per channel over N and S -----------------
// training (or no running stats): batch statistics; running stats, if given, are updated
// as running = (1 - momentum) * running + momentum * batch (variance: unbiased).
// eval with running stats: normalize with them. mean/rstd: [C].
template <class T>
void batch_norm_forward(const T* x, T* y, int64_t N, int64_t C, int64_t S, const T* weight,
                        const T* bias, T* running_mean, T* running_var, bool training,
                        double momentum, double eps, T* mean = nullptr, T* rstd = nullptr);
template <class T>
void batch_norm_backward(const T* dy, const T* x, T* dx, int64_t N, int64_t C, int64_t S,
                         const T* weight, const T* running_mean, const T* running_var,
                         bool training, double eps, T* dweight, T* dbias);

// ---- InstanceNorm: x is (N, C, S); one statistic per (n, c) over S ---------------------
// use_input_stats: per-instance statistics; running stats, if given, are updated with the
// average over n of the instance mean and unbiased variance. Otherwise normalize with the
// running stats. mean/rstd: [N*C] (only written when use_input_stats).
template <class T>
void instance_norm_forward(const T* x, T* y, int64_t N, int64_t C, int64_t S, const T* weight,
                           const T* bias, T* running_mean, T* running_var, bool use_input_stats,
                           double momentum, double eps, T* mean = nullptr, T* rstd = nullptr);
template <class T>
void instance_norm_backward(const T* dy, const T* x, T* dx, int64_t N, int64_t C, int64_t S,
                            const T* weight, const T* running_mean, const T* running_var,
                            bool use_input_stats, double eps, T* dweight, T* dbias);

// ---- GroupNorm: x is (N, C, S); one statistic per (n, g) over C/G channels and S -------
// weight, bias: [C]; mean/rstd: [N*G].
template <class T>
void group_norm_forward(const T* x, T* y, int64_t N, int64_t C, int64_t S, int64_t G,
                        const T* weight, const T* bias, double eps, T* mean = nullptr,
                        T* rstd = nullptr);
template <class T>
void group_norm_backward(const T* dy, const T* x, T* dx, int64_t N, int64_t C, int64_t S,
                         int64_t G, const T* weight, double eps, T* dweight, T* dbias);

// ---- LayerNorm: x is (M, D); one statistic per row -------------------------------------
template <class T>
void layer_norm_forward(const T* x, T* y, int64_t M, int64_t D, const T* weight, const T* bias,
                        double eps, T* mean = nullptr, T* rstd = nullptr);
template <class T>
void layer_norm_backward(const T* dy, const T* x, T* dx, int64_t M, int64_t D, const T* weight,
                         double eps, T* dweight, T* dbias);

// ---- RMSNorm: x is (M, D); y = x / sqrt(mean(x^2) + eps) * w (w -> 1 + w: unit_offset) -
template <class T>
void rms_norm_forward(const T* x, T* y, int64_t M, int64_t D, const T* weight, bool unit_offset,
                      double eps, T* rstd = nullptr);
template <class T>
void rms_norm_backward(const T* dy, const T* x, T* dx, int64_t M, int64_t D, const T* weight,
                       bool unit_offset, double eps, T* dweight);

// ---- WeightNorm: w = g * v / ||v||, the norm over every dim of v except `dim` ----------
// dim unset or -1: one norm over the whole tensor (g has one value). norms: one per slice.
template <class T>
void weight_norm_forward(const T* v, const T* g, T* w, const Shape& shape,
                         std::optional<int64_t> dim, T* norms = nullptr);
template <class T>
void weight_norm_backward(const T* dw, const T* v, const T* g, T* dv, T* dg, const Shape& shape,
                          std::optional<int64_t> dim);

// ---- generic: statistics over the axes where reduce[i]; affine params vary along the
// axes where affine[i] (row-major over those axes). mean/rstd: one per combination of the
// kept axes, row-major. L2Norm: y = x / ||x|| (no eps), mean written as 0.
template <class T>
void normalize_forward(const T* x, T* y, const Shape& shape, const std::vector<bool>& reduce,
                       const std::vector<bool>& affine, Statistic statistic, const T* weight,
                       const T* bias, double eps, T* mean = nullptr, T* rstd = nullptr);
template <class T>
void normalize_backward(const T* dy, const T* x, T* dx, const Shape& shape,
                        const std::vector<bool>& reduce, const std::vector<bool>& affine,
                        Statistic statistic, const T* weight, double eps, T* dweight, T* dbias);

}  // namespace normkit::reference
