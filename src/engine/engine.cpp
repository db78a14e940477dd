// engine.cpp — drivers that walk a ReductionPlan in runs along its run dim and hand each
// contiguous run to a row primitive (rows.hpp). Reductions are split into tasks (a group
// of keys x a chunk of their domain) whose boundaries depend on the shape only; each task
// writes its own partial and partials are merged per key in chunk order (Chan's formula
// for moments), so the thread count never changes a bit of the result.
#include "engine/engine.hpp"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "engine/pace.hpp"
#include "engine/rows.hpp"

namespace normkit::engine {
namespace {

constexpr int64_t kChunk = int64_t{1} << 15;        // domain elements per reduction task
constexpr int64_t kParallelMin = int64_t{1} << 15;  // elements before threads are worth it
constexpr int64_t kFuseMax = int64_t{1} << 18;      // a statistic this small stays in cache
constexpr int64_t kFuseMinStats = 8;                // enough statistics to share out
constexpr int64_t kColumnBlock = 4096;              // column mode: keys per task
constexpr int64_t kMaxColumnSegs = 16;              // column mode: bounds the partials' memory
constexpr int64_t kStreamBytes = int64_t{16} << 20;  // an output this large skips the cache

// Whether an output of the plan's size is written with non-temporal stores: it would not stay
// in the last-level cache next to its input anyway, and would be read into it first.
template <class T>
bool streams(const ReductionPlan& plan) {
  return plan.numel() * int64_t(sizeof(T)) >= kStreamBytes;
}

// Whether spans of whole cache lines (rows::scale_shift_span: BatchNorm's NCHW normalization)
// over `bytes` of x and as many of y are streamed beyond what streams() decides: on Intel CPUs,
// where x and y outgrow the threads' L2 caches. There a plain store that misses L2 first reads
// its line from the mesh's L3, a third of the traffic: on a Xeon with AVX-512 (2 MiB of L2 per
// core) BatchNorm eval 32x256x14x14 forward ran at 64-72% of its floor with plain stores and
// 92-99% streamed, 1 and 2 threads (bench, 2026-11-28). On Zen 3 the copy that set the
// in-cache floor was the plain one: nothing more is streamed there.
bool streams_past_l2(int64_t bytes) {
  static const int64_t l2_bytes = [] {
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_is("intel")) return int64_t(sysconf(_SC_LEVEL2_CACHE_SIZE));
#endif
    return int64_t{0};
  }();
  return l2_bytes > 0 && 2 * bytes > l2_bytes * omp_get_max_threads();
}

// A core's L2 in bytes (512 KiB, Zen 3's, where the system does not say).
int64_t l2_cache_bytes() {
  static const int64_t bytes = [] {
    const long b = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return b > 0 ? int64_t(b) : int64_t{512} << 10;
  }();
  return bytes;
}

// Whether a pass that writes the plan's consecutive runs as one stream of aligned vectors (the
// column primitives on channels-last data, after the statistics pass) streams its output:
// streams(), or on Intel past L2 as the NCHW spans (streams_past_l2). BatchNorm training
// 32x256x14x14 channels-last on a Xeon, 2 threads: forward 0.68-0.70 -> 0.52-0.60 ms (0.85x ->
// 1.0x oneDNN), forward+backward 1.79-1.82 -> 1.30-1.44 ms (bench A/B, 2026-11-29). The fused
// column forward (InstanceNorm and GroupNorm on NHWC, y written while the image's x is in L2)
// too, requesting the next image meanwhile: 32x256x14x14 forward on the Xeon, a driver
// alternating the variants call by call on one buffer set as the bench's in-cache cases have,
// InstanceNorm 1 thread 1.29-1.48 -> 0.96-1.13 ms (streamed alone 1.05-1.22), 2 threads
// 0.64-0.70 -> 0.49-0.56 ms; GroupNorm(32) 2 threads 0.62-0.68 -> 0.49-0.53 ms (2026-11-29).
template <class T>
bool streams_lines(const ReductionPlan& plan) {
  return streams<T>(plan) || streams_past_l2(plan.numel() * int64_t(sizeof(T)));
}

// Whether InstanceNorm's NCHW row blocks request the next block into L2 while writing this
// one (rows::scale_shift_span's fetch, grad_input_rows' fetch_next): on Intel, where each
// row's first line otherwise waits on the mesh's L3 (Xeon, 32x256x14x14 at 2 threads:
// forward 0.60-0.62 -> 0.52-0.58 ms, forward+backward 1.45-1.58 -> 1.29-1.35 ms; bench,
// 2026-11-29). On Zen 3 requesting the next block's rows in cache measured 7% slower from
// its L3 (README, tried and not kept): not there.
bool fetch_next_block() {
  static const bool intel = [] {
#if defined(__x86_64__) || defined(__i386__)
    return bool(__builtin_cpu_is("intel"));
#else
    return false;
#endif
  }();
  return intel;
}

// Whether a pass over blocks of consecutive rows requests the next block while writing this
// one: out of cache (`streamed`, the output written with non-temporal stores) on any CPU, as
// the row lists always have (rows::scale_shift_rows_list; without, WeightNorm 4096x4096 waited
// on memory at each block's statistics pass), within the LLC where fetch_next_block(). On a
// Zen 5 VM (AVX-512, 1 MiB L2 per core), a driver alternating the two call by call, WeightNorm
// 4096x4096 forward 3.9-4.1 -> 3.4 ms at 2 threads and 6.1 -> 5.1 ms at 1, backward 6.5-6.6 ->
// 5.6-6.1 ms and 9.7-10.2 -> 8.5-9.0 ms (2026-11-29).
bool fetch_next_rows(bool streamed) { return streamed || fetch_next_block(); }

struct Offsets {
  int64_t mem = 0, stat = 0, aff = 0;
};

// Row-major iteration over a list of plan dims: seek() once, then next() per step.
struct Radix {
  std::vector<PlanDim> dims;
  int64_t count = 1;
  void add(const PlanDim& d) { dims.push_back(d), count *= d.size; }
};

class Cursor {
 public:
  Cursor(const Radix& r, int64_t idx) : r_(r) {
    for (size_t i = r_.dims.size(); i-- > 0;) {
      const PlanDim& d = r_.dims[i];
      coord_[i] = idx % d.size, idx /= d.size;
      o_.mem += coord_[i] * d.stride, o_.stat += coord_[i] * d.stat_stride, o_.aff += coord_[i] * d.affine_stride;
    }
  }
  const Offsets& operator*() const { return o_; }
  void next() {
    for (size_t i = r_.dims.size(); i-- > 0;) {
      const PlanDim& d = r_.dims[i];
      o_.mem += d.stride, o_.stat += d.stat_stride, o_.aff += d.affine_stride;
      if (++coord_[i] < d.size) return;
      o_.mem -= d.size * d.stride, o_.stat -= d.size * d.stat_stride, o_.aff -= d.size * d.affine_stride;
      coord_[i] = 0;
    }
  }

