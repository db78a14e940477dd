// normalize.cpp — the generic normalization over any axes: the engine with no preset.
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "normalize";

template <class T>
ReductionPlan checked_plan(const TensorView<const T>& x, const NormalizeArgs<T>& a) {
  detail::check_tensor(kOp, "input", x);
  detail::check_eps(kOp, a.eps);
  ReductionPlan plan = ReductionPlan::build(x.shape, x.strides, a.reduce_axes, a.affine_axes, kOp);
  detail::check_param(kOp, "weight", a.weight, plan.num_affine(), "one per element of the affine axes");
  detail::check_param(kOp, "bias", a.bias, plan.num_affine(), "one per element of the affine axes");
  return plan;
}
}  // namespace

template <class T>
void normalize_forward(TensorView<const T> x, TensorView<T> y, const NormalizeArgs<T>& a,
                       SavedStats<T> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "output", y, x, true);
  detail::check_param(kOp, "saved mean", saved.mean, plan.num_stats(), "one per statistic");
  detail::check_param(kOp, "saved rstd", saved.rstd, plan.num_stats(), "one per statistic");
  if (x.numel() == 0) return;
  const auto s = detail::forward_pass(plan, a.statistic, x.data, y.data, a.eps,
                                      detail::data_or_null(a.weight), detail::data_or_null(a.bias));
  detail::write_saved(saved, s.mean, s.rstd);
}

template <class T>
void normalize_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                        const NormalizeArgs<T>& a, std::span<T> dweight, std::span<T> dbias) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "grad_output", dy, x, false);
  if (dx.data) detail::check_like(kOp, "grad_input", dx, x, true);
  detail::check_param(kOp, "grad_weight", dweight, plan.num_affine(), "one per element of the affine axes");
  detail::check_param(kOp, "grad_bias", dbias, plan.num_affine(), "one per element of the affine axes");
  if (x.numel() == 0) return detail::zero_grads(dweight, dbias);
  detail::backward_pass(plan, a.statistic, true, a.eps, dy.data, x.data, dx.data,
                        detail::Stats{}, detail::data_or_null(a.weight),
                        dweight, dbias);
}

#define NORMKIT_INSTANTIATE(T)                                                                      \
  template void normalize_forward<T>(TensorView<const T>, TensorView<T>, const NormalizeArgs<T>&,   \
                                     SavedStats<T>);                                                \
  template void normalize_backward<T>(TensorView<const T>, TensorView<const T>, TensorView<T>,      \
                                      const NormalizeArgs<T>&, std::span<T>, std::span<T>);
NORMKIT_INSTANTIATE(float)
NORMKIT_INSTANTIATE(double)

}  // namespace normkit
