// adain.cpp — AdaIN (Huang & Belongie 2017): InstanceNorm of the content whose affine
// parameters are the style's own instance statistics, one (std, mean) pair per (n, c).
// Both sides run on the engine with InstanceNorm's plan; the style's statistics become the
// per-(n, c) weight and bias of the content's forward, so content is read once when it fits.
#include <cmath>

#include "extras/blocks.hpp"
#include "normkit/extras.hpp"
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "adain";

// InstanceNorm's plan over (N, C, *): statistics and affine parameters per (n, c).
ReductionPlan instance_plan(const Shape& shape, const Strides& strides) {
  std::vector<int64_t> reduce;
  for (int64_t i = 2; i < static_cast<int64_t>(shape.size()); ++i) reduce.push_back(i);
  return ReductionPlan::build(shape, strides, reduce, {0, 1}, kOp);
}

template <class T>
void check_inputs(const TensorView<const T>& content, const TensorView<const T>& style, double eps) {
  detail::check_tensor(kOp, "content", content);
  detail::check_tensor(kOp, "style", style);
  detail::check_rank(kOp, content.shape, 2, "content of shape (N, C, *)");
  detail::check_rank(kOp, style.shape, 2, "style of shape (N, C, *)");
  if (content.shape[0] != style.shape[0] || content.shape[1] != style.shape[1])
    detail::fail(kOp, "content shape " + shape_str(content.shape) + " and style shape " +
                          shape_str(style.shape) + " must agree in N and C");
  if (content.numel() > 0 && style.numel() == 0)
    detail::fail(kOp, "style of shape " + shape_str(style.shape) + " has no spatial elements");
  detail::check_eps(kOp, eps);
}

// The style's per-(n, c) mean and sigma = sqrt(biased var + eps), in double.
template <class T>
void style_stats(const TensorView<const T>& style, double eps, std::vector<double>& mean,
                 std::vector<double>& sigma) {
  const ReductionPlan plan = instance_plan(style.shape, style.strides);
  mean.resize(size_t(plan.num_stats()));
  sigma.resize(mean.size());
  engine::reduce_stats(plan, style.data, Statistic::Variance, mean.data(), sigma.data());
  for (auto& v : sigma) v = std::sqrt(v + eps);
}
}  // namespace

template <class T>
void adain_forward(TensorView<const T> content, TensorView<const T> style, TensorView<T> y,
                   double eps, SavedStats<T> saved) {
  check_inputs(content, style, eps);
  detail::check_like(kOp, "output", y, content, true);
  const int64_t NC = content.shape[0] * content.shape[1];
  detail::check_param(kOp, "saved mean", saved.mean, NC, "N * C");
  detail::check_param(kOp, "saved rstd", saved.rstd, NC, "N * C");
  detail::check_no_overlap(kOp, {detail::region("content", content, false), detail::region("style", style, false),
                                 detail::region("output", y, true), detail::region("saved mean", saved.mean, true),
                                 detail::region("saved rstd", saved.rstd, true)});
  if (content.numel() == 0) return;
  std::vector<double> mean_s, sigma_s;
  style_stats(style, eps, mean_s, sigma_s);
  // y = xhat * w + b with w = sigma_s, b = mean_s per (n, c)
  const std::vector<T> w(sigma_s.begin(), sigma_s.end()), b(mean_s.begin(), mean_s.end());
  const ReductionPlan plan = instance_plan(content.shape, content.strides);
  detail::Stats st{static_cast<size_t>(NC)};
  engine::forward(plan, Statistic::Variance, eps, content.data, y.data, w.data(), b.data(),
                  st.mean.data(), st.var.data(), st.rstd.data());
  detail::write_saved(saved, st.mean, st.rstd);
}

// dcontent: InstanceNorm backward with weight sigma_s (the engine's backward pass).
// With A = sum dy * xhat (= d sigma_s) and B = sum dy (= d mean_s) per (n, c), and M style
// elements per (n, c):  dstyle = B / M + A * (s - mean_s) / (M * sigma_s).
template <class T>
void adain_backward(TensorView<const T> dy, TensorView<const T> content, TensorView<const T> style,
                    TensorView<T> dcontent, TensorView<T> dstyle, double eps) {
  check_inputs(content, style, eps);
  detail::check_like(kOp, "grad_output", dy, content, false);
  if (dcontent.data) detail::check_like(kOp, "grad_content", dcontent, content, true);
  if (dstyle.data) detail::check_like(kOp, "grad_style", dstyle, style, true);
  detail::check_no_overlap(kOp, {detail::region("grad_output", dy, false), detail::region("content", content, false),
                                 detail::region("style", style, false), detail::region("grad_content", dcontent, true),
                                 detail::region("grad_style", dstyle, true)});
  if (content.numel() == 0) {  // no output: the style's gradient is 0
    if (dstyle.data)
      extras::for_each_run(style.shape, style.strides, [&](int64_t o, int64_t len, int64_t st) {
        for (int64_t i = 0; i < len; ++i) dstyle.data[o + i * st] = T(0);
      });
    return;
  }
  std::vector<double> mean_s, sigma_s;
  style_stats(style, eps, mean_s, sigma_s);
  const std::vector<T> w(sigma_s.begin(), sigma_s.end());
  const ReductionPlan plan = instance_plan(content.shape, content.strides);
  const size_t NC = mean_s.size();
  detail::Stats st{NC};
  std::vector<double> B(NC), A(NC);
  // One pass: dcontent (if wanted) and, per (n, c), B = sum dy and A = sum dy * xhat.
  const bool sums = engine::backward(plan, Statistic::Variance, true, eps, dy.data, content.data,
                                     dcontent.data, w.data(), st.mean.data(), st.var.data(),
                                     st.rstd.data(), B.data(), A.data());
  if (!dstyle.data) return;
  if (!sums)
    engine::reduce_grads(plan, engine::GroupBy::Affine, dy.data, content.data, st.mean.data(),
                         st.rstd.data(), static_cast<const T*>(nullptr), B.data(), A.data());
  const ReductionPlan splan = instance_plan(style.shape, style.strides);
  const double M = double(splan.stat_size());
  std::vector<double> P(NC, 0.0), Q(NC), R(NC);
  for (size_t k = 0; k < NC; ++k) {
    Q[k] = A[k] / (M * sigma_s[k]);
    R[k] = B[k] / M;
  }
  // dx = P * dy + Q * (x - mean) + R with P = 0 (the "dy" argument is unused: pass style).
  engine::apply_backward(splan, style.data, style.data, dstyle.data, mean_s.data(), P.data(),
                         Q.data(), R.data(), static_cast<const T*>(nullptr));
}

#define NORMKIT_INSTANTIATE(T)                                                                   \
  template void adain_forward<T>(TensorView<const T>, TensorView<const T>, TensorView<T>, double, \
                                 SavedStats<T>);                                                 \
  template void adain_backward<T>(TensorView<const T>, TensorView<const T>, TensorView<const T>, \
                                  TensorView<T>, TensorView<T>, double);
NORMKIT_INSTANTIATE(float)
NORMKIT_INSTANTIATE(double)

}  // namespace normkit
