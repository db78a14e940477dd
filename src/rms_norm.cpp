// rms_norm.cpp — RMSNorm: y = x / sqrt(mean(x^2) + eps) * w over the trailing dims (no
// mean subtracted, no bias). eps unset = machine epsilon of compute_t<T>. The Gemma form
// scales by (1 + w), with 1 + w formed in compute_t<T> (float32 for float and half inputs)
// as Gemma does. HalfCast::NormalizeThenCast rounds x * rstd to T before the multiply
// (LLaMA); the backward treats that rounding as the identity.
#include <limits>

#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "rms_norm";

template <class T, class P>
ReductionPlan checked_plan(const TensorView<const T>& x, const RMSNormArgs<T, P>& a) {
  detail::check_tensor(kOp, "input", x);
  const auto axes = detail::trailing_axes(kOp, x.shape, a.normalized_shape);
  detail::check_param(kOp, "weight", a.weight, numel(a.normalized_shape), "normalized_shape elements");
  if (a.eps) detail::check_eps(kOp, *a.eps);
  return ReductionPlan::build(x.shape, x.strides, axes, axes, kOp);
}

template <class T, class P>
double eps_of(const RMSNormArgs<T, P>& a) {
  return a.eps ? *a.eps : double(std::numeric_limits<compute_t<T>>::epsilon());
}

// The scale actually applied: w (as the caller's array where it already is compute_t<T>), or
// 1 + w for the Gemma form; ptr is null without a weight.
template <class T, class P, class C = compute_t<T>>
struct EffectiveWeight : detail::ComputeParam<T, P> {
  explicit EffectiveWeight(const RMSNormArgs<T, P>& a)
      : detail::ComputeParam<T, P>(a.unit_offset ? std::span<const P>{} : a.weight) {
    if (!a.unit_offset || a.weight.empty()) return;
    this->owned.resize(a.weight.size());
    for (size_t i = 0; i < a.weight.size(); ++i) this->owned[i] = C(1) + C(a.weight[i]);
    this->ptr = this->owned.data();
  }
};
}  // namespace

template <class T, class P>
void rms_norm_forward(TensorView<const T> x, TensorView<T> y, const RMSNormArgs<T, P>& a,
                      SavedStats<compute_t<T>> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "output", y, x, true);
  detail::check_param(kOp, "saved mean", saved.mean, plan.num_stats(), "one per row");
  detail::check_param(kOp, "saved rstd", saved.rstd, plan.num_stats(), "one per row");
  detail::check_forward_aliasing(kOp, x, y, a.weight, std::span<const P>{}, saved);
  if (x.numel() == 0) return;
  const EffectiveWeight<T, P> w(a);
  const auto s = detail::forward_pass(plan, Statistic::MeanSquare, x.data, y.data, eps_of(a), w.ptr,
                                      static_cast<const compute_t<T>*>(nullptr),
                                      a.cast == HalfCast::NormalizeThenCast);
  detail::write_saved(saved, s.mean, s.rstd);
}

template <class T, class P>
void rms_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                       const RMSNormArgs<T, P>& a,
                       std::span<std::type_identity_t<P>> dweight, SavedStats<compute_t<T>> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "grad_output", dy, x, false);
  if (dx.data) detail::check_like(kOp, "grad_input", dx, x, true);
  detail::check_param(kOp, "grad_weight", dweight, plan.num_affine(), "normalized_shape elements");
  detail::check_backward_aliasing(kOp, dy, x, dx, a.weight, dweight, std::span<P>{}, saved);
  auto given = detail::saved_for_backward(kOp, saved, plan.num_stats(), Statistic::MeanSquare, eps_of(a), true);
  if (x.numel() == 0) return detail::zero_grads(dweight, std::span<P>{});
  const EffectiveWeight<T, P> w(a);
  detail::backward_pass(plan, Statistic::MeanSquare, true, eps_of(a), dy.data, x.data, dx.data,
                        std::move(given), w.ptr,
                        dweight, std::span<P>{});
}

#define NORMKIT_INSTANTIATE(T, P)                                                                 \
  template void rms_norm_forward<T, P>(TensorView<const T>, TensorView<T>, const RMSNormArgs<T, P>&, \
                                       SavedStats<compute_t<T>>);                                 \
  template void rms_norm_backward<T, P>(TensorView<const T>, TensorView<const T>, TensorView<T>,  \
                                        const RMSNormArgs<T, P>&, std::span<P>, SavedStats<compute_t<T>>);
NORMKIT_FOR_EACH_TYPE_PAIR(NORMKIT_INSTANTIATE)
#undef NORMKIT_INSTANTIATE

}  // namespace normkit
