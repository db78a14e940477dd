// group_norm.cpp — GroupNorm: one statistic per (n, group) over the group's C/G channels
// and the spatial dims. The channel axis is viewed as (G, C/G) through its stride, so any
// layout (NCHW, channels-last) gets the same plan machinery; affine stays per channel.
#include "engine/grouped.hpp"
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "group_norm";

// The plan over the view (N, G, C/G, *spatial): reduce C/G (unless `keep_channels`) and
// space, affine over (G, C/G).
template <class T, class P>
ReductionPlan checked_plan(const TensorView<const T>& x, const GroupNormArgs<T, P>& a,
                           bool keep_channels = false) {
  detail::check_group_args(kOp, x, a);
  const int64_t C = x.shape[1], G = a.num_groups;
  Shape shape{x.shape[0], G, C / G};
  Strides strides{x.strides[0], x.strides[1] * (C / G), x.strides[1]};
  std::vector<int64_t> reduce;
  if (!keep_channels) reduce.push_back(2);
  for (int64_t i = 2; i < x.dim(); ++i) {
    shape.push_back(x.shape[size_t(i)]);
    strides.push_back(x.strides[size_t(i)]);
    reduce.push_back(i + 1);
  }
  return ReductionPlan::build(shape, strides, reduce, {1, 2}, kOp);
}

// Channels-last with a few channels per group: a group's C/G channels are a short contiguous
// run followed by a jump of a whole pixel, too short to work along. Then the statistics are
// taken per (n, channel) over space — runs along all C channels — and merged per group
// (engine/grouped.hpp). Returns C/G when that applies, else 0.
template <class T>
int64_t channel_stats_first(const TensorView<const T>& x, int64_t G) {
  const int64_t per_group = x.shape[1] / G;
  return x.dim() > 2 && x.strides[1] == 1 && per_group > 1 && per_group < 32 ? per_group : 0;
}
}  // namespace

template <class T, class P>
void group_norm_forward(TensorView<const T> x, TensorView<T> y, const GroupNormArgs<T, P>& a,
                        SavedStats<compute_t<T>> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "output", y, x, true);
  detail::check_param(kOp, "saved mean", saved.mean, plan.num_stats(), "N * num_groups");
  detail::check_param(kOp, "saved rstd", saved.rstd, plan.num_stats(), "N * num_groups");
  detail::check_forward_aliasing(kOp, x, y, a.weight, a.bias, saved);
  if (x.numel() == 0) return;
  const detail::ComputeParam<T, P> w(a.weight), b(a.bias);
  if (const int64_t r = channel_stats_first(x, a.num_groups)) {
    detail::Stats s(static_cast<size_t>(plan.num_stats()));
    engine::forward_grouped(checked_plan(x, a, true), r, Statistic::Variance, a.eps, x.data, y.data, w.ptr,
                            b.ptr, s.mean.data(), s.var.data(), s.rstd.data());
    return detail::write_saved(saved, s.mean, s.rstd);
  }
  const auto s = detail::forward_pass(plan, Statistic::Variance, x.data, y.data, a.eps, w.ptr, b.ptr);
  detail::write_saved(saved, s.mean, s.rstd);
}

template <class T, class P>
void group_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                         const GroupNormArgs<T, P>& a,
                         std::span<std::type_identity_t<P>> dweight,
                         std::span<std::type_identity_t<P>> dbias, SavedStats<compute_t<T>> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "grad_output", dy, x, false);
  if (dx.data) detail::check_like(kOp, "grad_input", dx, x, true);
  detail::check_param(kOp, "grad_weight", dweight, x.shape[1], "num_channels");
  detail::check_param(kOp, "grad_bias", dbias, x.shape[1], "num_channels");
  detail::check_backward_aliasing(kOp, dy, x, dx, a.weight, dweight, dbias, saved);
  auto given = detail::saved_for_backward(kOp, saved, plan.num_stats(), Statistic::Variance, a.eps, true);
  if (x.numel() == 0) return detail::zero_grads(dweight, dbias);
  if (const int64_t r = channel_stats_first(x, a.num_groups)) {
    const ReductionPlan fine = checked_plan(x, a, true);
    const bool recompute = given.rstd.empty();
    detail::Stats s = recompute ? detail::Stats(static_cast<size_t>(plan.num_stats())) : std::move(given);
    const auto nf = static_cast<size_t>(fine.num_stats());
    std::vector<double> sdy(nf), sdyx(nf);
    engine::backward_grouped(fine, r, Statistic::Variance, true, a.eps, dy.data, x.data, dx.data,
                             detail::ComputeParam<T, P>(a.weight).ptr, s.mean.data(), s.var.data(),
                             s.rstd.data(), sdy.data(), sdyx.data(), recompute);
    return detail::write_affine_grads(fine, sdy, sdyx, dweight, dbias);
  }
  detail::backward_pass(plan, Statistic::Variance, true, a.eps, dy.data, x.data, dx.data,
                        std::move(given), detail::ComputeParam<T, P>(a.weight).ptr, dweight, dbias);
}

#define NORMKIT_INSTANTIATE(T, P)                                                                   \
  template void group_norm_forward<T, P>(TensorView<const T>, TensorView<T>,                        \
                                         const GroupNormArgs<T, P>&, SavedStats<compute_t<T>>);     \
  template void group_norm_backward<T, P>(TensorView<const T>, TensorView<const T>, TensorView<T>,  \
                                          const GroupNormArgs<T, P>&, std::span<P>, std::span<P>,     \
                                          SavedStats<compute_t<T>>);
NORMKIT_FOR_EACH_TYPE_PAIR(NORMKIT_INSTANTIATE)
#undef NORMKIT_INSTANTIATE

}  // namespace normkit
