// instance_norm.cpp — InstanceNorm: one statistic per (n, c) over the spatial dims
// (plan [K,R] on NCHW), affine per channel. With running statistics and use_input_stats,
// they are updated with the batch average of the per-instance statistics (as PyTorch).
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "instance_norm";

template <class T, class P>
ReductionPlan checked_plan(const TensorView<const T>& x, const InstanceNormArgs<T, P>& a) {
  detail::check_channel_args(kOp, x, a);
  if (!a.use_input_stats && a.running_mean.empty())
    detail::fail(kOp, "use_input_stats=false needs running_mean and running_var");
  if (a.use_input_stats && !a.running_mean.empty()) detail::check_momentum(kOp, a.momentum);
  std::vector<int64_t> reduce;
  for (int64_t i = 2; i < x.dim(); ++i) reduce.push_back(i);
  ReductionPlan plan = ReductionPlan::build(x.shape, x.strides, reduce, {1}, kOp);
  if (a.use_input_stats && plan.stat_size() == 1)
    detail::fail(kOp, "expected more than 1 spatial element when using input statistics, got input of shape " +
                          shape_str(x.shape));
  return plan;
}

// Running statistics broadcast to one coefficient pair per (n, c).
template <class T, class P>
detail::Stats running_stats(const TensorView<const T>& x, const InstanceNormArgs<T, P>& a) {
  const int64_t N = x.shape[0], C = x.shape[1];
  detail::Stats s(size_t(N * C));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const size_t i = size_t(n * C + c);
      s.mean[i] = double(a.running_mean[size_t(c)]), s.var[i] = double(a.running_var[size_t(c)]);
      s.rstd[i] = 1.0 / std::sqrt(s.var[i] + a.eps);
    }
  return s;
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
void instance_norm_forward(TensorView<const T> x, TensorView<T> y, const InstanceNormArgs<T, P>& a,
                           SavedStats<compute_t<T>> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "output", y, x, true);
  detail::check_param(kOp, "saved mean", saved.mean, plan.num_stats(), "N * C");
  detail::check_param(kOp, "saved rstd", saved.rstd, plan.num_stats(), "N * C");
  detail::check_forward_aliasing(kOp, x, y, a.weight, a.bias, saved, a.running_mean, a.running_var,
                                 a.use_input_stats && !a.running_mean.empty());
  if (a.update_skipped) *a.update_skipped = false;
  if (x.numel() == 0) return;
  const detail::ComputeParam<T, P> wp(a.weight), bp(a.bias);
  const compute_t<T>*w = wp.ptr, *b = bp.ptr;
  if (!a.use_input_stats) {
    const auto s = running_stats(x, a);
    engine::apply_forward(plan, x.data, y.data, s.mean.data(), s.rstd.data(), w, b);
    return detail::write_saved(saved, s.mean, s.rstd);
  }
  const auto s = detail::forward_pass(plan, Statistic::Variance, x.data, y.data, a.eps, w, b);
  detail::write_saved(saved, s.mean, s.rstd);
  if (a.running_mean.empty()) return;
  const int64_t N = x.shape[0], C = x.shape[1];
  const double m = a.momentum, n = double(plan.stat_size()), unbias = n / (n - 1);
  if (a.skip_nonfinite_update && !all_finite<P>(s, unbias)) {  // the guard: keep them as they are
    if (a.update_skipped) *a.update_skipped = true;
    return;
  }
  for (int64_t c = 0; c < C; ++c) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < N; ++i) mean += s.mean[size_t(i * C + c)], var += s.var[size_t(i * C + c)];
    mean /= double(N), var = var / double(N) * unbias;
    a.running_mean[size_t(c)] = P((1 - m) * double(a.running_mean[size_t(c)]) + m * mean);
    a.running_var[size_t(c)] = P((1 - m) * double(a.running_var[size_t(c)]) + m * var);
  }
}

template <class T, class P>
void instance_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                            const InstanceNormArgs<T, P>& a,
                         std::span<std::type_identity_t<P>> dweight,
                         std::span<std::type_identity_t<P>> dbias, SavedStats<compute_t<T>> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "grad_output", dy, x, false);
  if (dx.data) detail::check_like(kOp, "grad_input", dx, x, true);
  detail::check_param(kOp, "grad_weight", dweight, x.shape[1], "num_channels");
  detail::check_param(kOp, "grad_bias", dbias, x.shape[1], "num_channels");
  detail::check_backward_aliasing(kOp, dy, x, dx, a.weight, dweight, dbias, saved, a.running_mean,
                                  a.running_var);
  auto given = detail::saved_for_backward(kOp, saved, plan.num_stats(), Statistic::Variance, a.eps,
                                          a.use_input_stats);
  if (x.numel() == 0) return detail::zero_grads(dweight, dbias);
  detail::backward_pass(plan, Statistic::Variance, a.use_input_stats, a.eps, dy.data, x.data, dx.data,
                        a.use_input_stats ? std::move(given) : running_stats(x, a),
                        detail::ComputeParam<T, P>(a.weight).ptr, dweight, dbias);
}

#define NORMKIT_INSTANTIATE(T, P)                                                                   \
  template void instance_norm_forward<T, P>(TensorView<const T>, TensorView<T>,                     \
                                            const InstanceNormArgs<T, P>&, SavedStats<compute_t<T>>); \
  template void instance_norm_backward<T, P>(TensorView<const T>, TensorView<const T>,              \
                                             TensorView<T>, const InstanceNormArgs<T, P>&,          \
                                             std::span<P>, std::span<P>, SavedStats<compute_t<T>>);
NORMKIT_FOR_EACH_TYPE_PAIR(NORMKIT_INSTANTIATE)
#undef NORMKIT_INSTANTIATE

}  // namespace normkit
