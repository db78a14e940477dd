// batch_norm.cpp — BatchNorm: one statistic per channel over N and the spatial dims
// (plan [R,K,R] on NCHW). Training normalizes with the batch's biased variance and folds
// the unbiased one into the running variance; eval uses the running statistics. Running
// statistics have the parameter type P (float for mixed precision; rounded when half).
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "batch_norm";

template <class T, class P>
ReductionPlan checked_plan(const TensorView<const T>& x, const BatchNormArgs<T, P>& a) {
  detail::check_channel_args(kOp, x, a);
  if (a.training && !a.running_mean.empty()) detail::check_momentum(kOp, a.momentum);
  std::vector<int64_t> reduce{0};
  for (int64_t i = 2; i < x.dim(); ++i) reduce.push_back(i);
  ReductionPlan plan = ReductionPlan::build(x.shape, x.strides, reduce, {1}, kOp);
  if (a.training && plan.stat_size() == 1)
    detail::fail(kOp, "expected more than 1 value per channel when training, got input of shape " +
                          shape_str(x.shape));
  return plan;
}

// Eval: xhat = (x - running_mean) / sqrt(running_var + eps).
template <class T, class P>
detail::Stats running_stats(const BatchNormArgs<T, P>& a) {
  detail::Stats s(a.running_mean.size());
  for (size_t c = 0; c < s.mean.size(); ++c) {
    s.mean[c] = double(a.running_mean[c]), s.var[c] = double(a.running_var[c]);
    s.rstd[c] = 1.0 / std::sqrt(s.var[c] + a.eps);
  }
  return s;
}

template <class T, class P>
bool uses_batch_stats(const BatchNormArgs<T, P>& a) {
  return a.training || a.running_mean.empty();
}

// The guard's test: every batch statistic, as it would be stored in T, is finite.
template <class T>
bool all_finite(const detail::Stats& s, double unbias) {
  for (size_t i = 0; i < s.mean.size(); ++i)
    if (!std::isfinite(double(T(s.mean[i]))) || !std::isfinite(double(T(s.var[i] * unbias)))) return false;
  return true;
}
}  // namespace

template <class T, class P>
void batch_norm_forward(TensorView<const T> x, TensorView<T> y, const BatchNormArgs<T, P>& a,
                        SavedStats<compute_t<T>> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "output", y, x, true);
  detail::check_param(kOp, "saved mean", saved.mean, x.shape[1], "num_channels");
  detail::check_param(kOp, "saved rstd", saved.rstd, x.shape[1], "num_channels");
  detail::check_forward_aliasing(kOp, x, y, a.weight, a.bias, saved, a.running_mean, a.running_var,
                                 a.training && !a.running_mean.empty());
  if (a.update_skipped) *a.update_skipped = false;
  if (x.numel() == 0) return;  // an empty batch leaves the running statistics as they were
  const detail::ComputeParam<T, P> wp(a.weight), bp(a.bias);
  const compute_t<T>*w = wp.ptr, *b = bp.ptr;
  if (!uses_batch_stats(a)) {
    const auto s = running_stats(a);
    engine::apply_forward(plan, x.data, y.data, s.mean.data(), s.rstd.data(), w, b);
    return detail::write_saved(saved, s.mean, s.rstd);
  }
  const auto s = detail::forward_pass(plan, Statistic::Variance, x.data, y.data, a.eps, w, b);
  detail::write_saved(saved, s.mean, s.rstd);
  if (!a.training || a.running_mean.empty()) return;
  // running = (1 - m) * running + m * batch, with the unbiased variance
  const double m = a.momentum, n = double(plan.stat_size()), unbias = n / (n - 1);
  if (a.skip_nonfinite_update && !all_finite<P>(s, unbias)) {  // the guard: keep them as they are
    if (a.update_skipped) *a.update_skipped = true;
    return;
  }
  for (size_t c = 0; c < s.mean.size(); ++c) {
    a.running_mean[c] = P((1 - m) * double(a.running_mean[c]) + m * s.mean[c]);
    a.running_var[c] = P((1 - m) * double(a.running_var[c]) + m * s.var[c] * unbias);
  }
}

template <class T, class P>
void batch_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                         const BatchNormArgs<T, P>& a,
                         std::span<std::type_identity_t<P>> dweight,
                         std::span<std::type_identity_t<P>> dbias, SavedStats<compute_t<T>> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "grad_output", dy, x, false);
  if (dx.data) detail::check_like(kOp, "grad_input", dx, x, true);
  detail::check_param(kOp, "grad_weight", dweight, x.shape[1], "num_channels");
  detail::check_param(kOp, "grad_bias", dbias, x.shape[1], "num_channels");
  detail::check_backward_aliasing(kOp, dy, x, dx, a.weight, dweight, dbias, saved, a.running_mean,
                                  a.running_var);
  const bool batch = uses_batch_stats(a);
  auto given = detail::saved_for_backward(kOp, saved, plan.num_stats(), Statistic::Variance, a.eps, batch);
  if (x.numel() == 0) return detail::zero_grads(dweight, dbias);
  detail::backward_pass(plan, Statistic::Variance, batch, a.eps, dy.data, x.data, dx.data,
                        batch ? std::move(given) : running_stats(a),
                        detail::ComputeParam<T, P>(a.weight).ptr, dweight, dbias);
}

#define NORMKIT_INSTANTIATE(T, P)                                                                   \
  template void batch_norm_forward<T, P>(TensorView<const T>, TensorView<T>,                        \
                                         const BatchNormArgs<T, P>&, SavedStats<compute_t<T>>);     \
  template void batch_norm_backward<T, P>(TensorView<const T>, TensorView<const T>, TensorView<T>,  \
                                          const BatchNormArgs<T, P>&, std::span<P>, std::span<P>,     \
                                          SavedStats<compute_t<T>>);
NORMKIT_FOR_EACH_TYPE_PAIR(NORMKIT_INSTANTIATE)
#undef NORMKIT_INSTANTIATE

}  // namespace normkit
