//! @file
//! normkit/layers.hpp — layers that own parameters and state the way torch.nn modules do:
//! same constructor options and defaults, train/eval mode, running statistics and
//! num_batches_tracked. forward() writes y (and updates running statistics in training);
//! backward() writes dx and ACCUMULATES into the parameter gradients, like tensor.grad in
//! PyTorch (call zero_grad() between steps). A layer instance is not safe to use from two
//! threads at once; distinct instances are independent.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "normkit/ops.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

/// Train/eval switch shared by every layer.
class Module {
 public:
  void train(bool on = true) { training_ = on; }  ///< training mode (false: eval)
  void eval() { training_ = false; }              ///< evaluation mode
  bool training() const { return training_; }     ///< true in training mode

 private:
  bool training_ = true;
};

/// torch.nn.BatchNorm1d/2d/3d: statistics per channel over N and the spatial dims.
template <class T = float>
class NORMKIT_API BatchNorm : public Module {
 public:
  /// Constructor options; defaults as torch.nn.
  struct Options {
    double eps = 1e-5;                     ///< added to the variance
    std::optional<double> momentum = 0.1;  ///< unset: cumulative average 1/num_batches_tracked
    bool affine = true;                    ///< learnable per-channel weight and bias
    bool track_running_stats = true;       ///< keep running_mean and running_var
    /// Guard: a training batch with a NaN/Inf statistic leaves the running statistics (and
    /// num_batches_tracked) unchanged and counts in skipped_updates. Off, as PyTorch.
    bool skip_nonfinite_update = false;
  };
  /// num_features = C. Weight 1, bias 0, running_mean 0, running_var 1.
  explicit BatchNorm(int64_t num_features, Options options = {});
  /// Writes y (in training, also the running statistics, if any).
  void forward(TensorView<const T> x, TensorView<T> y);
  /// Writes dx; ACCUMULATES into the gradients.
  void backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx);
  void zero_grad();  ///< sets the parameter gradients to 0

  int64_t num_features;  ///< C
  Options options;       ///< as constructed
  ///@{
  /// Empty unless affine.
  std::vector<T> weight, bias, weight_grad, bias_grad;
  ///@}
  ///@{
  /// Empty unless track_running_stats.
  std::vector<T> running_mean, running_var;
  ///@}
  int64_t num_batches_tracked = 0;  ///< training forward passes so far
  int64_t skipped_updates = 0;      ///< batches the guard kept out of the running statistics
  bool last_update_skipped = false;  ///< whether the last forward() was one of them

 private:
  BatchNormArgs<T> args();
};

/// torch.nn.InstanceNorm1d/2d/3d: statistics per (n, c) over the spatial dims.
template <class T = float>
class NORMKIT_API InstanceNorm : public Module {
 public:
  /// Constructor options; defaults as torch.nn.
  struct Options {
    double eps = 1e-5;                   ///< added to the variance
    /// Of the running statistics. Not optional: torch.nn.InstanceNorm has no cumulative
    /// average (momentum=None fails in F.instance_norm).
    double momentum = 0.1;
    bool affine = false;                 ///< learnable per-channel weight and bias
    bool track_running_stats = false;    ///< keep running_mean and running_var
    bool skip_nonfinite_update = false;  ///< as BatchNorm::Options::skip_nonfinite_update
  };
  /// num_features = C. Weight 1, bias 0, running_mean 0, running_var 1.
  explicit InstanceNorm(int64_t num_features, Options options = {});
  /// Writes y (in training, also the running statistics, if any).
  void forward(TensorView<const T> x, TensorView<T> y);
  /// Writes dx; ACCUMULATES into the gradients.
  void backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx);
  void zero_grad();  ///< sets the parameter gradients to 0

  int64_t num_features;  ///< C
  Options options;       ///< as constructed
  ///@{
  /// Parameters and their gradients; empty unless affine.
  std::vector<T> weight, bias, weight_grad, bias_grad;
  ///@}
  ///@{
  /// Empty unless track_running_stats.
  std::vector<T> running_mean, running_var;
  ///@}
  /// Always 0: torch.nn.InstanceNorm keeps this buffer but never increments it.
  int64_t num_batches_tracked = 0;
  int64_t skipped_updates = 0;      ///< batches the guard kept out of the running statistics
  bool last_update_skipped = false;  ///< whether the last forward() was one of them

 private:
  InstanceNormArgs<T> args();
};