 private:
  const Radix& r_;
  int64_t coord_[kMaxPlanDims] = {};  // no allocation: cursors are made per task
  Offsets o_;
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
  int64_t key_len = 0;  // row mode: elements per key; column mode: runs per key
  int64_t seg_len = 0;  // the same unit, per task
  int64_t num_segs = 1;
  int64_t col_block = 1, col_blocks = 1;  // column mode: the run is cut into key blocks
  int64_t num_groups() const { return owners.count * col_blocks; }
  int64_t num_tasks() const { return num_groups() * num_segs; }
};

// A group of keys: the offsets of its first element and how many keys lie along the run
// (1 in row mode).
struct Group {
  Offsets o;
  int64_t len = 1;
};

Geometry make_geometry(const ReductionPlan& plan, GroupBy by) {
  Geometry g;
  const size_t r = plan.run_dim();
  g.run = plan.dims()[r];
  g.column = key_stride(g.run, by) != 0;
  for (size_t i = 0; i < plan.dims().size(); ++i)
    if (i != r) (key_stride(plan.dims()[i], by) != 0 ? g.owners : g.domain).add(plan.dims()[i]);
  auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  if (!g.column) {
    g.key_len = g.domain.count * g.run.size;
    g.seg_len = kChunk;
    g.col_block = g.run.size;
  } else {
    g.key_len = g.domain.count;
    g.col_block = std::min(g.run.size, kColumnBlock);
    g.col_blocks = ceil_div(g.run.size, g.col_block);
    g.seg_len = std::max<int64_t>({1, kChunk / g.col_block, ceil_div(g.key_len, kMaxColumnSegs)});
  }
  g.num_segs = std::max<int64_t>(1, ceil_div(g.key_len, g.seg_len));
  return g;
}

Group group_at(const Geometry& g, int64_t group) {
  Group r{*Cursor(g.owners, group / g.col_blocks), 1};
  if (!g.column) return r;
  const int64_t start = (group % g.col_blocks) * g.col_block;
  r.o.mem += start * g.run.stride, r.o.stat += start * g.run.stat_stride, r.o.aff += start * g.run.affine_stride;
  r.len = std::min(g.col_block, g.run.size - start);
  return r;
}

// Calls visit(offsets, len) for every run of key group `group` whose domain position lies
// in [d0, d1). Row mode: runs may be cut at the bounds. Column mode: whole runs.
template <class Visit>
void for_each_run(const Geometry& g, int64_t group, int64_t d0, int64_t d1, Visit&& visit) {
  if (d0 >= d1) return;
  const Group grp = group_at(g, group);
  const Offsets go = grp.o;
  const int64_t L = g.run.size;
  if (g.column) {
    Cursor c(g.domain, d0);
    for (int64_t q = d0; q < d1; ++q, c.next())
      visit(Offsets{go.mem + (*c).mem, go.stat + (*c).stat, go.aff + (*c).aff}, grp.len);
    return;
  }
  Cursor c(g.domain, d0 / L);
  for (int64_t d = d0, i = d0 % L; d < d1; c.next(), i = 0) {  // only the first run starts inside
    const int64_t len = std::min(L - i, d1 - d);
    visit(Offsets{go.mem + (*c).mem + i * g.run.stride, go.stat + (*c).stat + i * g.run.stat_stride,
                  go.aff + (*c).aff + i * g.run.affine_stride},
          len);
    d += len;
  }
}

// Partial result of one task for one key: moments (n, mean, m2) or plain sums (s1, s2).
struct Partial {
  double n = 0, a = 0, b = 0;
};

// Chan et al.: the moments of the union of two disjoint sets.
Partial chan_merge(const Partial& x, const Partial& y) {
  if (x.n == 0) return y;
  if (y.n == 0) return x;
  const double n = x.n + y.n, delta = y.a - x.a;
  return {n, x.a + delta * (y.n / n), x.b + y.b + delta * delta * (x.n * y.n / n)};
}

// ---- statistics of one row-mode chunk ---------------------------------------------------

// A variance's sums are taken in one pass around a shift: the mean of the chunk's first
// kShiftElems elements (0 where that is not finite), close to the chunk's mean unless the
// data is ordered.
constexpr int64_t kShiftElems = 16;

// The shift of a contiguous run's statistic: the mean of its first kShiftElems elements.
// A run of at least kShiftElems takes a loop of fixed length and a multiplication by the
// exact 1 / kShiftElems (the same bits as the division): the general loop's tests and the
// divider's latency were a fifth of InstanceNorm's in-cache row driver (about 2% of the
// forward over 256 rows of 196 in L2, one thread).
template <class T>
double shift_of(const T* x, int64_t len) {
  static_assert((kShiftElems & (kShiftElems - 1)) == 0, "1 / kShiftElems must be exact");
  double sum = 0.0, m = 0.0;
  if (len >= kShiftElems) {
    for (int64_t i = 0; i < kShiftElems; ++i) sum += double(x[i]);
    m = sum * (1.0 / double(kShiftElems));
  } else if (len > 0) {
    for (int64_t i = 0; i < len; ++i) sum += double(x[i]);
    m = sum / double(len);
  }
  return std::isfinite(m) ? m : 0.0;
}

// A variance from the sums s1, s2 of n deviations d = x - shift and d^2: mean = shift + s1/n,
// m2 = s2 - s1^2/n. While |mean - shift| <= 4 standard deviations that cancels at most a
// factor 17 of s2's rounding (1 + (mean - shift)^2 / var; about 1.06 for a shift from 16
// elements); beyond (shift_too_far), the sums are taken again around that mean (the
// corrected two-pass); so too where an Inf or NaN made them non-finite, which then turns the
// mean into NaN as PyTorch's does.
//
// moments_of: the moments (or sum of squares) of n cache-resident elements, from
// sums(m, s1, s2) = the sums of d = x - m and d^2.
bool shift_too_far(double n, double s1, double s2) {  // also where an Inf or NaN made the sums NaN
  const double md = s1 / n;
  return !(md * md * n <= 16.0 * (s2 - s1 * md));
}
Partial shifted_moments(double n, double shift, double s1, double s2) {
  const double md = s1 / n, m2 = s2 - s1 * md;
  return {n, shift + md, m2 < 0 ? 0.0 : m2};  // rounding may go below 0; NaN must stay NaN
}

template <class Sums>
Partial moments_of(Sums&& sums, double n, Statistic statistic, double shift) {
  double s1, s2;
  if (statistic != Statistic::Variance) {
    sums(0.0, s1, s2);
    return {n, 0.0, s2};
  }
  sums(shift, s1, s2);
  if (shift_too_far(n, s1, s2)) {
    shift += s1 / n;
    sums(shift, s1, s2);
  }
  return shifted_moments(n, shift, s1, s2);
}

template <class T, class ForRuns>
Partial chunk_stats_of(ForRuns&& for_runs, double n, int64_t ms, const T* x, Statistic statistic) {
  auto sums = [&](double m, double& s1, double& s2) {
    s1 = s2 = 0;
    const rows::SplitMean<compute_t<T>> split(m);
    for_runs([&](Offsets o, int64_t len) {
      double a = 0, b = 0;
      if (ms == 1) {
        rows::dev_sums(x + o.mem, len, split, &a, &b);
      } else {
        for (int64_t i = 0; i < len; ++i) {
          const double d = double(x[o.mem + i * ms]) - m;
          a += d, b += d * d;
        }
      }
      s1 += a, s2 += b;
    });
  };
  double first = 0.0;  // the chunk's first kShiftElems elements, in visiting order
  int64_t k = 0;
  if (statistic == Statistic::Variance)
    for_runs([&](Offsets o, int64_t len) {
      for (int64_t i = 0; i < len && k < kShiftElems; ++i, ++k) first += double(x[o.mem + i * ms]);
    });
  const double shift = k > 0 ? first / double(k) : 0.0;
  return moments_of(sums, n, statistic, std::isfinite(shift) ? shift : 0.0);
}

template <class T>
Partial chunk_stats(const Geometry& g, int64_t group, int64_t d0, int64_t d1, const T* x,
                    Statistic statistic) {
  return chunk_stats_of([&](auto&& visit) { for_each_run(g, group, d0, d1, visit); }, double(d1 - d0),
                        g.run.stride, x, statistic);
}

// The runs of one key's domain in row mode, relative to the key's first element: the same
// list for every key, so the fused passes walk it instead of decomposing indices.
// `whole`: the runs are contiguous, each all of one statistic and one affine index, and the
// key is one chunk: then the list primitives take a statistic's runs (their memory offsets
// `mem`) in one dispatched call (BatchNorm on NCHW: N runs of H*W per channel).
// `follow`: each run starts in memory where the previous one ends (GroupNorm on NCHW: a
// group's channels), so the row after a run is the one read next; not BatchNorm's on NCHW,
// whose runs are an image apart.
struct RunList {
  std::vector<Offsets> rel;
  int64_t len = 0;
  std::vector<int64_t> mem;
  bool whole = false;
  bool follow = false;
};
RunList make_run_list(const Geometry& g, bool affine_kept) {
  RunList r{std::vector<Offsets>(static_cast<size_t>(g.domain.count)), g.run.size, {}, false, false};
  Cursor c(g.domain, 0);
  for (auto& o : r.rel) o = *c, c.next();
  r.whole = g.run.stride == 1 && g.run.stat_stride == 0 && g.num_segs == 1 && affine_kept;
  r.follow = g.run.stride == 1;
  for (size_t k = 1; k < r.rel.size(); ++k) r.follow = r.follow && r.rel[k].mem == r.rel[k - 1].mem + r.len;
  for (const Offsets& o : r.rel) r.mem.push_back(o.mem);
  return r;
}
// visit(offsets, len) for the part of the run list in domain positions [d0, d1).
template <class Visit>
void for_each_listed_run(const RunList& runs, const PlanDim& run, Offsets base, int64_t d0, int64_t d1,
                         Visit&& visit) {
  const int64_t L = runs.len;
  for (int64_t d = d0, i = d0 % L; d < d1; i = 0) {
    const Offsets& r = runs.rel[static_cast<size_t>(d / L)];
    const int64_t len = std::min(L - i, d1 - d);
    visit(Offsets{base.mem + r.mem + i * run.stride, base.stat + r.stat + i * run.stat_stride,
                  base.aff + r.aff + i * run.affine_stride},
          len);
    d += len;
  }
}

// A key's statistics over its listed runs: chunk by chunk (the same chunks, hence the same
// partials, as reduce_stats) merged in order.
template <class T>
Partial listed_stats(const Geometry& g, const RunList& runs, Offsets base, const T* x, Statistic statistic);

// Whether a statistic's listed runs are whole and contiguous, each with one affine index
// (GroupNorm on NCHW: a channel's H*W in its group), not one for the statistic: the list
// primitives with per-run coefficients take them, kRunChunk runs per dispatched call.
bool whole_listed_runs(const Geometry& g, const RunList& runs) {
  return g.run.stride == 1 && g.run.stat_stride == 0 && g.num_segs == 1 && runs.len == g.run.size;
}
bool scalar_affine_runs(const Geometry& g, const RunList& runs, bool affine) {
  return !runs.whole && whole_listed_runs(g, runs) && (!affine || g.run.affine_stride == 0);
}
constexpr int64_t kRunChunk = 64;

// The threads a region over `total` items of `work` elements in all goes parallel with.
int region_threads(int64_t work, int64_t total) {
  return work >= kParallelMin && total > 1 ? std::max(1, omp_get_max_threads()) : 1;
}

// Calls body(group, base offsets) for every group of a row-mode geometry, threads taking
// contiguous shares (for_each_share) and stepping a cursor instead of decomposing each group
// index.
template <class Body>
void for_each_group(const Geometry& g, int64_t work, Body&& body) {
  static Pace pace;  // (one per call site: Body is a lambda)
  for_each_share(region_threads(work, g.owners.count), g.owners.count, pace, [&](int64_t q0, int64_t q1) {
    if (q0 >= q1) return;
    Cursor c(g.owners, q0);
    for (int64_t q = q0; q < q1; ++q, c.next()) body(q, *c);
  });
}

// As for_each_group, handing the groups to body(bases, count) in blocks of up to `block`
// consecutive ones of the same thread (their order within the thread unchanged).
template <class Body>
void for_each_group_block(const Geometry& g, int64_t work, int64_t block, Body&& body) {
  static Pace pace;
  for_each_share(region_threads(work, g.owners.count), g.owners.count, pace, [&](int64_t q0, int64_t q1) {
    if (q0 >= q1) return;
    std::vector<Offsets> bases;
    bases.reserve(static_cast<size_t>(block));
    Cursor c(g.owners, q0);
    for (int64_t q = q0; q < q1; ++q, c.next()) {
      bases.push_back(*c);
      if (int64_t(bases.size()) == block || q + 1 == q1) body(bases.data(), int64_t(bases.size())), bases.clear();
    }
  });
}

// Column mode: visit(offs, count) for the runs of group `group` in [q0, q1) in blocks of at
// most kColRows (memory offsets), cut at positions fixed by q0.
// A block also ends where the statistic offset of its runs changes: visit(offs, count, stat).
template <class Visit>
void for_each_run_block(const Geometry& g, int64_t group, int64_t q0, int64_t q1, Visit&& visit) {
  int64_t offs[rows::kColRows];
  int64_t k = 0, stat = 0;
  for_each_run(g, group, q0, q1, [&](Offsets o, int64_t) {
    if (k > 0 && o.stat != stat) visit(offs, k, stat), k = 0;
    if (k == 0) stat = o.stat;
    offs[k++] = o.mem;
    if (k == rows::kColRows) visit(offs, k, stat), k = 0;
  });
  if (k > 0) visit(offs, k, stat);
}

// Whether contiguous runs of `run` follow each other in memory when `dims` (all but index
// `skip`) are walked row-major, the last fastest: channels-last data.
bool runs_follow(const PlanDim& run, const std::vector<PlanDim>& dims, size_t skip = SIZE_MAX) {
  if (run.stride != 1) return false;
  int64_t next = run.size;
  for (size_t i = dims.size(); i-- > 0;) {
    if (i == skip || dims[i].size == 1) continue;
    if (dims[i].stride != next) return false;
    next *= dims[i].size;
  }
  return true;
}

// Column mode: whether a group's runs, whole, follow each other in domain order, so blocks of
// them need no list of offsets.
bool domain_consecutive(const Geometry& g) {
  return g.column && g.col_blocks == 1 && runs_follow(g.run, g.domain.dims);
}

// Column mode on contiguous runs: per key i of group `group`, the sums of the deviations from
// shift[i] over the runs [r0, r1), added to s1[i] and s2[i].
template <class T>
void column_dev_sums(const Geometry& g, int64_t group, int64_t r0, int64_t r1, const T* x,
                     const compute_t<T>* shift, double* s1, double* s2) {
  const int64_t L = group_at(g, group).len;
  if (domain_consecutive(g) && r0 < r1) {  // the same blocks as listed below
    const int64_t first = group_at(g, group).o.mem + (*Cursor(g.domain, r0)).mem;
    return rows::col_dev_sums(x + first, static_cast<const int64_t*>(nullptr), r1 - r0, L, shift, s1, s2);
  }
  for_each_run_block(g, group, r0, r1, [&](const int64_t* offs, int64_t count, int64_t) {
    rows::col_dev_sums(x, offs, count, L, shift, s1, s2);
  });
}

// Column mode on contiguous runs, a variance's one pass over the runs [q0, q1): per key, the
// shift (the mean of the first few runs, which lies within a fraction of a standard deviation
// of the mean unless the data is ordered; 0 where not finite) and the sums s1, s2 of the
// deviations from it.
template <class T>
void column_shifted_sums(const Geometry& g, int64_t group, int64_t q0, int64_t q1, const T* x,
                         compute_t<T>* shift, double* s1, double* s2) {
  using C = compute_t<T>;
  const int64_t L = group_at(g, group).len;
  std::fill(shift, shift + L, C(0));
  std::fill(s1, s1 + L, 0.0), std::fill(s2, s2 + L, 0.0);
  constexpr int64_t kShiftRuns = 8;
  const int64_t k = std::min(kShiftRuns, q1 - q0);
  column_dev_sums(g, group, q0, q0 + k, x, shift, s1, s2);  // around 0: the first runs' means are the shift
  // s1 / k, multiplied by the exact 1 / k where k is a power of two (the same bits).
  const bool exact = k > 0 && (k & (k - 1)) == 0;
  const double inv = k > 0 ? 1.0 / double(k) : 0.0;
  for (int64_t i = 0; i < L; ++i) {  // a NaN or Inf shift would turn an infinite mean into NaN
    const C v = C(k > 0 ? (exact ? s1[i] * inv : s1[i] / double(k)) : 0.0);
    shift[i] = std::isfinite(float(v)) ? v : C(0), s1[i] = s2[i] = 0;
  }
  column_dev_sums(g, group, q0, q1, x, shift, s1, s2);
}

// Column mode: per-key moments of the runs [q0, q1) of group `group`. Contiguous runs, with
// a variance: column_shifted_sums; a column whose shift turns out farther than 4 standard
// deviations from its mean (the sum of squares would cancel) has the whole block summed again
// around the first pass's means.
template <class T>
void column_stats(const Geometry& g, int64_t group, int64_t q0, int64_t q1, const T* x,
                  Statistic statistic, Partial* out) {
  using C = compute_t<T>;
  const int64_t L = group_at(g, group).len, ms = g.run.stride;
  const double n = double(q1 - q0);
  const bool variance = statistic == Statistic::Variance;
  if (ms == 1 && variance) {
    Scratch<C> shift(static_cast<size_t>(L));
    Scratch<double> s1(static_cast<size_t>(L)), s2(static_cast<size_t>(L));
    column_shifted_sums(g, group, q0, q1, x, shift.data(), s1.data(), s2.data());
    bool again = false;
    for (int64_t i = 0; i < L && n > 0; ++i) again = again || shift_too_far(n, s1[size_t(i)], s2[size_t(i)]);
    if (again) {
      for (int64_t i = 0; i < L; ++i)
        shift[size_t(i)] = C(double(shift[size_t(i)]) + s1[size_t(i)] / n), s1[size_t(i)] = s2[size_t(i)] = 0;
      column_dev_sums(g, group, q0, q1, x, shift.data(), s1.data(), s2.data());
    }
    for (int64_t i = 0; i < L; ++i) out[i] = shifted_moments(n, double(shift[size_t(i)]), s1[size_t(i)], s2[size_t(i)]);
    return;
  }
  // Sums of squares (RMSNorm, L2) in double lanes: with a statistic of one or two elements
  // (a trailing dim of size 1), the backward's cancellation needs them exact.
  Scratch<double> m(size_t(L), 0.0), s2(size_t(L), 0.0);
  if (ms == 1) {
    for_each_run(g, group, q0, q1, [&](Offsets o, int64_t) { rows::col_add_sq_dev(s2.data(), x + o.mem, L, m.data()); });
    for (int64_t i = 0; i < L; ++i) out[i] = Partial{n, 0.0, s2[size_t(i)]};
    return;
  }
  if (variance) {
    for_each_run(g, group, q0, q1, [&](Offsets o, int64_t) {
      for (int64_t i = 0; i < L; ++i) m[size_t(i)] += double(x[o.mem + i * ms]);
    });
    for (auto& v : m) v = n > 0 ? v / n : 0.0;
  }
  for_each_run(g, group, q0, q1, [&](Offsets o, int64_t) {
    for (int64_t i = 0; i < L; ++i) {
      const double d = double(x[o.mem + i * ms]) - m[size_t(i)];
      s2[size_t(i)] += d * d;
    }
  });
  for (int64_t i = 0; i < L; ++i) out[i] = Partial{n, m[size_t(i)], s2[size_t(i)]};
}

Partial merge_stats(Statistic statistic, const Partial& a, const Partial& b) {
  return statistic == Statistic::Variance ? chan_merge(a, b) : Partial{a.n + b.n, 0.0, a.b + b.b};
}

template <class T>
Partial listed_stats(const Geometry& g, const RunList& runs, Offsets base, const T* x, Statistic statistic) {
  if (runs.whole)
    return moments_of(
        [&](double m, double& s1, double& s2) {
          rows::dev_sums_list(x + base.mem, runs.mem.data(), int64_t(runs.mem.size()), runs.len,
                              rows::SplitMean<compute_t<T>>(m), &s1, &s2);
        },
        double(g.key_len), statistic, shift_of(x + base.mem + runs.mem[0], runs.len));
  if (whole_listed_runs(g, runs)) {  // the same sums as chunk_stats_of, in one dispatched call
    double first = 0.0;  // the shift: the first kShiftElems elements in run order
    int64_t k = 0;
    for (size_t r = 0; r < runs.mem.size() && k < kShiftElems; ++r)
      for (int64_t i = 0; i < runs.len && k < kShiftElems; ++i, ++k) first += double(x[base.mem + runs.mem[r] + i]);
    const double shift = statistic == Statistic::Variance && k > 0 ? first / double(k) : 0.0;
    return moments_of(
        [&](double m, double& s1, double& s2) {
          rows::dev_sums_list(x + base.mem, runs.mem.data(), int64_t(runs.mem.size()), runs.len,
                              rows::SplitMean<compute_t<T>>(m), &s1, &s2);
        },
        double(g.key_len), statistic, std::isfinite(shift) ? shift : 0.0);
  }
  Partial acc;
  for (int64_t seg = 0; seg < g.num_segs; ++seg) {
    const int64_t d0 = seg * g.seg_len, d1 = std::min(g.key_len, d0 + g.seg_len);
    const Partial p = chunk_stats_of(
        [&](auto&& visit) { for_each_listed_run(runs, g.run, base, d0, d1, visit); }, double(d1 - d0),
        g.run.stride, x, statistic);
    acc = seg == 0 ? p : merge_stats(statistic, acc, p);
  }
  return acc;
}

void finish_stats(Statistic statistic, const Partial& p, double* mean, double* second) {
  *mean = statistic == Statistic::Variance ? p.a : 0.0;
  *second = statistic == Statistic::L2Norm ? p.b : (p.n > 0 ? p.b / p.n : 0.0);
}

// ---- the elementwise passes ------------------------------------------------------------

// y = xhat * w + b on one run.
template <class T, class C = compute_t<T>>
void normalize_run(const PlanDim& run, Offsets o, int64_t len, const T* x, T* y, const double* mean,
                   const double* rstd, const C* w, const C* b, bool round_xhat, bool stream) {
  const int64_t ms = run.stride, ss = run.stat_stride, as = run.affine_stride;
  if (ms == 1 && ss == 0) {
    const rows::SplitMean<C> m(mean[o.stat]);
    const double r = rstd[o.stat];
    if (as == 0 && !round_xhat) {
      const double wv = w ? double(w[o.aff]) : 1.0, bv = b ? double(b[o.aff]) : 0.0;
      return rows::scale_shift(x + o.mem, y + o.mem, len, m, C(r * wv), C(bv), stream);
    }
    if (as == 1)
      return rows::scale_shift_rows(x + o.mem, y + o.mem, len, m, C(r), w ? w + o.aff : nullptr,
                                    b ? b + o.aff : nullptr, round_xhat, stream);
  }
  for (int64_t i = 0; i < len; ++i) {
    const int64_t s = o.stat + i * ss, a = o.aff + i * as;
    double xhat = (double(x[o.mem + i * ms]) - mean[s]) * rstd[s];
    if (round_xhat) xhat = double(T(xhat));
    y[o.mem + i * ms] = T(xhat * (w ? double(w[a]) : 1.0) + (b ? double(b[a]) : 0.0));
  }
}

// dx = P * dy * w + Q * (x - mean) + R on one run (the backward twin of normalize_run).
// next_row_follows: the run written next starts where this one ends (rows::grad_input).
template <class T, class C = compute_t<T>>
void grad_input_run(const PlanDim& run, Offsets o, int64_t len, const T* dy, const T* x, T* dx,
                    const double* mean, const double* P, const double* Q, const double* R, const C* w,
                    bool stream, bool next_row_follows = true) {
  const int64_t ms = run.stride, ss = run.stat_stride, as = run.affine_stride;
  if (ms == 1 && ss == 0 && (as <= 1 || !w)) {
    const int64_t s = o.stat;
    const bool wvec = w && as == 1;
    const double wv = w && !wvec ? double(w[o.aff]) : 1.0;
    return rows::grad_input(dy + o.mem, x + o.mem, dx + o.mem, len, rows::SplitMean<C>(mean[s]),
                            wvec ? w + o.aff : static_cast<const C*>(nullptr), C(P[s] * wv), C(Q[s]), C(R[s]), stream,
                            next_row_follows);
  }
  for (int64_t i = 0; i < len; ++i) {
    const int64_t s = o.stat + i * ss;
    const double gv = double(dy[o.mem + i * ms]) * (w ? double(w[o.aff + i * as]) : 1.0);
    dx[o.mem + i * ms] = T(P[s] * gv + Q[s] * (double(x[o.mem + i * ms]) - mean[s]) + R[s]);
  }
}

// Calls body(cursor, count) once per thread with its contiguous block of the tensor's runs
// (every dim but the run dim, row-major): a cursor at the block's first run, and how many.
template <class Body>
void for_thread_runs(const ReductionPlan& plan, Body&& body) {
  const size_t r = plan.run_dim();
  Radix outer;
  for (size_t i = 0; i < plan.dims().size(); ++i)
    if (i != r) outer.add(plan.dims()[i]);
  const int64_t total = outer.count;
#pragma omp parallel if (plan.numel() >= kParallelMin && total > 1)
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t q0 = total * t / nt, q1 = total * (t + 1) / nt;
    if (q0 < q1) {
      Cursor c(outer, q0);
      body(c, q1 - q0);
    }
  }
}

