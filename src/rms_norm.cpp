// rms_norm.cpp — RMSNorm: y = x / sqrt(mean(x^2) + eps) * w over the trailing dims (no
// mean subtracted, no bias). eps unset = machine epsilon of T. The Gemma form scales by
// (1 + w), with 1 + w formed in T (float32 for float inputs) as Gemma does.
#include <limits>

#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "rms_norm";

template <class T>
ReductionPlan checked_plan(const TensorView<const T>& x, const RMSNormArgs<T>& a) {
  detail::check_tensor(kOp, "input", x);
  const auto axes = detail::trailing_axes(kOp, x.shape, a.normalized_shape);
  detail::check_param(kOp, "weight", a.weight, numel(a.normalized_shape), "normalized_shape elements");
  if (a.eps) detail::check_eps(kOp, *a.eps);
  return ReductionPlan::build(x.shape, x.strides, axes, axes, kOp);
}

template <class T>
double eps_of(const RMSNormArgs<T>& a) {
  return a.eps ? *a.eps : double(std::numeric_limits<T>::epsilon());
}

// The scale actually applied: w, or 1 + w for the Gemma form (empty: none).
template <class T>
std::vector<T> effective_weight(const RMSNormArgs<T>& a) {
  std::vector<T> w(a.weight.begin(), a.weight.end());
  if (a.unit_offset)
    for (auto& v : w) v = T(1) + v;
  return w;
}
}  // namespace

template <class T>
void rms_norm_forward(TensorView<const T> x, TensorView<T> y, const RMSNormArgs<T>& a,
                      SavedStats<T> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "output", y, x, true);
  detail::check_param(kOp, "saved mean", saved.mean, plan.num_stats(), "one per row");
  detail::check_param(kOp, "saved rstd", saved.rstd, plan.num_stats(), "one per row");
  if (x.numel() == 0) return;
  const auto w = effective_weight(a);
  const auto s = detail::forward_pass(plan, Statistic::MeanSquare, x.data, y.data, eps_of(a),
                                      w.empty() ? nullptr : w.data(), static_cast<const T*>(nullptr));
  detail::write_saved(saved, s.mean, s.rstd);
}

template <class T>
void rms_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                       const RMSNormArgs<T>& a, std::span<T> dweight) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "grad_output", dy, x, false);
  if (dx.data) detail::check_like(kOp, "grad_input", dx, x, true);
  detail::check_param(kOp, "grad_weight", dweight, plan.num_affine(), "normalized_shape elements");
  if (x.numel() == 0) return detail::zero_grads(dweight, std::span<T>{});
  const auto w = effective_weight(a);
  detail::backward_pass(plan, Statistic::MeanSquare, true, eps_of(a), dy.data, x.data, dx.data,
                        detail::Stats{}, w.empty() ? nullptr : w.data(),
                        dweight, std::span<T>{});
}

#define NORMKIT_INSTANTIATE(T)                                                                  \
  template void rms_norm_forward<T>(TensorView<const T>, TensorView<T>, const RMSNormArgs<T>&,  \
                                    SavedStats<T>);                                             \
  template void rms_norm_backward<T>(TensorView<const T>, TensorView<const T>, TensorView<T>,   \
                                     const RMSNormArgs<T>&, std::span<T>);
NORMKIT_INSTANTIATE(float)
NORMKIT_INSTANTIATE(double)

}  // namespace normkit