/// torch.nn.GroupNorm: statistics per (n, group) over C/G channels and the spatial dims.
template <class T = float>
class NORMKIT_API GroupNorm : public Module {
 public:
  /// Constructor options; defaults as torch.nn.
  struct Options {
    double eps = 1e-5;   ///< added to the variance
    bool affine = true;  ///< learnable per-channel weight and bias
  };
  /// num_groups must divide num_channels. Weight 1, bias 0.
  GroupNorm(int64_t num_groups, int64_t num_channels, Options options = {});
  /// Writes y.
  void forward(TensorView<const T> x, TensorView<T> y);
  /// Writes dx; ACCUMULATES into the gradients.
  void backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx);
  void zero_grad();  ///< sets the parameter gradients to 0

  ///@{
  /// G and C.
  int64_t num_groups, num_channels;
  ///@}
  Options options;  ///< as constructed
  ///@{
  /// Parameters and their gradients; empty unless affine.
  std::vector<T> weight, bias, weight_grad, bias_grad;
  ///@}

 private:
  GroupNormArgs<T> args() const;
};

/// torch.nn.LayerNorm: statistics per leading index over normalized_shape.
template <class T = float>
class NORMKIT_API LayerNorm : public Module {
 public:
  /// Constructor options; defaults as torch.nn.
  struct Options {
    double eps = 1e-5;               ///< added to the variance
    bool elementwise_affine = true;  ///< learnable weight over normalized_shape
    bool bias = true;                ///< with a learnable bias too (when elementwise_affine)
  };
  /// Normalizes over the trailing dims normalized_shape. Weight 1, bias 0.
  explicit LayerNorm(Shape normalized_shape, Options options = {});
  /// Writes y.
  void forward(TensorView<const T> x, TensorView<T> y);
  /// Writes dx; ACCUMULATES into the gradients.
  void backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx);
  void zero_grad();  ///< sets the parameter gradients to 0

  Shape normalized_shape;  ///< the trailing dims normalized over
  Options options;         ///< as constructed
  ///@{
  /// Parameters and their gradients; empty unless elementwise_affine (bias: and bias).
  std::vector<T> weight, bias, weight_grad, bias_grad;
  ///@}

 private:
  LayerNormArgs<T> args() const;
};

/// torch.nn.RMSNorm (LLaMA; or Gemma with unit_offset): divides by the root mean square.
template <class T = float>
class NORMKIT_API RMSNorm : public Module {
 public:
  /// Constructor options; defaults as torch.nn.
  struct Options {
    std::optional<double> eps;       ///< unset: machine epsilon of T
    bool elementwise_affine = true;  ///< learnable weight over normalized_shape
    bool unit_offset = false;        ///< Gemma: scale by (1 + weight); weight starts at 0
  };
  /// Normalizes over the trailing dims normalized_shape. Weight 1 (0 with unit_offset); no bias.
  explicit RMSNorm(Shape normalized_shape, Options options = {});
  /// Writes y.
  void forward(TensorView<const T> x, TensorView<T> y);
  /// Writes dx; ACCUMULATES into the gradients.
  void backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx);
  void zero_grad();  ///< sets the parameter gradients to 0

  Shape normalized_shape;  ///< the trailing dims normalized over
  Options options;         ///< as constructed
  ///@{
  /// Normalized_shape elements; empty unless elementwise_affine.
  std::vector<T> weight, weight_grad;
  ///@}

 private:
  RMSNormArgs<T> args() const;
};

/// Reparametrizes a weight tensor as w = g * v / ||v|| (Salimans & Kingma 2016).
template <class T = float>
class NORMKIT_API WeightNorm : public Module {
 public:
  /// Constructor options; defaults as torch.nn.
  struct Options {
    std::optional<int64_t> dim = 0;  ///< unset or -1: one norm over the whole tensor
  };
  /// Starts from an existing weight: v = weight, g = ||weight|| per slice, so w == weight.
  explicit WeightNorm(TensorView<const T> weight, Options options = {});
  /// Writes w (shaped like v).
  void forward(TensorView<T> w) const;
  /// dw: the gradient of the loss with respect to w. Accumulates into v_grad and g_grad.
  void backward(TensorView<const T> dw);
  void zero_grad();  ///< sets the parameter gradients to 0

  Shape shape;      ///< the shape of v and w
  Options options;  ///< as constructed
  ///@{
  /// Direction, magnitude (one per slice), their gradients.
  std::vector<T> v, g, v_grad, g_grad;
  ///@}

 private:
  WeightNormArgs<T> args() const { return {options.dim}; }
};

}  // namespace normkit