// Calls body(offsets, len) for every run of the tensor; threads take contiguous blocks.
template <class Body>
void for_all_runs(const ReductionPlan& plan, Body&& body) {
  const int64_t L = plan.dims()[plan.run_dim()].size;
  for_thread_runs(plan, [&](Cursor& c, int64_t count) {
    for (int64_t q = 0; q < count; ++q, c.next()) body(*c, L);
  });
}

// Calls body(offs, count, stat) for every run of the tensor, in blocks of up to kColRows
// runs of the same statistic offset (memory offsets in offs); threads take contiguous blocks.
template <class Body>
void for_all_run_blocks(const ReductionPlan& plan, Body&& body) {
  for_thread_runs(plan, [&](Cursor& c, int64_t runs) {
    int64_t offs[rows::kColRows];
    int64_t k = 0, stat = 0;
    for (int64_t q = 0; q < runs; ++q, c.next()) {
      if (k > 0 && ((*c).stat != stat || k == rows::kColRows)) body(offs, k, stat), k = 0;
      if (k == 0) stat = (*c).stat;
      offs[k++] = (*c).mem;
    }
    if (k > 0) body(offs, k, stat);
  });
}

// Per statistic s: the mean split into C values (hi, lo) for the column primitives.
template <class C>
void split_means(const double* mean, int64_t count, Scratch<C>& hi, Scratch<C>& lo) {
  hi.resize(size_t(count)), lo.resize(size_t(count));
  for (int64_t s = 0; s < count; ++s) {
    const rows::SplitMean<C> m(mean[s]);
    hi[size_t(s)] = m.hi, lo[size_t(s)] = m.lo;
  }
}

}  // namespace

double rstd_of(Statistic statistic, double second, double eps) {
  return statistic == Statistic::L2Norm ? 1.0 / std::max(std::sqrt(second), eps)
                                        : 1.0 / std::sqrt(second + eps);
}

template <class T>
void reduce_stats(const ReductionPlan& plan, const T* x, Statistic statistic, double* mean,
                  double* second) {
  const Geometry g = make_geometry(plan, GroupBy::Statistic);
  const int64_t keys = plan.num_stats(), segs = g.num_segs, tasks = g.num_tasks();
  Scratch<Partial> partials(size_t(keys * segs));
#pragma omp parallel for schedule(static) if (plan.numel() >= kParallelMin && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t group = t / segs, seg = t % segs;
    const int64_t d0 = seg * g.seg_len, d1 = std::min(g.key_len, d0 + g.seg_len);
    const Group grp = group_at(g, group);
    const int64_t k0 = grp.o.stat;
    if (!g.column) {
      partials[size_t(k0 * segs + seg)] = chunk_stats(g, group, d0, d1, x, statistic);
      continue;
    }
    Scratch<Partial> col(size_t(grp.len));
    column_stats(g, group, d0, d1, x, statistic, col.data());
    for (int64_t i = 0; i < grp.len; ++i) partials[size_t((k0 + i * g.run.stat_stride) * segs + seg)] = col[size_t(i)];
  }
#pragma omp parallel for schedule(static) if (keys * segs >= kParallelMin)
  for (int64_t k = 0; k < keys; ++k) {
    Partial acc = partials[size_t(k * segs)];
    for (int64_t s = 1; s < segs; ++s) acc = merge_stats(statistic, acc, partials[size_t(k * segs + s)]);
    finish_stats(statistic, acc, mean + k, second + k);
  }
}

namespace {
bool affine_within_kept(const ReductionPlan& plan) {
  for (const PlanDim& d : plan.dims())
    if (d.affine() && d.reduced()) return false;
  return true;
}

// Every statistic one contiguous run whose affine index steps by one along it from 0
// (LayerNorm and RMSNorm over rows).
bool rows_with_affine_along(const Geometry& g, const RunList& runs) {
  if (runs.mem.size() != 1 || g.run.stride != 1 || g.run.stat_stride != 0 || g.run.affine_stride != 1)
    return false;
  for (const PlanDim& d : g.owners.dims)
    if (d.affine_stride != 0) return false;
  return true;
}

// Column mode on a contiguous run: the statistic (and its affine index) steps by one along
// it, so per-statistic coefficients are laid out once and read as vectors.
bool column_fast_path(const ReductionPlan& plan) {
  const PlanDim& run = plan.dims()[plan.run_dim()];
  return run.stride == 1 && run.stat_stride == 1 && affine_within_kept(plan);
}

// The column backward's sums in compute_t<T> lanes, as the row primitives, for statistics of
// at least kLanesMinStat elements; smaller ones keep double lanes (dx of a statistic of one or
// two elements is a difference of nearly equal terms). dx keeps double lanes: its compute_t<T>
// version measured 1.2x slower (channels-last BatchNorm 16x64x112x112, 2 threads).
constexpr int64_t kLanesMinStat = 64;
bool compute_lanes(const ReductionPlan& plan) {
  return plan.stat_size() >= kLanesMinStat;
}

// v[s] = w[affine index of s] (or `fill` without w).
template <class T>
Scratch<double> per_stat(const ReductionPlan& plan, const T* w, double fill) {
  Scratch<double> v(static_cast<size_t>(plan.num_stats()), fill);
  if (!w) return v;
  Scratch<int64_t> aff(v.size());
  affine_of_stats(plan, aff.data());
  for (size_t s = 0; s < v.size(); ++s) v[s] = double(w[aff[s]]);
  return v;
}

// Per statistic s, the elementwise pass's coefficients as normalize_run computes them:
// y = ((x - hi[s]) - lo[s]) * alpha[s] + beta[s], alpha = rstd * w, beta = b (w, b by the
// statistic's affine index; the plan's affine varies along kept axes only).
template <class C>
struct Coefficients {
  Scratch<C> hi, lo, alpha, beta;
  template <class W>
  Coefficients(const ReductionPlan& plan, const double* mean, const double* rstd, const W* w, const W* b) {
    const Scratch<double> wv = per_stat(plan, w, 1.0), bv = per_stat(plan, b, 0.0);
    split_means(mean, plan.num_stats(), hi, lo);
    alpha.resize(wv.size()), beta.resize(wv.size());
    for (size_t s = 0; s < wv.size(); ++s) alpha[s] = C(rstd[s] * wv[s]), beta[s] = C(bv[s]);
  }
};

// Whether the tensor's runs follow each other in memory in the order for_thread_runs visits
// them (channels-last data, the run dim innermost and contiguous; BatchNorm on NCHW, H*W
// runs channel after channel).
bool runs_consecutive(const ReductionPlan& plan) {
  return runs_follow(plan.dims()[plan.run_dim()], plan.dims(), plan.run_dim());
}

// Calls body(first, count, stat) for every stretch of consecutive runs of one statistic
// offset (memory offset of the first run, how many); threads take contiguous blocks of runs.
// Only where runs_consecutive(plan).
template <class Body>
void for_all_run_stretches(const ReductionPlan& plan, Body&& body) {
  bool one_stat = true;  // every run has the same statistic offset (BatchNorm): no stepping
  for (size_t i = 0; i < plan.dims().size(); ++i)
    one_stat = one_stat && (i == plan.run_dim() || plan.dims()[i].stat_stride == 0 || plan.dims()[i].size == 1);
  for_thread_runs(plan, [&](Cursor& c, int64_t runs) {
    if (one_stat) return body((*c).mem, runs, (*c).stat);
    int64_t first = (*c).mem, stat = (*c).stat, k = 0;
    for (int64_t q = 0; q < runs; ++q, c.next()) {
      if ((*c).stat != stat) body(first, k, stat), first = (*c).mem, stat = (*c).stat, k = 0;
      ++k;
    }
    if (k > 0) body(first, k, stat);
  });
}

}  // namespace

template <class T>
void apply_forward(const ReductionPlan& plan, const T* x, T* y, const double* mean,
                   const double* rstd, const compute_t<T>* w, const compute_t<T>* b, bool round_xhat) {
  const PlanDim& run = plan.dims()[plan.run_dim()];
  if (column_fast_path(plan) && !round_xhat) {
    const Coefficients<compute_t<T>> k(plan, mean, rstd, w, b);
    const auto &hi = k.hi, &lo = k.lo, &alpha = k.alpha, &beta = k.beta;
    if (runs_consecutive(plan)) {  // one call per thread and statistic offset
      return for_all_run_stretches(plan, [&](int64_t first, int64_t count, int64_t st) {
        rows::col_scale_shift_block(x + first, y + first, static_cast<const int64_t*>(nullptr), count, run.size,
                                    hi.data() + st, lo.data() + st, alpha.data() + st, beta.data() + st,
                                    streams_lines<T>(plan));
      });
    }
    return for_all_run_blocks(plan, [&](const int64_t* offs, int64_t count, int64_t st) {
      rows::col_scale_shift_block(x, y, offs, count, run.size, hi.data() + st, lo.data() + st, alpha.data() + st,
                                  beta.data() + st, streams<T>(plan));
    });
  }
  const bool stream = streams<T>(plan);
  if (sizeof(T) >= 4 && run.stride == 1 && run.stat_stride == 0 && run.affine_stride == 0 && !round_xhat &&
      affine_within_kept(plan) && runs_consecutive(plan)) {
    // BatchNorm on NCHW: the coefficients once per statistic (as normalize_run computes them),
    // and each stretch of a thread's runs whose statistics follow each other (a channel at a
    // time) as one span.
    const Coefficients<compute_t<T>> co(plan, mean, rstd, w, b);
    const auto &hi = co.hi, &lo = co.lo, &alpha = co.alpha, &beta = co.beta;
    const int64_t L = run.size;
    const bool stream_span = stream || streams_past_l2(plan.numel() * int64_t(sizeof(T)));
    return for_thread_runs(plan, [&](Cursor& c, int64_t runs) {
      for (int64_t q = 0; q < runs;) {
        const Offsets o = *c;
        int64_t k = 0;
        for (; q < runs && (*c).stat == o.stat + k && (*c).mem == o.mem + k * L; ++k, ++q) c.next();
        rows::scale_shift_span(x + o.mem, y + o.mem, k, L, hi.data() + o.stat, lo.data() + o.stat,
                               alpha.data() + o.stat, beta.data() + o.stat, stream_span);
      }
    });
  }
  for_all_runs(plan, [&](Offsets o, int64_t len) { normalize_run(run, o, len, x, y, mean, rstd, w, b, round_xhat, stream); });
}

