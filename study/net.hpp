// study/net.hpp — the study's small CNN, after the issue: conv3x3 1->c1, norm, ReLU;
// conv3x3 c1->c2 stride 2, norm, ReLU; conv3x3 c2->c3 stride 2, norm, ReLU; global average
// pool; linear c3->classes. Sizes are parameters so the gradient tests can shrink it.
#pragma once

#include <cstdint>
#include <vector>

#include "layers.hpp"
#include "norm_layer.hpp"

namespace study {

struct NetConfig {
  NormKind norm = NormKind::None;
  int in_h = 28, in_w = 28;
  int c1 = 32, c2 = 64, c3 = 64;
  int groups = 8;  // GroupNorm: 8 groups -> 4 channels per group at 32, 8 at 64
  int classes = 10;
  bool sync_bn = false;  // BatchNorm -> SyncBatchNorm over MPI_COMM_WORLD (data-parallel; MPI builds)
};

template <class T>
class Net {
 public:
  explicit Net(const NetConfig& cfg);
  Net(const Net&) = delete;  // params() points into the layers
  Net& operator=(const Net&) = delete;
  void init(Rng& rng);
  // x is [n, 1, in_h, in_w]; returns a pointer to the logits [n, classes] (owned by the net).
  const T* forward(const T* x, int n);
  // After forward(x, n): back-propagates dlogits, accumulating every parameter's gradient.
  void backward(const T* x, const T* dlogits, int n);
  void train(bool on);
  void zero_grad();
  std::vector<ParamRef<T>>& params() { return params_; }
  // The running statistics of every norm layer (BatchNorm only), in layer order.
  std::vector<std::vector<T>*> buffers();
  const NetConfig& config() const { return cfg_; }

 private:
  struct Stage {  // conv -> norm -> relu, with the buffers backward needs
    Conv2d<T> conv;
    NormLayer<T> norm;
    int h, w, oh, ow;  // input and output spatial size
    std::vector<T> a, b, c, da, db;  // conv out, norm out, relu out; gradients
  };
  NetConfig cfg_;
  std::vector<Stage> stages_;
  Linear<T> fc_;
  std::vector<T> pooled_, logits_, dpooled_, dc_;
  std::vector<ParamRef<T>> params_;
  int n_ = 0;
  void resize(int n);
};

}  // namespace study
