// op_common.hpp — what the op files share: the argument checks done at the door (each
// throws normkit::Error naming the op and the value) and the two passes every
// statistic-based normalization runs on the engine (forward with batch statistics, and
// backward). Op files stay a page long: check, build the plan, call these.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/engine.hpp"
#include "normkit/ops.hpp"
#include "normkit/plan.hpp"

namespace normkit::detail {

[[noreturn]] inline void fail(const char* op, const std::string& msg) {
  throw Error(std::string("[") + op + "] " + msg);
}

inline std::string num(double v) {
  std::string s = std::to_string(v);
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  return (std::isnan(v) || std::isinf(v)) ? (std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf")) : s;
}

inline void check_eps(const char* op, double eps) {
  if (!(eps >= 0) || std::isinf(eps)) fail(op, "eps=" + num(eps) + " must be a finite value >= 0");
}

inline void check_momentum(const char* op, double momentum) {
  if (!(momentum >= 0 && momentum <= 1))
    fail(op, "momentum=" + num(momentum) + " must lie in [0, 1]");
}

inline void check_rank(const char* op, const Shape& shape, int64_t min_rank, const char* what) {
  if (static_cast<int64_t>(shape.size()) < min_rank)
    fail(op, "expected " + std::string(what) + " (rank >= " + std::to_string(min_rank) +
                 "), got shape " + shape_str(shape) + " of rank " + std::to_string(shape.size()));
}

// A tensor argument: data present when it has elements, strides sane.
template <class T>
void check_tensor(const char* op, const char* name, const TensorView<T>& t) {
  if (t.strides.size() != t.shape.size())
    fail(op, std::string(name) + " has " + std::to_string(t.strides.size()) + " strides for shape " +
                 shape_str(t.shape));
  int64_t count = 1;
  for (size_t i = 0; i < t.shape.size(); ++i) {
    if (t.shape[i] < 0) fail(op, std::string(name) + " has a negative size in " + shape_str(t.shape));
    if (t.strides[i] < 0) fail(op, std::string(name) + " has negative stride " + std::to_string(t.strides[i]));
    if (t.shape[i] > 0 && count > INT64_MAX / t.shape[i])
      fail(op, std::string(name) + " shape " + shape_str(t.shape) + " has more elements than int64 can count (overflow)");
    count *= t.shape[i];
  }
  if (t.data == nullptr && t.numel() > 0) fail(op, std::string(name) + " data is null");
}

// An output (or second input) must have x's shape and strides; outputs must not overlap
// themselves (a zero stride on an axis longer than 1).
template <class T, class U>
void check_like(const char* op, const char* name, const TensorView<T>& t, const TensorView<U>& x,
                bool is_output) {
  check_tensor(op, name, t);
  if (t.shape != x.shape)
    fail(op, std::string(name) + " has shape " + shape_str(t.shape) + ", expected " + shape_str(x.shape));
  if (t.strides != x.strides) fail(op, std::string(name) + " must have the same strides as the input");
  if (is_output)
    for (size_t i = 0; i < t.shape.size(); ++i)
      if (t.strides[i] == 0 && t.shape[i] > 1)
        fail(op, std::string(name) + " has stride 0 on axis " + std::to_string(i) + ": outputs must not overlap");
}

// ---- aliasing: the address ranges of an op's arguments ---------------------------------------
// Each argument covers the bytes from its first to one past its last element (a strided
// view covers its whole span, gaps included). An argument that is written must not share a
// byte with any other argument, with one exception: a tensor may be exactly the same view as
// another tensor of the call (y == x, dx == dy or x: in place), which the engine supports.
// A partial overlap (a view shifted by some elements, running_mean and running_var in one
// buffer, ...) is an Error naming both arguments.
struct Region {
  const char* name = "";
  uintptr_t lo = 0, hi = 0;  // [lo, hi) in bytes; lo == hi when empty or absent
  bool written = false;
  bool tensor = false;  // exact aliasing between two tensors is allowed (in place)
};

template <class T>
Region region(const char* name, const TensorView<T>& t, bool written) {
  Region r{name, 0, 0, written, true};
  if (t.data == nullptr || t.numel() <= 0) return r;
  uint64_t last = 0;  // offset of the last element, in elements (saturating; check_tensor ran)
  for (size_t i = 0; i < t.shape.size(); ++i) {
    uint64_t term = 0;
    if (__builtin_mul_overflow(uint64_t(t.shape[i] - 1), uint64_t(t.strides[i]), &term) ||
        __builtin_add_overflow(last, term, &last))
      last = UINT64_MAX / 2;
  }
  r.lo = reinterpret_cast<uintptr_t>(t.data);
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(last + 1, uint64_t(sizeof(T)), &bytes) || bytes > UINTPTR_MAX - r.lo)
    r.hi = UINTPTR_MAX;
  else
    r.hi = r.lo + uintptr_t(bytes);
  return r;
}

template <class T>
Region region(const char* name, std::span<T> p, bool written) {
  Region r{name, 0, 0, written, false};
  if (p.empty() || p.data() == nullptr) return r;
  r.lo = reinterpret_cast<uintptr_t>(p.data());
  r.hi = r.lo + uintptr_t(p.size_bytes());
  return r;
}

inline void check_no_overlap(const char* op, std::initializer_list<Region> regions) {
  const Region* r = regions.begin();
  const size_t n = regions.size();
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) {
      const Region &a = r[i], &b = r[j];
      if (!(a.written || b.written) || a.lo == a.hi || b.lo == b.hi) continue;
      if (a.hi <= b.lo || b.hi <= a.lo) continue;                       // disjoint
      if (a.tensor && b.tensor && a.lo == b.lo && a.hi == b.hi) continue;  // the same view: in place
      fail(op, std::string(a.name) + " and " + b.name +
                   " overlap in memory (only an exact in-place alias of a tensor is allowed)");
    }
}

