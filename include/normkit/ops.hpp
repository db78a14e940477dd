// normkit/ops.hpp — the functional API: the six normalizations and the generic
// `normalize`, forward and backward, for T = float or double.
// Every function checks all of its arguments before writing anything (a normkit::Error is
// thrown otherwise), then runs one reduction plan on the engine. Forward functions write y
// (and, in training, the running statistics); backward functions OVERWRITE dx and the
// parameter gradients and never touch running statistics. Any output pointer may be null
// Parameters and per-channel buffers are std::span: an empty span means "absent" (that
// output is then not computed), and a non-empty one must have exactly the expected size.
// All tensors of one call share x's shape and strides; dx.data may be null to skip dx.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "normkit/tensor.hpp"

namespace normkit {

// Which statistic a normalization divides by.
enum class Statistic {
  Variance,    // y = (x - mean) / sqrt(biased var + eps)        BatchNorm, LayerNorm, ...
  MeanSquare,  // y = x / sqrt(mean(x^2) + eps)                  RMSNorm
  L2Norm,      // y = x / ||x||_2                                WeightNorm
};

// Optional outputs of a forward pass, one value per statistic: the mean (0 for MeanSquare
// and L2Norm) and the reciprocal of the divisor (rstd; 1/||x|| for L2Norm).
template <class T>
struct SavedStats {
  std::span<T> mean;
  std::span<T> rstd;
};

// ---- generic --------------------------------------------------------------------------
// Normalize over any axes: one statistic per combination of the other axes. The affine
// parameters (weight, bias: optional) vary along `affine_axes` and have that many values.
template <class T>
struct NormalizeArgs {
  std::vector<int64_t> reduce_axes;
  std::vector<int64_t> affine_axes;
  Statistic statistic = Statistic::Variance;
  std::span<const T> weight;
  std::span<const T> bias;
  double eps = 1e-5;
};
template <class T>
void normalize_forward(TensorView<const T> x, TensorView<T> y, const NormalizeArgs<T>& args,
                       SavedStats<T> saved = {});
template <class T>
void normalize_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                        const NormalizeArgs<T>& args, std::span<T> dweight = {}, std::span<T> dbias = {});

// ---- BatchNorm: x is (N, C, *); statistics per channel over N and the spatial dims -----
template <class T>
struct BatchNormArgs {
  std::span<const T> weight;   // [C] or empty
  std::span<const T> bias;     // [C] or empty
  std::span<T> running_mean;   // [C] or empty; with running_var, updated in training
  std::span<T> running_var;    // [C] or empty; stores the unbiased variance
  bool training = false;       // false: normalize with the running statistics
  double momentum = 0.1;       // running = (1 - momentum) * running + momentum * batch
  double eps = 1e-5;
};
template <class T>
void batch_norm_forward(TensorView<const T> x, TensorView<T> y, const BatchNormArgs<T>& args,
                        SavedStats<T> saved = {});
template <class T>
void batch_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                         const BatchNormArgs<T>& args, std::span<T> dweight = {}, std::span<T> dbias = {});

// ---- InstanceNorm: x is (N, C, *); statistics per (n, c) over the spatial dims ----------
template <class T>
struct InstanceNormArgs {
  std::span<const T> weight;   // [C] or empty
  std::span<const T> bias;     // [C] or empty
  std::span<T> running_mean;   // [C] or empty: updated with the batch average of the
  std::span<T> running_var;    //   per-instance statistics when use_input_stats
  bool use_input_stats = true; // false: normalize with the running statistics
  double momentum = 0.1;
  double eps = 1e-5;
};
template <class T>
void instance_norm_forward(TensorView<const T> x, TensorView<T> y, const InstanceNormArgs<T>& args,
                           SavedStats<T> saved = {});
template <class T>
void instance_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                            const InstanceNormArgs<T>& args, std::span<T> dweight = {},
                            std::span<T> dbias = {});

// ---- GroupNorm: x is (N, C, *); statistics per (n, group) over C/G channels and space ---
template <class T>
struct GroupNormArgs {
  int64_t num_groups = 1;
  std::span<const T> weight;  // [C] or empty
  std::span<const T> bias;    // [C] or empty
  double eps = 1e-5;
};
template <class T>
void group_norm_forward(TensorView<const T> x, TensorView<T> y, const GroupNormArgs<T>& args,
                        SavedStats<T> saved = {});
template <class T>
void group_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                         const GroupNormArgs<T>& args, std::span<T> dweight = {}, std::span<T> dbias = {});

// ---- LayerNorm: statistics over the trailing dims given by normalized_shape -----------
template <class T>
struct LayerNormArgs {
  Shape normalized_shape;
  std::span<const T> weight;  // normalized_shape elements, or empty
  std::span<const T> bias;    // normalized_shape elements, or empty
  double eps = 1e-5;
};
template <class T>
void layer_norm_forward(TensorView<const T> x, TensorView<T> y, const LayerNormArgs<T>& args,
                        SavedStats<T> saved = {});
template <class T>
void layer_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                         const LayerNormArgs<T>& args, std::span<T> dweight = {}, std::span<T> dbias = {});

// ---- RMSNorm: y = x / sqrt(mean(x^2) + eps) * w over the trailing dims ----------------
template <class T>
struct RMSNormArgs {
  Shape normalized_shape;
  std::span<const T> weight;     // normalized_shape elements, or empty
  std::optional<double> eps;     // unset: machine epsilon of T
  bool unit_offset = false;      // Gemma: multiply by (1 + w) instead of w
};
template <class T>
void rms_norm_forward(TensorView<const T> x, TensorView<T> y, const RMSNormArgs<T>& args,
                      SavedStats<T> saved = {});
template <class T>
void rms_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                       const RMSNormArgs<T>& args, std::span<T> dweight = {});

// ---- WeightNorm: w = g * v / ||v||, the norm over every dim of v except `dim` ----------
// g has v.shape[dim] values (one value when dim is unset, or -1 as PyTorch spells it:
// the norm of the whole tensor). `norms`, if given, receives ||v|| per slice.
template <class T>
struct WeightNormArgs {
  std::optional<int64_t> dim = 0;
};
template <class T>
void weight_norm_forward(TensorView<const T> v, std::span<const T> g, TensorView<T> w,
                         const WeightNormArgs<T>& args, std::span<T> norms = {});
// dw: the gradient of the loss with respect to w. Writes dv (shaped like v) and dg.
template <class T>
void weight_norm_backward(TensorView<const T> dw, TensorView<const T> v, std::span<const T> g,
                          TensorView<T> dv, std::span<T> dg, const WeightNormArgs<T>& args);

}  // namespace normkit
