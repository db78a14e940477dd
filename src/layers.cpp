// layers.cpp — torch.nn-like layers over the functional ops: they own parameters, gradients
// and running statistics, and pick the functional call that PyTorch's module would make.
#include "normkit/layers.hpp"

#include <limits>
#include <new>
#include <stdexcept>
#include <string>

#include "op_common.hpp"

namespace normkit {
namespace {

template <class T>
std::span<const T> cspan(const std::vector<T>& v) {
  return {v.data(), v.size()};
}
template <class T>
std::span<T> mspan(std::vector<T>& v) {
  return {v.data(), v.size()};
}

void check_features(const char* op, const char* what, int64_t n) {
  if (n <= 0) throw Error(std::string("[") + op + "] " + what + "=" + std::to_string(n) + " must be positive");
}

// A layer's buffers of n values each: n must be allocatable (an Error naming the size, not
// std::length_error or std::bad_alloc). `fill` allocates them.
template <class T, class Fill>
void allocate(const char* op, const std::string& what, int64_t n, Fill&& fill) {
  if (static_cast<uint64_t>(n) > std::vector<T>().max_size() / 4)  // up to 4 buffers of n
    detail::fail(op, what + "=" + std::to_string(n) + " is too large: its buffers cannot be allocated");
  try {
    fill();
  } catch (const std::bad_alloc&) {
    detail::fail(op, what + "=" + std::to_string(n) + " is too large: out of memory allocating its buffers");
  } catch (const std::length_error&) {
    detail::fail(op, what + "=" + std::to_string(n) + " is too large: its buffers cannot be allocated");
  }
}

// The element count of a layer's normalized_shape: not empty, every dim >= 1, the product
// within int64.
int64_t normalized_count(const char* op, const Shape& s) {
  if (s.empty()) detail::fail(op, "normalized_shape is empty (expected at least one dim)");
  int64_t n = 1;
  for (int64_t d : s) {
    check_features(op, "normalized_shape dim", d);
    if (__builtin_mul_overflow(n, d, &n))
      detail::fail(op, "normalized_shape=" + shape_str(s) + " has more elements than int64 can count (overflow)");
  }
  return n;
}

// grad += fresh   (layers accumulate like tensor.grad)
template <class T>
void accumulate(std::vector<T>& grad, const std::vector<T>& fresh) {
  for (size_t i = 0; i < grad.size(); ++i) grad[i] += fresh[i];
}

// Runs a functional backward into scratch gradients, then accumulates them.
template <class T, class Fn>
void backward_accumulating(std::vector<T>& wgrad, std::vector<T>& bgrad, Fn&& fn) {
  std::vector<T> dw(wgrad.size()), db(bgrad.size());
  fn(mspan(dw), mspan(db));
  accumulate(wgrad, dw);
  accumulate(bgrad, db);
}

template <class T>
void zero(std::vector<T>& v) {
  std::fill(v.begin(), v.end(), T(0));
}

}  // namespace

// ---- BatchNorm ------------------------------------------------------------------------------
template <class T>
BatchNorm<T>::BatchNorm(int64_t n, Options o) : num_features(n), options(o) {
  check_features("batch_norm", "num_features", n);
  if (o.momentum) detail::check_momentum("batch_norm", *o.momentum);  // same messages as the functions
  detail::check_eps("batch_norm", o.eps);
  const auto N = static_cast<size_t>(n);
  allocate<T>("batch_norm", "num_features", n, [&] {
    if (o.affine) weight.assign(N, T(1)), bias.assign(N, T(0)), weight_grad.assign(N, T(0)), bias_grad.assign(N, T(0));
    if (o.track_running_stats) running_mean.assign(N, T(0)), running_var.assign(N, T(1));
  });
}

// As torch.nn.BatchNorm: batch statistics in training or when no running statistics are
// kept; running statistics are passed when they are to be updated (training) or used (eval).
template <class T>
BatchNormArgs<T> BatchNorm<T>::args() {
  BatchNormArgs<T> a;
  a.weight = cspan(weight), a.bias = cspan(bias), a.eps = options.eps;
  a.training = training() || !options.track_running_stats;
  if (options.track_running_stats) a.running_mean = mspan(running_mean), a.running_var = mspan(running_var);
  a.skip_nonfinite_update = options.skip_nonfinite_update;
  return a;
}

template <class T>
void BatchNorm<T>::forward(TensorView<const T> x, TensorView<T> y) {
  BatchNormArgs<T> a = args();
  const bool update = training() && options.track_running_stats;
  // momentum unset: cumulative moving average with factor 1 / num_batches_tracked (counted
  // after this batch, as torch.nn does); the count is committed once the call succeeded.
  if (update) a.momentum = options.momentum ? *options.momentum : 1.0 / double(num_batches_tracked + 1);
  bool skipped = false;
  a.update_skipped = &skipped;
  batch_norm_forward(x, y, a);
  last_update_skipped = skipped;
  if (skipped) ++skipped_updates;
  else if (update) ++num_batches_tracked;
}

template <class T>
void BatchNorm<T>::backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx) {
  BatchNormArgs<T> a = args();
  if (a.training) a.running_mean = {}, a.running_var = {};
  backward_accumulating(weight_grad, bias_grad,
                        [&](std::span<T> dw, std::span<T> db) { batch_norm_backward(dy, x, dx, a, dw, db); });
}

