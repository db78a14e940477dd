//! @file
//! normkit/ops.hpp — the functional API: the six normalizations and the generic
//! `normalize`, forward and backward, for storage T = float, double, bfloat16 or float16.
//! Half storage (normkit/half.hpp): inputs, outputs and dx are 2-byte values; statistics and
//! arithmetic are float32, saved statistics float; parameters P are float (mixed
//! precision) or the storage type itself, read once at the door; their gradients and any
//! running statistics have type P (rounded when P is a half type). P defaults to T, so
//! `layer_norm_forward<float>(x, y, LayerNormArgs<float>{...})` reads as before.
//! Every function checks all of its arguments before writing anything (a normkit::Error is
//! thrown otherwise), then runs one reduction plan on the engine. Forward functions write y
//! (and, in training, the running statistics); backward functions OVERWRITE dx and the
//! parameter gradients and never touch running statistics.
//! Parameters and per-channel buffers are std::span: an empty span means "absent" (that
//! output is then not computed), and a non-empty one must have exactly the expected size.
//! All tensors of one call share x's shape and strides; dx.data may be null to skip dx.
//! Training backwards take an optional `saved`: the SavedStats the forward wrote for the same
//! x. Given, the statistics are read instead of taken from x again (two passes over x fewer,
//! as PyTorch's save_mean/save_invstd); the result is the same up to their float rounding.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "normkit/half.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

/// Which statistic a normalization divides by.
enum class Statistic {
  Variance,    ///< y = (x - mean) / sqrt(biased var + eps)        BatchNorm, LayerNorm, ...
  MeanSquare,  ///< y = x / sqrt(mean(x^2) + eps)                  RMSNorm
  L2Norm,      ///< y = x / max(||x||_2, eps)                      WeightNorm (eps = 0)
};

/// Optional outputs of a forward pass, one value per statistic: the mean (0 for MeanSquare
/// and L2Norm) and the reciprocal of the divisor (rstd; 1/||x|| for L2Norm).
template <class T>
struct SavedStats {
  std::span<T> mean;  ///< one mean per statistic, or empty
  std::span<T> rstd;  ///< one reciprocal divisor per statistic, or empty
};

// ---- generic --------------------------------------------------------------------------
// Normalize over any axes: one statistic per combination of the other axes. The affine
// parameters (weight, bias: optional) vary along `affine_axes` and have that many values.
/// Arguments of normalize_forward() and normalize_backward().
template <class T, class P = T>
struct NormalizeArgs {
  std::vector<int64_t> reduce_axes;           ///< axes averaged over (negative: from the end)
  std::vector<int64_t> affine_axes;           ///< axes weight and bias vary along
  Statistic statistic = Statistic::Variance;  ///< what to divide by
  std::span<const P> weight;                  ///< one value per affine index, or empty
  std::span<const P> bias;                    ///< one value per affine index, or empty
  double eps = 1e-5;                          ///< added to the statistic before the square root
};
/// The generic normalization forward: writes y (and `saved` if given).
template <class T, class P = T>
NORMKIT_API void normalize_forward(TensorView<const T> x, TensorView<T> y,
                                   const NormalizeArgs<T, P>& args, SavedStats<compute_t<T>> saved = {});
/// The generic normalization backward: OVERWRITES dx, dweight and dbias (where given).
template <class T, class P = T>
NORMKIT_API void normalize_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                                    const NormalizeArgs<T, P>& args, std::span<std::type_identity_t<P>> dweight = {},
                                    std::span<std::type_identity_t<P>> dbias = {});

// ---- BatchNorm: x is (N, C, *); statistics per channel over N and the spatial dims -----
/// Arguments of batch_norm_forward() and batch_norm_backward().
template <class T, class P = T>
struct BatchNormArgs {
  std::span<const P> weight;  ///< [C] or empty
  std::span<const P> bias;    ///< [C] or empty
  std::span<P> running_mean;  ///< [C] or empty; with running_var, updated in training
  std::span<P> running_var;   ///< [C] or empty; stores the unbiased variance
  bool training = false;      ///< false: normalize with the running statistics
  double momentum = 0.1;      ///< running = (1 - momentum) * running + momentum * batch
  double eps = 1e-5;          ///< added to the statistic before the square root
  /// Guard (off by default, as PyTorch): when a training batch has a NaN/Inf statistic, leave
  /// the running statistics unchanged instead of folding it in. y is written either way.
  bool skip_nonfinite_update = false;
  bool* update_skipped = nullptr;  ///< if given: set to whether the guard skipped the update
};
/// BatchNorm forward: writes y (and `saved` if given).
template <class T, class P = T>
NORMKIT_API void batch_norm_forward(TensorView<const T> x, TensorView<T> y,
                                    const BatchNormArgs<T, P>& args, SavedStats<compute_t<T>> saved = {});