// The aliasing checks of a forward (x, y, parameters, saved statistics, running statistics
// written when `running_written`) and of a backward (dy, x, dx, parameters, the gradients;
// saved and running statistics are read there).
template <class T, class P, class C>
void check_forward_aliasing(const char* op, const TensorView<const T>& x, const TensorView<T>& y,
                            std::span<const P> weight, std::span<const P> bias, SavedStats<C> saved,
                            std::span<P> running_mean = {}, std::span<P> running_var = {},
                            bool running_written = false) {
  check_no_overlap(op, {region("input", x, false), region("output", y, true), region("weight", weight, false),
                        region("bias", bias, false), region("saved mean", saved.mean, true),
                        region("saved rstd", saved.rstd, true),
                        region("running_mean", running_mean, running_written),
                        region("running_var", running_var, running_written)});
}

template <class T, class P, class G, class C = double>
void check_backward_aliasing(const char* op, const TensorView<const T>& dy, const TensorView<const T>& x,
                             const TensorView<T>& dx, std::span<const P> weight, std::span<G> dweight,
                             std::span<G> dbias, SavedStats<C> saved = {},
                             std::span<P> running_mean = {}, std::span<P> running_var = {}) {
  check_no_overlap(op, {region("grad_output", dy, false), region("input", x, false),
                        region("grad_input", dx, true), region("weight", weight, false),
                        region("grad_weight", dweight, true), region("grad_bias", dbias, true),
                        region("saved mean", saved.mean, false), region("saved rstd", saved.rstd, false),
                        region("running_mean", running_mean, false),
                        region("running_var", running_var, false)});
}

// A parameter span: empty (absent) or exactly `expected` values.
template <class T>
void check_param(const char* op, const char* name, std::span<T> p, int64_t expected, const char* what) {
  if (!p.empty() && static_cast<int64_t>(p.size()) != expected)
    fail(op, std::string(name) + " has " + std::to_string(p.size()) + " elements, expected " +
                 std::to_string(expected) + " (" + what + ")");
}

// The checks of an op on (N, C, *) with per-channel parameters (BatchNorm, InstanceNorm,
// SyncBatchNorm): rank, weight/bias/running statistics of C values, eps.
template <class T, class Args>
void check_channel_args(const char* op, const TensorView<const T>& x, const Args& a) {
  check_tensor(op, "input", x);
  check_rank(op, x.shape, 2, "input of shape (N, C, *)");
  const int64_t C = x.shape[1];
  check_param(op, "weight", a.weight, C, "num_channels");
  check_param(op, "bias", a.bias, C, "num_channels");
  check_param(op, "running_mean", a.running_mean, C, "num_channels");
  check_param(op, "running_var", a.running_var, C, "num_channels");
  if (a.running_mean.empty() != a.running_var.empty())
    fail(op, "running_mean and running_var must be given together");
  check_eps(op, a.eps);
}

// GroupNorm's checks (group_norm, group_norm_silu): groups dividing C, per-channel affine,
// more than one value per group.
template <class T, class Args>
void check_group_args(const char* op, const TensorView<const T>& x, const Args& a) {
  check_tensor(op, "input", x);
  check_rank(op, x.shape, 2, "input of shape (N, C, *)");
  const int64_t C = x.shape[1], G = a.num_groups;
  if (G <= 0) fail(op, "num_groups=" + std::to_string(G) + " must be positive");
  if (C % G != 0)
    fail(op, "num_channels=" + std::to_string(C) + " is not divisible by num_groups=" + std::to_string(G));
  check_param(op, "weight", a.weight, C, "num_channels");
  check_param(op, "bias", a.bias, C, "num_channels");
  check_eps(op, a.eps);
  int64_t per_group = C / G;
  for (size_t i = 2; i < x.shape.size(); ++i) per_group *= x.shape[i];
  if (per_group == 1)
    fail(op, "expected more than 1 value per group, got input of shape " + shape_str(x.shape) +
                 " with num_groups=" + std::to_string(G));
}

