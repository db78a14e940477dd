// study/norm_layer.hpp — the slot between a convolution and its ReLU: one of normkit's
// layers (BatchNorm, GroupNorm, LayerNorm over (C,H,W), affine InstanceNorm) or nothing.
// The study compares exactly these layers, so the slot only forwards to them.
#pragma once

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "normkit/layers.hpp"

namespace study {

enum class NormKind { None, Batch, Group, Layer, Instance };

// "bn", "gn", "ln", "in", "none" (and the long names "batchnorm", ...) -> NormKind.
NormKind parse_norm(const std::string& name);
// The names the study's files use: "BatchNorm", "GroupNorm", "LayerNorm", "InstanceNorm", "none".
std::string norm_name(NormKind kind);

// A pointer to one trainable tensor and its gradient.
template <class T>
struct ParamRef {
  T* value;
  T* grad;
  size_t size;
  bool decay;  // weight decay applies (conv/linear weights only)
};

template <class T>
class NormLayer {
 public:
  // x is [N, c, h, w]; `groups` is used by GroupNorm only.
  NormLayer(NormKind kind, int c, int h, int w, int groups);
  void forward(const T* x, int n, T* y);
  // Overwrites dx; accumulates the affine parameters' gradients.
  void backward(const T* dy, const T* x, int n, T* dx);
  void train(bool on);
  void params(std::vector<ParamRef<T>>& out);
  NormKind kind() const { return kind_; }

 private:
  NormKind kind_;
  int c_, h_, w_;
  std::variant<std::monostate, normkit::BatchNorm<T>, normkit::GroupNorm<T>,
               normkit::LayerNorm<T>, normkit::InstanceNorm<T>>
      layer_;
};

}  // namespace study
