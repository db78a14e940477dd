// study/layers.cpp — forward and backward of the study's stack. Convolution runs one image
// at a time (im2col, then one GEMM) so its cost per image does not depend on the batch size,
// which keeps the sweep's small-batch runs comparable with the large-batch ones.
#include "layers.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "gemm.hpp"

namespace study {

template <class T>
Conv2d<T>::Conv2d(int cin_, int cout_, int k_, int stride_, int pad_, bool has_bias_)
    : cin(cin_), cout(cout_), k(k_), stride(stride_), pad(pad_), has_bias(has_bias_),
      weight(static_cast<size_t>(cout_) * cin_ * k_ * k_), bias(has_bias_ ? cout_ : 0),
      weight_grad(weight.size()), bias_grad(bias.size()) {}

template <class T>
void Conv2d<T>::init(Rng& rng) {
  const double std = std::sqrt(2.0 / (cin * k * k));
  for (T& v : weight) v = static_cast<T>(std * rng.normal());
  std::fill(bias.begin(), bias.end(), T(0));
}

// col[(c*k + ki)*k + kj][oh*OW + ow] = x[c][oh*s - pad + ki][ow*s - pad + kj] (0 outside)
template <class T>
void Conv2d<T>::im2col(const T* x, int h, int w) {
  const int oh = out_size(h), ow = out_size(w);
  col_.resize(static_cast<size_t>(cin) * k * k * oh * ow);
  T* dst = col_.data();
  for (int c = 0; c < cin; ++c)
    for (int ki = 0; ki < k; ++ki)
      for (int kj = 0; kj < k; ++kj)
        for (int i = 0; i < oh; ++i) {
          const int yi = i * stride - pad + ki;
          if (yi < 0 || yi >= h) {
            std::fill(dst, dst + ow, T(0));
            dst += ow;
            continue;
          }
          const T* row = x + (static_cast<size_t>(c) * h + yi) * w;
          for (int j = 0; j < ow; ++j) {
            const int xj = j * stride - pad + kj;
            *dst++ = (xj >= 0 && xj < w) ? row[xj] : T(0);
          }
        }
}

// The adjoint of im2col: dx[c][yi][xj] += dcol[...] over every patch that read it.
template <class T>
void Conv2d<T>::col2im(T* dx, int h, int w) const {
  const int oh = out_size(h), ow = out_size(w);
  std::fill(dx, dx + static_cast<size_t>(cin) * h * w, T(0));
  const T* src = dcol_.data();
  for (int c = 0; c < cin; ++c)
    for (int ki = 0; ki < k; ++ki)
      for (int kj = 0; kj < k; ++kj)
        for (int i = 0; i < oh; ++i) {
          const int yi = i * stride - pad + ki;
          if (yi < 0 || yi >= h) {
            src += ow;
            continue;
          }
          T* row = dx + (static_cast<size_t>(c) * h + yi) * w;
          for (int j = 0; j < ow; ++j, ++src) {
            const int xj = j * stride - pad + kj;
            if (xj >= 0 && xj < w) row[xj] += *src;
          }
        }
}

template <class T>
void Conv2d<T>::forward(const T* x, int n, int h, int w, T* y) {
  const int ohw = out_size(h) * out_size(w), kk = cin * k * k;
  for (int b = 0; b < n; ++b) {
    im2col(x + static_cast<size_t>(b) * cin * h * w, h, w);
    T* yb = y + static_cast<size_t>(b) * cout * ohw;
    gemm(false, false, cout, ohw, kk, T(1), weight.data(), kk, col_.data(), ohw, T(0), yb, ohw);
    if (has_bias)
      for (int o = 0; o < cout; ++o)
        for (int p = 0; p < ohw; ++p) yb[static_cast<size_t>(o) * ohw + p] += bias[o];
  }
}

// dW += dy_b [cout, OHW] * col_b^T;  db += sum_p dy_b;  dcol = W^T * dy_b, dx_b = col2im(dcol)
template <class T>
void Conv2d<T>::backward(const T* x, const T* dy, int n, int h, int w, T* dx) {
  const int ohw = out_size(h) * out_size(w), kk = cin * k * k;
  dcol_.resize(static_cast<size_t>(kk) * ohw);
  for (int b = 0; b < n; ++b) {
    im2col(x + static_cast<size_t>(b) * cin * h * w, h, w);
    const T* dyb = dy + static_cast<size_t>(b) * cout * ohw;
    gemm(false, true, cout, kk, ohw, T(1), dyb, ohw, col_.data(), ohw, T(1), weight_grad.data(),
         kk);
    if (has_bias)
      for (int o = 0; o < cout; ++o) {
        T s = 0;
        for (int p = 0; p < ohw; ++p) s += dyb[static_cast<size_t>(o) * ohw + p];
        bias_grad[o] += s;
      }
    if (dx) {
      gemm(true, false, kk, ohw, cout, T(1), weight.data(), kk, dyb, ohw, T(0), dcol_.data(), ohw);
      col2im(dx + static_cast<size_t>(b) * cin * h * w, h, w);
    }
  }
}

template <class T>
Linear<T>::Linear(int in_, int out_)
    : in(in_), out(out_), weight(static_cast<size_t>(in_) * out_), bias(out_),
      weight_grad(weight.size()), bias_grad(out_) {}

template <class T>
void Linear<T>::init(Rng& rng) {
  const double std = std::sqrt(2.0 / in);
  for (T& v : weight) v = static_cast<T>(std * rng.normal());
  std::fill(bias.begin(), bias.end(), T(0));
}

template <class T>
void Linear<T>::forward(const T* x, int n, T* y) const {
  for (int b = 0; b < n; ++b) std::copy(bias.begin(), bias.end(), y + static_cast<size_t>(b) * out);
  gemm(false, true, n, out, in, T(1), x, in, weight.data(), in, T(1), y, out);
}

// dW += dy^T x;  db += sum_b dy;  dx = dy W
template <class T>
void Linear<T>::backward(const T* x, const T* dy, int n, T* dx) {
  gemm(true, false, out, in, n, T(1), dy, out, x, in, T(1), weight_grad.data(), in);
  for (int b = 0; b < n; ++b)
    for (int o = 0; o < out; ++o) bias_grad[o] += dy[static_cast<size_t>(b) * out + o];
  if (dx) gemm(false, false, n, in, out, T(1), dy, out, weight.data(), in, T(0), dx, in);
}

template <class T>
void relu_forward(const T* x, int64_t count, T* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}
template <class T>
void relu_backward(const T* y, const T* dy, int64_t count, T* dx) {
  for (int64_t i = 0; i < count; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

template <class T>
void gap_forward(const T* x, int n, int c, int hw, T* y) {
  for (int64_t r = 0; r < static_cast<int64_t>(n) * c; ++r) {
    double s = 0;
    for (int p = 0; p < hw; ++p) s += x[r * hw + p];
    y[r] = static_cast<T>(s / hw);
  }
}
template <class T>
void gap_backward(const T* dy, int n, int c, int hw, T* dx) {
  for (int64_t r = 0; r < static_cast<int64_t>(n) * c; ++r) {
    const T g = dy[r] / static_cast<T>(hw);
    std::fill(dx + r * hw, dx + (r + 1) * hw, g);
  }
}

template <class T>
static int argmax(const T* z, int classes) {
  return static_cast<int>(std::max_element(z, z + classes) - z);
}

// loss_b = logsumexp(z_b) - z_b[label];  dz_b = (softmax(z_b) - onehot(label)) / n
template <class T>
double softmax_xent(const T* logits, const uint8_t* labels, int n, int classes, T* dlogits,
                    int* correct) {
  double loss = 0;
  int hits = 0;
  for (int b = 0; b < n; ++b) {
    const T* z = logits + static_cast<size_t>(b) * classes;
    T* dz = dlogits + static_cast<size_t>(b) * classes;
    const double zmax = *std::max_element(z, z + classes);
    double sum = 0;
    for (int j = 0; j < classes; ++j) sum += std::exp(z[j] - zmax);
    loss += std::log(sum) + zmax - z[labels[b]];
    for (int j = 0; j < classes; ++j)
      dz[j] = static_cast<T>((std::exp(z[j] - zmax) / sum - (j == labels[b] ? 1.0 : 0.0)) / n);
    hits += argmax(z, classes) == labels[b];
  }
  if (correct) *correct = hits;
  return loss / n;
}

template <class T>
int count_correct(const T* logits, const uint8_t* labels, int n, int classes) {
  int hits = 0;
  for (int b = 0; b < n; ++b) hits += argmax(logits + static_cast<size_t>(b) * classes, classes) == labels[b];
  return hits;
}

#define STUDY_INSTANTIATE(T)                                                              \
  template struct Conv2d<T>;                                                              \
  template struct Linear<T>;                                                              \
  template void relu_forward<T>(const T*, int64_t, T*);                                   \
  template void relu_backward<T>(const T*, const T*, int64_t, T*);                        \
  template void gap_forward<T>(const T*, int, int, int, T*);                              \
  template void gap_backward<T>(const T*, int, int, int, T*);                             \
  template double softmax_xent<T>(const T*, const uint8_t*, int, int, T*, int*);          \
  template int count_correct<T>(const T*, const uint8_t*, int, int);
STUDY_INSTANTIATE(float)
STUDY_INSTANTIATE(double)
#undef STUDY_INSTANTIATE

}  // namespace study