namespace {
// The fused forward when every statistic is one contiguous run: InstanceNorm on NCHW (w and
// b one number per statistic) or LayerNorm and RMSNorm over rows (`along`: w and b step along
// the run, the same for every row). Blocks of statistics per dispatched call, the same sums
// and moments as listed_stats (moments_of) and the same elementwise pass per run as
// normalize_run. Rows of several reduction chunks (`along` only) take listed_stats itself.
//
// In cache, a row whose x, w and b outgrow half of L2 (LayerNorm over [256,14,14]: 200 KiB of
// x, 400 KiB of w and b; Zen 3's L2 is 512 KiB) is normalized in column tiles across the whole
// block: w and b are read from the last-level cache once per block instead of once per row, at
// the price of reading x there a second time (it would not have stayed in L2 anyway).
// LayerNorm 32x256x14x14 forward 0.26-0.29 -> 0.22-0.25 ms at 2 threads, 0.54-0.70 -> 0.46-0.52
// ms at 1 (Zen 3).
// On Intel, where the tensor outgrows the threads' L2 (streams_past_l2), rows of a line or more
// stream their output as the NCHW spans do, and the next row is requested into L2 while this
// one is written: its statistics pass then reads it from there. With 2 MiB of L2 (the Xeon)
// LayerNorm over [256,14,14] is then not tiled and reads x from the LLC once: 32x256x14x14
// forward, 1 thread 1.04-1.29 (tiled, plain or streamed) -> 0.72-0.90 ms, 2 threads 0.49-0.72
// -> 0.37-0.64 ms (bench, alternating, 5 rounds, 2026-11-29); untiled with plain stores
// measured as the tiled rows.
inline constexpr int64_t kAffineTile = 8192;  // elements of w and b per tile (64 KiB in float)

// Out of cache, a row pass whose output rows lie 1 to 767 bytes ahead of what it reads in step
// with them modulo 4 KiB (rows::stores_just_ahead: x, or w and b) loads at the page offsets of
// the non-temporal stores it has just issued and stalls. Its kernel then walks the rows
// backward, which avoids the stall but streams 20-30% slower than forward on Zen 3 (LayerNorm
// 4096x4096 forward, 2 threads, y 1 KiB ahead of x: 3.4-4.0 ms forward, 4.8-5.5 backward).
// A thread's copies, made where that cannot happen, let it walk forward instead:
// - w and b (one value per element of the row): four copies 1 KiB apart, w and b of a copy at
//   the same page offset, so a row's 767 near bytes rule out at most one copy and at least two
//   remain for a pair of rows (bench LayerNorm 4096x4096, y 64 and 384 bytes ahead of w and b:
//   5.4 -> 3.8 ms);
// - x's rows, copied by the statistics pass as it reads them (its loads come from memory, so the
//   stores cost little) to places that neither that pass's stores nor the normalization's lie
//   just ahead of (y 64 bytes ahead of x: 4.6-5.1 -> 3.4-4.0 ms).
// The same values; only where they are read from changes.
template <class T>
class AwayFromStores {
  using C = compute_t<T>;

 public:
  AwayFromStores(const C* w, const C* b, int64_t len) : w_(w), b_(b), len_(len) {}

  // w and b for the rows of y at offs[0..count): the originals unless some row's stores lie
  // just ahead of them, else the first copy that no row's do (the originals if none).
  std::pair<const C*, const C*> affine(const T* y, const int64_t* offs, int64_t count) {
    auto near = [&](const C* w, const C* b) {
      for (int64_t k = 0; k < count; ++k)
        if ((w && rows::stores_just_ahead(y + offs[k], w)) || (b && rows::stores_just_ahead(y + offs[k], b)))
          return true;
      return false;
    };
    if (!(w_ || b_) || !near(w_, b_)) return {w_, b_};
    for (int j = 0; j < kPlaces; ++j) {
      const int64_t span = page_span(len_ * int64_t(sizeof(C)));
      C* w = w_ ? placed<C>(affine_, 2 * kPlaces * span, 2 * j * span, j) : nullptr;
      C* b = b_ ? placed<C>(affine_, 2 * kPlaces * span, (2 * j + 1) * span, j) : nullptr;
      if (near(w, b)) continue;
      if (!(filled_ & (1u << j))) {
        if (w) std::copy(w_, w_ + len_, w);
        if (b) std::copy(b_, b_ + len_, b);
        filled_ |= 1u << j;
      }
      return {w, b};
    }
    return {w_, b_};
  }

  // Places for copies of the rows x + offs[k] (nullptr: none of the rows' outputs lies just
  // ahead of them, or no place suits every row): row k's copy lies in its own pages at one of
  // four offsets 1 KiB apart that its own x's offset and every row's y's leave free.
  T* const* row_copies(const T* x, const T* y, const int64_t* offs, int64_t count) {
    bool ahead = false;
    for (int64_t k = 0; k < count; ++k) ahead = ahead || rows::stores_just_ahead(y + offs[k], x + offs[k]);
    if (!ahead) return nullptr;
    const int64_t span = page_span(len_ * int64_t(sizeof(T)));
    for (int64_t k = 0; k < count; ++k) {
      T* copy = nullptr;
      for (int j = 0; j < kPlaces && !copy; ++j) {
        T* c = placed<T>(rows_, count * span, k * span, j);
        bool clear = !rows::stores_just_ahead(c, x + offs[k]);
        for (int64_t i = 0; i < count && clear; ++i) clear = !rows::stores_just_ahead(y + offs[i], c);
        if (clear) copy = c;
      }
      if (!copy) return nullptr;
      row_ptrs_[size_t(k)] = copy;
    }
    return row_ptrs_;
  }

 private:
  static constexpr int kPlaces = 4;
  static constexpr int64_t kPage = 4096;
  // Bytes from one copy to the next: whole pages, and one more for the offsets within them.
  static int64_t page_span(int64_t bytes) { return (bytes + kPage - 1) / kPage * kPage + kPage; }
  // Scratch bytes that grow to the largest request (rewritten before each use).
  struct Pages {
    std::unique_ptr<ScratchBuffer<unsigned char>> buf;
    int64_t bytes = 0;
  };
  // Place j (page offset 1 KiB * j) in the pages `at` bytes into p, grown to `bytes` + a page.
  template <class U>
  static U* placed(Pages& p, int64_t bytes, int64_t at, int j) {
    if (p.bytes < bytes + kPage) {
      p.buf = std::make_unique<ScratchBuffer<unsigned char>>(size_t(bytes + kPage));
      p.bytes = bytes + kPage;
    }
    const uintptr_t base = (reinterpret_cast<uintptr_t>(p.buf->data()) + kPage - 1) / kPage * kPage;
    return reinterpret_cast<U*>(base + uintptr_t(at + 1024 * j));
  }

  const C* w_;
  const C* b_;
  int64_t len_;
  Pages affine_, rows_;
  unsigned filled_ = 0;  // affine copies made
  T* row_ptrs_[64];  // forward_rows's blocks hold at most 64 rows
};

// Whether the runs at offs[0..count) are several and follow each other in memory, len
// elements apart.
bool consecutive(const int64_t* offs, int64_t count, int64_t len) {
  for (int64_t k = 1; k < count; ++k)
    if (offs[k] != offs[0] + k * len) return false;
  return count > 1;
}

// The statistics of a block of `count` rows, each one statistic of one contiguous run (at
// offs[k]; bases[k] its offsets), as listed_stats and finish_stats give them: m (mean), sec
// (second) and rs (rstd). Single-chunk rows are summed together (dev_sums_rows, reading x or
// writing the copies as it does) and finished a vector at a time (row_moments); a row whose
// shift lay too far from its mean is summed again around the first pass's mean.
template <class T>
void row_block_stats(const Geometry& g, const RunList& runs, Statistic statistic, double eps, const T* x,
                     const Offsets* bases, const int64_t* offs, int64_t count, T* const* copies, double* m,
                     double* sec, double* rs) {
  constexpr int64_t kBlock = 64;  // forward_rows' and backward_rows' blocks hold at most 64 rows
  const int64_t len = runs.len;
  const double n = double(len);
  const bool variance = statistic == Statistic::Variance;
  if (g.num_segs > 1) {
    for (int64_t k = 0; k < count; ++k) {
      finish_stats(statistic, listed_stats(g, runs, bases[k], x, statistic), m + k, sec + k);
      rs[k] = rstd_of(statistic, sec[k], eps);
    }
    return;
  }
  double s1[kBlock], s2[kBlock], far[kBlock];
  for (int64_t k = 0; k < count; ++k) m[k] = variance ? shift_of(x + offs[k], len) : 0.0;
  rows::dev_sums_rows(x, offs, count, len, variance ? m : nullptr, s1, s2, copies);
  // As moments_of, finish_stats and rstd_of per row, the block's rows a vector at a time.
  if (!rows::row_moments(count, n, variance, statistic == Statistic::L2Norm, eps, m, s1, s2, m, sec, rs, far)) return;
  for (int64_t k = 0; k < count; ++k) {
    if (far[k] == 0.0) continue;  // m[k] = shift + s1 / n, as moments_of's second shift
    rows::dev_sums_rows(x, offs + k, 1, len, m + k, s1 + k, s2 + k);
    finish_stats(statistic, shifted_moments(n, m[k], s1[k], s2[k]), m + k, sec + k);
    rs[k] = rstd_of(statistic, sec[k], eps);
  }
}

template <class T>
void forward_rows(const Geometry& g, const RunList& runs, Statistic statistic, double eps, const T* x, T* y,
                  const compute_t<T>* w, const compute_t<T>* b, double* mean, double* second, double* rstd,
                  bool along, bool round_xhat) {
  using C = compute_t<T>;
  constexpr int64_t kBlock = 64;  // statistics per block, at most, and about 32 KiB of x (L1)
  const int64_t len = runs.len;
  const bool stream = g.owners.count * len * int64_t(sizeof(T)) >= kStreamBytes;
  // Blocks of consecutive rows are written as one span (scale_shift_span), streamed as
  // BatchNorm's NCHW span is where the tensor outgrows L2 on Intel (rows of a line or more;
  // for InstanceNorm 32x256x14x14 on the Xeon that alone measured level with plain stores),
  // requesting the next block meanwhile where fetch_next_rows().
  const bool stream_span =
      stream || (len * int64_t(sizeof(T)) >= 64 && streams_past_l2(g.owners.count * len * int64_t(sizeof(T))));
  const bool rows_stream = along && stream_span;
  const bool tiled = along && !stream && (w || b) && 2 * len * int64_t(sizeof(T) + 2 * sizeof(C)) > l2_cache_bytes();
  const int64_t block =
      tiled ? kBlock : std::clamp<int64_t>((int64_t{32} << 10) / (len * int64_t(sizeof(T))), 1, kBlock);
  // The weight and bias the rows read along them (`along`, untiled): bfloat16 rows read them in
  // the order of their even/odd loop (rows::even_odd_affine), reordered here once per call.
  const C* w_along = w;
  const C* b_along = b;
  bool even_odd = false;
  std::unique_ptr<ScratchBuffer<C>> reordered;
  if constexpr (std::is_same_v<T, bfloat16>) {
    if (along && !tiled && (w || b)) {
      reordered = std::make_unique<ScratchBuffer<C>>(size_t(2 * len));
      C* w_eo = reordered->data();
      C* b_eo = w_eo + len;
      even_odd = (!w || rows::even_odd_affine<T>(w, len, w_eo)) && (!b || rows::even_odd_affine<T>(b, len, b_eo));
      if (even_odd) w_along = w ? w_eo : nullptr, b_along = b ? b_eo : nullptr;
    }
  }
  // Out of cache, each thread's copies placed away from the stores (AwayFromStores): of w and b,
  // and of rows of at least a page (shorter ones start at every offset: no place suits a block).
  const bool away_rows = along && stream && g.num_segs == 1 && len * int64_t(sizeof(T)) >= 4096;
  std::vector<AwayFromStores<T>> away;
  if (along && stream && (away_rows || w || b))
    for (int t = 0; t < omp_get_max_threads(); ++t) away.emplace_back(w_along, b_along, len);
  for_each_group_block(g, g.owners.count * len, block, [&](const Offsets* bases, int64_t count) {
    int64_t offs[kBlock] = {};  // zeroed: GCC's LTO cannot tell the first `count` are all that is read
    double m[kBlock] = {}, alpha[kBlock], beta[kBlock], sec[kBlock], rs[kBlock];
    for (int64_t k = 0; k < count; ++k) offs[k] = bases[k].mem;
    const int thread = omp_get_thread_num();
    AwayFromStores<T>* placing = thread < int(away.size()) ? &away[size_t(thread)] : nullptr;
    T* const* copies = placing && away_rows ? placing->row_copies(x, y, offs, count) : nullptr;
    row_block_stats(g, runs, statistic, eps, x, bases, offs, count, copies, m, sec, rs);
    for (int64_t k = 0; k < count; ++k) {
      const int64_t s = bases[k].stat;
      mean[s] = m[k], second[s] = sec[k], rstd[s] = rs[k];
      if (along) {
        alpha[k] = rstd[s];
        continue;
      }
      const double wv = w ? double(w[bases[k].aff]) : 1.0;
      alpha[k] = rstd[s] * wv, beta[k] = b ? double(b[bases[k].aff]) : 0.0;
    }
    if (tiled) {  // elementwise: the same outputs as whole rows
      for (int64_t c0 = 0; c0 < len; c0 += kAffineTile) {
        const int64_t c1 = std::min(len, c0 + kAffineTile);
        rows::scale_shift_rows_affine_list(x + c0, y + c0, offs, count, c1 - c0, m, alpha, w ? w + c0 : w,
                                           b ? b + c0 : b, round_xhat, stream);
      }
      return;
    }
    if (along) {
      const auto [wa, ba] = placing ? placing->affine(y, offs, count) : std::pair{w_along, b_along};
      return rows::scale_shift_rows_affine_list(x, y, offs, count, len, m, alpha, wa, ba, round_xhat, rows_stream, copies,
                                                even_odd);
    }
    if (sizeof(T) >= 4 && consecutive(offs, count, len)) {
      // InstanceNorm on NCHW: the block's rows follow each other, written as one span as
      // BatchNorm's NCHW channels are (apply_forward), with the same arithmetic per row.
      C hi[kBlock], lo[kBlock], a[kBlock], be[kBlock];
      for (int64_t k = 0; k < count; ++k) {
        const rows::SplitMean<C> split(m[k]);
        hi[k] = split.hi, lo[k] = split.lo, a[k] = C(alpha[k]), be[k] = C(beta[k]);
      }
      // The next block of rows (where the thread's rows go on) is requested meanwhile: its
      // statistics pass then reads it from L2 rather than waiting on each row's first line.
      return rows::scale_shift_span(x + offs[0], y + offs[0], count, len, hi, lo, a, be, stream_span,
                                    fetch_next_rows(stream) ? x + offs[0] + count * len : nullptr);
    }
    rows::scale_shift_rows_list(x, y, offs, count, len, m, alpha, beta, stream);
  });
}
}  // namespace

