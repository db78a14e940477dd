// normkit/layers.hpp — layers that own parameters and state the way torch.nn modules do:
// same constructor options and defaults, train/eval mode, running statistics and
// num_batches_tracked. forward() writes y (and updates running statistics in training);
// backward() writes dx and ACCUMULATES into the parameter gradients, like tensor.grad in
// PyTorch (call zero_grad() between steps). A layer instance is not safe to use from two
// threads at once; distinct instances are independent.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "normkit/ops.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

// Train/eval switch shared by every layer.
class Module {
 public:
  void train(bool on = true) { training_ = on; }
  void eval() { training_ = false; }
  bool training() const { return training_; }

 private:
  bool training_ = true;
};

template <class T = float>
class BatchNorm : public Module {
 public:
  struct Options {
    double eps = 1e-5;
    std::optional<double> momentum = 0.1;  // unset: cumulative average 1/num_batches_tracked
    bool affine = true;
    bool track_running_stats = true;
  };
  explicit BatchNorm(int64_t num_features, Options options = {});
  void forward(TensorView<const T> x, TensorView<T> y);
  void backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx);
  void zero_grad();

  int64_t num_features;
  Options options;
  std::vector<T> weight, bias, weight_grad, bias_grad;  // empty unless affine
  std::vector<T> running_mean, running_var;             // empty unless track_running_stats
  int64_t num_batches_tracked = 0;

 private:
  BatchNormArgs<T> args();
};

template <class T = float>
class InstanceNorm : public Module {
 public:
  struct Options {
    double eps = 1e-5;
    std::optional<double> momentum = 0.1;
    bool affine = false;
    bool track_running_stats = false;
  };
  explicit InstanceNorm(int64_t num_features, Options options = {});
  void forward(TensorView<const T> x, TensorView<T> y);
  void backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx);
  void zero_grad();

  int64_t num_features;
  Options options;
  std::vector<T> weight, bias, weight_grad, bias_grad;
  std::vector<T> running_mean, running_var;
  int64_t num_batches_tracked = 0;

 private:
  InstanceNormArgs<T> args();
};

template <class T = float>
class GroupNorm : public Module {
 public:
  struct Options {
    double eps = 1e-5;
    bool affine = true;
  };
  GroupNorm(int64_t num_groups, int64_t num_channels, Options options = {});
  void forward(TensorView<const T> x, TensorView<T> y);
  void backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx);
  void zero_grad();

  int64_t num_groups, num_channels;
  Options options;
  std::vector<T> weight, bias, weight_grad, bias_grad;

 private:
  GroupNormArgs<T> args() const;
};

template <class T = float>
class LayerNorm : public Module {
 public:
  struct Options {
    double eps = 1e-5;
    bool elementwise_affine = true;
    bool bias = true;
  };
  explicit LayerNorm(Shape normalized_shape, Options options = {});
  void forward(TensorView<const T> x, TensorView<T> y);
  void backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx);
  void zero_grad();

  Shape normalized_shape;
  Options options;
  std::vector<T> weight, bias, weight_grad, bias_grad;

 private:
  LayerNormArgs<T> args() const;
};

template <class T = float>
class RMSNorm : public Module {
 public:
  struct Options {
    std::optional<double> eps;  // unset: machine epsilon of T
    bool elementwise_affine = true;
    bool unit_offset = false;   // Gemma: scale by (1 + weight); weight starts at 0
  };
  explicit RMSNorm(Shape normalized_shape, Options options = {});
  void forward(TensorView<const T> x, TensorView<T> y);
  void backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx);
  void zero_grad();

  Shape normalized_shape;
  Options options;
  std::vector<T> weight, weight_grad;

 private:
  RMSNormArgs<T> args() const;
};

// Reparametrizes a weight tensor as w = g * v / ||v|| (Salimans & Kingma 2016).
template <class T = float>
class WeightNorm : public Module {
 public:
  struct Options {
    std::optional<int64_t> dim = 0;  // unset or -1: one norm over the whole tensor
  };
  // Starts from an existing weight: v = weight, g = ||weight|| per slice, so w == weight.
  explicit WeightNorm(TensorView<const T> weight, Options options = {});
  // Writes w (shaped like v).
  void forward(TensorView<T> w) const;
  // dw: the gradient of the loss with respect to w. Accumulates into v_grad and g_grad.
  void backward(TensorView<const T> dw);
  void zero_grad();

  Shape shape;
  Options options;
  std::vector<T> v, g, v_grad, g_grad;

 private:
  WeightNormArgs<T> args() const { return {options.dim}; }
};

}  // namespace normkit
