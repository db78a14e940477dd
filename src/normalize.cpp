// normalize.cpp — the generic normalization over any axes: the engine with no preset.
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "normalize";

template <class T, class P>
ReductionPlan checked_plan(const TensorView<const T>& x, const NormalizeArgs<T, P>& a) {
  detail::check_tensor(kOp, "input", x);
  detail::check_eps(kOp, a.eps);
  ReductionPlan plan = ReductionPlan::build(x.shape, x.strides, a.reduce_axes, a.affine_axes, kOp);
  detail::check_param(kOp, "weight", a.weight, plan.num_affine(), "one per element of the affine axes");
  detail::check_param(kOp, "bias", a.bias, plan.num_affine(), "one per element of the affine axes");
  return plan;
}
}  // namespace

template <class T, class P>
void normalize_forward(TensorView<const T> x, TensorView<T> y, const NormalizeArgs<T, P>& a,
                       SavedStats<compute_t<T>> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "output", y, x, true);
  detail::check_param(kOp, "saved mean", saved.mean, plan.num_stats(), "one per statistic");
  detail::check_param(kOp, "saved rstd", saved.rstd, plan.num_stats(), "one per statistic");
  detail::check_forward_aliasing(kOp, x, y, a.weight, a.bias, saved);
  if (x.numel() == 0) return;
  const detail::ComputeParam<T, P> w(a.weight), b(a.bias);
  const auto s = detail::forward_pass(plan, a.statistic, x.data, y.data, a.eps, w.ptr, b.ptr);
  detail::write_saved(saved, s.mean, s.rstd);
}

template <class T, class P>
void normalize_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                        const NormalizeArgs<T, P>& a,
                         std::span<std::type_identity_t<P>> dweight,
                         std::span<std::type_identity_t<P>> dbias) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "grad_output", dy, x, false);
  if (dx.data) detail::check_like(kOp, "grad_input", dx, x, true);
  detail::check_param(kOp, "grad_weight", dweight, plan.num_affine(), "one per element of the affine axes");
  detail::check_param(kOp, "grad_bias", dbias, plan.num_affine(), "one per element of the affine axes");
  detail::check_backward_aliasing(kOp, dy, x, dx, a.weight, dweight, dbias);
  if (x.numel() == 0) return detail::zero_grads(dweight, dbias);
  detail::backward_pass(plan, a.statistic, true, a.eps, dy.data, x.data, dx.data,
                        detail::Stats{}, detail::ComputeParam<T, P>(a.weight).ptr, dweight, dbias);
}

#define NORMKIT_INSTANTIATE(T, P)                                                                   \
  template void normalize_forward<T, P>(TensorView<const T>, TensorView<T>,                         \
                                        const NormalizeArgs<T, P>&, SavedStats<compute_t<T>>);      \
  template void normalize_backward<T, P>(TensorView<const T>, TensorView<const T>, TensorView<T>,   \
                                         const NormalizeArgs<T, P>&, std::span<P>, std::span<P>);
NORMKIT_FOR_EACH_TYPE_PAIR(NORMKIT_INSTANTIATE)
#undef NORMKIT_INSTANTIATE

}  // namespace normkit
