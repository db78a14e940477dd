// batch_norm_parts.cpp — the communicator-free pieces of a synchronized BatchNorm: local
// moments and gradient sums, their merge in rank order, and the two elementwise passes.
// Merges only read a flat rank-major array, so equal inputs give bit-identical outputs.
#include <cmath>
#include <string>

#include "normkit/sync_batch_norm.hpp"
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "sync_batch_norm";

// Plan of BatchNorm on x: one statistic (and one affine index) per channel.
template <class T>
ReductionPlan channel_plan(const TensorView<T>& x) {
  std::vector<int64_t> reduce{0};
  for (int64_t i = 2; i < x.dim(); ++i) reduce.push_back(i);
  return ReductionPlan::build(x.shape, x.strides, reduce, {1}, kOp);
}

template <class T>
int64_t checked_channels(const TensorView<T>& x, const char* name) {
  detail::check_tensor(kOp, name, x);
  detail::check_rank(kOp, x.shape, 2, "input of shape (N, C, *)");
  return x.shape[1];
}

void check_stats(const BatchNormStats& s, int64_t C) {
  const auto n = static_cast<size_t>(C);
  if (s.mean.size() != n || s.rstd.size() != n)
    detail::fail(kOp, "statistics have " + std::to_string(s.mean.size()) + " means and " +
                          std::to_string(s.rstd.size()) + " rstd values, expected num_channels=" +
                          std::to_string(C));
}

void check_gathered(size_t total, int64_t C, const char* what) {
  if (C <= 0) detail::fail(kOp, "num_channels=" + std::to_string(C) + " must be positive");
  if (total % static_cast<size_t>(C) != 0)
    detail::fail(kOp, std::string(what) + " has " + std::to_string(total) +
                          " entries, not a multiple of num_channels=" + std::to_string(C));
}
}  // namespace

template <class T>
std::vector<Moments> batch_norm_moments(TensorView<const T> x) {
  const auto C = static_cast<size_t>(checked_channels(x, "input"));
  std::vector<Moments> m(C);
  if (x.numel() == 0) return m;
  const ReductionPlan plan = channel_plan(x);
  std::vector<double> mean(C), var(C);
  engine::reduce_stats(plan, x.data, Statistic::Variance, mean.data(), var.data());
  const double n = double(plan.stat_size());
  for (size_t c = 0; c < C; ++c) m[c] = {n, mean[c], var[c] * n};
  return m;
}

// Chan et al.: n = na + nb, d = mb - ma, mean = ma + d * nb / n, M2 = M2a + M2b + d^2 na nb / n.
std::vector<Moments> combine_moments(std::span<const Moments> gathered, int64_t num_channels) {
  check_gathered(gathered.size(), num_channels, "gathered moments");
  const auto C = static_cast<size_t>(num_channels), R = gathered.size() / C;
  std::vector<Moments> out(C);
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < C; ++c) {
      const Moments& b = gathered[r * C + c];
      Moments& a = out[c];
      if (b.count == 0) continue;
      if (a.count == 0) {
        a = b;
        continue;
      }
      const double n = a.count + b.count, d = b.mean - a.mean;
      a.m2 = a.m2 + b.m2 + d * d * (a.count * b.count / n);
      a.mean = a.mean + d * (b.count / n);
      a.count = n;
    }
  return out;
}

BatchNormStats batch_norm_stats_from(std::span<const Moments> merged, double eps, bool training) {
  detail::check_eps(kOp, eps);
  BatchNormStats s;
  s.count = merged.empty() ? 0 : merged[0].count;
  for (const Moments& m : merged)
    if (m.count != s.count)
      detail::fail(kOp, "channels have different counts: " + detail::num(s.count) + " and " + detail::num(m.count));
  if (training && s.count == 1)
    detail::fail(kOp, "expected more than 1 value per channel when training, got 1 value per channel "
                      "over the whole (global) batch");
  for (const Moments& m : merged) {
    const double var = s.count > 0 ? m.m2 / s.count : 0.0;
    s.mean.push_back(m.mean), s.var.push_back(var), s.rstd.push_back(engine::rstd_of(Statistic::Variance, var, eps));
  }
  return s;
}

template <class T>
void batch_norm_apply(TensorView<const T> x, TensorView<T> y, const BatchNormStats& stats,
                      std::span<const T> weight, std::span<const T> bias) {
  const int64_t C = checked_channels(x, "input");
  detail::check_like(kOp, "output", y, x, true);
  check_stats(stats, C);
  detail::check_param(kOp, "weight", weight, C, "num_channels");
  detail::check_param(kOp, "bias", bias, C, "num_channels");
  if (x.numel() == 0) return;
  engine::apply_forward(channel_plan(x), x.data, y.data, stats.mean.data(), stats.rstd.data(),
                        detail::data_or_null(weight), detail::data_or_null(bias));
}

