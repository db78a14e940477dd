// grouped.cpp — coarse statistics from r consecutive fine ones (see grouped.hpp): the fine
// plan is reduced and applied by the engine's own passes; only the merge and the dx
// coefficients are per coarse statistic, in a fixed order.
#include "engine/grouped.hpp"

#include <vector>

#include "normkit/half.hpp"

namespace normkit::engine {
namespace {

template <class T>
void coarse_stats(const ReductionPlan& fine, int64_t r, Statistic statistic, double eps, const T* x,
                  double* mean, double* second, double* rstd) {
  const auto nf = static_cast<size_t>(fine.num_stats());
  std::vector<double> fmean(nf), fsecond(nf);
  reduce_stats(fine, x, statistic, fmean.data(), fsecond.data());
  const int64_t coarse = fine.num_stats() / r;
  merge_fine(statistic, coarse, r, double(fine.stat_size()), fmean.data(), fsecond.data(), mean, second);
  for (int64_t s = 0; s < coarse; ++s) rstd[s] = rstd_of(statistic, second[s], eps);
}

// v[f] = coarse[f / r]
std::vector<double> expand(const double* coarse, int64_t fine_count, int64_t r) {
  std::vector<double> v(static_cast<size_t>(fine_count));
  for (int64_t f = 0; f < fine_count; ++f) v[size_t(f)] = coarse[f / r];
  return v;
}

}  // namespace

template <class T>
void forward_grouped(const ReductionPlan& fine, int64_t r, Statistic statistic, double eps, const T* x,
                     T* y, const compute_t<T>* w, const compute_t<T>* b, double* mean, double* second,
                     double* rstd) {
  if (forward_columns(fine, r, statistic, eps, x, y, w, b, mean, second, rstd)) return;  // per cached image
  coarse_stats(fine, r, statistic, eps, x, mean, second, rstd);
  const int64_t nf = fine.num_stats();
  apply_forward(fine, x, y, expand(mean, nf, r).data(), expand(rstd, nf, r).data(), w, b);
}

template <class T>
void backward_grouped(const ReductionPlan& fine, int64_t r, Statistic statistic, bool batch_stats, double eps,
                      const T* dy, const T* x, T* dx, const compute_t<T>* w, double* mean, double* second,
                      double* rstd, double* fine_sum_dy, double* fine_sum_dy_xhat, bool recompute) {
  if (batch_stats && backward_columns(fine, r, statistic, recompute, eps, dy, x, dx, w, mean, second, rstd,
                                      fine_sum_dy, fine_sum_dy_xhat))
    return;  // per cached image
  if (batch_stats && recompute) coarse_stats(fine, r, statistic, eps, x, mean, second, rstd);
  const int64_t nf = fine.num_stats(), coarse = nf / r;
  const std::vector<double> fmean = expand(mean, nf, r), frstd = expand(rstd, nf, r);
  reduce_grads<T>(fine, GroupBy::Statistic, dy, x, fmean.data(), frstd.data(), nullptr, fine_sum_dy,
                  fine_sum_dy_xhat);
  if (!dx) return;
  std::vector<double> Q(static_cast<size_t>(coarse), 0.0), R(static_cast<size_t>(coarse), 0.0);
  if (batch_stats) {
    std::vector<int64_t> aff(static_cast<size_t>(nf));
    affine_of_stats(fine, aff.data());
    const double M = double(fine.stat_size() * r);
    for (int64_t s = 0; s < coarse; ++s) {
      double sg = 0, sgx = 0;  // sums of g = dy * w and g * xhat over the coarse statistic
      for (int64_t f = s * r; f < (s + 1) * r; ++f) {
        const double wv = w ? double(w[aff[size_t(f)]]) : 1.0;
        sg += wv * fine_sum_dy[f], sgx += wv * fine_sum_dy_xhat[f];
      }
      dx_coefficients(statistic, M, rstd[s], second[s], eps, sg, sgx, &Q[size_t(s)], &R[size_t(s)]);
    }
  }
  apply_backward(fine, dy, x, dx, fmean.data(), frstd.data(), expand(Q.data(), nf, r).data(),
                 expand(R.data(), nf, r).data(), w);
}

#define NORMKIT_GROUPED_INSTANTIATE(T)                                                                     \
  template void forward_grouped<T>(const ReductionPlan&, int64_t, Statistic, double, const T*, T*,         \
                                   const compute_t<T>*, const compute_t<T>*, double*, double*, double*);   \
  template void backward_grouped<T>(const ReductionPlan&, int64_t, Statistic, bool, double, const T*,     \
                                    const T*, T*, const compute_t<T>*, double*, double*, double*, double*, \
                                    double*, bool);
NORMKIT_GROUPED_INSTANTIATE(float)
NORMKIT_GROUPED_INSTANTIATE(double)
NORMKIT_GROUPED_INSTANTIATE(bfloat16)
NORMKIT_GROUPED_INSTANTIATE(float16)
#undef NORMKIT_GROUPED_INSTANTIATE

}  // namespace normkit::engine