void merge_fine(Statistic statistic, int64_t coarse, int64_t r, double n, const double* fmean,
                const double* fsecond, double* mean, double* second) {
  if (statistic != Statistic::Variance) {  // sums of squares add up
    for (int64_t s = 0; s < coarse; ++s) {
      double cn = 0, cm2 = 0;
      for (int64_t i = 0; i < r; ++i) {
        cm2 += statistic == Statistic::L2Norm ? fsecond[s * r + i] : fsecond[s * r + i] * n;
        cn += n;
      }
      mean[s] = 0.0;
      second[s] = statistic == Statistic::L2Norm ? cm2 : (cn > 0 ? cm2 / cn : 0.0);
    }
    return;
  }
  if (r <= 0) {  // no fine statistics: an empty coarse one
    std::fill(mean, mean + coarse, 0.0), std::fill(second, second + coarse, 0.0);
    return;
  }
  // Chan et al., one fine statistic after another. Each counts n elements (a whole number),
  // so the i-th merge's weights n / (i n + n) and i n * n / (i n + n) are the same for every
  // coarse statistic: computed once here (i n is exact, as the running count it replaces)
  // rather than two divisions per merge (GroupNorm(32) 32x256x14x14 NHWC forward, 2 threads:
  // 0.170 -> 0.162 ms with forward_columns' coefficient loop per statistic).
  constexpr int64_t kMaxWeights = 64;
  double weight[kMaxWeights], cross[kMaxWeights];
  const int64_t weighed = std::min(r, kMaxWeights);
  for (int64_t i = 1; i < weighed; ++i) {
    const double cn = double(i) * n, tn = cn + n;
    weight[i] = n / tn, cross[i] = cn * n / tn;
  }
  for (int64_t s = 0; s < coarse; ++s) {
    const double* fm = fmean + s * r;
    const double* fs = fsecond + s * r;
    double cn = n, cm = fm[0], cm2 = fs[0] * n;  // count, mean, sum of squared deviations
    for (int64_t i = 1; i < r; ++i) {
      const double tn = cn + n, delta = fm[i] - cm;
      cm += delta * (i < weighed ? weight[i] : n / tn);
      cm2 += fs[i] * n + delta * delta * (i < weighed ? cross[i] : cn * n / tn);
      cn = tn;
    }
    mean[s] = cm;
    second[s] = cn > 0 ? cm2 / cn : 0.0;
  }
}

// The fused forward in column mode when a group of statistics fits in cache (InstanceNorm on
// NHWC: per image, H*W runs of C): its statistics, chunk by chunk as reduce_stats takes them
// (r > 1: merged r at a time as merge_fine does, GroupNorm on NHWC), then its runs normalized
// while cached.
namespace {
// A thread's scratch for column_group_stats, col_block entries each.
struct GroupStatsScratch {
  Scratch<Partial> acc, part;
  Scratch<double> fmean, fsecond, shift, s1, s2, m2, rstd, far;
  explicit GroupStatsScratch(size_t n)
      : acc(n), part(n), fmean(n), fsecond(n), shift(n), s1(n), s2(n), m2(n), rstd(n), far(n) {}
};

// The statistics of column-mode group q, chunk by chunk as reduce_stats takes them (r > 1: r
// consecutive fine statistics merged into each coarse one, as merge_fine does): mean, second
// and rstd of its coarse statistics from grp.o.stat / r on. forward_columns' and
// backward_columns' statistics, the same bits as reduce_stats (and coarse_stats).
template <class T>
void column_group_stats(const Geometry& g, int64_t q, int64_t r, Statistic statistic, double eps, const T* x,
                        GroupStatsScratch& sc, double* mean, double* second, double* rstd) {
  using C = compute_t<T>;
  const Group grp = group_at(g, q);
  const int64_t L = grp.len, c0 = grp.o.stat / r;
  if (statistic == Statistic::Variance && g.run.stride == 1) {
    // column_stats' passes chunk by chunk, the per-key arithmetic after each a vector at a
    // time (rows::merge_chunk_moments, finish_moments: shifted_moments, chan_merge,
    // finish_stats and rstd_of, the same formulas and bits), unless some chunk's shift lay too
    // far from its mean (column_stats then sums it again, below). Scalar, that arithmetic (a
    // division or square root per step) took as long as the sums for InstanceNorm and
    // GroupNorm 32x256x14x14 channels-last.
    Scratch<C> shift(static_cast<size_t>(L));
    double* m = r == 1 ? mean + c0 : sc.fmean.data();
    double* sec = r == 1 ? second + c0 : sc.fsecond.data();
    double n = 0.0;
    bool far = false;
    for (int64_t seg = 0; seg < g.num_segs && !far; ++seg) {
      const int64_t d0 = seg * g.seg_len, d1 = std::min(g.key_len, d0 + g.seg_len);
      column_shifted_sums(g, q, d0, d1, x, shift.data(), sc.s1.data(), sc.s2.data());
      for (int64_t i = 0; i < L; ++i) sc.shift[size_t(i)] = double(shift[size_t(i)]);
      far = rows::merge_chunk_moments(L, n, double(d1 - d0), sc.shift.data(), sc.s1.data(), sc.s2.data(), m,
                                      sc.m2.data(), sc.far.data());
      n += double(d1 - d0);
    }
    if (!far && n > 0) {
      rows::finish_moments(L, n, eps, sc.m2.data(), sec, r == 1 ? rstd + c0 : sc.rstd.data());
      if (r == 1) return;
      merge_fine(statistic, L / r, r, n, m, sec, mean + c0, second + c0);
      for (int64_t j = 0; j < L / r; ++j) rstd[c0 + j] = rstd_of(statistic, second[c0 + j], eps);
      return;
    }
  }
  for (int64_t seg = 0; seg < g.num_segs; ++seg) {
    const int64_t d0 = seg * g.seg_len, d1 = std::min(g.key_len, d0 + g.seg_len);
    column_stats(g, q, d0, d1, x, statistic, seg == 0 ? sc.acc.data() : sc.part.data());
    if (seg > 0)
      for (int64_t i = 0; i < L; ++i) sc.acc[size_t(i)] = merge_stats(statistic, sc.acc[size_t(i)], sc.part[size_t(i)]);
  }
  if (r == 1) {
    for (int64_t i = 0; i < L; ++i) finish_stats(statistic, sc.acc[size_t(i)], mean + c0 + i, second + c0 + i);
  } else {
    for (int64_t i = 0; i < L; ++i)
      finish_stats(statistic, sc.acc[size_t(i)], &sc.fmean[size_t(i)], &sc.fsecond[size_t(i)]);
    merge_fine(statistic, L / r, r, sc.acc[0].n, sc.fmean.data(), sc.fsecond.data(), mean + c0, second + c0);
  }
  for (int64_t j = 0; j < L / r; ++j) rstd[c0 + j] = rstd_of(statistic, second[c0 + j], eps);
}
}  // namespace

template <class T>
bool forward_columns(const ReductionPlan& plan, int64_t r, Statistic statistic, double eps, const T* x, T* y,
                     const compute_t<T>* w, const compute_t<T>* b, double* mean, double* second, double* rstd) {
  using C = compute_t<T>;
  const Geometry g = make_geometry(plan, GroupBy::Statistic);
  const int64_t groups = g.num_groups();
  if (!(g.column && column_fast_path(plan) && groups > 1 && g.key_len * g.col_block <= kFuseMax &&
        (r == 1 || (g.col_blocks == 1 && g.col_block % r == 0))))
    return false;
  const bool stream = streams_lines<T>(plan), consecutive = domain_consecutive(g);
  // Where the output streams, the group that follows in memory (the next image) is requested
  // into L2 while this one is written, where fetch_next_block() (Intel), as InstanceNorm's NCHW
  // row blocks are: its statistics pass then reads it from there. Not out of cache elsewhere,
  // as the row blocks are (fetch_next_rows): a whole image requested on the Zen 5 VM made
  // InstanceNorm and GroupNorm 64x256x28x28 NHWC forward 12-14% slower (3.34-3.39 -> 3.79-3.86
  // ms at 2 threads, 6.7-7.0 -> 7.6-7.7 at 1; a driver alternating the two, 2026-11-29).
  const bool fetch = stream && consecutive && fetch_next_block();
#pragma omp parallel if (plan.numel() >= kParallelMin && groups > 1)
  {
    GroupStatsScratch stats(size_t(g.col_block));
    const size_t B = size_t(g.col_block);
    Scratch<C> hi(B), lo(B), alpha(B), beta(B);
#pragma omp for schedule(static)
    for (int64_t q = 0; q < groups; ++q) {
      const Group grp = group_at(g, q);
      const int64_t s0 = grp.o.stat / r;  // the group's first (coarse) statistic
      column_group_stats(g, q, r, statistic, eps, x, stats, mean, second, rstd);
      for (int64_t j = 0; j < grp.len / r; ++j) {  // per statistic, its split mean once for its r keys
        const rows::SplitMean<C> m(mean[s0 + j]);
        const double rs = rstd[s0 + j];
        for (int64_t i = j * r; i < (j + 1) * r; ++i) {
          const int64_t a = grp.o.aff + i * g.run.affine_stride;
          hi[size_t(i)] = m.hi, lo[size_t(i)] = m.lo;
          alpha[size_t(i)] = C(rs * (w ? double(w[a]) : 1.0)), beta[size_t(i)] = C(b ? double(b[a]) : 0.0);
        }
      }
      if (consecutive) {
        rows::col_scale_shift_block(x + grp.o.mem, y + grp.o.mem, static_cast<const int64_t*>(nullptr), g.key_len,
                                    grp.len, hi.data(), lo.data(), alpha.data(), beta.data(), stream,
                                    fetch && q + 1 < groups && group_at(g, q + 1).o.mem == grp.o.mem + g.key_len * grp.len
                                        ? x + grp.o.mem + g.key_len * grp.len
                                        : nullptr);
        continue;
      }
      for_each_run_block(g, q, 0, g.key_len, [&](const int64_t* offs, int64_t count, int64_t) {
        rows::col_scale_shift_block(x, y, offs, count, grp.len, hi.data(), lo.data(), alpha.data(), beta.data(), stream);
      });
    }
  }
  return true;
}

namespace {
// Statistics that are each one contiguous span of whole runs with one affine index per run
// (InstanceNorm on NCHW over a large H*W, GroupNorm's groups of channels): a thread takes its
// statistics in order and normalizes each in the same loop as the next one's statistics pass
// (rows::dev_sums_scale_shift). Out of cache, for statistics of more than one reduction chunk
// or too large to have the next one requested meanwhile (rows::kFetchNextMax): this one's
// stores stream out while the next one streams in, where in turns the memory was busy one way
// at a time. In cache, for all in float32 or float64: the stores wait on reads for ownership
// while the next statistic's sums, which wait on the arithmetic, go on beside them (GroupNorm
// 32x256x14x14 forward, 2 threads, 0.29-0.32 -> 0.24-0.25 ms); not in 16 bits, where the fused
// loop rounds in natural order and scale_shift even/odd (bfloat16 0.30 -> 0.36 ms). Every
// chunk, shift, piece and sum is listed_stats's (the same partials, merged in the same order)
// and every output normalize_run's: the same bits as the statistic at a time. Returns false
// where it does not apply.
template <class T>
bool forward_pipelined(const ReductionPlan& plan, const Geometry& g, const RunList& runs, Statistic statistic,
                       double eps, const T* x, T* y, const compute_t<T>* w, const compute_t<T>* b, double* mean,
                       double* second, double* rstd) {
  using C = compute_t<T>;
  const int64_t L = runs.len, K = int64_t(runs.rel.size());
  const bool stream = streams<T>(plan);
  const bool large = g.num_segs > 1 || g.key_len * int64_t(sizeof(T)) > rows::kFetchNextMax;
  if (g.column || (stream ? !large : sizeof(T) < 4) || g.run.stride != 1 || g.run.stat_stride != 0 ||
      g.run.affine_stride != 0 || L != g.run.size || g.owners.count < 2)
    return false;
  for (int64_t k = 0; k < K; ++k)
    if (runs.rel[size_t(k)].mem != k * L) return false;
  const bool variance = statistic == Statistic::Variance;
  auto finish = [&](Offsets base, const Partial& p) {
    finish_stats(statistic, p, mean + base.stat, second + base.stat);
    rstd[base.stat] = rstd_of(statistic, second[base.stat], eps);
  };
  // The statistics of `next` (its chunks as listed_stats cuts them) while `cur`, if any, is
  // normalized piece by piece alongside.
  auto step = [&](const Offsets* cur, Offsets next) {
    const T* xs = x + next.mem;
    Partial acc;
    for (int64_t seg = 0; seg < g.num_segs; ++seg) {
      const int64_t d0 = seg * g.seg_len, d1 = std::min(g.key_len, d0 + g.seg_len);
      // As chunk_stats_of: the chunk's pieces (its runs cut at its bounds), the first pass fused
      // with the normalization of `cur`, a second one (moments_of's, rarely) plain.
      bool first = true;
      auto sums = [&](double m, double& s1, double& s2) {
        s1 = s2 = 0;
        for (int64_t p0 = d0; p0 < d1;) {
          const int64_t r = p0 / L, p1 = std::min(d1, (r + 1) * L);
          double a = 0, c = 0;
          if (cur && first) {
            const int64_t s = cur->stat, aff = cur->aff + runs.rel[size_t(r)].aff;
            const double wv = w ? double(w[aff]) : 1.0, bv = b ? double(b[aff]) : 0.0;
            rows::dev_sums_scale_shift(xs + p0, p1 - p0, rows::SplitMean<C>(m), &a, &c, x + cur->mem + p0,
                                       y + cur->mem + p0, rows::SplitMean<C>(mean[s]), C(rstd[s] * wv), C(bv), stream);
          } else {
            rows::dev_sums(xs + p0, p1 - p0, rows::SplitMean<C>(m), &a, &c);
          }
          s1 += a, s2 += c;
          p0 = p1;
        }
        first = false;
      };
      const Partial part = moments_of(sums, double(d1 - d0), statistic, variance ? shift_of(xs + d0, d1 - d0) : 0.0);
      acc = seg == 0 ? part : merge_stats(statistic, acc, part);
    }
    finish(next, acc);
  };
  static Pace pace;
  for_each_share(region_threads(plan.numel(), g.owners.count), g.owners.count, pace, [&](int64_t q0, int64_t q1) {
    if (q0 >= q1) return;
    Cursor c(g.owners, q0);
    Offsets cur = *c;
    step(nullptr, cur);
    for (int64_t q = q0 + 1; q < q1; ++q) {
      c.next();
      const Offsets next = *c;
      step(&cur, next);
      cur = next;
    }
    for (int64_t r = 0; r < K; ++r) {  // the last one alone
      const int64_t s = cur.stat, aff = cur.aff + runs.rel[size_t(r)].aff;
      const double wv = w ? double(w[aff]) : 1.0, bv = b ? double(b[aff]) : 0.0;
      rows::scale_shift(x + cur.mem + r * L, y + cur.mem + r * L, L, rows::SplitMean<C>(mean[s]), C(rstd[s] * wv),
                        C(bv), stream);
    }
  });
  return true;
}
}  // namespace

