// engine.cpp — drivers that walk a ReductionPlan in contiguous runs along its run dim.
// Reductions are split into tasks (a group of keys x a chunk of their domain) whose
// boundaries depend on the shape only; each task writes its own partial and partials are
// merged per key in chunk order (Chan's formula for moments), whatever the thread count.
#include "engine/engine.hpp"

#include <algorithm>
#include <vector>

#include "engine/rows.hpp"

namespace normkit::engine {
namespace {

constexpr int64_t kChunk = int64_t{1} << 15;        // domain elements per reduction task
constexpr int64_t kParallelMin = int64_t{1} << 15;  // elements before threads are worth it

struct Offsets {
  int64_t mem = 0, stat = 0, aff = 0;
};

// Row-major decomposition of a flat index over a list of plan dims.
struct Radix {
  std::vector<PlanDim> dims;
  int64_t count = 1;
  void add(const PlanDim& d) { dims.push_back(d), count *= d.size; }
  Offsets at(int64_t idx) const {
    Offsets o;
    for (size_t i = dims.size(); i-- > 0;) {
      const int64_t c = idx % dims[i].size;
      idx /= dims[i].size;
      o.mem += c * dims[i].stride;
      o.stat += c * dims[i].stat_stride;
      o.aff += c * dims[i].affine_stride;
    }
    return o;
  }
};

int64_t key_stride(const PlanDim& d, GroupBy by) {
  return by == GroupBy::Statistic ? d.stat_stride : d.affine_stride;
}

// How a reduction grouped by statistic or by affine index is cut into tasks.
struct Geometry {
  PlanDim run;          // the run dim: runs are contiguous when its stride is 1
  bool column = false;  // the key changes along the run (e.g. BatchNorm on NHWC)
  Radix owners;         // dims that select the key (run dim excluded)
  Radix domain;         // dims summed over (run dim excluded)
  int64_t key_len = 0;  // row mode: elements per key; column mode: rows per key
  int64_t seg_len = 0;  // the same unit, per task
  int64_t num_segs = 1;
  int64_t num_tasks() const { return owners.count * num_segs; }
};

Geometry make_geometry(const ReductionPlan& plan, GroupBy by) {
  Geometry g;
  const size_t r = plan.run_dim();
  g.run = plan.dims()[r];
  g.column = key_stride(g.run, by) != 0;
  for (size_t i = 0; i < plan.dims().size(); ++i) {
    if (i == r) continue;
    const PlanDim& d = plan.dims()[i];
    (key_stride(d, by) != 0 ? g.owners : g.domain).add(d);
  }
  if (g.column) {
    g.key_len = g.domain.count;
    g.seg_len = std::max<int64_t>(1, kChunk / g.run.size);
  } else {
    g.key_len = g.domain.count * g.run.size;
    g.seg_len = kChunk;
  }
  g.num_segs = std::max<int64_t>(1, (g.key_len + g.seg_len - 1) / g.seg_len);
  return g;
}

// Calls visit(run) for every run of task `t`; a run is {offsets of its first element, len}.
// Row mode: all runs belong to the task's single key. Column mode: element i of a run
// belongs to key first + i * key step.
template <class Visit>
void for_each_run(const Geometry& g, int64_t t, Visit&& visit) {
  const Offsets go = g.owners.at(t / g.num_segs);
  const int64_t seg = t % g.num_segs;
  const int64_t d0 = seg * g.seg_len, d1 = std::min(g.key_len, d0 + g.seg_len);
  const int64_t L = g.run.size;
  if (g.column) {
    for (int64_t q = d0; q < d1; ++q) {
      const Offsets od = g.domain.at(q);
      visit(Offsets{go.mem + od.mem, go.stat + od.stat, go.aff + od.aff}, L);
    }
    return;
  }
  for (int64_t d = d0; d < d1;) {
    const int64_t q = d / L, i = d % L, len = std::min(L - i, d1 - d);
    const Offsets od = g.domain.at(q);
    visit(Offsets{go.mem + od.mem + i * g.run.stride, go.stat + od.stat + i * g.run.stat_stride,
                  go.aff + od.aff + i * g.run.affine_stride},
          len);
    d += len;
  }
}

// Domain elements (row mode) or rows (column mode) in task t.
int64_t chunk_size(const Geometry& g, int64_t t) {
  const int64_t d0 = (t % g.num_segs) * g.seg_len;
  return std::min(g.key_len, d0 + g.seg_len) - d0;
}

// The first key of task t.
int64_t first_key(const Geometry& g, int64_t t, GroupBy by) {
  const Offsets o = g.owners.at(t / g.num_segs);
  return by == GroupBy::Statistic ? o.stat : o.aff;
}

// Partial result of one task for one key: moments (n, mean, m2) or plain sums (s1, s2).
struct Partial {
  double n = 0, a = 0, b = 0;
};

// Chan et al.: merge the moments of two disjoint sets.
Partial chan_merge(const Partial& x, const Partial& y) {
  if (x.n == 0) return y;
  if (y.n == 0) return x;
  const double n = x.n + y.n, delta = y.a - x.a;
  return {n, x.a + delta * (y.n / n), x.b + y.b + delta * delta * (x.n * y.n / n)};
}

// Runs every task of a reduction, then merges partials per key in chunk order.
// task(t, write) must call write(key, Partial) once for every key it owns.
template <class Task, class Merge>
std::vector<Partial> run_reduction(const Geometry& g, int64_t num_keys, int64_t work, Task&& task,
                                   Merge&& merge) {
  std::vector<Partial> partials(static_cast<size_t>(num_keys * g.num_segs));
  const int64_t tasks = g.num_tasks();
#pragma omp parallel for schedule(static) if (work >= kParallelMin && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t seg = t % g.num_segs;
    task(t, [&](int64_t key, const Partial& p) {
      partials[static_cast<size_t>(key * g.num_segs + seg)] = p;
    });
  }
  std::vector<Partial> merged(static_cast<size_t>(num_keys));
#pragma omp parallel for schedule(static) if (num_keys * g.num_segs >= kParallelMin)
  for (int64_t k = 0; k < num_keys; ++k) {
    Partial acc = partials[static_cast<size_t>(k * g.num_segs)];
    for (int64_t s = 1; s < g.num_segs; ++s) acc = merge(acc, partials[static_cast<size_t>(k * g.num_segs + s)]);
    merged[static_cast<size_t>(k)] = acc;
  }
  return merged;
}

}  // namespace

