// weight_norm.cpp — WeightNorm: w = g * v / ||v||, the L2 norm over every dim of v but
// `dim` (plan [K,R] for dim=0), g one value per slice along `dim`. It is the engine's
// L2Norm statistic with g as the affine weight along `dim`.
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "weight_norm";

template <class T, class P>
ReductionPlan checked_plan(const TensorView<const T>& v, std::span<const P> g,
                           const WeightNormArgs<T>& a) {
  detail::check_tensor(kOp, "v", v);
  std::vector<int64_t> reduce, affine;
  const bool whole = !a.dim || *a.dim == -1;
  if (!whole && (*a.dim < 0 || *a.dim >= v.dim()))
    detail::fail(kOp, "dim=" + std::to_string(*a.dim) + " is out of range for v of rank " +
                          std::to_string(v.dim()) + " (use -1 or no dim for the whole tensor)");
  for (int64_t i = 0; i < v.dim(); ++i) (!whole && i == *a.dim ? affine : reduce).push_back(i);
  ReductionPlan plan = ReductionPlan::build(v.shape, v.strides, reduce, affine, kOp);
  if (static_cast<int64_t>(g.size()) != plan.num_affine())
    detail::fail(kOp, "g has " + std::to_string(g.size()) + " elements, expected " +
                          std::to_string(plan.num_affine()) +
                          (whole ? " (one norm for the whole tensor)" : " (v.shape[dim])"));
  return plan;
}
}  // namespace

template <class T, class P>
void weight_norm_forward(TensorView<const T> v, std::span<const std::type_identity_t<P>> g,
                         TensorView<T> w, const WeightNormArgs<T>& a,
                         std::span<compute_t<T>> norms) {
  const ReductionPlan plan = checked_plan(v, g, a);
  detail::check_like(kOp, "w", w, v, true);
  detail::check_param(kOp, "norms", norms, plan.num_stats(), "one per slice");
  detail::check_no_overlap(kOp, {detail::region("v", v, false), detail::region("w", w, true),
                                 detail::region("g", g, false), detail::region("norms", norms, true)});
  if (v.numel() == 0) return;
  const auto s = detail::forward_pass(plan, Statistic::L2Norm, v.data, w.data, 0.0,
                                      detail::ComputeParam<T, P>(g).ptr,
                                      static_cast<const compute_t<T>*>(nullptr));
  for (size_t i = 0; i < norms.size(); ++i) norms[i] = compute_t<T>(std::sqrt(s.var[i]));
}

template <class T, class P>
void weight_norm_backward(TensorView<const T> dw, TensorView<const T> v,
                          std::span<const std::type_identity_t<P>> g, TensorView<T> dv,
                          std::span<std::type_identity_t<P>> dg, const WeightNormArgs<T>& a,
                          std::span<const compute_t<T>> norms) {
  const ReductionPlan plan = checked_plan(v, g, a);
  detail::check_like(kOp, "grad_w", dw, v, false);
  if (dv.data) detail::check_like(kOp, "grad_v", dv, v, true);
  detail::check_param(kOp, "grad_g", dg, plan.num_affine(), "like g");
  if (!norms.empty()) detail::check_param(kOp, "norms", norms, plan.num_stats(), "one per slice");
  detail::check_no_overlap(kOp, {detail::region("grad_w", dw, false), detail::region("v", v, false),
                                 detail::region("g", g, false), detail::region("norms", norms, false),
                                 detail::region("grad_v", dv, true), detail::region("grad_g", dg, true)});
  // The engine's L2Norm statistic: second = ||v||^2, rstd = 1/||v|| (eps = 0).
  detail::Stats given;
  if (!norms.empty()) {
    given = detail::Stats(norms.size());
    for (size_t i = 0; i < norms.size(); ++i) {
      const double n = double(norms[i]);
      if (n < 0)  // (a NaN passes, and propagates as it would have from v)
        detail::fail(kOp, "norms[" + std::to_string(i) + "]=" + std::to_string(n) + " is negative");
      given.mean[i] = 0.0, given.var[i] = n * n, given.rstd[i] = 1.0 / n;  // as rstd_of: 1 / max(norm, eps = 0)
    }
  }
  if (v.numel() == 0) return detail::zero_grads(dg, std::span<P>{});
  // dv = g/||v|| * (dw - vhat * sum(dw * vhat)),   dg = sum(dw * vhat),   vhat = v/||v||
  detail::backward_pass(plan, Statistic::L2Norm, true, 0.0, dw.data, v.data, dv.data, std::move(given),
                        detail::ComputeParam<T, P>(g).ptr, dg, std::span<P>{});
}

#define NORMKIT_INSTANTIATE(T, P)                                                                \
  template void weight_norm_forward<T, P>(TensorView<const T>, std::span<const P>, TensorView<T>, \
                                          const WeightNormArgs<T>&, std::span<compute_t<T>>);     \
  template void weight_norm_backward<T, P>(TensorView<const T>, TensorView<const T>,             \
                                           std::span<const P>, TensorView<T>, std::span<P>,      \
                                           const WeightNormArgs<T>&, std::span<const compute_t<T>>);
NORMKIT_FOR_EACH_TYPE_PAIR(NORMKIT_INSTANTIATE)
#undef NORMKIT_INSTANTIATE

}  // namespace normkit
