// layer_norm.cpp — LayerNorm: one statistic per leading index over the trailing dims
// given by normalized_shape (plan [K,R]); weight and bias, each optional, vary along them.
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "layer_norm";

template <class T, class P>
ReductionPlan checked_plan(const TensorView<const T>& x, const LayerNormArgs<T, P>& a) {
  detail::check_tensor(kOp, "input", x);
  const auto axes = detail::trailing_axes(kOp, x.shape, a.normalized_shape);
  const int64_t D = numel(a.normalized_shape);
  detail::check_param(kOp, "weight", a.weight, D, "normalized_shape elements");
  detail::check_param(kOp, "bias", a.bias, D, "normalized_shape elements");
  detail::check_eps(kOp, a.eps);
  return ReductionPlan::build(x.shape, x.strides, axes, axes, kOp);
}
}  // namespace

template <class T, class P>
void layer_norm_forward(TensorView<const T> x, TensorView<T> y, const LayerNormArgs<T, P>& a,
                        SavedStats<compute_t<T>> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "output", y, x, true);
  detail::check_param(kOp, "saved mean", saved.mean, plan.num_stats(), "one per row");
  detail::check_param(kOp, "saved rstd", saved.rstd, plan.num_stats(), "one per row");
  detail::check_forward_aliasing(kOp, x, y, a.weight, a.bias, saved);
  if (x.numel() == 0) return;
  const detail::ComputeParam<T, P> w(a.weight), b(a.bias);
  const auto s = detail::forward_pass(plan, Statistic::Variance, x.data, y.data, a.eps, w.ptr, b.ptr);
  detail::write_saved(saved, s.mean, s.rstd);
}

template <class T, class P>
void layer_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                         const LayerNormArgs<T, P>& a,
                         std::span<std::type_identity_t<P>> dweight,
                         std::span<std::type_identity_t<P>> dbias, SavedStats<compute_t<T>> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "grad_output", dy, x, false);
  if (dx.data) detail::check_like(kOp, "grad_input", dx, x, true);
  detail::check_param(kOp, "grad_weight", dweight, plan.num_affine(), "normalized_shape elements");
  detail::check_param(kOp, "grad_bias", dbias, plan.num_affine(), "normalized_shape elements");
  detail::check_backward_aliasing(kOp, dy, x, dx, a.weight, dweight, dbias, saved);
  auto given = detail::saved_for_backward(kOp, saved, plan.num_stats(), Statistic::Variance, a.eps, true);
  if (x.numel() == 0) return detail::zero_grads(dweight, dbias);
  detail::backward_pass(plan, Statistic::Variance, true, a.eps, dy.data, x.data, dx.data,
                        std::move(given), detail::ComputeParam<T, P>(a.weight).ptr, dweight, dbias);
}

#define NORMKIT_INSTANTIATE(T, P)                                                                   \
  template void layer_norm_forward<T, P>(TensorView<const T>, TensorView<T>,                        \
                                         const LayerNormArgs<T, P>&, SavedStats<compute_t<T>>);     \
  template void layer_norm_backward<T, P>(TensorView<const T>, TensorView<const T>, TensorView<T>,  \
                                          const LayerNormArgs<T, P>&, std::span<P>, std::span<P>,     \
                                          SavedStats<compute_t<T>>);
NORMKIT_FOR_EACH_TYPE_PAIR(NORMKIT_INSTANTIATE)
#undef NORMKIT_INSTANTIATE

}  // namespace normkit
