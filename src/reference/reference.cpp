// reference.cpp — the oracle's loops. Each op lists, for every statistic, the offsets of
// the elements it averages (and the affine index of each); three shared helpers then do
// moments, normalize+affine and backward. Two-pass moments in double: slow, never clever.
#include "reference/reference.hpp"

#include <cmath>

namespace normkit::reference {
namespace {

// One statistic's elements: memory offsets and, per element, its affine parameter index.
struct Group {
  std::vector<int64_t> at, param;
  void add(int64_t offset, int64_t p) { at.push_back(offset); param.push_back(p); }
};

struct Stat {
  double mean = 0, rstd = 1;
  bool clamped = false;  // L2Norm: ||x|| < eps, so the divisor is the constant eps
};

// Biased variance around the two-pass mean; mean of squares; L2 norm.
template <class T>
Stat compute_stat(const T* x, const Group& g, Statistic statistic, double eps) {
  const double n = static_cast<double>(g.at.size());
  double sum = 0, sumsq = 0;
  for (int64_t i : g.at) sum += x[i];
  for (int64_t i : g.at) sumsq += static_cast<double>(x[i]) * x[i];
  if (statistic == Statistic::MeanSquare) return {0.0, 1.0 / std::sqrt(sumsq / n + eps)};
  if (statistic == Statistic::L2Norm) return {0.0, 1.0 / std::max(std::sqrt(sumsq), eps), std::sqrt(sumsq) < eps};
  const double mean = sum / n;
  double var = 0;
  for (int64_t i : g.at) var += (x[i] - mean) * (x[i] - mean);
  return {mean, 1.0 / std::sqrt(var / n + eps)};
}

// Biased variance (for running-statistics updates).
template <class T>
double biased_var(const T* x, const Group& g) {
  double mean = 0, var = 0;
  for (int64_t i : g.at) mean += x[i];
  mean /= static_cast<double>(g.at.size());
  for (int64_t i : g.at) var += (x[i] - mean) * (x[i] - mean);
  return var / static_cast<double>(g.at.size());
}

// y = (x - mean) * rstd * w[p] + b[p]   (w, b empty: 1 and 0)
template <class T>
void group_forward(const T* x, T* y, const Group& g, Stat s, const std::vector<double>& w,
                   const std::vector<double>& b) {
  for (size_t k = 0; k < g.at.size(); ++k) {
    double v = (x[g.at[k]] - s.mean) * s.rstd;
    if (!w.empty()) v *= w[g.param[k]];
    if (!b.empty()) v += b[g.param[k]];
    y[g.at[k]] = static_cast<T>(v);
  }
}

// With gg = dy * w and xhat = (x - mean) * rstd:
//   stats fixed (eval):  dx = rstd * gg
//   Variance:            dx = rstd * (gg - mean(gg) - xhat * mean(gg * xhat))
//   MeanSquare:          dx = rstd * (gg - xhat * mean(gg * xhat))
//   L2Norm:              dx = rstd * (gg - xhat * sum(gg * xhat)); rstd * gg when clamped at eps
// dw[p] += sum dy * xhat; db[p] += sum dy (accumulate: callers zero them first).
template <class T>
void group_backward(const T* dy, const T* x, T* dx, const Group& g, Stat s, Statistic statistic,
                    bool stats_fixed, const std::vector<double>& w, std::vector<double>& dw,
                    std::vector<double>& db) {
  const size_t n = g.at.size();
  std::vector<double> gg(n), xhat(n);
  double sum_g = 0, sum_gx = 0;
  for (size_t k = 0; k < n; ++k) {
    const int64_t i = g.at[k];
    xhat[k] = (x[i] - s.mean) * s.rstd;
    gg[k] = dy[i] * (w.empty() ? 1.0 : w[g.param[k]]);
    sum_g += gg[k];
    sum_gx += gg[k] * xhat[k];
    if (!dw.empty()) dw[g.param[k]] += dy[i] * xhat[k];
    if (!db.empty()) db[g.param[k]] += dy[i];
  }
  if (!dx) return;
  const double dn = static_cast<double>(n);
  const double term_mean = (statistic == Statistic::Variance && !stats_fixed) ? sum_g / dn : 0.0;
  double term_x = stats_fixed ? 0.0 : sum_gx / dn;
  if (statistic == Statistic::L2Norm && !stats_fixed) term_x = s.clamped ? 0.0 : sum_gx;
  for (size_t k = 0; k < n; ++k)
    dx[g.at[k]] = static_cast<T>(s.rstd * (gg[k] - term_mean - xhat[k] * term_x));
}

template <class T>
std::vector<double> to_vec(const T* p, int64_t n) {
  return p ? std::vector<double>(p, p + n) : std::vector<double>{};
}
template <class T>
void store(const std::vector<double>& v, T* out) {
  if (out)
    for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<T>(v[i]);
}
template <class T>
void store_stats(const std::vector<Stat>& s, T* mean, T* rstd) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (mean) mean[i] = static_cast<T>(s[i].mean);
    if (rstd) rstd[i] = static_cast<T>(s[i].rstd);
  }
}