/// BatchNorm backward: OVERWRITES dx, dweight and dbias (where given).
template <class T, class P = T>
NORMKIT_API void batch_norm_backward(TensorView<const T> dy, TensorView<const T> x,
                                     TensorView<T> dx, const BatchNormArgs<T, P>& args,
                                     std::span<std::type_identity_t<P>> dweight = {}, std::span<std::type_identity_t<P>> dbias = {},
                                     SavedStats<compute_t<T>> saved = {});

// ---- InstanceNorm: x is (N, C, *); statistics per (n, c) over the spatial dims ----------
/// Arguments of instance_norm_forward() and instance_norm_backward().
template <class T, class P = T>
struct InstanceNormArgs {
  std::span<const P> weight;  ///< [C] or empty
  std::span<const P> bias;    ///< [C] or empty
  std::span<P> running_mean;  ///< [C] or empty: updated with the batch average of the
                               ///< per-instance statistics when use_input_stats
  std::span<P> running_var;     ///< [C] or empty: likewise
  bool use_input_stats = true;  ///< false: normalize with the running statistics
  double momentum = 0.1;        ///< as BatchNormArgs::momentum
  double eps = 1e-5;            ///< added to the statistic before the square root
  bool skip_nonfinite_update = false;  ///< as BatchNormArgs::skip_nonfinite_update
  bool* update_skipped = nullptr;      ///< as BatchNormArgs::update_skipped
};
/// InstanceNorm forward: writes y (and `saved` if given).
template <class T, class P = T>
NORMKIT_API void instance_norm_forward(TensorView<const T> x, TensorView<T> y,
                                       const InstanceNormArgs<T, P>& args, SavedStats<compute_t<T>> saved = {});
/// InstanceNorm backward: OVERWRITES dx, dweight and dbias (where given).
template <class T, class P = T>
NORMKIT_API void instance_norm_backward(TensorView<const T> dy, TensorView<const T> x,
                                        TensorView<T> dx, const InstanceNormArgs<T, P>& args,
                                        std::span<std::type_identity_t<P>> dweight = {}, std::span<std::type_identity_t<P>> dbias = {},
                                     SavedStats<compute_t<T>> saved = {});

// ---- GroupNorm: x is (N, C, *); statistics per (n, group) over C/G channels and space ---
/// Arguments of group_norm_forward() and group_norm_backward().
template <class T, class P = T>
struct GroupNormArgs {
  int64_t num_groups = 1;     ///< G: must be > 0 and divide C
  std::span<const P> weight;  ///< [C] or empty
  std::span<const P> bias;    ///< [C] or empty
  double eps = 1e-5;          ///< added to the statistic before the square root
};
/// GroupNorm forward: writes y (and `saved` if given).
template <class T, class P = T>
NORMKIT_API void group_norm_forward(TensorView<const T> x, TensorView<T> y,
                                    const GroupNormArgs<T, P>& args, SavedStats<compute_t<T>> saved = {});
/// GroupNorm backward: OVERWRITES dx, dweight and dbias (where given).
template <class T, class P = T>
NORMKIT_API void group_norm_backward(TensorView<const T> dy, TensorView<const T> x,
                                     TensorView<T> dx, const GroupNormArgs<T, P>& args,
                                     std::span<std::type_identity_t<P>> dweight = {}, std::span<std::type_identity_t<P>> dbias = {},
                                     SavedStats<compute_t<T>> saved = {});

