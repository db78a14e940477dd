// rows.hpp — the row primitives the engine drivers call on one contiguous run of `len`
// elements. SIMD lives behind these (rows_simd-inl.h, Highway with runtime dispatch); the
// drivers never see a vector. Lanes accumulate in T and each call returns double sums, so
// a result depends on the run's length alone, never on threads.
//
// Accuracy: d = (x - m_hi) - m_lo, where m_hi + m_lo is the statistic's mean split into
// two T values; x - m_hi is exact when x is near the mean, so a large offset does not
// cancel away the spread (the failure of E[x^2] - E[x]^2 and of folded x*A + B).
#pragma once

#include <cstdint>

#include "normkit/half.hpp"

namespace normkit::engine::rows {

// Every primitive is internal to the library. Hidden explicitly: a specialization over builtin
// and exported types only (no SplitMean) would otherwise be exported from libnormkit.so
// (tests/consumer checks the symbol table).
#define NORMKIT_ROWS_INTERNAL __attribute__((visibility("hidden")))

using normkit::compute_t;

// The mean as two T values whose sum is the double `m` to T's precision squared.
template <class T>
struct SplitMean {
  T hi, lo;
  explicit SplitMean(double m) : hi(T(m)), lo(T(m - double(T(m)))) {}
};

// Whether a pass storing at y and loading p in step with it (the same element index) loads p at
// the page offsets of stores it has just issued: y lies 1 to 767 bytes ahead of p modulo 4 KiB.
// Such a pass runs at a fraction of its speed (rows_simd-inl.h, BytesAhead, has the figures).
inline constexpr uintptr_t kStoresNear = 768;  // bytes
inline bool stores_just_ahead(const void* y, const void* p) {
  const uintptr_t d = (reinterpret_cast<uintptr_t>(y) - reinterpret_cast<uintptr_t>(p)) % 4096;
  return d != 0 && d < kStoresNear;
}

// A statistic of at most this many bytes per tensor has the next one's requested while it is
// normalized (scale_shift_runs) or its dx written (grad_input_runs); larger ones (GroupNorm
// 2x256x100x152: 486 KiB) would push their own out of L2.
inline constexpr int64_t kFetchNextMax = int64_t{64} << 10;

// The primitives that write an output take `stream`: non-temporal stores for outputs too big
// for the cache (the driver decides; the values are the same).
//
// Each primitive is defined for storage S = float, double, bfloat16 and float16 (explicit
// instantiations in rows_simd_<type>.cpp). Lanes compute in C = compute_t<S>: half elements are
// widened on load and rounded to nearest even on store, one vector at a time (never a
// converted copy of the row).

// s1 = sum d, s2 = sum d^2
template <class S>
NORMKIT_ROWS_INTERNAL void dev_sums(const S* x, int64_t len, SplitMean<compute_t<S>> m, double* s1, double* s2);

// dev_sums of xs around ms and, in the same loop, scale_shift of xn (the same length) around
// mn into y: the same sums and the same y as the two calls, with the next statistic's reads
// and this one's stores in flight together (out of cache they took turns).
template <class S>
NORMKIT_ROWS_INTERNAL void dev_sums_scale_shift(const S* xs, int64_t len, SplitMean<compute_t<S>> ms, double* s1,
                                                double* s2, const S* xn, S* y, SplitMean<compute_t<S>> mn,
                                                compute_t<S> alpha, compute_t<S> beta, bool stream);

// y = d * alpha + beta
template <class S>
NORMKIT_ROWS_INTERNAL void scale_shift(const S* x, S* y, int64_t len, SplitMean<compute_t<S>> m, compute_t<S> alpha,
                 compute_t<S> beta, bool stream = false);

// y = d * rstd * w[i] + b[i]   (w or b may be null: 1 or 0). round_xhat: d * rstd is
// rounded to S before the multiply (LLaMA's RMSNorm order; b must be null then).
template <class S>
NORMKIT_ROWS_INTERNAL void scale_shift_rows(const S* x, S* y, int64_t len, SplitMean<compute_t<S>> m, compute_t<S> rstd,
                      const compute_t<S>* w, const compute_t<S>* b, bool round_xhat = false, bool stream = false);

// With g = dy * w[i] (w null: dy): s1 = sum g, s2 = sum g * d
template <class S>
NORMKIT_ROWS_INTERNAL void grad_sums(const S* dy, const S* x, int64_t len, SplitMean<compute_t<S>> m,
               const compute_t<S>* w, double* s1, double* s2);

// dx = P * g + Q * d + R,  g = dy * w[i] (w null: dy). Streaming, the next row's dy and x (at
// dy + len, x + len) are requested meanwhile where next_row_follows: the row written next.
template <class S>
NORMKIT_ROWS_INTERNAL void grad_input(const S* dy, const S* x, S* dx, int64_t len, SplitMean<compute_t<S>> m,
                const compute_t<S>* w, compute_t<S> P, compute_t<S> Q, compute_t<S> R, bool stream = false,
                bool next_row_follows = true);

// ---- lists of runs: the same four primitives over `count` runs of `len` elements at
// x + offs[r] (a statistic's runs, e.g. BatchNorm's N runs of H*W per channel), in one
// dispatched call. Per-run sums are added in run order, so the results equal run-by-run calls.
template <class S>
NORMKIT_ROWS_INTERNAL void dev_sums_list(const S* x, const int64_t* offs, int64_t count, int64_t len, SplitMean<compute_t<S>> m,
                   double* s1, double* s2);
template <class S>
NORMKIT_ROWS_INTERNAL void scale_shift_list(const S* x, S* y, const int64_t* offs, int64_t count, int64_t len,
                      SplitMean<compute_t<S>> m, compute_t<S> alpha, compute_t<S> beta, bool stream = false);
template <class S>
NORMKIT_ROWS_INTERNAL void grad_sums_list(const S* dy, const S* x, const int64_t* offs, int64_t count, int64_t len,
                    SplitMean<compute_t<S>> m, double* s1, double* s2);
// grad_sums_list's sums (unweighted) and, in the same pass, dx = P * dy: the backward through
// fixed statistics (BatchNorm in eval mode), whose dx, as PyTorch's, does not involve x.
template <class S>
NORMKIT_ROWS_INTERNAL void grad_sums_scale_list(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t count,
                                                int64_t len, SplitMean<compute_t<S>> m, compute_t<S> P, double* s1,
                                                double* s2, bool stream = false);
template <class S>
NORMKIT_ROWS_INTERNAL void grad_input_list(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t count, int64_t len,
                     SplitMean<compute_t<S>> m, compute_t<S> P, compute_t<S> Q, compute_t<S> R, bool stream = false);

// The same lists where each run has its own scalar weight (GroupNorm on NCHW: a channel's H*W
// within its group): y = (x - m) * alpha[r] + beta[r] per run, as scale_shift per run;
// s1[r], s2[r] = grad_sums of run r alone (unweighted); dx = P[r] * dy + Q * (x - m) + R per
// run, as grad_input per run.
template <class S>
NORMKIT_ROWS_INTERNAL void scale_shift_runs(const S* x, S* y, const int64_t* offs, int64_t count, int64_t len,
                                            SplitMean<compute_t<S>> m, const compute_t<S>* alpha,
                                            const compute_t<S>* beta, bool stream = false);
// y = (x - (hi[r] + lo[r])) * alpha[r] + beta[r] over `count` runs of len elements that follow
// each other at x and y (BatchNorm on NCHW), as scale_shift per run, written as one span of
// vectors aligned to y: streamed, only its two ends are partial cache lines. `fetch`: the span
// read next (InstanceNorm's next block of rows), requested into L2 meanwhile, or null.
template <class S>
NORMKIT_ROWS_INTERNAL void scale_shift_span(const S* x, S* y, int64_t count, int64_t len, const compute_t<S>* hi,
                                            const compute_t<S>* lo, const compute_t<S>* alpha,
                                            const compute_t<S>* beta, bool stream = false,
                                            const S* fetch = nullptr);
template <class S>
NORMKIT_ROWS_INTERNAL void grad_sums_runs(const S* dy, const S* x, const int64_t* offs, int64_t count, int64_t len,
                                          SplitMean<compute_t<S>> m, double* s1, double* s2);
template <class S>
NORMKIT_ROWS_INTERNAL void grad_input_runs(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t count,
                                           int64_t len, SplitMean<compute_t<S>> m, const compute_t<S>* P,
                                           compute_t<S> Q, compute_t<S> R, bool stream = false);

// ---- blocks of statistics that are one run each (InstanceNorm on NCHW: H*W per (n, c)),
// `count` of them at x + offs[k], in one dispatched call:
// s1[k], s2[k] = the sums of d and d^2, d = x - m[k] (m null: 0), as dev_sums per row; with
// `copies`, each row is also copied to copies[k] as it is read (see the affine list below);
template <class S>
NORMKIT_ROWS_INTERNAL void dev_sums_rows(const S* x, const int64_t* offs, int64_t count, int64_t len, const double* m, double* s1,
                   double* s2, S* const* copies = nullptr);
// s1[k], s2[k] = grad_sums of row k, unweighted, around mean[k] (as grad_sums_list of one run);
template <class S>
NORMKIT_ROWS_INTERNAL void grad_sums_rows(const S* dy, const S* x, const int64_t* offs, int64_t count, int64_t len,
                                          const double* mean, double* s1, double* s2);
// dx = P[k] * dy + Q[k] * (x - mean[k]) + R[k], as grad_input_list of one run per row; rows
// that follow each other (float, double) are written as one span, and with fetch_next the
// dy and x that follow the span are requested meanwhile (the next block's sums read them).
template <class S>
NORMKIT_ROWS_INTERNAL void grad_input_rows(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t count,
                                           int64_t len, const double* mean, const compute_t<S>* P,
                                           const compute_t<S>* Q, const compute_t<S>* R, bool stream = false,
                                           bool fetch_next = false);
// y = (x - mean[k]) * alpha[k] + beta[k], as scale_shift per row.
template <class S>
NORMKIT_ROWS_INTERNAL void scale_shift_rows_list(const S* x, S* y, const int64_t* offs, int64_t count, int64_t len, const double* mean,
                           const double* alpha, const double* beta, bool stream = false);

// y = (x - mean[k]) * rstd[k] * w[i] + b[i] (w, b null: 1, 0; round_xhat as
// scale_shift_rows), as scale_shift_rows per row. `copies`: row k's x is read from the copy
// copies[k] (dev_sums_rows made it) placed where the pass stores no output just ahead of it
// (stores_just_ahead); x itself is still what the next block's rows are fetched from.
// `even_odd`: w and b are given in even_odd_affine's order (only where it returned true).
template <class S>
NORMKIT_ROWS_INTERNAL void scale_shift_rows_affine_list(const S* x, S* y, const int64_t* offs, int64_t count,
                                                        int64_t len, const double* mean, const double* rstd,
                                                        const compute_t<S>* w, const compute_t<S>* b,
                                                        bool round_xhat, bool stream = false,
                                                        const S* const* copies = nullptr, bool even_odd = false);
// bfloat16 rows compute as their even and odd elements, which on x86 before AVX-512 saves the
// shuffles of widening and narrowing; an affine along the rows is then read in that order.
// Writes v[0, len) in it to out and returns true where scale_shift_rows_affine_list has that
// loop for S (bfloat16 on a vector target); else false, out untouched.
template <class S>
NORMKIT_ROWS_INTERNAL bool even_odd_affine(const compute_t<S>* v, int64_t len, compute_t<S>* out);

// ---- column mode: the statistic changes along the run (channels-last BatchNorm and
// InstanceNorm, a trailing reduced dim of size 1), or the column sums of runs that are each a
// statistic (LayerNorm's and RMSNorm's dweight / dbias).
//
// Per run, in double lanes (halves and floats widened on load), the order of additions per
// element fixed:
// acc[i] += (x[i] - mean[i])^2   (sums of squares, where small statistics need them exact)
template <class S>
NORMKIT_ROWS_INTERNAL void col_add_sq_dev(double* acc, const S* x, int64_t len, const double* mean);

// In blocks: `rows` runs of `len` elements at x + offs[r], element i of every run in column
// i, one dispatched call per block. The forward's blocks compute in compute_t<S> with
// several column vectors in registers across the block's runs, so a block costs about what
// the same elements cost in row mode. The drivers cut a reduction into blocks of at most
// kColRows runs at positions fixed by the shape; each block's lane sums are added to the
// double accumulators, an order fixed per column.
inline constexpr int64_t kColRows = 32;

// s1[i] += sum d, s2[i] += sum d^2, d = x - shift[i]. offs null: `rows` consecutive runs from
// x, summed in blocks of kColRows from the first (the same sums as those blocks listed).
template <class S>
NORMKIT_ROWS_INTERNAL void col_dev_sums(const S* x, const int64_t* offs, int64_t rows, int64_t len,
                                        const compute_t<S>* shift, double* s1, double* s2);

// y = (x - hi[i] - lo[i]) * alpha[i] + beta[i]. offs null: the runs follow each other from x
// (run r at x + r * len), any number of them, with no fence between them but the last; then
// `fetch`, if given, names rows * len elements read next, requested into L2 meanwhile (where
// len is a whole number of vectors).
template <class S>
NORMKIT_ROWS_INTERNAL void col_scale_shift_block(const S* x, S* y, const int64_t* offs, int64_t rows, int64_t len,
                                                 const compute_t<S>* hi, const compute_t<S>* lo,
                                                 const compute_t<S>* alpha, const compute_t<S>* beta,
                                                 bool stream = false, const S* fetch = nullptr);

// LayerNorm's and RMSNorm's dweight / dbias: each run a statistic of its own (hi[r] + lo[r],
// rstd[r], r < rows): s1[i] += sum dy, s2[i] += sum dy * (x - mean_r) * rstd_r. Like the
// forward's blocks, in compute_t<S> lanes across the block (plain sums of products: nothing
// cancels), then double. assign: s1[i] = 0.0 + sum dy (and s2 likewise), the same bits as
// adding to zeroed sums without the zeroing.
template <class S>
NORMKIT_ROWS_INTERNAL void col_grad_sums_rows(const S* dy, const S* x, const int64_t* offs, int64_t rows,
                                              int64_t len, const compute_t<S>* hi, const compute_t<S>* lo,
                                              const compute_t<S>* rstd, double* s1, double* s2,
                                              bool assign = false);

// The backward's blocks for a statistic of a few elements keep double lanes (dx of a statistic
// of one or two elements is a difference of nearly equal terms): s1[i] += sum dy,
// s2[i] += sum dy * (x - mean[i])
template <class S>
NORMKIT_ROWS_INTERNAL void col_grad_sums_block(const S* dy, const S* x, const int64_t* offs, int64_t rows,
                                               int64_t len, const double* mean, double* s1, double* s2);

// dx = P[i] * dy + Q[i] * (x - mean[i]) + R[i]; stream: non-temporal stores where aligned
template <class S>
NORMKIT_ROWS_INTERNAL void col_grad_input_block(const S* dy, const S* x, S* dx, const int64_t* offs, int64_t rows,
                                                int64_t len, const double* mean, const double* P, const double* Q,
                                                const double* R, bool stream);

// For a statistic of many elements (nothing cancels), the same sums in compute_t<S> lanes
// across the block, then double, as the forward's: s1[i] += sum dy, s2[i] += sum dy * (x -
// hi[i] - lo[i]). offs null: `rows` consecutive runs from dy and x, in blocks of kColRows.
template <class S>
NORMKIT_ROWS_INTERNAL void col_grad_sums_cols(const S* dy, const S* x, const int64_t* offs, int64_t rows,
                                              int64_t len, const compute_t<S>* hi, const compute_t<S>* lo,
                                              double* s1, double* s2);

// dx for statistics of many elements (as col_grad_sums_cols), in compute_t<S> lanes as the row
// primitive grad_input computes it: dx = P[i] * dy + ((x - hi[i] - lo[i]) * Q[i] + R[i]), on
// `rows` consecutive runs from dy, x and dx.
template <class S>
NORMKIT_ROWS_INTERNAL void col_grad_input_lanes(const S* dy, const S* x, S* dx, int64_t rows, int64_t len,
                                                const compute_t<S>* hi, const compute_t<S>* lo,
                                                const compute_t<S>* P, const compute_t<S>* Q,
                                                const compute_t<S>* R, bool stream);

// The per-statistic arithmetic of a block of rows after their sums, vectorized across the
// rows (one row at a time its divisions and square roots held InstanceNorm 32x256x14x14's
// forward at the divider's throughput): for k < count, from the sums s1[k], s2[k] of n
// elements, or with `centered` of their deviations from shift[k],
//   centered:   mean = shift + s1/n, second = max(s2 - s1 * (s1/n), 0) / n
//   otherwise:  mean = 0, second = s2 / n, or with `l2` s2 itself
//   rstd = 1 / sqrt(second + eps), or with `l2` 1 / max(sqrt(second), eps),
// written to mean, second and rstd (`shift` and `mean` may be one array). far[k] = 1 where a
// centered row's shift lay too far from its mean for its s2 (the engine's shift_too_far, or a
// sum not finite; mean[k] is then the shift for its second pass), else 0; returns whether any
// did. The caller takes those rows again; the others are final. The same bits as the engine's
// scalar shifted_moments, finish_stats and rstd_of (column statistics take either).
NORMKIT_ROWS_INTERNAL bool row_moments(int64_t count, double n, bool centered, bool l2, double eps,
                                       const double* shift, const double* s1, const double* s2, double* mean,
                                       double* second, double* rstd, double* far);

// A chunk of n runs' column statistics merged into the running ones, vectorized across the
// keys: for k < count, the chunk's moments from the sums s1[k], s2[k] of its deviations from
// shift[k] (mean = shift + s1/n, m2 = max(s2 - s1 * (s1/n), 0)), merged by Chan's formula into
// (acc_n, mean[k], m2[k]) (acc_n == 0: assigned). far as row_moments' (the chunk's shift lay
// too far from its mean, or a sum was not finite); the caller then takes the keys again. The
// same bits as the engine's shifted_moments and chan_merge.
NORMKIT_ROWS_INTERNAL bool merge_chunk_moments(int64_t count, double acc_n, double n, const double* shift,
                                               const double* s1, const double* s2, double* mean, double* m2,
                                               double* far);

// second = m2 / n and rstd = 1 / sqrt(second + eps) for k < count: a variance's finish_stats
// and rstd_of, vectorized, the same bits.
NORMKIT_ROWS_INTERNAL void finish_moments(int64_t count, double n, double eps, const double* m2, double* second,
                                          double* rstd);

#undef NORMKIT_ROWS_INTERNAL

}  // namespace normkit::engine::rows