// Groups of (N, C, S): per channel (BatchNorm) or per (n, c) (InstanceNorm); param = c.
std::vector<Group> channel_groups(int64_t N, int64_t C, int64_t S) {
  std::vector<Group> g(static_cast<size_t>(C));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) g[c].add((n * C + c) * S + s, c);
  return g;
}
std::vector<Group> instance_groups(int64_t N, int64_t C, int64_t S) {
  std::vector<Group> g(static_cast<size_t>(N * C));
  for (int64_t nc = 0; nc < N * C; ++nc)
    for (int64_t s = 0; s < S; ++s) g[nc].add(nc * S + s, nc % C);
  return g;
}
std::vector<Group> group_groups(int64_t N, int64_t C, int64_t S, int64_t G) {
  std::vector<Group> g(static_cast<size_t>(N * G));
  const int64_t cg = C / G;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) g[n * G + c / cg].add((n * C + c) * S + s, c);
  return g;
}
std::vector<Group> row_groups(int64_t M, int64_t D) {
  std::vector<Group> g(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t d = 0; d < D; ++d) g[m].add(m * D + d, d);
  return g;
}

// Stats from running mean/var per channel: mean = rm[c], rstd = 1/sqrt(rv[c] + eps).
template <class T>
Stat running_stat(const T* rm, const T* rv, int64_t c, double eps) {
  return {static_cast<double>(rm[c]), 1.0 / std::sqrt(static_cast<double>(rv[c]) + eps)};
}

template <class T>
void backward_all(const T* dy, const T* x, T* dx, const std::vector<Group>& groups,
                  const std::vector<Stat>& stats, Statistic statistic, bool stats_fixed,
                  const std::vector<double>& w, int64_t num_params, T* dweight, T* dbias) {
  std::vector<double> dw(dweight ? num_params : 0, 0.0), db(dbias ? num_params : 0, 0.0);
  for (size_t i = 0; i < groups.size(); ++i)
    group_backward(dy, x, dx, groups[i], stats[i], statistic, stats_fixed, w, dw, db);
  store(dw, dweight);
  store(db, dbias);
}

}  // namespace

// ---- BatchNorm -------------------------------------------------------------------------
template <class T>
void batch_norm_forward(const T* x, T* y, int64_t N, int64_t C, int64_t S, const T* weight,
                        const T* bias, T* running_mean, T* running_var, bool training,
                        double momentum, double eps, T* mean, T* rstd) {
  const bool use_batch = training || !running_mean || !running_var;
  const auto groups = channel_groups(N, C, S);
  std::vector<Stat> stats(groups.size());
  for (int64_t c = 0; c < C; ++c) {
    if (!use_batch) {
      stats[c] = running_stat(running_mean, running_var, c, eps);
      continue;
    }
    stats[c] = compute_stat(x, groups[c], Statistic::Variance, eps);
    if (!training) continue;
    const double n = static_cast<double>(N * S);
    if (running_mean) running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * stats[c].mean);
    if (running_var)
      running_var[c] = static_cast<T>((1 - momentum) * running_var[c] +
                                      momentum * biased_var(x, groups[c]) * n / (n - 1));
  }
  for (int64_t c = 0; c < C; ++c)
    group_forward(x, y, groups[c], stats[c], to_vec(weight, C), to_vec(bias, C));
  store_stats(stats, mean, rstd);
}

template <class T>
void batch_norm_backward(const T* dy, const T* x, T* dx, int64_t N, int64_t C, int64_t S,
                         const T* weight, const T* running_mean, const T* running_var,
                         bool training, double eps, T* dweight, T* dbias) {
  const bool use_batch = training || !running_mean || !running_var;
  const auto groups = channel_groups(N, C, S);
  std::vector<Stat> stats(groups.size());
  for (int64_t c = 0; c < C; ++c)
    stats[c] = use_batch ? compute_stat(x, groups[c], Statistic::Variance, eps)
                         : running_stat(running_mean, running_var, c, eps);
  backward_all(dy, x, dx, groups, stats, Statistic::Variance, !use_batch, to_vec(weight, C), C,
               dweight, dbias);
}