template <class T>
void BatchNorm<T>::zero_grad() {
  zero(weight_grad), zero(bias_grad);
}

// ---- InstanceNorm ---------------------------------------------------------------------------
template <class T>
InstanceNorm<T>::InstanceNorm(int64_t n, Options o) : num_features(n), options(o) {
  check_features("instance_norm", "num_features", n);
  const auto N = static_cast<size_t>(n);
  allocate<T>("instance_norm", "num_features", n, [&] {
    if (o.affine) weight.assign(N, T(1)), bias.assign(N, T(0)), weight_grad.assign(N, T(0)), bias_grad.assign(N, T(0));
    if (o.track_running_stats) running_mean.assign(N, T(0)), running_var.assign(N, T(1));
  });
}

template <class T>
InstanceNormArgs<T> InstanceNorm<T>::args() {
  InstanceNormArgs<T> a;
  a.weight = cspan(weight), a.bias = cspan(bias), a.eps = options.eps, a.momentum = options.momentum;
  a.use_input_stats = training() || !options.track_running_stats;
  if (options.track_running_stats) a.running_mean = mspan(running_mean), a.running_var = mspan(running_var);
  a.skip_nonfinite_update = options.skip_nonfinite_update;
  return a;
}

// As torch.nn.InstanceNorm: always the given momentum (no cumulative average), and
// num_batches_tracked is never incremented (torch keeps the buffer but leaves it at 0).
template <class T>
void InstanceNorm<T>::forward(TensorView<const T> x, TensorView<T> y) {
  InstanceNormArgs<T> a = args();
  bool skipped = false;
  a.update_skipped = &skipped;
  instance_norm_forward(x, y, a);
  last_update_skipped = skipped;
  if (skipped) ++skipped_updates;
}

template <class T>
void InstanceNorm<T>::backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx) {
  InstanceNormArgs<T> a = args();
  if (a.use_input_stats) a.running_mean = {}, a.running_var = {};
  backward_accumulating(weight_grad, bias_grad,
                        [&](std::span<T> dw, std::span<T> db) { instance_norm_backward(dy, x, dx, a, dw, db); });
}

template <class T>
void InstanceNorm<T>::zero_grad() {
  zero(weight_grad), zero(bias_grad);
}

// ---- GroupNorm ------------------------------------------------------------------------------
template <class T>
GroupNorm<T>::GroupNorm(int64_t g, int64_t c, Options o) : num_groups(g), num_channels(c), options(o) {
  check_features("group_norm", "num_groups", g);
  check_features("group_norm", "num_channels", c);
  if (c % g != 0)
    throw Error("[group_norm] num_channels=" + std::to_string(c) + " is not divisible by num_groups=" +
                std::to_string(g));
  const auto C = static_cast<size_t>(c);
  allocate<T>("group_norm", "num_channels", c, [&] {
    if (o.affine) weight.assign(C, T(1)), bias.assign(C, T(0)), weight_grad.assign(C, T(0)), bias_grad.assign(C, T(0));
  });
}

template <class T>
GroupNormArgs<T> GroupNorm<T>::args() const {
  GroupNormArgs<T> a;
  a.num_groups = num_groups, a.weight = cspan(weight), a.bias = cspan(bias), a.eps = options.eps;
  return a;
}

template <class T>
void GroupNorm<T>::forward(TensorView<const T> x, TensorView<T> y) {
  group_norm_forward(x, y, args());
}

template <class T>
void GroupNorm<T>::backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx) {
  backward_accumulating(weight_grad, bias_grad,
                        [&](std::span<T> dw, std::span<T> db) { group_norm_backward(dy, x, dx, args(), dw, db); });
}

template <class T>
void GroupNorm<T>::zero_grad() {
  zero(weight_grad), zero(bias_grad);
}

// ---- LayerNorm ------------------------------------------------------------------------------
template <class T>
LayerNorm<T>::LayerNorm(Shape s, Options o) : normalized_shape(std::move(s)), options(o) {
  const int64_t n = normalized_count("layer_norm", normalized_shape);
  const auto D = static_cast<size_t>(n);
  allocate<T>("layer_norm", "normalized_shape elements", n, [&] {
    if (o.elementwise_affine) {
      weight.assign(D, T(1)), weight_grad.assign(D, T(0));
      if (o.bias) bias.assign(D, T(0)), bias_grad.assign(D, T(0));
    }
  });
}