// ---- the shared passes ---------------------------------------------------------------------

// Per-statistic values in double: mean (0 unless Variance), the second statistic
// (variance, mean square or sum of squares) and rstd, with xhat = (x - mean) * rstd.
struct Stats {
  engine::Scratch<double> mean, var, rstd;
  explicit Stats(size_t n = 0) : mean(n), var(n), rstd(n) {}
};
template <class T>
Stats batch_stats(const ReductionPlan& plan, const T* x, Statistic statistic, double eps) {
  Stats s(static_cast<size_t>(plan.num_stats()));
  engine::reduce_stats(plan, x, statistic, s.mean.data(), s.var.data());
  for (size_t i = 0; i < s.rstd.size(); ++i) s.rstd[i] = engine::rstd_of(statistic, s.var[i], eps);
  return s;
}

template <class T>
void write_saved(SavedStats<T> saved, std::span<const double> mean, std::span<const double> rstd) {
  for (size_t i = 0; i < saved.mean.size(); ++i) saved.mean[i] = T(mean[i]);
  for (size_t i = 0; i < saved.rstd.size(); ++i) saved.rstd[i] = T(rstd[i]);
}

// The statistics a training forward saved, given to a backward so it need not take them from
// x again: rstd, and mean for statistics that have one (MeanSquare's mean is 0 and may be
// left empty). Checked at the door; empty Stats when none were given. second (the variance
// or mean of squares) follows from rstd = 1/sqrt(second + eps).
template <class C>
Stats saved_for_backward(const char* op, SavedStats<C> saved, int64_t n, Statistic statistic, double eps,
                         bool training) {
  if (saved.mean.empty() && saved.rstd.empty()) return Stats{};
  if (!training) fail(op, "saved statistics are for a backward in training mode (batch statistics)");
  if (saved.rstd.empty()) fail(op, "saved mean given without saved rstd");
  if (saved.mean.empty() && statistic == Statistic::Variance) fail(op, "saved rstd given without saved mean");
  check_param(op, "saved mean", saved.mean, n, "one per statistic");
  check_param(op, "saved rstd", saved.rstd, n, "one per statistic");
  Stats s(static_cast<size_t>(n));
  for (size_t i = 0; i < s.rstd.size(); ++i) {
    const double r = double(saved.rstd[i]);
    if (r <= 0)  // (a NaN passes, and propagates as it would have from x)
      fail(op, "saved rstd[" + std::to_string(i) + "]=" + std::to_string(r) + " is not positive");
    s.mean[i] = saved.mean.empty() ? 0.0 : double(saved.mean[i]);
    s.rstd[i] = r;
    s.var[i] = 1.0 / (r * r) - eps;
  }
  return s;
}

template <class T>
const T* data_or_null(std::span<T> p) {
  return p.empty() ? nullptr : p.data();
}

// A parameter (weight, bias, g) as the compute_t<T> values the engine reads: the caller's
// span when P is already that type, else a converted copy (O(C), made once at the door).
template <class T, class P>
struct ComputeParam {
  using C = compute_t<T>;
  std::vector<C> owned;
  const C* ptr = nullptr;
  explicit ComputeParam(std::span<const P> p) {
    if (p.empty()) return;
    if constexpr (std::is_same_v<C, P>) {
      ptr = p.data();
    } else {
      owned.resize(p.size());
      for (size_t i = 0; i < p.size(); ++i) owned[i] = C(p[i]);
      ptr = owned.data();
    }
  }
};

// Every (storage, parameter) pair the ops are instantiated for.
#define NORMKIT_FOR_EACH_TYPE_PAIR(M) \
  M(float, float)                     \
  M(double, double)                   \
  M(bfloat16, float)                  \
  M(bfloat16, bfloat16)               \
  M(float16, float)                   \
  M(float16, float16)

