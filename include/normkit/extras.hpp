//! @file
//! normkit/extras.hpp — beyond PyTorch's CPU norms: fused residual add + RMSNorm/LayerNorm,
//! fused GroupNorm + SiLU, deployment helpers (fold_batch_norm, FrozenBatchNorm) and AdaIN.
//! Same conventions as ops.hpp: T = float or double, every argument is checked before
//! anything is written (normkit::Error otherwise), all tensors of one call share the first
//! input's shape and strides, backward functions OVERWRITE their outputs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "normkit/layers.hpp"
#include "normkit/ops.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

// ---- fused residual add + norm (vLLM's fused_add_rms_norm) ------------------------------
// sum = x + residual is written once and normalized while still in cache:
//   add_rms_norm:   y = rms_norm(sum) * w         add_layer_norm: y = layer_norm(sum) * w + b
// The sum is what the next block adds its own output to (the new residual stream).
// Backward: given dy and dsum (the gradient flowing into the sum output; empty view = 0),
// dx = d(residual) = norm_backward(dy at sum) + dsum. `sum` is the forward's sum output.

/// Fused x + residual then RMSNorm over args.normalized_shape: writes y and sum.
template <class T>
NORMKIT_API void add_rms_norm_forward(TensorView<const T> x, TensorView<const T> residual,
                                      TensorView<T> y, TensorView<T> sum,
                                      const RMSNormArgs<T>& args, SavedStats<T> saved = {});
/// OVERWRITES dx (the gradient of both x and residual) and dweight (when given).
template <class T>
NORMKIT_API void add_rms_norm_backward(TensorView<const T> dy, TensorView<const T> dsum,
                                       TensorView<const T> sum, TensorView<T> dx,
                                       const RMSNormArgs<T>& args, std::span<T> dweight = {});
/// Fused x + residual then LayerNorm over args.normalized_shape: writes y and sum.
template <class T>
NORMKIT_API void add_layer_norm_forward(TensorView<const T> x, TensorView<const T> residual,
                                        TensorView<T> y, TensorView<T> sum,
                                        const LayerNormArgs<T>& args, SavedStats<T> saved = {});
/// OVERWRITES dx (the gradient of both x and residual), dweight and dbias (when given).
template <class T>
NORMKIT_API void add_layer_norm_backward(TensorView<const T> dy, TensorView<const T> dsum,
                                         TensorView<const T> sum, TensorView<T> dx,
                                         const LayerNormArgs<T>& args, std::span<T> dweight = {},
                                         std::span<T> dbias = {});

// ---- fused GroupNorm + SiLU (diffusion U-Nets): y = silu(group_norm(x)) -----------------
// silu(z) = z * sigmoid(z). Groups are normalized and activated while in cache. Backward
// recomputes the statistics from x (like group_norm_backward) and returns the gradients
// of the composition: dx, dweight, dbias of the GroupNorm inside.

/// y = silu(group_norm(x)); `saved` receives the GroupNorm statistics.
template <class T>
NORMKIT_API void group_norm_silu_forward(TensorView<const T> x, TensorView<T> y,
                                         const GroupNormArgs<T>& args, SavedStats<T> saved = {});
/// OVERWRITES dx (dx.data may be null), dweight and dbias (where given).
template <class T>
NORMKIT_API void group_norm_silu_backward(TensorView<const T> dy, TensorView<const T> x,
                                          TensorView<T> dx, const GroupNormArgs<T>& args,
                                          std::span<T> dweight = {}, std::span<T> dbias = {});

// ---- deployment: fold an eval BatchNorm into the conv/linear before it -----------------
/// The folded parameters: weight shaped like the input weight (contiguous), bias [C].
template <class T>
struct FoldedWeights {
  std::vector<T> weight;  ///< W' = W * g / sqrt(v + eps) along the output-channel dim
  std::vector<T> bias;    ///< b' = (b - m) * g / sqrt(v + eps) + beta
};

/// Folds BatchNorm statistics and affine parameters into the preceding layer's weight
/// (out channels on dim 0: Linear, Conv; transpose=true: dim 1, ConvTranspose with groups=1)
/// and bias. bias, bn_weight, bn_bias may be empty (0, 1, 0); the running statistics are
/// required. Computed in double, as torch.nn.utils.fusion.fuse_conv_bn_weights.
template <class T>
NORMKIT_API FoldedWeights<T> fold_batch_norm(TensorView<const T> weight, std::span<const T> bias,
                                             std::span<const T> running_mean,
                                             std::span<const T> running_var,
                                             std::span<const T> bn_weight,
                                             std::span<const T> bn_bias, double eps = 1e-5,
                                             bool transpose = false);
/// The same from a BatchNorm layer; throws normkit::Error if it is in training mode (its
/// statistics are still moving) or keeps no running statistics.
template <class T>
NORMKIT_API FoldedWeights<T> fold_batch_norm(TensorView<const T> weight, std::span<const T> bias,
                                             const BatchNorm<T>& bn, bool transpose = false);

/// detectron2's FrozenBatchNorm2d for any rank >= 2: BatchNorm whose statistics and affine
/// parameters are fixed buffers, y = x * scale + shift per channel with
/// scale = weight / sqrt(running_var + eps), shift = bias - running_mean * scale (both in T).
/// The train/eval mode changes nothing; backward gives dx only.
template <class T = float>
class NORMKIT_API FrozenBatchNorm : public Module {
 public:
  /// weight 1, bias 0, running_mean 0, running_var 1 - eps (so that a fresh layer is the
  /// identity, as in detectron2).
  explicit FrozenBatchNorm(int64_t num_features, double eps = 1e-5);
  /// Copies the parameters and running statistics of a BatchNorm layer (which must track
  /// running statistics; missing affine parameters become 1 and 0).
  static FrozenBatchNorm from(const BatchNorm<T>& bn);
  /// Writes y = x * scale[c] + shift[c]; x is (N, C, *).
  void forward(TensorView<const T> x, TensorView<T> y) const;
  /// OVERWRITES dx = dy * scale[c].
  void backward(TensorView<const T> dy, TensorView<T> dx) const;

  int64_t num_features;  ///< C
  double eps;            ///< added to running_var
  ///@{
  /// Fixed buffers, [C] each; edit them freely between calls.
  std::vector<T> weight, bias, running_mean, running_var;
  ///@}
};

// ---- AdaIN (Huang & Belongie 2017): the instance statistics of style --------------------
// content (N, C, *) and style (N, C, *') may differ in their spatial dims. Per (n, c):
//   y = (content - mean_c) / sqrt(var_c + eps) * sqrt(var_s + eps) + mean_s
// with biased variances, exactly as InstanceNorm computes them.

/// Writes y (shaped like content); `saved` receives the content statistics [N*C].
template <class T>
NORMKIT_API void adain_forward(TensorView<const T> content, TensorView<const T> style,
                               TensorView<T> y, double eps = 1e-5, SavedStats<T> saved = {});
/// OVERWRITES dcontent (shaped like content) and dstyle (shaped like style); either may
/// have null data to skip it.
template <class T>
NORMKIT_API void adain_backward(TensorView<const T> dy, TensorView<const T> content,
                                TensorView<const T> style, TensorView<T> dcontent,
                                TensorView<T> dstyle, double eps = 1e-5);

}  // namespace normkit