template <class T>
void reduce_stats(const ReductionPlan& plan, const T* x, Statistic statistic, double* mean,
                  double* second) {
  const Geometry g = make_geometry(plan, GroupBy::Statistic);
  const int64_t ms = g.run.stride, L = g.run.size, kstep = g.run.stat_stride;
  const bool moments = statistic == Statistic::Variance;
  auto task = [&](int64_t t, auto&& write) {
    const int64_t k0 = first_key(g, t, GroupBy::Statistic);
    if (!g.column) {
      // Two passes over the task's chunk (cache-resident): its mean, then squared deviations.
      const double n = double(chunk_size(g, t));
      double m = 0;
      if (moments) {
        double s1 = 0;
        for_each_run(g, t, [&](Offsets o, int64_t len) { s1 += rows::sum(x + o.mem, len, ms); });
        m = n > 0 ? s1 / n : 0.0;
      }
      double m2 = 0;
      for_each_run(g, t, [&](Offsets o, int64_t len) { m2 += rows::sum_sq_dev(x + o.mem, len, ms, m); });
      return write(k0, Partial{n, m, m2});
    }
    std::vector<double> s1(static_cast<size_t>(L), 0.0), s2(static_cast<size_t>(L), 0.0);
    const double n = double(chunk_size(g, t));
    if (moments) {
      for_each_run(g, t, [&](Offsets o, int64_t) { rows::accumulate(s1.data(), x + o.mem, L, ms); });
      for (auto& v : s1) v = n > 0 ? v / n : 0.0;
    }
    for_each_run(g, t, [&](Offsets o, int64_t) { rows::accumulate_sq_dev(s2.data(), x + o.mem, L, ms, s1.data()); });
    for (int64_t i = 0; i < L; ++i) write(k0 + i * kstep, Partial{n, s1[size_t(i)], s2[size_t(i)]});
  };
  auto merge = [&](const Partial& a, const Partial& b) {
    return moments ? chan_merge(a, b) : Partial{a.n + b.n, 0.0, a.b + b.b};
  };
  const auto merged = run_reduction(g, plan.num_stats(), plan.numel(), task, merge);
  for (int64_t s = 0; s < plan.num_stats(); ++s) {
    const Partial& p = merged[static_cast<size_t>(s)];
    mean[s] = moments ? p.a : 0.0;
    second[s] = statistic == Statistic::L2Norm ? p.b : (p.n > 0 ? p.b / p.n : 0.0);
  }
}

