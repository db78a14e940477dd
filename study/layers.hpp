// study/layers.hpp — the study's training stack: 3x3 convolution (im2col + GEMM), linear,
// ReLU, global average pooling and softmax cross-entropy, forward and backward on NCHW
// buffers. Backward ACCUMULATES parameter gradients (zero them per step) and OVERWRITES dx.
#pragma once

#include <cstdint>
#include <vector>

#include "rng.hpp"

namespace study {

// Square-kernel convolution with zero padding; x is [N, cin, H, W], y is [N, cout, OH, OW].
template <class T>
struct Conv2d {
  int cin, cout, k, stride, pad;
  bool has_bias;
  std::vector<T> weight, bias, weight_grad, bias_grad;  // weight [cout, cin*k*k]

  Conv2d(int cin, int cout, int k, int stride, int pad, bool has_bias);
  int out_size(int in) const { return (in + 2 * pad - k) / stride + 1; }
  void init(Rng& rng);  // He normal: std = sqrt(2 / fan_in); bias 0
  void forward(const T* x, int n, int h, int w, T* y);
  // dx may be null (the first layer does not need it).
  void backward(const T* x, const T* dy, int n, int h, int w, T* dx);

 private:
  std::vector<T> col_, dcol_;  // one image's [cin*k*k, OH*OW] patch matrix
  void im2col(const T* x, int h, int w);
  void col2im(T* dx, int h, int w) const;
};

// y[N, out] = x[N, in] * weight^T + bias; weight is [out, in].
template <class T>
struct Linear {
  int in, out;
  std::vector<T> weight, bias, weight_grad, bias_grad;

  Linear(int in, int out);
  void init(Rng& rng);  // He normal (std = sqrt(2 / in)), the scale Wu & He use; bias 0
  void forward(const T* x, int n, T* y) const;
  void backward(const T* x, const T* dy, int n, T* dx);
};

// y = max(x, 0); backward reads the forward's output y: dx = dy * (y > 0).
template <class T>
void relu_forward(const T* x, int64_t count, T* y);
template <class T>
void relu_backward(const T* y, const T* dy, int64_t count, T* dx);

// [N, C, H*W] -> [N, C]: the mean over each channel's plane.
template <class T>
void gap_forward(const T* x, int n, int c, int hw, T* y);
template <class T>
void gap_backward(const T* dy, int n, int c, int hw, T* dx);

// Mean softmax cross-entropy over the batch. Writes dlogits = (softmax - onehot) / n and
// returns the loss; `correct`, if not null, receives how many argmax predictions match.
template <class T>
double softmax_xent(const T* logits, const uint8_t* labels, int n, int classes, T* dlogits,
                    int* correct);
// Number of argmax predictions that match (evaluation; no gradient).
template <class T>
int count_correct(const T* logits, const uint8_t* labels, int n, int classes);

}  // namespace study