template <class T>
void forward(const ReductionPlan& plan, Statistic statistic, double eps, const T* x, T* y,
             const compute_t<T>* w, const compute_t<T>* b, double* mean, double* second,
             double* rstd, bool round_xhat) {
  if (!round_xhat && forward_columns(plan, 1, statistic, eps, x, y, w, b, mean, second, rstd)) return;
  const Geometry g = make_geometry(plan, GroupBy::Statistic);
  const bool fuse = !g.column && g.key_len <= kFuseMax && plan.num_stats() >= kFuseMinStats;
  if (!fuse) {
    reduce_stats(plan, x, statistic, mean, second);
    for (int64_t s = 0; s < plan.num_stats(); ++s) rstd[s] = rstd_of(statistic, second[s], eps);
    return apply_forward(plan, x, y, mean, rstd, w, b, round_xhat);
  }
  // One statistic per task: its chunks in order (the same partials as reduce_stats), then
  // normalize its elements while they are still in cache.
  const bool stream = streams<T>(plan);
  const RunList runs = make_run_list(g, affine_within_kept(plan));
  if (runs.whole && runs.mem.size() == 1 && !round_xhat)
    return forward_rows(g, runs, statistic, eps, x, y, w, b, mean, second, rstd, false, false);
  if (rows_with_affine_along(g, runs))
    return forward_rows(g, runs, statistic, eps, x, y, w, b, mean, second, rstd, true, round_xhat);
  if (!round_xhat && forward_pipelined(plan, g, runs, statistic, eps, x, y, w, b, mean, second, rstd)) return;
  for_each_group(g, plan.numel(), [&](int64_t, Offsets base) {
    const int64_t s = base.stat;
    finish_stats(statistic, listed_stats(g, runs, base, x, statistic), mean + s, second + s);
    rstd[s] = rstd_of(statistic, second[s], eps);
    if (runs.whole && !round_xhat) {
      using C = compute_t<T>;
      const double wv = w ? double(w[base.aff]) : 1.0, bv = b ? double(b[base.aff]) : 0.0;
      return rows::scale_shift_list(x + base.mem, y + base.mem, runs.mem.data(), int64_t(runs.mem.size()), runs.len,
                                    rows::SplitMean<C>(mean[s]), C(rstd[s] * wv), C(bv), stream);
    }
    if (scalar_affine_runs(g, runs, w || b) && !round_xhat) {
      using C = compute_t<T>;
      const int64_t count = int64_t(runs.mem.size());
      for (int64_t k0 = 0; k0 < count; k0 += kRunChunk) {
        const int64_t n = std::min(kRunChunk, count - k0);
        C alpha[kRunChunk], beta[kRunChunk];
        for (int64_t k = k0; k < k0 + n; ++k) {
          const int64_t a = base.aff + runs.rel[size_t(k)].aff;
          alpha[k - k0] = C(rstd[s] * (w ? double(w[a]) : 1.0)), beta[k - k0] = C(b ? double(b[a]) : 0.0);
        }
        rows::scale_shift_runs(x + base.mem, y + base.mem, runs.mem.data() + k0, n, runs.len,
                               rows::SplitMean<C>(mean[s]), alpha, beta, stream);
      }
      return;
    }
    for_each_listed_run(runs, g.run, base, 0, g.key_len,
                        [&](Offsets o, int64_t len) { normalize_run(g.run, o, len, x, y, mean, rstd, w, b, round_xhat, stream); });
  });
}

// LayerNorm's and RMSNorm's per-affine sums (dweight, dbias) over rows that are each a
// statistic: blocks of rows that stay in cache together (about 256 KiB of dy and x), each
// block summed in compute_t<T> lanes and added to the double accumulators. The fused backward
// and reduce_grads cut the same blocks (from the start of a segment, with the row length of
// the plan), so both give the same bits.
// Rows too long for kLongRowBlock of them in 256 KiB still go kLongRowBlock at a time while
// that fits in the last-level cache (4 MiB of dy and x): adding one row at a time into the
// double accumulators moves four times the row's bytes (LayerNorm over [256,14,14], backward
// 0.96 -> 0.72 ms at 2 threads).
inline constexpr int64_t kLongRowBlock = 8;

inline int64_t affine_row_block(int64_t row_len, int64_t elem_bytes) {
  const int64_t pair = 2 * row_len * elem_bytes;  // a row of dy and of x
  const int64_t in_l2 = std::clamp<int64_t>((int64_t{256} << 10) / pair, 1, rows::kColRows);
  return in_l2 >= kLongRowBlock ? in_l2 : std::clamp<int64_t>((int64_t{4} << 20) / pair, in_l2, kLongRowBlock);
}

template <class T>
class AffineRowSums {
 public:
  using C = compute_t<T>;
  // assign_first: the first block's sums are stored, not added (s1, s2 need no zeroing).
  AffineRowSums(const T* dy, const T* x, int64_t row_len, int64_t len, double* s1, double* s2,
                bool assign_first = false)
      : dy_(dy), x_(x), len_(len), s1_(s1), s2_(s2), cap_(affine_row_block(row_len, int64_t(sizeof(T)))),
        assign_(assign_first) {}
  void add(int64_t mem, double mean, double rstd) {
    const rows::SplitMean<C> m(mean);
    offs_[n_] = mem, hi_[n_] = m.hi, lo_[n_] = m.lo, rstd_[n_] = C(rstd);
    if (++n_ == cap_) flush();
  }
  void flush() {
    if (n_ > 0) rows::col_grad_sums_rows(dy_, x_, offs_, n_, len_, hi_, lo_, rstd_, s1_, s2_, assign_);
    if (n_ > 0) assign_ = false;
    n_ = 0;
  }

 private:
  const T* dy_;
  const T* x_;
  int64_t len_;
  double* s1_;
  double* s2_;
  int64_t cap_, n_ = 0;
  bool assign_;
  int64_t offs_[rows::kColRows];
  C hi_[rows::kColRows], lo_[rows::kColRows], rstd_[rows::kColRows];
};

template <class T>
void reduce_grads(const ReductionPlan& plan, GroupBy by, const T* dy, const T* x,
                  const double* mean, const double* rstd, const compute_t<T>* w, double* sum_g,
                  double* sum_gx) {
  using C = compute_t<T>;
  const Geometry g = make_geometry(plan, by);
  const int64_t ms = g.run.stride, ss = g.run.stat_stride, as = g.run.affine_stride;
  const C* wt = by == GroupBy::Statistic ? w : nullptr;
  const int64_t keys = by == GroupBy::Statistic ? plan.num_stats() : plan.num_affine();
  const int64_t segs = g.num_segs, tasks = g.num_tasks();
  Scratch<Partial> partials(size_t(keys * segs));
  bool stat_fixed = true;  // column blocks: the statistics do not change along the domain
  for (const PlanDim& d : g.domain.dims) stat_fixed = stat_fixed && d.stat_stride == 0;
  const bool lanes = g.column && ms == 1 && ss == 1 && !wt && compute_lanes(plan);
  const bool consecutive = domain_consecutive(g);
  Scratch<C> hi, lo;  // with lanes: the means split for the compute_t<T> primitives
  if (lanes) split_means(mean, plan.num_stats(), hi, lo);
#pragma omp parallel for schedule(static) if (plan.numel() >= kParallelMin && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t group = t / segs, seg = t % segs;
    const int64_t d0 = seg * g.seg_len, d1 = std::min(g.key_len, d0 + g.seg_len);
    const Group grp = group_at(g, group);
    const int64_t k0 = by == GroupBy::Statistic ? grp.o.stat : grp.o.aff, kstep = key_stride(g.run, by);
    const int64_t L = grp.len;
    if (!g.column) {
      double s1 = 0, s2 = 0;
      for_each_run(g, group, d0, d1, [&](Offsets o, int64_t len) {
        if (ms == 1 && ss == 0 && (as <= 1 || !wt)) {
          double a = 0, b = 0;
          const bool wvec = wt && as == 1;
          rows::grad_sums(dy + o.mem, x + o.mem, len, rows::SplitMean<C>(mean[o.stat]),
                          wvec ? wt + o.aff : static_cast<const C*>(nullptr), &a, &b);
          const double wv = wt && !wvec ? double(wt[o.aff]) : 1.0;
          s1 += wv * a, s2 += wv * rstd[o.stat] * b;
          return;
        }
        for (int64_t i = 0; i < len; ++i) {
          const int64_t s = o.stat + i * ss;
          const double gv = double(dy[o.mem + i * ms]) * (wt ? double(wt[o.aff + i * as]) : 1.0);
          s1 += gv, s2 += gv * (double(x[o.mem + i * ms]) - mean[s]) * rstd[s];
        }
      });
      partials[size_t(k0 * segs + seg)] = Partial{0, s1, s2};
      continue;
    }
    // Column mode: one accumulator pair per element of the run.
    Scratch<double> s1(size_t(L), 0.0), s2(size_t(L), 0.0);
    if (ms == 1 && ss == 1 && !wt) {  // the statistic steps along the run: blocks of runs
      Scratch<double> b1(static_cast<size_t>(L)), b2(static_cast<size_t>(L));
      auto sums = [&](const int64_t* offs, int64_t count, int64_t st, double* a, double* b) {
        if (lanes) return rows::col_grad_sums_cols(dy, x, offs, count, L, hi.data() + st, lo.data() + st, a, b);
        rows::col_grad_sums_block(dy, x, offs, count, L, mean + st, a, b);
      };
      if (stat_fixed && lanes && consecutive && d0 < d1) {  // the same blocks, no list of offsets
        const int64_t first = grp.o.mem + (*Cursor(g.domain, d0)).mem;
        rows::col_grad_sums_cols(dy + first, x + first, static_cast<const int64_t*>(nullptr), d1 - d0, L,
                                 hi.data() + grp.o.stat, lo.data() + grp.o.stat, s1.data(), s2.data());
      } else {
        for_each_run_block(g, group, d0, d1, [&](const int64_t* offs, int64_t count, int64_t st) {
          if (stat_fixed) {  // every block has the group's statistics: scale by rstd once, below
            return sums(offs, count, st, s1.data(), s2.data());
          }
          std::fill(b1.begin(), b1.end(), 0.0), std::fill(b2.begin(), b2.end(), 0.0);
          sums(offs, count, st, b1.data(), b2.data());
          for (int64_t i = 0; i < L; ++i) s1[size_t(i)] += b1[size_t(i)], s2[size_t(i)] += b2[size_t(i)] * rstd[st + i];
        });
      }
      if (stat_fixed)
        for (int64_t i = 0; i < L; ++i) s2[size_t(i)] *= rstd[grp.o.stat + i];
      for (int64_t i = 0; i < L; ++i) partials[size_t((k0 + i * kstep) * segs + seg)] = Partial{0, s1[size_t(i)], s2[size_t(i)]};
      continue;
    }
    AffineRowSums<T> row_sums(dy, x, g.run.size, L, s1.data(), s2.data());
    for_each_run(g, group, d0, d1, [&](Offsets o, int64_t) {
      if (ss == 0 && !wt && ms == 1) return row_sums.add(o.mem, mean[o.stat], rstd[o.stat]);
      if (ss == 0 && !wt) {
        const double m = mean[o.stat], r = rstd[o.stat];
        const T* dyr = dy + o.mem;
        const T* xr = x + o.mem;
        for (int64_t i = 0; i < L; ++i) {
          const double gv = double(dyr[i * ms]);
          s1[size_t(i)] += gv, s2[size_t(i)] += gv * ((double(xr[i * ms]) - m) * r);
        }
        return;
      }
      for (int64_t i = 0; i < L; ++i) {
        const int64_t s = o.stat + i * ss;
        const double gv = double(dy[o.mem + i * ms]) * (wt ? double(wt[o.aff + i * as]) : 1.0);
        s1[size_t(i)] += gv, s2[size_t(i)] += gv * (double(x[o.mem + i * ms]) - mean[s]) * rstd[s];
      }
    });
    row_sums.flush();
    for (int64_t i = 0; i < L; ++i) partials[size_t((k0 + i * kstep) * segs + seg)] = Partial{0, s1[size_t(i)], s2[size_t(i)]};
  }
#pragma omp parallel for schedule(static) if (keys * segs >= kParallelMin)
  for (int64_t k = 0; k < keys; ++k) {
    double a = 0, b = 0;
    for (int64_t s = 0; s < segs; ++s) a += partials[size_t(k * segs + s)].a, b += partials[size_t(k * segs + s)].b;
    sum_g[k] = a, sum_gx[k] = b;
  }
}