template <class T>
void reduce_grads(const ReductionPlan& plan, GroupBy by, const T* dy, const T* x, const double* A,
                  const double* B, const T* w, double* sum_g, double* sum_gx) {
  const Geometry g = make_geometry(plan, by);
  const int64_t ms = g.run.stride, ss = g.run.stat_stride, as = g.run.affine_stride;
  const int64_t L = g.run.size, kstep = key_stride(g.run, by);
  const T* wt = by == GroupBy::Statistic ? w : nullptr;
  auto task = [&](int64_t t, auto&& write) {
    const int64_t k0 = first_key(g, t, by);
    if (!g.column) {
      double s1 = 0, s2 = 0;
      for_each_run(g, t, [&](Offsets o, int64_t len) {
        rows::grad_sums(dy + o.mem, x + o.mem, len, ms, A + o.stat, B + o.stat, ss,
                        wt ? wt + o.aff : nullptr, as, &s1, &s2, 0);
      });
      return write(k0, Partial{1, s1, s2});
    }
    std::vector<double> s1(static_cast<size_t>(L), 0.0), s2(static_cast<size_t>(L), 0.0);
    for_each_run(g, t, [&](Offsets o, int64_t) {
      rows::grad_sums(dy + o.mem, x + o.mem, L, ms, A + o.stat, B + o.stat, ss,
                      wt ? wt + o.aff : nullptr, as, s1.data(), s2.data(), 1);
    });
    for (int64_t i = 0; i < L; ++i) write(k0 + i * kstep, Partial{1, s1[size_t(i)], s2[size_t(i)]});
  };
  auto merge = [](const Partial& a, const Partial& b) { return Partial{1, a.a + b.a, a.b + b.b}; };
  const int64_t keys = by == GroupBy::Statistic ? plan.num_stats() : plan.num_affine();
  const auto merged = run_reduction(g, keys, plan.numel(), task, merge);
  for (int64_t k = 0; k < keys; ++k) {
    sum_g[k] = merged[static_cast<size_t>(k)].a;
    sum_gx[k] = merged[static_cast<size_t>(k)].b;
  }
}

namespace {
// Calls body(offsets, len) for every run of the whole tensor, in parallel over runs.
template <class Body>
void for_all_runs(const ReductionPlan& plan, Body&& body) {
  const size_t r = plan.run_dim();
  Radix outer;
  for (size_t i = 0; i < plan.dims().size(); ++i)
    if (i != r) outer.add(plan.dims()[i]);
  const int64_t L = plan.dims()[r].size;
#pragma omp parallel for schedule(static) if (plan.numel() >= kParallelMin && outer.count > 1)
  for (int64_t q = 0; q < outer.count; ++q) body(outer.at(q), L);
}
}  // namespace

template <class T>
void apply_forward(const ReductionPlan& plan, const T* x, T* y, const double* A, const double* B,
                   const T* w, const T* b) {
  const PlanDim& run = plan.dims()[plan.run_dim()];
  for_all_runs(plan, [&](Offsets o, int64_t len) {
    rows::affine_forward(x + o.mem, y + o.mem, len, run.stride, A + o.stat, B + o.stat,
                         run.stat_stride, w ? w + o.aff : nullptr, b ? b + o.aff : nullptr,
                         run.affine_stride);
  });
}

template <class T>
void apply_backward(const ReductionPlan& plan, const T* dy, const T* x, T* dx, const double* P,
                    const double* Q, const double* R, const T* w) {
  const PlanDim& run = plan.dims()[plan.run_dim()];
  for_all_runs(plan, [&](Offsets o, int64_t len) {
    rows::affine_backward(dy + o.mem, x + o.mem, dx + o.mem, len, run.stride, P + o.stat,
                          Q + o.stat, R + o.stat, run.stat_stride, w ? w + o.aff : nullptr,
                          run.affine_stride);
  });
}

#define NORMKIT_INSTANTIATE(T)                                                                  \
  template void reduce_stats<T>(const ReductionPlan&, const T*, Statistic, double*, double*);    \
  template void apply_forward<T>(const ReductionPlan&, const T*, T*, const double*,             \
                                 const double*, const T*, const T*);                            \
  template void reduce_grads<T>(const ReductionPlan&, GroupBy, const T*, const T*,              \
                                const double*, const double*, const T*, double*, double*);      \
  template void apply_backward<T>(const ReductionPlan&, const T*, const T*, T*, const double*,  \
                                  const double*, const double*, const T*);
NORMKIT_INSTANTIATE(float)
NORMKIT_INSTANTIATE(double)
#undef NORMKIT_INSTANTIATE

}  // namespace normkit::engine