// ---- InstanceNorm ----------------------------------------------------------------------
template <class T>
void instance_norm_forward(const T* x, T* y, int64_t N, int64_t C, int64_t S, const T* weight,
                           const T* bias, T* running_mean, T* running_var, bool use_input_stats,
                           double momentum, double eps, T* mean, T* rstd) {
  const auto groups = instance_groups(N, C, S);
  std::vector<Stat> stats(groups.size());
  for (int64_t nc = 0; nc < N * C; ++nc)
    stats[nc] = use_input_stats ? compute_stat(x, groups[nc], Statistic::Variance, eps)
                                : running_stat(running_mean, running_var, nc % C, eps);
  if (use_input_stats) {
    // running = (1 - m) * running + m * average over n of the instance mean / unbiased var
    for (int64_t c = 0; c < C; ++c) {
      double avg_mean = 0, avg_var = 0;
      for (int64_t n = 0; n < N; ++n) {
        avg_mean += stats[n * C + c].mean / static_cast<double>(N);
        avg_var += biased_var(x, groups[n * C + c]) * S / (S - 1.0) / static_cast<double>(N);
      }
      if (running_mean) running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * avg_mean);
      if (running_var) running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * avg_var);
    }
  }
  for (size_t i = 0; i < groups.size(); ++i)
    group_forward(x, y, groups[i], stats[i], to_vec(weight, C), to_vec(bias, C));
  if (use_input_stats) store_stats(stats, mean, rstd);
}

template <class T>
void instance_norm_backward(const T* dy, const T* x, T* dx, int64_t N, int64_t C, int64_t S,
                            const T* weight, const T* running_mean, const T* running_var,
                            bool use_input_stats, double eps, T* dweight, T* dbias) {
  const auto groups = instance_groups(N, C, S);
  std::vector<Stat> stats(groups.size());
  for (int64_t nc = 0; nc < N * C; ++nc)
    stats[nc] = use_input_stats ? compute_stat(x, groups[nc], Statistic::Variance, eps)
                                : running_stat(running_mean, running_var, nc % C, eps);
  backward_all(dy, x, dx, groups, stats, Statistic::Variance, !use_input_stats,
               to_vec(weight, C), C, dweight, dbias);
}

// ---- GroupNorm -------------------------------------------------------------------------
template <class T>
void group_norm_forward(const T* x, T* y, int64_t N, int64_t C, int64_t S, int64_t G,
                        const T* weight, const T* bias, double eps, T* mean, T* rstd) {
  const auto groups = group_groups(N, C, S, G);
  std::vector<Stat> stats(groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    stats[i] = compute_stat(x, groups[i], Statistic::Variance, eps);
    group_forward(x, y, groups[i], stats[i], to_vec(weight, C), to_vec(bias, C));
  }
  store_stats(stats, mean, rstd);
}

template <class T>
void group_norm_backward(const T* dy, const T* x, T* dx, int64_t N, int64_t C, int64_t S,
                         int64_t G, const T* weight, double eps, T* dweight, T* dbias) {
  const auto groups = group_groups(N, C, S, G);
  std::vector<Stat> stats(groups.size());
  for (size_t i = 0; i < groups.size(); ++i)
    stats[i] = compute_stat(x, groups[i], Statistic::Variance, eps);
  backward_all(dy, x, dx, groups, stats, Statistic::Variance, false, to_vec(weight, C), C,
               dweight, dbias);
}

// ---- LayerNorm and RMSNorm -------------------------------------------------------------
template <class T>
void layer_norm_forward(const T* x, T* y, int64_t M, int64_t D, const T* weight, const T* bias,
                        double eps, T* mean, T* rstd) {
  const auto groups = row_groups(M, D);
  std::vector<Stat> stats(groups.size());
  for (int64_t m = 0; m < M; ++m) {
    stats[m] = compute_stat(x, groups[m], Statistic::Variance, eps);
    group_forward(x, y, groups[m], stats[m], to_vec(weight, D), to_vec(bias, D));
  }
  store_stats(stats, mean, rstd);
}

template <class T>
void layer_norm_backward(const T* dy, const T* x, T* dx, int64_t M, int64_t D, const T* weight,
                         double eps, T* dweight, T* dbias) {
  const auto groups = row_groups(M, D);
  std::vector<Stat> stats(groups.size());
  for (int64_t m = 0; m < M; ++m) stats[m] = compute_stat(x, groups[m], Statistic::Variance, eps);
  backward_all(dy, x, dx, groups, stats, Statistic::Variance, false, to_vec(weight, D), D,
               dweight, dbias);
}

