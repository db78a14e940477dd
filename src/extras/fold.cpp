// fold.cpp — deployment: fold an eval BatchNorm into the conv/linear before it, and
// FrozenBatchNorm (detectron2), a BatchNorm reduced to a fixed per-channel scale and shift.
// Folding is parameter-sized work done once (plain double loops); FrozenBatchNorm runs on the
// engine as an affine map with mean 0 and rstd 1 per channel.
#include <cmath>

#include "normkit/extras.hpp"
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kFold = "fold_batch_norm";
constexpr const char* kFrozen = "frozen_batch_norm";

// The plan of a per-channel map over (N, C, *): one "statistic" and affine index per channel.
ReductionPlan channel_plan(const Shape& shape, const Strides& strides) {
  std::vector<int64_t> reduce{0};
  for (int64_t i = 2; i < static_cast<int64_t>(shape.size()); ++i) reduce.push_back(i);
  return ReductionPlan::build(shape, strides, reduce, {1}, kFrozen);
}
}  // namespace

template <class T>
FoldedWeights<T> fold_batch_norm(TensorView<const T> weight, std::span<const T> bias,
                                 std::span<const T> running_mean, std::span<const T> running_var,
                                 std::span<const T> bn_weight, std::span<const T> bn_bias,
                                 double eps, bool transpose) {
  detail::check_tensor(kFold, "weight", weight);
  const size_t dim = transpose ? 1 : 0;
  detail::check_rank(kFold, weight.shape, int64_t(dim) + 1,
                     transpose ? "a ConvTranspose weight (in, out, *)" : "a weight (out, *)");
  detail::check_eps(kFold, eps);
  const int64_t C = weight.shape[dim];
  if (running_mean.empty() || running_var.empty())
    detail::fail(kFold, "running_mean and running_var are required (a BatchNorm without running "
                        "statistics normalizes with batch statistics and cannot be folded)");
  const char* what = transpose ? "weight.shape[1], the output channels" : "weight.shape[0], the output channels";
  detail::check_param(kFold, "running_mean", running_mean, C, what);
  detail::check_param(kFold, "running_var", running_var, C, what);
  detail::check_param(kFold, "bias", bias, C, what);
  detail::check_param(kFold, "bn_weight", bn_weight, C, what);
  detail::check_param(kFold, "bn_bias", bn_bias, C, what);
  for (int64_t c = 0; c < C; ++c)
    if (!(double(running_var[size_t(c)]) + eps > 0))
      detail::fail(kFold, "running_var[" + std::to_string(c) + "]=" + detail::num(running_var[size_t(c)]) +
                              " + eps=" + detail::num(eps) + " is not positive");
  // scale = g / sqrt(v + eps);  W' = W * scale along dim;  b' = (b - m) * scale + beta
  std::vector<double> scale(static_cast<size_t>(C));
  FoldedWeights<T> out;
  out.bias.resize(size_t(C));
  for (size_t c = 0; c < size_t(C); ++c) {
    const double g = bn_weight.empty() ? 1.0 : double(bn_weight[c]);
    scale[c] = g / std::sqrt(double(running_var[c]) + eps);
    const double b = bias.empty() ? 0.0 : double(bias[c]), beta = bn_bias.empty() ? 0.0 : double(bn_bias[c]);
    out.bias[c] = T((b - double(running_mean[c])) * scale[c] + beta);
  }
  out.weight.resize(size_t(weight.numel()));
  std::vector<int64_t> coord(weight.shape.size(), 0);
  for (size_t i = 0; i < out.weight.size(); ++i) {  // row-major walk of a strided view
    int64_t off = 0;
    for (size_t d = 0; d < coord.size(); ++d) off += coord[d] * weight.strides[d];
    out.weight[i] = T(double(weight.data[off]) * scale[size_t(coord[dim])]);
    for (size_t d = coord.size(); d-- > 0;) {
      if (++coord[d] < weight.shape[d]) break;
      coord[d] = 0;
    }
  }
  return out;
}

template <class T>
FoldedWeights<T> fold_batch_norm(TensorView<const T> weight, std::span<const T> bias,
                                 const BatchNorm<T>& bn, bool transpose) {
  if (bn.training())
    detail::fail(kFold, "the BatchNorm layer is in training mode (its running statistics still "
                        "change); call eval() before folding");
  if (!bn.options.track_running_stats)
    detail::fail(kFold, "the BatchNorm layer has track_running_stats=false: it normalizes with "
                        "batch statistics and cannot be folded");
  return fold_batch_norm<T>(weight, bias, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                            bn.options.eps, transpose);
}

// ---- FrozenBatchNorm ------------------------------------------------------------------------