template <class T>
LayerNormArgs<T> LayerNorm<T>::args() const {
  LayerNormArgs<T> a;
  a.normalized_shape = normalized_shape, a.weight = cspan(weight), a.bias = cspan(bias), a.eps = options.eps;
  return a;
}

template <class T>
void LayerNorm<T>::forward(TensorView<const T> x, TensorView<T> y) {
  layer_norm_forward(x, y, args());
}

template <class T>
void LayerNorm<T>::backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx) {
  backward_accumulating(weight_grad, bias_grad,
                        [&](std::span<T> dw, std::span<T> db) { layer_norm_backward(dy, x, dx, args(), dw, db); });
}

template <class T>
void LayerNorm<T>::zero_grad() {
  zero(weight_grad), zero(bias_grad);
}

// ---- RMSNorm --------------------------------------------------------------------------------
template <class T>
RMSNorm<T>::RMSNorm(Shape s, Options o) : normalized_shape(std::move(s)), options(o) {
  const int64_t n = normalized_count("rms_norm", normalized_shape);
  const auto D = static_cast<size_t>(n);
  allocate<T>("rms_norm", "normalized_shape elements", n, [&] {
    if (o.elementwise_affine) weight.assign(D, o.unit_offset ? T(0) : T(1)), weight_grad.assign(D, T(0));
  });
}

template <class T>
RMSNormArgs<T> RMSNorm<T>::args() const {
  RMSNormArgs<T> a;
  a.normalized_shape = normalized_shape, a.weight = cspan(weight), a.eps = options.eps;
  a.unit_offset = options.unit_offset;
  return a;
}

template <class T>
void RMSNorm<T>::forward(TensorView<const T> x, TensorView<T> y) {
  rms_norm_forward(x, y, args());
}

template <class T>
void RMSNorm<T>::backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx) {
  std::vector<T> no_bias;
  backward_accumulating(weight_grad, no_bias,
                        [&](std::span<T> dw, std::span<T>) { rms_norm_backward(dy, x, dx, args(), dw); });
}

template <class T>
void RMSNorm<T>::zero_grad() {
  zero(weight_grad);
}

// ---- WeightNorm -----------------------------------------------------------------------------
template <class T>
WeightNorm<T>::WeightNorm(TensorView<const T> weight, Options o) : shape(weight.shape), options(o) {
  // The view is checked before anything is read from it: strides, negative sizes or strides,
  // an element count beyond int64, null data; then dim, then whether it can be allocated.
  detail::check_tensor("weight_norm", "weight", weight);
  const int64_t n = weight.numel();
  const bool whole = !o.dim || *o.dim == -1;
  if (!whole && (*o.dim < 0 || *o.dim >= static_cast<int64_t>(shape.size())))
    throw Error("[weight_norm] dim=" + std::to_string(*o.dim) + " is out of range for a weight of rank " +
                std::to_string(shape.size()));
  allocate<T>("weight_norm", "weight elements", n, [&] {
    v.resize(static_cast<size_t>(n)), v_grad.assign(static_cast<size_t>(n), T(0));
  });
  // Copy in logical row-major order, whatever the source strides.
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < shape.size(); ++d) off += idx[d] * weight.strides[d];
    v[static_cast<size_t>(i)] = weight.data[off];
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  const size_t slices = whole ? 1 : static_cast<size_t>(shape[static_cast<size_t>(*o.dim)]);
  g.assign(slices, T(1)), g_grad.assign(slices, T(0));
  // g = ||v|| per slice, so that w == weight at the start.
  std::vector<T> norms(slices), w(v.size());
  weight_norm_forward<T>(TensorView<const T>(v.data(), shape), cspan(g), TensorView<T>(w.data(), shape),
                         args(), mspan(norms));
  g = norms;
}

template <class T>
void WeightNorm<T>::forward(TensorView<T> w) const {
  weight_norm_forward<T>(TensorView<const T>(v.data(), shape), cspan(g), w, args());
}

template <class T>
void WeightNorm<T>::backward(TensorView<const T> dw) {
  std::vector<T> dv(v.size()), dg(g.size());
  weight_norm_backward<T>(dw, TensorView<const T>(v.data(), shape), cspan(g),
                          TensorView<T>(dv.data(), shape), mspan(dg), args());
  accumulate(v_grad, dv);
  accumulate(g_grad, dg);
}

template <class T>
void WeightNorm<T>::zero_grad() {
  zero(v_grad), zero(g_grad);
}

template class BatchNorm<float>;
template class BatchNorm<double>;
template class InstanceNorm<float>;
template class InstanceNorm<double>;
template class GroupNorm<float>;
template class GroupNorm<double>;
template class LayerNorm<float>;
template class LayerNorm<double>;
template class RMSNorm<float>;
template class RMSNorm<double>;
template class WeightNorm<float>;
template class WeightNorm<double>;

}  // namespace normkit
