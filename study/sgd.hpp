// study/sgd.hpp — SGD with momentum and weight decay, PyTorch's formulation:
// g' = g + wd * w (weights only);  v = momentum * v + g';  w -= lr * v.
#pragma once

#include <vector>

#include "norm_layer.hpp"

namespace study {

template <class T>
class Sgd {
 public:
  Sgd(std::vector<ParamRef<T>> params, double momentum, double weight_decay);
  void step(double lr);

 private:
  std::vector<ParamRef<T>> params_;
  std::vector<std::vector<T>> velocity_;
  double momentum_, weight_decay_;
};

template <class T>
Sgd<T>::Sgd(std::vector<ParamRef<T>> params, double momentum, double weight_decay)
    : params_(std::move(params)), momentum_(momentum), weight_decay_(weight_decay) {
  for (const ParamRef<T>& p : params_) velocity_.emplace_back(p.size, T(0));
}

template <class T>
void Sgd<T>::step(double lr) {
  const T m = static_cast<T>(momentum_), l = static_cast<T>(lr);
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamRef<T>& p = params_[i];
    const T wd = p.decay ? static_cast<T>(weight_decay_) : T(0);
    T* v = velocity_[i].data();
    for (size_t j = 0; j < p.size; ++j) {
      v[j] = m * v[j] + p.grad[j] + wd * p.value[j];
      p.value[j] -= l * v[j];
    }
  }
}

}  // namespace study