// dweight[a] = sum dy * xhat and dbias[a] = sum dy from per-statistic sums, for a plan whose
// affine index is a function of its statistic: each parameter adds up its statistics' sums.
template <class P>
void write_affine_grads(const ReductionPlan& plan, std::span<const double> sdy, std::span<const double> sdyx,
                        std::span<P> dweight, std::span<P> dbias) {
  if (dweight.empty() && dbias.empty()) return;
  const size_t n = sdy.size(), na = static_cast<size_t>(plan.num_affine());
  engine::Scratch<double> ady(na, 0.0), adyx(na, 0.0);
  engine::Scratch<int64_t> aff(n);
  engine::affine_of_stats(plan, aff.data());
  for (size_t s = 0; s < n; ++s) ady[size_t(aff[s])] += sdy[s], adyx[size_t(aff[s])] += sdyx[s];
  for (size_t a = 0; a < dweight.size(); ++a) dweight[a] = P(adyx[a]);
  for (size_t a = 0; a < dbias.size(); ++a) dbias[a] = P(ady[a]);
}

// Backward of y = xhat * w + b, xhat = (x - mean) * rstd:
//  batch statistics (taken from x itself, training; `st` is filled in): with g = dy * w,
//    dx = rstd * (g - mean(g) - xhat * mean(g * xhat))    (MeanSquare: no mean(g) term;
//    L2Norm: sums instead of means, the divisor being the norm itself)
//  fixed statistics (`st` given, e.g. running ones):  dx = rstd * g
// dweight = sum dy * xhat and dbias = sum dy over the non-affine axes.
template <class T, class P>
void backward_pass(const ReductionPlan& plan, Statistic statistic, bool batch_stats, double eps,
                   const T* dy, const T* x, T* dx, Stats st, const compute_t<T>* w,
                   std::span<P> dweight, std::span<P> dbias) {
  const auto n = static_cast<size_t>(plan.num_stats());
  const bool recompute = batch_stats && st.rstd.empty();  // else: the forward's saved statistics
  if (recompute) st = Stats(n);
  engine::Scratch<double> sdy(n), sdyx(n);
  const bool want_affine = !dweight.empty() || !dbias.empty();
  const auto na = static_cast<size_t>(plan.num_affine());
  engine::Scratch<double> ady(want_affine ? na : 0, 0.0), adyx(want_affine ? na : 0, 0.0);
  bool affine_done = false;  // the backward's own pass took the per-affine sums
  const bool per_stat = engine::backward(plan, statistic, batch_stats, eps, dy, x, dx, w, st.mean.data(),
                                         st.var.data(), st.rstd.data(), sdy.data(), sdyx.data(), recompute,
                                         want_affine ? ady.data() : nullptr, adyx.data(), &affine_done);
  if (!want_affine) return;
  if (per_stat) return write_affine_grads(plan, sdy, sdyx, dweight, dbias);
  if (!affine_done)
    engine::reduce_grads(plan, engine::GroupBy::Affine, dy, x, st.mean.data(), st.rstd.data(),
                         static_cast<const compute_t<T>*>(nullptr), ady.data(), adyx.data());
  for (size_t a = 0; a < dweight.size(); ++a) dweight[a] = P(adyx[a]);
  for (size_t a = 0; a < dbias.size(); ++a) dbias[a] = P(ady[a]);
}

}  // namespace normkit::detail

namespace normkit::detail {

// Forward with statistics taken from x itself: y = xhat * w + b. Returns the statistics.
template <class T>
Stats forward_pass(const ReductionPlan& plan, Statistic statistic, const T* x, T* y, double eps,
                   const compute_t<T>* w, const compute_t<T>* b, bool round_xhat = false) {
  Stats s(static_cast<size_t>(plan.num_stats()));
  engine::forward(plan, statistic, eps, x, y, w, b, s.mean.data(), s.var.data(), s.rstd.data(),
                  round_xhat);
  return s;
}

// Zeroes the gradients a backward pass over an empty tensor still owes its caller.
template <class T>
void zero_grads(std::span<T> dweight, std::span<T> dbias) {
  for (auto& v : dweight) v = T(0);
  for (auto& v : dbias) v = T(0);
}

}  // namespace normkit::detail

namespace normkit::detail {

// The axes LayerNorm and RMSNorm reduce: the trailing dims named by normalized_shape.
inline std::vector<int64_t> trailing_axes(const char* op, const Shape& x_shape,
                                          const Shape& normalized_shape) {
  const size_t k = normalized_shape.size(), r = x_shape.size();
  const bool matches = k <= r && std::equal(normalized_shape.begin(), normalized_shape.end(),
                                            x_shape.end() - static_cast<std::ptrdiff_t>(k));
  if (!matches)
    fail(op, "normalized_shape=" + shape_str(normalized_shape) +
                 " does not match the trailing dims of input shape " + shape_str(x_shape));
  std::vector<int64_t> axes;
  for (size_t i = r - k; i < r; ++i) axes.push_back(static_cast<int64_t>(i));
  return axes;
}

}  // namespace normkit::detail