template <class T>
FrozenBatchNorm<T>::FrozenBatchNorm(int64_t n, double e)
    : num_features(n), eps(e), weight(size_t(std::max<int64_t>(n, 0)), T(1)),
      bias(weight.size(), T(0)), running_mean(weight.size(), T(0)),
      running_var(weight.size(), T(1 - e)) {
  if (n <= 0) detail::fail(kFrozen, "num_features=" + std::to_string(n) + " must be positive");
  detail::check_eps(kFrozen, e);
}

template <class T>
FrozenBatchNorm<T> FrozenBatchNorm<T>::from(const BatchNorm<T>& bn) {
  if (!bn.options.track_running_stats)
    detail::fail(kFrozen, "the BatchNorm layer has track_running_stats=false: no statistics to freeze");
  FrozenBatchNorm f(bn.num_features, bn.options.eps);
  f.running_mean = bn.running_mean;
  f.running_var = bn.running_var;
  if (bn.options.affine) f.weight = bn.weight, f.bias = bn.bias;
  return f;
}

namespace {
// scale = w / sqrt(rv + eps), shift = b - rm * scale, in T as detectron2 computes them.
template <class T>
void scale_shift(const FrozenBatchNorm<T>& f, const Shape& shape, std::vector<T>& scale,
                 std::vector<T>* shift) {
  detail::check_rank(kFrozen, shape, 2, "input of shape (N, C, *)");
  const int64_t C = f.num_features;
  if (shape[1] != C)
    detail::fail(kFrozen, "input has " + std::to_string(shape[1]) + " channels (shape " +
                              shape_str(shape) + "), expected num_features=" + std::to_string(C));
  detail::check_param(kFrozen, "weight", std::span<const T>(f.weight), C, "num_features");
  detail::check_param(kFrozen, "bias", std::span<const T>(f.bias), C, "num_features");
  detail::check_param(kFrozen, "running_mean", std::span<const T>(f.running_mean), C, "num_features");
  detail::check_param(kFrozen, "running_var", std::span<const T>(f.running_var), C, "num_features");
  if (f.weight.empty() || f.bias.empty() || f.running_mean.empty() || f.running_var.empty())
    detail::fail(kFrozen, "weight, bias, running_mean and running_var must each hold num_features=" +
                              std::to_string(C) + " values");
  scale.resize(size_t(C));
  if (shift) shift->resize(size_t(C));
  for (size_t c = 0; c < size_t(C); ++c) {
    scale[c] = f.weight[c] * T(1 / std::sqrt(double(f.running_var[c]) + f.eps));
    if (shift) (*shift)[c] = f.bias[c] - f.running_mean[c] * scale[c];
  }
}
}  // namespace

template <class T>
void FrozenBatchNorm<T>::forward(TensorView<const T> x, TensorView<T> y) const {
  detail::check_tensor(kFrozen, "input", x);
  std::vector<T> scale, shift;
  scale_shift(*this, x.shape, scale, &shift);
  detail::check_like(kFrozen, "output", y, x, true);
  detail::check_no_overlap(kFrozen, {detail::region("input", x, false), detail::region("output", y, true)});
  if (x.numel() == 0) return;
  const ReductionPlan plan = channel_plan(x.shape, x.strides);
  const std::vector<double> zero(size_t(num_features), 0.0), one(size_t(num_features), 1.0);
  engine::apply_forward(plan, x.data, y.data, zero.data(), one.data(), scale.data(), shift.data());
}

template <class T>
void FrozenBatchNorm<T>::backward(TensorView<const T> dy, TensorView<T> dx) const {
  detail::check_tensor(kFrozen, "grad_output", dy);
  std::vector<T> scale;
  scale_shift(*this, dy.shape, scale, static_cast<std::vector<T>*>(nullptr));
  detail::check_like(kFrozen, "grad_input", dx, dy, true);
  detail::check_no_overlap(kFrozen, {detail::region("grad_output", dy, false), detail::region("grad_input", dx, true)});
  if (dy.numel() == 0) return;
  // dx = P * dy * scale + Q * (x - mean) + R with P = 1, Q = R = 0 (x unused: pass dy).
  const ReductionPlan plan = channel_plan(dy.shape, dy.strides);
  const std::vector<double> zero(size_t(num_features), 0.0), one(size_t(num_features), 1.0);
  engine::apply_backward(plan, dy.data, dy.data, dx.data, zero.data(), one.data(), zero.data(),
                         zero.data(), scale.data());
}

#define NORMKIT_INSTANTIATE(T)                                                                   \
  template FoldedWeights<T> fold_batch_norm<T>(TensorView<const T>, std::span<const T>,          \
                                               std::span<const T>, std::span<const T>,           \
                                               std::span<const T>, std::span<const T>, double,   \
                                               bool);                                            \
  template FoldedWeights<T> fold_batch_norm<T>(TensorView<const T>, std::span<const T>,          \
                                               const BatchNorm<T>&, bool);                       \
  template class FrozenBatchNorm<T>;
NORMKIT_INSTANTIATE(float)
NORMKIT_INSTANTIATE(double)

}  // namespace normkit