template <class T>
void apply_backward(const ReductionPlan& plan, const T* dy, const T* x, T* dx, const double* mean,
                    const double* P, const double* Q, const double* R, const compute_t<T>* w) {
  const PlanDim& run = plan.dims()[plan.run_dim()];
  if (column_fast_path(plan)) {
    Scratch<double> Pw = per_stat(plan, w, 1.0);
    for (size_t s = 0; s < Pw.size(); ++s) Pw[s] *= P[s];
    if (runs_consecutive(plan) && compute_lanes(plan)) {  // as row mode's grad_input, in compute_t<T> lanes
      using C = compute_t<T>;
      const size_t S = Pw.size();
      Scratch<C> hi, lo, pc(S), qc(S), rc(S);
      split_means(mean, plan.num_stats(), hi, lo);
      for (size_t s = 0; s < S; ++s) pc[s] = C(Pw[s]), qc[s] = C(Q[s]), rc[s] = C(R[s]);
      return for_all_run_stretches(plan, [&](int64_t first, int64_t count, int64_t st) {
        rows::col_grad_input_lanes(dy + first, x + first, dx + first, count, run.size, hi.data() + st, lo.data() + st,
                                   pc.data() + st, qc.data() + st, rc.data() + st, streams_lines<T>(plan));
      });
    }
    return for_all_run_blocks(plan, [&](const int64_t* offs, int64_t count, int64_t st) {
      rows::col_grad_input_block(dy, x, dx, offs, count, run.size, mean + st, Pw.data() + st, Q + st, R + st,
                                 streams<T>(plan));
    });
  }
  const bool stream = streams<T>(plan);
  for_all_runs(plan, [&](Offsets o, int64_t len) { grad_input_run(run, o, len, dy, x, dx, mean, P, Q, R, w, stream); });
}

void dx_coefficients(Statistic statistic, double M, double rstd, double second, double eps, double sg,
                     double sgx, double* Q, double* R) {
  if (statistic == Statistic::L2Norm && std::sqrt(second) < eps) {
    *Q = *R = 0.0;
    return;
  }
  const double div = statistic == Statistic::L2Norm ? 1.0 : M;
  *Q = -rstd * rstd * (sgx / div);
  *R = statistic == Statistic::Variance ? -rstd * (sg / div) : 0.0;
}

void affine_of_stats(const ReductionPlan& plan, int64_t* affine) {
  Radix kept;
  for (const PlanDim& d : plan.dims())
    if (!d.reduced()) kept.add(d);
  Cursor c(kept, 0);
  for (int64_t i = 0; i < kept.count; ++i, c.next()) affine[(*c).stat] = (*c).aff;
}

namespace {
// backward's statistics when each is one contiguous run with one weight (InstanceNorm on
// NCHW: H*W per (n, c)): blocks of them per dispatched call, their mean and rstd (given, or
// with `recompute` taken as forward_rows takes them, row_block_stats), the sums, then the
// coefficients, then dx while the block is in cache. Per statistic the same arithmetic as
// backward's per-statistic body, the same bits; two dispatched calls per statistic made
// InstanceNorm 32x256x14x14 backward 15% slower at 2 threads. Recomputed here rather than
// per statistic in that body: the same backward 2.3 -> 1.8 ms at 1 thread, 1.2 -> 1.0 ms at 2
// (Xeon, a driver, 2026-11-29).
template <class T>
void backward_rows(const Geometry& g, const RunList& runs, Statistic statistic, bool batch_stats, bool recompute,
                   double eps, double M, const T* dy, const T* x, T* dx, const compute_t<T>* w, double* mean,
                   double* second, double* rstd, double* sum_dy, double* sum_dy_xhat, bool per_stat_w,
                   bool stream) {
  const int64_t len = runs.len;
  using C = compute_t<T>;
  constexpr int64_t kBlock = 64;  // statistics per block, at most, and about 64 KiB of dy and x
  const int64_t block = std::clamp<int64_t>((int64_t{64} << 10) / (2 * len * int64_t(sizeof(T))), 1, kBlock);
  const bool stream_span = len * int64_t(sizeof(T)) >= 64 && streams_past_l2(g.owners.count * len * int64_t(sizeof(T)));
  for_each_group_block(g, g.owners.count * len, block, [&](const Offsets* bases, int64_t count) {
    int64_t offs[kBlock] = {};  // (zeroed: GCC cannot see that count > 0)
    double m[kBlock] = {}, u1[kBlock], u2[kBlock];
    C P[kBlock], Q[kBlock], R[kBlock];
    for (int64_t k = 0; k < count; ++k) offs[k] = bases[k].mem;
    if (batch_stats && recompute) {  // forward_rows' statistics, written as it writes them
      double sec[kBlock], rs[kBlock];
      row_block_stats(g, runs, statistic, eps, x, bases, offs, count, static_cast<T* const*>(nullptr), m, sec, rs);
      for (int64_t k = 0; k < count; ++k) {
        const int64_t s = bases[k].stat;
        mean[s] = m[k], second[s] = sec[k], rstd[s] = rs[k];
      }
    } else {
      for (int64_t k = 0; k < count; ++k) m[k] = mean[bases[k].stat];
    }
    rows::grad_sums_rows(dy, x, offs, count, len, m, u1, u2);
    for (int64_t k = 0; k < count; ++k) {
      const int64_t s = bases[k].stat;
      const double r = rstd[s], wv = w ? double(w[bases[k].aff]) : 1.0;
      if (per_stat_w) sum_dy[s] = u1[k], sum_dy_xhat[s] = u2[k] * r;
      double q = 0, rr = 0;
      if (batch_stats) dx_coefficients(statistic, M, r, second[s], eps, wv * u1[k], wv * u2[k] * r, &q, &rr);
      P[k] = C(r * wv), Q[k] = C(q), R[k] = C(rr);
    }
    // Rows that follow each other (InstanceNorm on NCHW) are written as one span, streamed
    // where the tensor outgrows L2 on Intel as BatchNorm's NCHW span is (streams_past_l2).
    const bool span = sizeof(T) >= 4 && consecutive(offs, count, len);
    if (dx)
      rows::grad_input_rows(dy, x, dx, offs, count, len, m, P, Q, R, stream || (span && stream_span),
                            fetch_next_rows(stream));
  });
}
}  // namespace

// Per group: its statistics (if recomputed) as forward_columns takes them, its sums segment by
// segment as reduce_grads' tasks (each from zero, scaled by rstd, added in segment order), the
// coefficients as backward's (r = 1) or backward_grouped's, and dx as apply_backward's lanes
// (elementwise), all while the group is cached, where the unfused passes read x three times
// and dy twice from the last-level cache or memory: the same bits. Channels-last 32x256x14x14
// on the Xeon, statistics recomputed, a driver alternating fused and unfused call by call:
// InstanceNorm backward 1 thread 2.0-2.3 -> 1.3-1.6 ms, 2 threads 1.25-1.35 -> 0.72-0.80 ms;
// GroupNorm(32) 2.3-2.6 -> 1.5-1.8 ms and 1.56-1.60 -> 0.92-0.95 ms (2026-11-29).
template <class T>
bool backward_columns(const ReductionPlan& plan, int64_t r, Statistic statistic, bool recompute, double eps,
                      const T* dy, const T* x, T* dx, const compute_t<T>* w, double* mean, double* second,
                      double* rstd, double* sum_dy, double* sum_dy_xhat) {
  using C = compute_t<T>;
  const Geometry g = make_geometry(plan, GroupBy::Statistic);
  const int64_t groups = g.num_groups();
  bool stat_fixed = true;  // as reduce_grads': the statistics do not change along the domain
  for (const PlanDim& d : g.domain.dims) stat_fixed = stat_fixed && d.stat_stride == 0;
  if (!(dx && g.column && column_fast_path(plan) && groups > 1 && g.key_len * g.col_block <= kFuseMax &&
        g.col_blocks == 1 && g.col_block % r == 0 && stat_fixed && g.run.stride == 1 && g.run.stat_stride == 1 &&
        compute_lanes(plan) && domain_consecutive(g) && runs_consecutive(plan) && affine_within_kept(plan)))
    return false;
  const double M = double(plan.stat_size() * r);
  const bool stream = streams_lines<T>(plan);
#pragma omp parallel if (plan.numel() >= kParallelMin && groups > 1)
  {
    GroupStatsScratch stats(size_t(g.col_block));
    const size_t B = size_t(g.col_block);
    Scratch<C> hi(B), lo(B), pc(B), qc(B), rc(B);
    Scratch<double> s1(B), s2(B), a(B), b(B);
#pragma omp for schedule(static)
    for (int64_t q = 0; q < groups; ++q) {
      const Group grp = group_at(g, q);
      const int64_t s0 = grp.o.stat, L = grp.len, c0 = s0 / r;  // fine statistics s0.., coarse c0..
      if (recompute) column_group_stats(g, q, r, statistic, eps, x, stats, mean, second, rstd);
      for (int64_t j = 0; j < L / r; ++j) {  // per coarse statistic, its split mean for its r keys
        const rows::SplitMean<C> m(mean[c0 + j]);
        std::fill(hi.begin() + j * r, hi.begin() + (j + 1) * r, m.hi);
        std::fill(lo.begin() + j * r, lo.begin() + (j + 1) * r, m.lo);
      }
      // reduce_grads' tasks of this group, one per segment, merged as it merges them.
      std::fill(a.begin(), a.end(), 0.0), std::fill(b.begin(), b.end(), 0.0);
      for (int64_t seg = 0; seg < g.num_segs; ++seg) {
        const int64_t d0 = seg * g.seg_len, d1 = std::min(g.key_len, d0 + g.seg_len);
        std::fill(s1.begin(), s1.end(), 0.0), std::fill(s2.begin(), s2.end(), 0.0);
        if (d0 < d1) {
          const int64_t first = grp.o.mem + (*Cursor(g.domain, d0)).mem;
          rows::col_grad_sums_cols(dy + first, x + first, static_cast<const int64_t*>(nullptr), d1 - d0, L, hi.data(),
                                   lo.data(), s1.data(), s2.data());
        }
        for (int64_t j = 0; j < L / r; ++j)
          for (int64_t i = j * r; i < (j + 1) * r; ++i)
            a[size_t(i)] += s1[size_t(i)], b[size_t(i)] += s2[size_t(i)] * rstd[c0 + j];
      }
      for (int64_t i = 0; i < L; ++i) sum_dy[s0 + i] = a[size_t(i)], sum_dy_xhat[s0 + i] = b[size_t(i)];
      // The coefficients as backward's (r = 1, w one number per statistic) or backward_grouped's
      // (the weighted sums of the coarse statistic's fine ones, in order), dx as apply_backward's
      // lanes.
      auto weight = [&](int64_t i) { return w ? double(w[grp.o.aff + i * g.run.affine_stride]) : 1.0; };
      for (int64_t j = 0; j < L / r; ++j) {
        double sg = 0, sgx = 0, Q = 0, R = 0;
        if (r == 1) {
          sg = weight(j) * a[size_t(j)], sgx = weight(j) * b[size_t(j)];
        } else {
          for (int64_t i = j * r; i < (j + 1) * r; ++i) sg += weight(i) * a[size_t(i)], sgx += weight(i) * b[size_t(i)];
        }
        dx_coefficients(statistic, M, rstd[c0 + j], second[c0 + j], eps, sg, sgx, &Q, &R);
        for (int64_t i = j * r; i < (j + 1) * r; ++i)
          pc[size_t(i)] = C(weight(i) * rstd[c0 + j]), qc[size_t(i)] = C(Q), rc[size_t(i)] = C(R);
      }
      rows::col_grad_input_lanes(dy + grp.o.mem, x + grp.o.mem, dx + grp.o.mem, g.key_len, L, hi.data(), lo.data(),
                                 pc.data(), qc.data(), rc.data(), stream);
    }
  }
  return true;
}