// The scale actually applied: w, 1 + w (unit_offset), or nothing.
template <class T>
std::vector<double> rms_scale(const T* weight, int64_t D, bool unit_offset) {
  std::vector<double> w = to_vec(weight, D);
  if (unit_offset)
    for (double& v : w) v += 1.0;
  return w;
}

template <class T>
void rms_norm_forward(const T* x, T* y, int64_t M, int64_t D, const T* weight, bool unit_offset,
                      double eps, T* rstd) {
  const auto groups = row_groups(M, D);
  std::vector<Stat> stats(groups.size());
  for (int64_t m = 0; m < M; ++m) {
    stats[m] = compute_stat(x, groups[m], Statistic::MeanSquare, eps);
    group_forward(x, y, groups[m], stats[m], rms_scale(weight, D, unit_offset), {});
  }
  store_stats(stats, static_cast<T*>(nullptr), rstd);
}

// d(1 + w)/dw = 1, so dweight = sum dy * xhat for both forms.
template <class T>
void rms_norm_backward(const T* dy, const T* x, T* dx, int64_t M, int64_t D, const T* weight,
                       bool unit_offset, double eps, T* dweight) {
  const auto groups = row_groups(M, D);
  std::vector<Stat> stats(groups.size());
  for (int64_t m = 0; m < M; ++m) stats[m] = compute_stat(x, groups[m], Statistic::MeanSquare, eps);
  backward_all(dy, x, dx, groups, stats, Statistic::MeanSquare, false,
               rms_scale(weight, D, unit_offset), D, dweight, static_cast<T*>(nullptr));
}

// ---- WeightNorm: L2 normalization per slice along `dim`, scaled by g[slice] -------------
namespace {
std::vector<Group> weight_norm_groups(const Shape& shape, std::optional<int64_t> dim) {
  int64_t total = 1;
  for (int64_t s : shape) total *= s;
  if (!dim || *dim == -1) {  // the whole tensor: one group
    std::vector<Group> g(1);
    for (int64_t i = 0; i < total; ++i) g[0].add(i, 0);
    return g;
  }
  // v viewed as (outer, D, inner) around `dim`.
  const auto d = static_cast<size_t>(*dim < 0 ? *dim + static_cast<int64_t>(shape.size()) : *dim);
  int64_t outer = 1, inner = 1;
  for (size_t i = 0; i < d; ++i) outer *= shape[i];
  for (size_t i = d + 1; i < shape.size(); ++i) inner *= shape[i];
  const int64_t D = shape[d];
  std::vector<Group> g(static_cast<size_t>(D));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < D; ++k)
      for (int64_t i = 0; i < inner; ++i) g[k].add((o * D + k) * inner + i, k);
  return g;
}
}  // namespace

template <class T>
void weight_norm_forward(const T* v, const T* g, T* w, const Shape& shape,
                         std::optional<int64_t> dim, T* norms) {
  const auto groups = weight_norm_groups(shape, dim);
  const auto K = static_cast<int64_t>(groups.size());
  for (int64_t k = 0; k < K; ++k) {
    const Stat s = compute_stat(v, groups[k], Statistic::L2Norm, 0.0);
    group_forward(v, w, groups[k], s, to_vec(g, K), {});
    if (norms) norms[k] = static_cast<T>(1.0 / s.rstd);
  }
}

// dg[k] = sum dw * v / ||v||;  dv = g / ||v|| * (dw - vhat * sum(dw * vhat)).
template <class T>
void weight_norm_backward(const T* dw, const T* v, const T* g, T* dv, T* dg, const Shape& shape,
                          std::optional<int64_t> dim) {
  const auto groups = weight_norm_groups(shape, dim);
  const auto K = static_cast<int64_t>(groups.size());
  std::vector<Stat> stats(groups.size());
  for (int64_t k = 0; k < K; ++k) stats[k] = compute_stat(v, groups[k], Statistic::L2Norm, 0.0);
  backward_all(dw, v, dv, groups, stats, Statistic::L2Norm, false, to_vec(g, K), K, dg,
               static_cast<T*>(nullptr));
}