// ---- LayerNorm: statistics over the trailing dims given by normalized_shape -----------
/// Arguments of layer_norm_forward() and layer_norm_backward().
template <class T, class P = T>
struct LayerNormArgs {
  Shape normalized_shape;     ///< the trailing dims of x to normalize over
  std::span<const P> weight;  ///< normalized_shape elements, or empty
  std::span<const P> bias;    ///< normalized_shape elements, or empty
  double eps = 1e-5;          ///< added to the statistic before the square root
};
/// LayerNorm forward: writes y (and `saved` if given).
template <class T, class P = T>
NORMKIT_API void layer_norm_forward(TensorView<const T> x, TensorView<T> y,
                                    const LayerNormArgs<T, P>& args, SavedStats<compute_t<T>> saved = {});
/// LayerNorm backward: OVERWRITES dx, dweight and dbias (where given).
template <class T, class P = T>
NORMKIT_API void layer_norm_backward(TensorView<const T> dy, TensorView<const T> x,
                                     TensorView<T> dx, const LayerNormArgs<T, P>& args,
                                     std::span<std::type_identity_t<P>> dweight = {}, std::span<std::type_identity_t<P>> dbias = {},
                                     SavedStats<compute_t<T>> saved = {});

// ---- RMSNorm: y = x / sqrt(mean(x^2) + eps) * w over the trailing dims ----------------
/// Where RMSNorm rounds to the storage type T. Both compute rstd in float32.
enum class HalfCast {
  /// y = T(x * rstd * w), one rounding (torch.nn.functional.rms_norm, Gemma). The default.
  MultiplyThenCast,
  /// y = T(float(T(x * rstd)) * w): the normalized value is rounded to T before the
  /// multiply (LLaMA / Hugging Face LlamaRMSNorm with a half weight).
  NormalizeThenCast,
};
/// Arguments of rms_norm_forward() and rms_norm_backward().
template <class T, class P = T>
struct RMSNormArgs {
  Shape normalized_shape;     ///< the trailing dims of x to normalize over
  std::span<const P> weight;  ///< normalized_shape elements, or empty
  std::optional<double> eps;  ///< unset: machine epsilon of compute_t<T> (float for halves)
  bool unit_offset = false;   ///< Gemma: multiply by (1 + w) instead of w (1 + w in compute_t<T>)
  HalfCast cast = HalfCast::MultiplyThenCast;  ///< where y is rounded to T (matters for halves)
};
/// RMSNorm forward: writes y (and `saved` if given).
template <class T, class P = T>
NORMKIT_API void rms_norm_forward(TensorView<const T> x, TensorView<T> y,
                                  const RMSNormArgs<T, P>& args, SavedStats<compute_t<T>> saved = {});
/// RMSNorm backward: OVERWRITES dx, dweight and dbias (where given).
template <class T, class P = T>
NORMKIT_API void rms_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                       const RMSNormArgs<T, P>& args, std::span<std::type_identity_t<P>> dweight = {},
                       SavedStats<compute_t<T>> saved = {});

// ---- WeightNorm: w = g * v / ||v||, the norm over every dim of v except `dim` ----------
// g has v.shape[dim] values (one value when dim is unset, or -1 as PyTorch spells it:
// the norm of the whole tensor). `norms`, if given, receives ||v|| per slice.
/// Arguments of weight_norm_forward() and weight_norm_backward().
template <class T>
struct WeightNormArgs {
  std::optional<int64_t> dim = 0;  ///< the dim g runs along; unset or -1: the whole tensor
};
/// WeightNorm forward: writes w = g * v / ||v|| (and `norms` if given).
template <class T, class P = T>
NORMKIT_API void weight_norm_forward(TensorView<const T> v, std::span<const std::type_identity_t<P>> g,
                                     TensorView<T> w, const WeightNormArgs<T>& args,
                                     std::span<compute_t<T>> norms = {});
/// dw: the gradient of the loss with respect to w. Writes dv (shaped like v) and dg.
/// `norms`: the forward's ||v|| per slice (as weight_norm_forward wrote them), or empty to
/// take them from v again; given, the backward reads v once less from cache, as PyTorch's
/// `_weight_norm_interface_backward` takes its saved norms.
template <class T, class P = T>
NORMKIT_API void weight_norm_backward(TensorView<const T> dw, TensorView<const T> v,
                                      std::span<const std::type_identity_t<P>> g, TensorView<T> dv,
                                      std::span<std::type_identity_t<P>> dg,
                                      const WeightNormArgs<T>& args,
                                      std::span<const compute_t<T>> norms = {});

}  // namespace normkit