template <class T>
void batch_norm_update_running(std::span<const Moments> merged, std::span<T> running_mean,
                               std::span<T> running_var, double momentum) {
  const auto C = static_cast<int64_t>(merged.size());
  detail::check_param(kOp, "running_mean", running_mean, C, "num_channels");
  detail::check_param(kOp, "running_var", running_var, C, "num_channels");
  if (running_mean.empty() != running_var.empty())
    detail::fail(kOp, "running_mean and running_var must be given together");
  if (running_mean.empty() || merged.empty() || merged[0].count == 0) return;
  detail::check_momentum(kOp, momentum);
  if (merged[0].count == 1)
    detail::fail(kOp, "the unbiased variance needs more than 1 value per channel, got 1");
  const double m = momentum;
  for (size_t c = 0; c < merged.size(); ++c) {
    const double unbiased = merged[c].m2 / (merged[c].count - 1);
    running_mean[c] = T((1 - m) * double(running_mean[c]) + m * merged[c].mean);
    running_var[c] = T((1 - m) * double(running_var[c]) + m * unbiased);
  }
}

template <class T>
std::vector<GradSums> batch_norm_grad_sums(TensorView<const T> dy, TensorView<const T> x,
                                           const BatchNormStats& stats) {
  const int64_t C = checked_channels(x, "input");
  detail::check_like(kOp, "grad_output", dy, x, false);
  check_stats(stats, C);
  std::vector<GradSums> g(static_cast<size_t>(C));
  if (x.numel() == 0) return g;
  std::vector<double> sdy(g.size()), sdyx(g.size());
  engine::reduce_grads(channel_plan(x), engine::GroupBy::Affine, dy.data, x.data, stats.mean.data(),
                       stats.rstd.data(), static_cast<const T*>(nullptr), sdy.data(), sdyx.data());
  for (size_t i = 0; i < g.size(); ++i) g[i] = {sdy[i], sdyx[i]};
  return g;
}

std::vector<GradSums> combine_grad_sums(std::span<const GradSums> gathered, int64_t num_channels) {
  check_gathered(gathered.size(), num_channels, "gathered gradient sums");
  const auto C = static_cast<size_t>(num_channels), R = gathered.size() / C;
  std::vector<GradSums> out(C);
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < C; ++c) {
      out[c].sum_dy += gathered[r * C + c].sum_dy;
      out[c].sum_dy_xhat += gathered[r * C + c].sum_dy_xhat;
    }
  return out;
}

// dx = rstd w (dy - mg - xhat mgx) = P dy w + Q (x - mean) + R with P = rstd,
// Q = -rstd^2 w mgx, R = -rstd w mg; mg = sum_dy / M, mgx = sum_dy_xhat / M (global).
template <class T>
void batch_norm_backward_apply(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                               const BatchNormStats& stats, std::span<const GradSums> merged,
                               std::span<const T> weight, std::span<T> dweight, std::span<T> dbias) {
  const int64_t C = checked_channels(x, "input");
  detail::check_like(kOp, "grad_output", dy, x, false);
  if (dx.data) detail::check_like(kOp, "grad_input", dx, x, true);
  check_stats(stats, C);
  if (static_cast<int64_t>(merged.size()) != C)
    detail::fail(kOp, "merged gradient sums have " + std::to_string(merged.size()) +
                          " entries, expected num_channels=" + std::to_string(C));
  detail::check_param(kOp, "weight", weight, C, "num_channels");
  detail::check_param(kOp, "grad_weight", dweight, C, "num_channels");
  detail::check_param(kOp, "grad_bias", dbias, C, "num_channels");
  for (size_t c = 0; c < dweight.size(); ++c) dweight[c] = T(merged[c].sum_dy_xhat);
  for (size_t c = 0; c < dbias.size(); ++c) dbias[c] = T(merged[c].sum_dy);
  if (dx.data == nullptr || x.numel() == 0) return;
  const auto n = static_cast<size_t>(C);
  std::vector<double> Q(n), R(n);
  const double M = stats.count;
  for (size_t c = 0; c < n; ++c) {
    const double w = weight.empty() ? 1.0 : double(weight[c]), r = stats.rstd[c];
    const double mg = merged[c].sum_dy / M, mgx = merged[c].sum_dy_xhat / M;
    Q[c] = -r * r * w * mgx;
    R[c] = -r * w * mg;
  }
  engine::apply_backward(channel_plan(x), dy.data, x.data, dx.data, stats.mean.data(), stats.rstd.data(),
                         Q.data(), R.data(), detail::data_or_null(weight));
}

#define NORMKIT_INSTANTIATE(T)                                                                       \
  template std::vector<Moments> batch_norm_moments<T>(TensorView<const T>);                          \
  template void batch_norm_apply<T>(TensorView<const T>, TensorView<T>, const BatchNormStats&,       \
                                    std::span<const T>, std::span<const T>);                         \
  template void batch_norm_update_running<T>(std::span<const Moments>, std::span<T>, std::span<T>,   \
                                             double);                                                \
  template std::vector<GradSums> batch_norm_grad_sums<T>(TensorView<const T>, TensorView<const T>,   \
                                                         const BatchNormStats&);                     \
  template void batch_norm_backward_apply<T>(TensorView<const T>, TensorView<const T>, TensorView<T>, \
                                             const BatchNormStats&, std::span<const GradSums>,       \
                                             std::span<const T>, std::span<T>, std::span<T>);
NORMKIT_INSTANTIATE(float)
NORMKIT_INSTANTIATE(double)

}  // namespace normkit