// ---- generic normalize: stat and affine indices by explicit coordinate decomposition ---
namespace {
std::vector<Group> generic_groups(const Shape& shape, const std::vector<bool>& reduce,
                                  const std::vector<bool>& affine, int64_t* num_params) {
  int64_t total = 1, num_stats = 1;
  *num_params = 1;
  for (size_t a = 0; a < shape.size(); ++a) {
    total *= shape[a];
    if (!reduce[a]) num_stats *= shape[a];
    if (affine[a]) *num_params *= shape[a];
  }
  std::vector<Group> g(static_cast<size_t>(num_stats));
  std::vector<int64_t> coord(shape.size());
  for (int64_t i = 0; i < total; ++i) {
    int64_t rest = i;  // coordinates of element i, last axis fastest
    for (size_t a = shape.size(); a-- > 0;) {
      coord[a] = rest % shape[a];
      rest /= shape[a];
    }
    int64_t stat = 0, param = 0;  // row-major over the kept / the affine axes
    for (size_t a = 0; a < shape.size(); ++a) {
      if (!reduce[a]) stat = stat * shape[a] + coord[a];
      if (affine[a]) param = param * shape[a] + coord[a];
    }
    g[stat].add(i, param);
  }
  return g;
}
}  // namespace

template <class T>
void normalize_forward(const T* x, T* y, const Shape& shape, const std::vector<bool>& reduce,
                       const std::vector<bool>& affine, Statistic statistic, const T* weight,
                       const T* bias, double eps, T* mean, T* rstd) {
  int64_t P = 1;
  const auto groups = generic_groups(shape, reduce, affine, &P);
  std::vector<Stat> stats(groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    stats[i] = compute_stat(x, groups[i], statistic, eps);
    group_forward(x, y, groups[i], stats[i], to_vec(weight, P), to_vec(bias, P));
  }
  store_stats(stats, mean, rstd);
}

template <class T>
void normalize_backward(const T* dy, const T* x, T* dx, const Shape& shape,
                        const std::vector<bool>& reduce, const std::vector<bool>& affine,
                        Statistic statistic, const T* weight, double eps, T* dweight, T* dbias) {
  int64_t P = 1;
  const auto groups = generic_groups(shape, reduce, affine, &P);
  std::vector<Stat> stats(groups.size());
  for (size_t i = 0; i < groups.size(); ++i) stats[i] = compute_stat(x, groups[i], statistic, eps);
  backward_all(dy, x, dx, groups, stats, statistic, false, to_vec(weight, P), P, dweight, dbias);
}

// ---- instantiations --------------------------------------------------------------------
#define NORMKIT_REFERENCE_INSTANTIATE(T)                                                      \
  template void batch_norm_forward<T>(const T*, T*, int64_t, int64_t, int64_t, const T*,      \
                                      const T*, T*, T*, bool, double, double, T*, T*);        \
  template void batch_norm_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t,     \
                                       const T*, const T*, const T*, bool, double, T*, T*);   \
  template void instance_norm_forward<T>(const T*, T*, int64_t, int64_t, int64_t, const T*,   \
                                         const T*, T*, T*, bool, double, double, T*, T*);     \
  template void instance_norm_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t,  \
                                          const T*, const T*, const T*, bool, double, T*, T*);\
  template void group_norm_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t,       \
                                      const T*, const T*, double, T*, T*);                    \
  template void group_norm_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t,     \
                                       int64_t, const T*, double, T*, T*);                    \
  template void layer_norm_forward<T>(const T*, T*, int64_t, int64_t, const T*, const T*,     \
                                      double, T*, T*);                                        \
  template void layer_norm_backward<T>(const T*, const T*, T*, int64_t, int64_t, const T*,    \
                                       double, T*, T*);                                       \
  template void rms_norm_forward<T>(const T*, T*, int64_t, int64_t, const T*, bool, double,   \
                                    T*);                                                      \
  template void rms_norm_backward<T>(const T*, const T*, T*, int64_t, int64_t, const T*, bool,\
                                     double, T*);                                             \
  template void weight_norm_forward<T>(const T*, const T*, T*, const Shape&,                  \
                                       std::optional<int64_t>, T*);                           \
  template void weight_norm_backward<T>(const T*, const T*, const T*, T*, T*, const Shape&,   \
                                        std::optional<int64_t>);                              \
  template void normalize_forward<T>(const T*, T*, const Shape&, const std::vector<bool>&,    \
                                     const std::vector<bool>&, Statistic, const T*, const T*, \
                                     double, T*, T*);                                         \
  template void normalize_backward<T>(const T*, const T*, T*, const Shape&,                   \
                                      const std::vector<bool>&, const std::vector<bool>&,     \
                                      Statistic, const T*, double, T*, T*);

NORMKIT_REFERENCE_INSTANTIATE(float)
NORMKIT_REFERENCE_INSTANTIATE(double)
#undef NORMKIT_REFERENCE_INSTANTIATE

}  // namespace normkit::reference