template <class T>
bool backward(const ReductionPlan& plan, Statistic statistic, bool batch_stats, double eps,
              const T* dy, const T* x, T* dx, const compute_t<T>* w, double* mean, double* second,
              double* rstd, double* sum_dy, double* sum_dy_xhat, bool recompute, double* affine_dy,
              double* affine_dy_xhat, bool* affine_done) {
  using C = compute_t<T>;
  const Geometry g = make_geometry(plan, GroupBy::Statistic);
  const int64_t S = plan.num_stats();
  const double M = double(plan.stat_size());
  const bool per_stat_w = affine_within_kept(plan);
  const bool fuse = !g.column && g.key_len <= kFuseMax && S >= kFuseMinStats;
  // Fixed statistics: dx = dy * w * rstd needs no sums and, as PyTorch's eval backward, not x
  // (an Inf in x leaves it finite). A statistic of whole runs (BatchNorm on NCHW) writes it in
  // its sums' pass (stat_body); elsewhere the sums go alone and dx is the forward's
  // elementwise pass on dy around a zero mean.
  auto whole_runs = [&] {  // stat_body's first branch (one run per statistic goes to backward_rows)
    const RunList r = make_run_list(g, per_stat_w);
    return r.whole && r.mem.size() > 1;
  };
  if (dx && !batch_stats && !(fuse && whole_runs())) {
    const bool kept = backward(plan, statistic, false, eps, dy, x, static_cast<T*>(nullptr), w, mean, second, rstd,
                               sum_dy, sum_dy_xhat, recompute, affine_dy, affine_dy_xhat, affine_done);
    Scratch<double> zero(static_cast<size_t>(S), 0.0);
    apply_forward(plan, dy, dx, zero.data(), rstd, w, static_cast<const C*>(nullptr));
    return kept;
  }
  if (!fuse && batch_stats && per_stat_w &&
      backward_columns(plan, 1, statistic, recompute, eps, dy, x, dx, w, mean, second, rstd, sum_dy, sum_dy_xhat))
    return per_stat_w;
  if (!fuse) {
    if (batch_stats && recompute) {
      reduce_stats(plan, x, statistic, mean, second);
      for (int64_t s = 0; s < S; ++s) rstd[s] = rstd_of(statistic, second[s], eps);
    }
    Scratch<double> sg(static_cast<size_t>(S)), sgx(static_cast<size_t>(S));
    if (per_stat_w) {  // unweighted sums once; w is one number per statistic
      reduce_grads<T>(plan, GroupBy::Statistic, dy, x, mean, rstd, static_cast<const C*>(nullptr), sum_dy, sum_dy_xhat);
      Scratch<int64_t> aff(static_cast<size_t>(S));
      affine_of_stats(plan, aff.data());
      for (int64_t s = 0; s < S; ++s) {
        const double wv = w ? double(w[aff[size_t(s)]]) : 1.0;
        sg[size_t(s)] = wv * sum_dy[s], sgx[size_t(s)] = wv * sum_dy_xhat[s];
      }
    } else if (dx && batch_stats) {
      reduce_grads(plan, GroupBy::Statistic, dy, x, mean, rstd, w, sg.data(), sgx.data());
    }
    if (!dx) return per_stat_w;
    Scratch<double> Q(static_cast<size_t>(S), 0.0), R(static_cast<size_t>(S), 0.0);
    for (int64_t s = 0; s < S; ++s)
      dx_coefficients(statistic, M, rstd[s], second[s], eps, sg[size_t(s)], sgx[size_t(s)], &Q[size_t(s)],
                      &R[size_t(s)]);
    apply_backward(plan, dy, x, dx, mean, rstd, Q.data(), R.data(), w);
    return per_stat_w;
  }
  // One statistic per task: its statistics, its sums, then dx, all while it is in cache.
  const int64_t as = g.run.affine_stride;
  const bool stream = streams<T>(plan);
  const RunList runs = make_run_list(g, affine_within_kept(plan));
  // Rows of one run each (LayerNorm, RMSNorm) of 2 KiB or more write dx with non-temporal
  // stores on Intel where the tensor outgrows the threads' L2, as forward_rows writes y, the
  // next row requested meanwhile (grad_input's next_row_follows). Xeon VM, a driver timing the
  // backward alone, 1 and 2 threads: LayerNorm 4096x768 5.4-5.7 -> 4.1-4.2 and 2.9-3.3 -> 2.4-2.5
  // ms, 2048x1024 3.5-3.7 -> 2.5-2.9 and 1.8-2.2 -> 1.4-1.6 ms, 32x50176 3.9-4.1 -> 3.2-3.3 and
  // 1.8-1.9 -> 1.4-1.5 ms, RMSNorm 1024x2048 2.8-3.8 -> 2.0-3.1 and 1.5-1.7 -> 1.0-1.2 ms. Shorter
  // rows pay a store fence per row: 16384x128 4.2 -> 7.5 ms at one thread, 8192x256 and 6144x384
  // level or slower.
  const bool rows_stream = !stream && runs.mem.size() == 1 && g.run.stride == 1 &&
                           g.run.size * int64_t(sizeof(T)) >= 2048 && streams_past_l2(plan.numel() * int64_t(sizeof(T)));
  Scratch<double> Q(static_cast<size_t>(S)), R(static_cast<size_t>(S));  // dx coefficients
  // Each run one affine index (GroupNorm: a channel's H*W): the per-run sums the statistic's
  // own pass takes are kept, then added per affine index in statistic and run order. Its
  // passes take whole runs whatever the statistic's segments (for_each_listed_run over all of
  // it), so groups of more than kChunk elements keep them too: without, GroupNorm
  // 2x256x100x152 read dy and x once more for dweight and dbias.
  const int64_t K = int64_t(runs.rel.size());
  const bool per_run_affine = affine_dy && !per_stat_w && !runs.whole && as == 0 && g.run.stride == 1 &&
                              runs.len == g.run.size;
  Scratch<double> run_dy(per_run_affine ? size_t(S * K) : 0), run_dyx(run_dy.size());
  Scratch<int64_t> run_aff(run_dy.size());
  // Whole contiguous runs of one statistic, each with one affine index (GroupNorm on NCHW): the
  // runs go to the list primitives a chunk at a time, with the same per-run sums and dx as one
  // call per run.
  const bool scalar_w_runs = scalar_affine_runs(g, runs, w != nullptr);
  auto stat_body = [&](Offsets base) {
    const int64_t s = base.stat;
    if (batch_stats && recompute) {
      finish_stats(statistic, listed_stats(g, runs, base, x, statistic), mean + s, second + s);
      rstd[s] = rstd_of(statistic, second[s], eps);
    }
    const rows::SplitMean<C> m(mean[s]);
    const double r = rstd[s];
    // u: sums of dy and dy * (x - mean); g: the same with dy weighted by w.
    double u1 = 0, u2 = 0, g1 = 0, g2 = 0;
    const int64_t count = int64_t(runs.mem.size());
    if (runs.whole && dx && !batch_stats) {  // fixed statistics: dx = dy * w * rstd in the sums' pass
      const double wv = w ? double(w[base.aff]) : 1.0;
      rows::grad_sums_scale_list(dy + base.mem, x + base.mem, dx + base.mem, runs.mem.data(), count, runs.len, m,
                                 C(r * wv), &u1, &u2, stream);
      if (per_stat_w) sum_dy[s] = u1, sum_dy_xhat[s] = u2 * r;
      Q[s] = R[s] = 0;
      return;
    }
    if (runs.whole) {  // w is one number for the whole statistic
      const double wv = w ? double(w[base.aff]) : 1.0;
      rows::grad_sums_list(dy + base.mem, x + base.mem, runs.mem.data(), count, runs.len, m, &u1, &u2);
      g1 = wv * u1, g2 = wv * u2;
    } else if (scalar_w_runs) {  // per-run sums of up to kRunChunk runs per dispatched call
      for (int64_t k0 = 0; k0 < count; k0 += kRunChunk) {
        const int64_t n = std::min(kRunChunk, count - k0);
        double ra[kRunChunk], rb[kRunChunk];
        rows::grad_sums_runs(dy + base.mem, x + base.mem, runs.mem.data() + k0, n, runs.len, m, ra, rb);
        for (int64_t k = k0; k < k0 + n; ++k) {
          const double a = ra[k - k0], b = rb[k - k0];
          const int64_t aff = base.aff + runs.rel[size_t(k)].aff;
          const double wv = w ? double(w[aff]) : 1.0;
          u1 += a, u2 += b, g1 += wv * a, g2 += wv * b;
          if (per_run_affine) {
            const size_t at = size_t(s * K + k);
            run_dy[at] = a, run_dyx[at] = b * r, run_aff[at] = aff;
          }
        }
      }
    } else {
      int64_t k = 0;  // the run's index within the statistic
      for_each_listed_run(runs, g.run, base, 0, g.key_len, [&](Offsets o, int64_t len) {
        double a = 0, b = 0;
        const bool wvec = w && as != 0;
        if (g.run.stride == 1 && (!wvec || as == 1)) {
          rows::grad_sums(dy + o.mem, x + o.mem, len, m, wvec ? w + o.aff : static_cast<const C*>(nullptr), &a, &b);
        } else {
          for (int64_t i = 0; i < len; ++i) {
            const double gv = double(dy[o.mem + i * g.run.stride]) * (wvec ? double(w[o.aff + i * as]) : 1.0);
            a += gv, b += gv * (double(x[o.mem + i * g.run.stride]) - mean[s]);
          }
        }
        const double wv = w && !wvec ? double(w[o.aff]) : 1.0;
        u1 += a, u2 += b, g1 += wv * a, g2 += wv * b;
        if (per_run_affine) {
          const size_t at = size_t(s * K + k);
          run_dy[at] = a, run_dyx[at] = b * r, run_aff[at] = o.aff;
        }
        ++k;
      });
    }
    if (per_stat_w) sum_dy[s] = u1, sum_dy_xhat[s] = u2 * r;
    if (!dx) return;
    Q[s] = R[s] = 0;
    if (batch_stats) dx_coefficients(statistic, M, r, second[s], eps, g1, g2 * r, &Q[s], &R[s]);
    if (runs.whole) {
      const double wv = w ? double(w[base.aff]) : 1.0;
      return rows::grad_input_list(dy + base.mem, x + base.mem, dx + base.mem, runs.mem.data(), count, runs.len, m,
                                   C(r * wv), C(Q[s]), C(R[s]), stream);
    }
    if (scalar_w_runs) {
      for (int64_t k0 = 0; k0 < count; k0 += kRunChunk) {
        const int64_t n = std::min(kRunChunk, count - k0);
        C P[kRunChunk];
        for (int64_t k = k0; k < k0 + n; ++k)
          P[k - k0] = C(r * (w ? double(w[base.aff + runs.rel[size_t(k)].aff]) : 1.0));
        rows::grad_input_runs(dy + base.mem, x + base.mem, dx + base.mem, runs.mem.data() + k0, n, runs.len, m, P,
                              C(Q[s]), C(R[s]), stream);
      }
      return;
    }
    for_each_listed_run(runs, g.run, base, 0, g.key_len, [&](Offsets o, int64_t len) {
      // Where the listed runs do not follow each other (BatchNorm on NCHW), a streamed dx pass
      // does not request the next row's dy and x, the next channel's: a channel too large for
      // one list (16x64x112x112, 0.8 MB of dy and of x each) was still in L2 from its sums'
      // pass, and the requests pushed it out (Xeon VM, that backward at 1 thread 17-21 -> 11-16
      // ms, at 2 threads 7.8-9.4 -> 5.8-6.3 ms).
      grad_input_run(g.run, o, len, dy, x, dx, mean, rstd, Q.data(), R.data(), w, stream || rows_stream, runs.follow);
    });
  };
  // Every statistic one contiguous run along which the affine index steps by one (LayerNorm
  // and RMSNorm over rows): the per-affine sums for dweight and dbias are taken from blocks of
  // rows while they are cached, in the segments and blocks reduce_grads(GroupBy::Affine) uses,
  // so they are the same bits without a pass of their own.
  const Geometry ga = affine_dy && !per_stat_w ? make_geometry(plan, GroupBy::Affine) : g;  // g: unused
  const int64_t L = g.run.size;
  if (affine_dy && !per_stat_w && runs.mem.size() == 1 && g.run.stride == 1 && as == 1 && ga.column &&
      ga.owners.count == 1 && ga.key_len == S && ga.run.size == L) {  // (reduce_grads' column blocks
                                                                      // only cut the same sums)
    const int64_t segs = ga.num_segs;
    ScratchBuffer<double> p1(size_t(segs * L)), p2(size_t(segs * L));  // each segment's first block stores
    // One parallel region for the segments and their merge (per index, in segment order: the
    // same bits at any thread count); one thread alone zeroing and merging [32, 50176]'s
    // partials kept the other waiting a tenth of the backward.
#pragma omp parallel if (plan.numel() >= kParallelMin && segs > 1)
    {
#pragma omp for schedule(static)
      for (int64_t seg = 0; seg < segs; ++seg) {
        const int64_t q0 = seg * ga.seg_len, q1 = std::min(S, q0 + ga.seg_len);
        Cursor c(g.owners, q0);  // q0 < q1: every segment has a row, so its first block stores
        AffineRowSums<T> row_sums(dy, x, L, L, p1.data() + seg * L, p2.data() + seg * L, true);
        for (int64_t q = q0; q < q1; ++q, c.next()) {
          const Offsets base = *c;
          stat_body(base);
          row_sums.add(base.mem, mean[base.stat], rstd[base.stat]);
        }
        row_sums.flush();
      }
#pragma omp for schedule(static)
      for (int64_t i = 0; i < L; ++i) {
        double a = 0, b = 0;
        for (int64_t seg = 0; seg < segs; ++seg) a += p1[size_t(seg * L + i)], b += p2[size_t(seg * L + i)];
        affine_dy[i] = a, affine_dy_xhat[i] = b;
      }
    }
    if (affine_done) *affine_done = true;
    return per_stat_w;
  }
  if (runs.whole && runs.mem.size() == 1) {
    backward_rows(g, runs, statistic, batch_stats, recompute, eps, M, dy, x, dx, w, mean, second, rstd, sum_dy,
                  sum_dy_xhat, per_stat_w, stream);
    return per_stat_w;
  }
  for_each_group(g, plan.numel(), [&](int64_t, Offsets base) { stat_body(base); });
  if (per_run_affine) {
    std::fill(affine_dy, affine_dy + plan.num_affine(), 0.0);
    std::fill(affine_dy_xhat, affine_dy_xhat + plan.num_affine(), 0.0);
    for (size_t at = 0; at < run_dy.size(); ++at)
      affine_dy[run_aff[at]] += run_dy[at], affine_dy_xhat[run_aff[at]] += run_dyx[at];
    if (affine_done) *affine_done = true;
  }
  return per_stat_w;
}

#define NORMKIT_INSTANTIATE(T)                                                                     \
  template void reduce_stats<T>(const ReductionPlan&, const T*, Statistic, double*, double*);       \
  template void apply_forward<T>(const ReductionPlan&, const T*, T*, const double*, const double*, \
                                 const compute_t<T>*, const compute_t<T>*, bool);                  \
  template void forward<T>(const ReductionPlan&, Statistic, double, const T*, T*,                  \
                           const compute_t<T>*, const compute_t<T>*, double*, double*, double*,    \
                           bool);                                                                  \
  template void reduce_grads<T>(const ReductionPlan&, GroupBy, const T*, const T*, const double*,  \
                                const double*, const compute_t<T>*, double*, double*);             \
  template void apply_backward<T>(const ReductionPlan&, const T*, const T*, T*, const double*,     \
                                  const double*, const double*, const double*,                     \
                                  const compute_t<T>*);                                            \
  template bool forward_columns<T>(const ReductionPlan&, int64_t, Statistic, double, const T*, T*,           \
                                   const compute_t<T>*, const compute_t<T>*, double*, double*, double*);    \
  template bool backward_columns<T>(const ReductionPlan&, int64_t, Statistic, bool, double, const T*,       \
                                    const T*, T*, const compute_t<T>*, double*, double*, double*, double*,  \
                                    double*);                                                                \
  template bool backward<T>(const ReductionPlan&, Statistic, bool, double, const T*, const T*, T*, \
                            const compute_t<T>*, double*, double*, double*, double*, double*, bool, \
                            double*, double*, bool*);
NORMKIT_INSTANTIATE(float)
NORMKIT_INSTANTIATE(double)
NORMKIT_INSTANTIATE(bfloat16)
NORMKIT_INSTANTIATE(float16)
#undef NORMKIT_INSTANTIATE

}  // namespace normkit::engine
