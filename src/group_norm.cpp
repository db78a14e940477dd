// group_norm.cpp — GroupNorm: one statistic per (n, group) over the group's C/G channels
// and the spatial dims. The channel axis is viewed as (G, C/G) through its stride, so any
// layout (NCHW, channels-last) gets the same plan machinery; affine stays per channel.
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "group_norm";

// The plan over the view (N, G, C/G, *spatial): reduce C/G and space, affine over (G, C/G).
template <class T>
ReductionPlan checked_plan(const TensorView<const T>& x, const GroupNormArgs<T>& a) {
  detail::check_group_args(kOp, x, a);
  const int64_t C = x.shape[1], G = a.num_groups;
  Shape shape{x.shape[0], G, C / G};
  Strides strides{x.strides[0], x.strides[1] * (C / G), x.strides[1]};
  std::vector<int64_t> reduce{2};
  for (int64_t i = 2; i < x.dim(); ++i) {
    shape.push_back(x.shape[size_t(i)]);
    strides.push_back(x.strides[size_t(i)]);
    reduce.push_back(i + 1);
  }
  return ReductionPlan::build(shape, strides, reduce, {1, 2}, kOp);
}
}  // namespace

template <class T>
void group_norm_forward(TensorView<const T> x, TensorView<T> y, const GroupNormArgs<T>& a,
                        SavedStats<T> saved) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "output", y, x, true);
  detail::check_param(kOp, "saved mean", saved.mean, plan.num_stats(), "N * num_groups");
  detail::check_param(kOp, "saved rstd", saved.rstd, plan.num_stats(), "N * num_groups");
  if (x.numel() == 0) return;
  const auto s = detail::forward_pass(plan, Statistic::Variance, x.data, y.data, a.eps,
                                      detail::data_or_null(a.weight), detail::data_or_null(a.bias));
  detail::write_saved(saved, s.mean, s.rstd);
}

template <class T>
void group_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                         const GroupNormArgs<T>& a, std::span<T> dweight, std::span<T> dbias) {
  const ReductionPlan plan = checked_plan(x, a);
  detail::check_like(kOp, "grad_output", dy, x, false);
  if (dx.data) detail::check_like(kOp, "grad_input", dx, x, true);
  detail::check_param(kOp, "grad_weight", dweight, x.shape[1], "num_channels");
  detail::check_param(kOp, "grad_bias", dbias, x.shape[1], "num_channels");
  if (x.numel() == 0) return detail::zero_grads(dweight, dbias);
  detail::backward_pass(plan, Statistic::Variance, true, a.eps, dy.data, x.data, dx.data,
                        detail::Stats{}, detail::data_or_null(a.weight),
                        dweight, dbias);
}

#define NORMKIT_INSTANTIATE(T)                                                                      \
  template void group_norm_forward<T>(TensorView<const T>, TensorView<T>, const GroupNormArgs<T>&,  \
                                      SavedStats<T>);                                               \
  template void group_norm_backward<T>(TensorView<const T>, TensorView<const T>, TensorView<T>,     \
                                       const GroupNormArgs<T>&, std::span<T>, std::span<T>);
NORMKIT_INSTANTIATE(float)
NORMKIT_INSTANTIATE(double)

}  // namespace normkit
