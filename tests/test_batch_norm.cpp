// test_batch_norm.cpp — batch_norm_forward/backward against the reference oracle (odd sizes
// to hit vector tails), finite differences, strided/channels-last views, statistics
// identities, and every argument error (message + nothing written).
#include <limits>

#include "engine/rows.hpp"
#include "test_util.hpp"

namespace {
using namespace nk_test;
using normkit::BatchNormArgs;

const std::vector<Shape> kShapes = {{3, 5},       {7, 3, 17},  {1, 33, 5},    {5, 1, 7},
                                    {3, 7, 1, 1}, {2, 3, 3, 5}, {2, 67, 9, 11}, {2, 3, 3, 5, 7},
                                    {17, 33}};

template <class T>
struct BNCase {
  Shape shape;
  NCS d;
  std::vector<T> x, w, b, rm, rv, dy;
  explicit BNCase(Shape s) : shape(std::move(s)), d(ncs(shape)) {
    x = random_vec<T>(numel(shape), 2.0, 1.5);
    w = random_vec<T>(d.C, 1.0, 0.5);
    b = random_vec<T>(d.C);
    rm = random_vec<T>(d.C);
    rv = random_vec<T>(d.C, 1.5, 0.5);
    dy = random_vec<T>(numel(shape));
  }
  BatchNormArgs<T> args(bool training, bool affine = true, bool running = true) {
    BatchNormArgs<T> a;
    a.weight = cspan(w, affine);
    a.bias = cspan(b, affine);
    a.running_mean = mspan(rm, running);
    a.running_var = mspan(rv, running);
    a.training = training;
    a.momentum = 0.3;
    return a;
  }
};

template <class T>
class BatchNormTest : public ::testing::Test {};
TYPED_TEST_SUITE(BatchNormTest, FloatTypes);

// Forward (y, saved stats, running stats) and backward (dx, dweight, dbias) vs the oracle.
template <class T>
void check_against_reference(const Shape& shape, bool training, bool affine, bool running) {
  SCOPED_TRACE("shape " + normkit::shape_str(shape) + (training ? " train" : " eval") +
               (affine ? " affine" : "") + (running ? " running" : ""));
  BNCase<T> c(shape);
  const auto [N, C, S] = c.d;
  const int64_t n = numel(shape);
  auto rm_ref = c.rm, rv_ref = c.rv;
  std::vector<T> y_ref(n), mean_ref(C), rstd_ref(C);
  normkit::reference::batch_norm_forward(c.x.data(), y_ref.data(), N, C, S,
                                         affine ? c.w.data() : nullptr, affine ? c.b.data() : nullptr,
                                         running ? rm_ref.data() : nullptr,
                                         running ? rv_ref.data() : nullptr, training, 0.3, 1e-5,
                                         mean_ref.data(), rstd_ref.data());
  auto y = sentinel_vec<T>(n), mean = sentinel_vec<T>(C), rstd = sentinel_vec<T>(C);
  auto args = c.args(training, affine, running);
  normkit::batch_norm_forward<T>(cview(c.x, shape), mview(y, shape), args, {mean, rstd});
  expect_close(y, y_ref, tol<T>(), "y");
  if (training || !running) {
    expect_close(mean, mean_ref, tol<T>(), "saved mean");
    expect_close(rstd, rstd_ref, tol<T>(), "saved rstd");
  }
  expect_close(c.rm, rm_ref, tol<T>(), "running_mean");
  expect_close(c.rv, rv_ref, tol<T>(), "running_var");

  // Backward reads the (already updated) running stats in eval and must not modify them.
  std::vector<T> dx_ref(n), dw_ref(C), db_ref(C);
  normkit::reference::batch_norm_backward(c.dy.data(), c.x.data(), dx_ref.data(), N, C, S,
                                          affine ? c.w.data() : nullptr,
                                          running ? c.rm.data() : nullptr,
                                          running ? c.rv.data() : nullptr, training, 1e-5,
                                          dw_ref.data(), db_ref.data());
  auto dx = sentinel_vec<T>(n), dw = sentinel_vec<T>(C), db = sentinel_vec<T>(C);
  Snapshot running_stats;
  running_stats.add(&c.rm);
  running_stats.add(&c.rv);
  normkit::batch_norm_backward<T>(cview(c.dy, shape), cview(c.x, shape), mview(dx, shape), args,
                                  dw, db);
  expect_close(dx, dx_ref, grad_tol<T>(), "dx");
  expect_close(dw, dw_ref, grad_tol<T>(), "dweight");
  expect_close(db, db_ref, grad_tol<T>(), "dbias");
  running_stats.expect_unchanged("backward");
}

TYPED_TEST(BatchNormTest, TrainingMatchesReference) {
  for (const auto& s : kShapes) check_against_reference<TypeParam>(s, true, true, true);
  check_against_reference<TypeParam>({4, 3, 5}, true, false, true);
  check_against_reference<TypeParam>({4, 3, 5}, true, true, false);
}

TYPED_TEST(BatchNormTest, EvalMatchesReference) {
  for (const auto& s : kShapes) check_against_reference<TypeParam>(s, false, true, true);
  check_against_reference<TypeParam>({1, 3, 1}, false, true, true);  // one value per channel is fine in eval
  check_against_reference<TypeParam>({4, 3, 5}, false, false, true);
}

TYPED_TEST(BatchNormTest, EvalWithoutRunningStatsUsesBatchStats) {
  check_against_reference<TypeParam>({6, 5, 7}, false, true, false);
  check_against_reference<TypeParam>({2, 67, 9, 11}, false, true, false);
}

// With fixed statistics (eval, running statistics) dx = dy * w * rstd does not involve x, as
// in PyTorch: an Inf or a NaN in x leaves dx finite (the reference, which computes
// rstd * (dy * w - xhat * 0), makes it NaN there), whichever path takes the layout: NCHW with
// enough channels (the sums and dx in one pass), few channels (not fused), channels-last
// (column mode), a strided view (listed runs); and InstanceNorm with running statistics (rows).
TEST(BatchNormEval, GradInputDoesNotInvolveTheInput) {
  struct Layout {
    Shape shape;
    bool channels_last, doubled, instance;
  };
  for (const Layout& l : std::vector<Layout>{{{3, 16, 5, 7}, false, false, false},
                                             {{3, 4, 5, 7}, false, false, false},
                                             {{3, 16, 5, 7}, true, false, false},
                                             {{3, 16, 5, 7}, false, true, false},
                                             {{3, 16, 5, 7}, false, false, true}}) {
    SCOPED_TRACE(normkit::shape_str(l.shape) + (l.channels_last ? " channels-last" : "") +
                 (l.doubled ? " strided" : "") + (l.instance ? " InstanceNorm" : ""));
    BNCase<float> c(l.shape);
    const auto [N, C, S] = c.d;
    c.x[7] = std::numeric_limits<float>::infinity(), c.x[size_t(S) + 2] = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> want(c.x.size());
    for (size_t i = 0; i < want.size(); ++i) {
      const size_t ch = (i / size_t(S)) % size_t(C);
      want[i] = float(double(c.dy[i]) * double(c.w[ch]) / std::sqrt(double(c.rv[ch]) + 1e-5));
    }
    const Strides st = l.channels_last ? channels_last_strides(l.shape)
                       : l.doubled     ? doubled_strides(l.shape)
                                       : normkit::contiguous_strides(l.shape);
    const auto xs = scatter(c.x, l.shape, st), dys = scatter(c.dy, l.shape, st);
    auto dxs = scatter(sentinel_vec<float>(numel(l.shape)), l.shape, st);
    std::vector<float> dw(static_cast<size_t>(C)), db(static_cast<size_t>(C));
    if (l.instance) {
      normkit::InstanceNormArgs<float> a;
      a.weight = c.w, a.bias = c.b, a.running_mean = c.rm, a.running_var = c.rv, a.use_input_stats = false;
      normkit::instance_norm_backward<float>(cview(dys, l.shape, st), cview(xs, l.shape, st), mview(dxs, l.shape, st),
                                             a, dw, db);
    } else {
      normkit::batch_norm_backward<float>(cview(dys, l.shape, st), cview(xs, l.shape, st), mview(dxs, l.shape, st),
                                          c.args(false), dw, db);
    }
    expect_close(gather(dxs, l.shape, st), want, grad_tol<float>(), "dx");
    std::vector<float> db_want(static_cast<size_t>(C), 0.f);
    std::vector<double> sum(static_cast<size_t>(C), 0.0);
    for (size_t i = 0; i < want.size(); ++i) sum[(i / size_t(S)) % size_t(C)] += double(c.dy[i]);
    for (size_t ch = 0; ch < sum.size(); ++ch) db_want[ch] = float(sum[ch]);
    expect_close(db, db_want, grad_tol<float>(), "dbias");  // dy alone
  }
}

TYPED_TEST(BatchNormTest, EvalUsesRunningStatistics) {
  using T = TypeParam;
  BNCase<T> c({3, 4, 5});
  std::vector<T> y(numel(c.shape));
  normkit::batch_norm_forward<T>(cview(c.x, c.shape), mview(y, c.shape), c.args(false));
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t ch = 0; ch < 4; ++ch)
      for (int64_t s = 0; s < 5; ++s) {
        const int64_t i = (n * 4 + ch) * 5 + s;
        const double want = (c.x[i] - double(c.rm[ch])) / std::sqrt(double(c.rv[ch]) + 1e-5) * c.w[ch] + c.b[ch];
        EXPECT_NEAR(y[i], want, 10 * tol<T>() * 4);
      }
}

TYPED_TEST(BatchNormTest, OutputHasZeroMeanUnitVariancePerChannel) {
  using T = TypeParam;
  BNCase<T> c({5, 3, 7, 3});
  std::vector<T> y(numel(c.shape));
  normkit::batch_norm_forward<T>(cview(c.x, c.shape), mview(y, c.shape), c.args(true, false, false));
  const auto [N, C, S] = c.d;
  for (int64_t ch = 0; ch < C; ++ch) {
    double sum = 0, sq = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) sum += y[(n * C + ch) * S + s];
    const double mean = sum / double(N * S);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) sq += (y[(n * C + ch) * S + s] - mean) * (y[(n * C + ch) * S + s] - mean);
    EXPECT_NEAR(mean, 0.0, 1e-5);
    // biased variance of xhat is var / (var + eps): ~1 since var ~ 0.75
    EXPECT_NEAR(sq / double(N * S), 1.0, 1e-4);
  }
}

TYPED_TEST(BatchNormTest, NullGradientOutputsAreSkipped) {
  using T = TypeParam;
  BNCase<T> c({4, 3, 5});
  const auto args = c.args(true, true, false);
  const Shape& s = c.shape;
  std::vector<T> dx_all(numel(s)), dw_all(3), db_all(3);
  normkit::batch_norm_backward<T>(cview(c.dy, s), cview(c.x, s), mview(dx_all, s), args,
                                  dw_all, db_all);
  auto dw = sentinel_vec<T>(3);
  normkit::batch_norm_backward<T>(cview(c.dy, s), cview(c.x, s), normkit::TensorView<T>(nullptr, s),
                                  args, dw);
  expect_close(dw, dw_all, tol<T>(), "dweight alone");
  auto dx = sentinel_vec<T>(numel(s));
  normkit::batch_norm_backward<T>(cview(c.dy, s), cview(c.x, s), mview(dx, s), args);
  expect_close(dx, dx_all, tol<T>(), "dx alone");
}

// ---- finite differences on the library forward (float64) --------------------------------
void fd_check(const Shape& shape, bool training) {
  SCOPED_TRACE(normkit::shape_str(shape) + (training ? " train" : " eval"));
  BNCase<double> c(shape);
  const int64_t n = numel(shape);
  auto r = random_vec<double>(n);
  BatchNormArgs<double> args = c.args(training, true, !training);  // training: no running update
  auto loss = [&] {
    std::vector<double> y(n);
    normkit::batch_norm_forward<double>(cview(c.x, shape), mview(y, shape), args);
    return dot(y, r);
  };
  std::vector<double> dx(n), dw(c.d.C), db(c.d.C);
  normkit::batch_norm_backward<double>(cview(r, shape), cview(c.x, shape), mview(dx, shape), args,
                                       dw, db);
  expect_close(dx, numeric_grad(loss, c.x.data(), n), kFdTol, "dx vs finite differences");
  expect_close(dw, numeric_grad(loss, c.w.data(), c.d.C), kFdTol, "dweight vs finite differences");
  expect_close(db, numeric_grad(loss, c.b.data(), c.d.C), kFdTol, "dbias vs finite differences");
}

TEST(BatchNormGrad, FiniteDifferences) {
  fd_check({3, 4, 5}, true);
  fd_check({7, 3}, true);
  fd_check({2, 3, 2, 3}, false);
}

// ---- strided views -----------------------------------------------------------------------
template <class T>
void strided_check(const Shape& shape, const Strides& strides, bool training) {
  SCOPED_TRACE(normkit::shape_str(shape) + (training ? " train" : " eval"));
  BNCase<T> c(shape);
  const int64_t n = numel(shape);
  auto rm0 = c.rm, rv0 = c.rv;
  std::vector<T> y(n), dx(n), dw(c.d.C), db(c.d.C);
  auto args = c.args(training);
  normkit::batch_norm_forward<T>(cview(c.x, shape), mview(y, shape), args);
  normkit::batch_norm_backward<T>(cview(c.dy, shape), cview(c.x, shape), mview(dx, shape), args,
                                  dw, db);
  const auto rm1 = c.rm, rv1 = c.rv;
  c.rm = rm0;
  c.rv = rv0;
  auto xs = scatter(c.x, shape, strides), dys = scatter(c.dy, shape, strides);
  auto ys = scatter(sentinel_vec<T>(n), shape, strides), dxs = ys;
  std::vector<T> dw2(c.d.C), db2(c.d.C);
  args = c.args(training);
  normkit::batch_norm_forward<T>(cview(xs, shape, strides), mview(ys, shape, strides), args);
  normkit::batch_norm_backward<T>(cview(dys, shape, strides), cview(xs, shape, strides),
                                  mview(dxs, shape, strides), args, dw2, db2);
  expect_close(gather(ys, shape, strides), y, tol<T>(), "strided y");
  expect_close(gather(dxs, shape, strides), dx, grad_tol<T>(), "strided dx");
  expect_close(dw2, dw, grad_tol<T>(), "strided dweight");
  expect_close(db2, db, grad_tol<T>(), "strided dbias");
  expect_close(c.rm, rm1, tol<T>(), "strided running_mean");
  expect_close(c.rv, rv1, tol<T>(), "strided running_var");
  expect_gaps_untouched(ys, shape, strides, "y");
  expect_gaps_untouched(dxs, shape, strides, "dx");
}

TYPED_TEST(BatchNormTest, StridedViewsMatchContiguous) {
  for (const Shape& s : std::vector<Shape>{{3, 5}, {2, 7, 3, 5}, {4, 17, 9}}) {
    strided_check<TypeParam>(s, doubled_strides(s), true);
    strided_check<TypeParam>(s, doubled_strides(s), false);
  }
  // {3, 67, 5, 7}: statistics of 105 elements (the column backward's compute_t lanes), 67
  // channels (whole column vectors and a tail), 105 runs (blocks of 32, odd remainder)
  for (const Shape& s : std::vector<Shape>{{2, 7, 3, 5}, {3, 33, 4, 5}, {2, 5, 3, 2, 3}, {3, 67, 5, 7}}) {
    strided_check<TypeParam>(s, channels_last_strides(s), true);
    strided_check<TypeParam>(s, channels_last_strides(s), false);
  }
}

// ---- errors: message names the op and the value; nothing is written ---------------------
struct BNErrorCase {
  Shape shape = {4, 3, 5};
  std::vector<double> x = random_vec<double>(60), y = sentinel_vec<double>(60),
                      w = random_vec<double>(3), b = random_vec<double>(3),
                      rm = sentinel_vec<double>(3), rv = sentinel_vec<double>(3),
                      dy = random_vec<double>(60), dx = sentinel_vec<double>(60),
                      dw = sentinel_vec<double>(3), db = sentinel_vec<double>(3);
  BatchNormArgs<double> args;
  BNErrorCase() {
    args.weight = w;
    args.bias = b;
    args.running_mean = rm;
    args.running_var = rv;
    args.training = true;
  }
  // Runs forward then backward with the given views; both must fail and write nothing.
  void expect_fails(const Shape& xs, const Shape& ys, const std::vector<std::string>& needles,
                    Strides y_strides = {}, const double* xdata = nullptr, bool use_xdata = false) {
    Snapshot snap;
    for (auto* v : {&y, &rm, &rv, &dx, &dw, &db}) snap.add(v);
    const double* xp = use_xdata ? xdata : x.data();
    expect_error([&] {
      normkit::batch_norm_forward<double>({xp, xs}, {y.data(), ys, y_strides}, args);
    }, "batch_norm", needles);
    expect_error([&] {
      normkit::batch_norm_backward<double>({dy.data(), ys, y_strides}, {xp, xs},
                                           {dx.data(), ys, y_strides}, args, dw, db);
    }, "batch_norm", needles);
    snap.expect_unchanged("after error");
  }
};

// BatchNorm's NCHW forward writes a thread's channels as one span (engine.cpp, apply_forward;
// rows::scale_shift_span): whole vectors aligned to y, a vector across two channels taking
// each lane's coefficients from its own. Its outputs are those of scale_shift run by run, bit
// for bit, at every alignment of y, streamed or not, and in place.
template <class T>
void span_matches_runs(int64_t runs, int64_t len) {
  using normkit::engine::rows::SplitMean;
  const int64_t n = runs * len;
  const auto src = random_vec<float>(n + 64, 3.0, 2.0);
  std::vector<T> x(src.begin(), src.end());
  std::vector<T> hi(static_cast<size_t>(runs)), lo(hi), alpha(hi), beta(hi);
  const auto mean = random_vec<float>(runs, 3.0, 0.5), scale = random_vec<float>(runs, 1.0, 0.5);
  for (int64_t r = 0; r < runs; ++r) {
    const SplitMean<T> m(double(mean[size_t(r)]) + 1e-9 * double(r));
    hi[size_t(r)] = m.hi, lo[size_t(r)] = m.lo, alpha[size_t(r)] = T(scale[size_t(r)]), beta[size_t(r)] = T(0.1 * double(r));
  }
  for (int64_t off = 0; off < 17; ++off) {
    std::vector<T> want(size_t(n + 64)), got(size_t(n + 64), T(-7)), inplace(x);
    const T* xs = x.data() + (off * 5) % 16;  // x and y at independent alignments
    for (int64_t r = 0; r < runs; ++r) {
      SplitMean<T> m(0.0);
      m.hi = hi[size_t(r)], m.lo = lo[size_t(r)];
      normkit::engine::rows::scale_shift<T>(xs + r * len, want.data() + off + r * len, len, m, alpha[size_t(r)],
                                            beta[size_t(r)]);
    }
    for (int mode = 0; mode < 4; ++mode) {  // streamed or not, requesting a span to read next or not
      const bool stream = mode & 1;
      const T* fetch = mode & 2 ? xs + n : nullptr;
      normkit::engine::rows::scale_shift_span<T>(xs, got.data() + off, runs, len, hi.data(), lo.data(), alpha.data(),
                                                 beta.data(), stream, fetch);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(got[size_t(off + i)], want[size_t(off + i)])
            << "runs=" << runs << " len=" << len << " off=" << off << " stream=" << stream << " fetch=" << (mode >> 1)
            << " i=" << i;
      EXPECT_EQ(got[size_t(off + n)], T(-7)) << "wrote past the span";
      if (off > 0) EXPECT_EQ(got[size_t(off - 1)], T(-7)) << "wrote before the span";
    }
    T* xi = inplace.data() + (off * 5) % 16;
    normkit::engine::rows::scale_shift_span<T>(xi, xi, runs, len, hi.data(), lo.data(), alpha.data(), beta.data(),
                                               off % 2 == 1);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(xi[i], want[size_t(off + i)]) << "in place, off=" << off << " i=" << i;
  }
}

TEST(BatchNormSpan, MatchesScaleShiftPerRunBitForBit) {
  for (int64_t len : {1, 7, 16, 17, 63, 196, 1027})
    for (int64_t runs : {1, 2, 5, 33}) span_matches_runs<float>(runs, len), span_matches_runs<double>(runs, len);
}

// The same through the public API: a tensor whose images are consecutive (one span per image
// and thread) gives the bits of the same values laid out with a gap after each image (run by
// run, normalize_run). In eval; and in training with a statistic too large to fuse with its
// normalization (N*H*W > 2^18), which then takes the same pass.
void consecutive_matches_separated(bool training, int64_t N, int64_t C, int64_t H, int64_t W) {
  const int64_t img = C * H * W;
  const auto src = random_vec<float>(N * img, 1.0, 2.0);
  const auto w = random_vec<float>(C, 1.0, 0.5), b = random_vec<float>(C);
  std::vector<float> rm = random_vec<float>(C, 0.1, 0.2), rv = random_vec<float>(C, 1.5, 0.2);
  std::vector<float> rm2 = rm, rv2 = rv;
  BatchNormArgs<float> a;
  a.weight = w, a.bias = b, a.running_mean = rm, a.running_var = rv, a.training = training;
  std::vector<float> y(size_t(N * img));
  normkit::batch_norm_forward<float>(cview(src, {N, C, H, W}), mview(y, {N, C, H, W}), a);
  const int64_t gap = img + 3;  // images 3 elements apart: the runs do not follow each other
  std::vector<float> xg(size_t(N * gap), 0.f), yg(size_t(N * gap), 0.f);
  for (int64_t i = 0; i < N; ++i) std::copy_n(src.begin() + i * img, img, xg.begin() + i * gap);
  a.running_mean = rm2, a.running_var = rv2;
  normkit::batch_norm_forward<float>(cview(xg, {N, C, H, W}, {gap, H * W, W, 1}),
                                     mview(yg, {N, C, H, W}, {gap, H * W, W, 1}), a);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < img; ++j)
      ASSERT_EQ(y[size_t(i * img + j)], yg[size_t(i * gap + j)]) << "training=" << training << " n=" << i << " j=" << j;
  EXPECT_EQ(rm, rm2);
  EXPECT_EQ(rv, rv2);
}

TEST(BatchNormSpan, ConsecutiveImagesMatchSeparatedOnes) {
  consecutive_matches_separated(false, 3, 5, 7, 9);
  consecutive_matches_separated(true, 3, 2, 301, 301);
}

// Channels-last data whose runs follow each other is written by the column primitives as one
// stream of vectors, with non-temporal stores where y is aligned to whole vectors and the tensor
// outgrows the threads' L2 on Intel (engine.cpp, streams_lines). The values do not depend on it:
// y and dx at a 64-byte boundary equal, bit for bit, those written one element further on (plain
// stores), in training and eval. 8x64x33x33 floats: 2.2 MB.
TEST(BatchNormChannelsLast, StreamedOutputsMatchPlainOnesBitForBit) {
  const Shape shape = {8, 64, 33, 33};
  const int64_t n = numel(shape);
  const Strides st = channels_last_strides(shape);
  const auto x = random_vec<float>(n, 0.5, 2.0), dy = random_vec<float>(n);
  const auto w = random_vec<float>(64, 1.0, 0.5), b = random_vec<float>(64);
  for (bool training : {true, false}) {
    std::vector<float> out[2];  // y then dx per placement
    std::vector<float> dw[2], db[2];
    for (int shifted = 0; shifted < 2; ++shifted) {
      std::vector<float> buf(size_t(2 * n + 64)), rm(64, 0.1f), rv(64, 1.3f);
      float* base = buf.data() + (16 - reinterpret_cast<uintptr_t>(buf.data()) % 64 / sizeof(float)) % 16 + shifted;
      ASSERT_EQ(reinterpret_cast<uintptr_t>(base) % 64, shifted ? sizeof(float) : 0);
      BatchNormArgs<float> a;
      a.weight = w, a.bias = b, a.running_mean = rm, a.running_var = rv, a.training = training;
      normkit::batch_norm_forward<float>({x.data(), shape, st}, {base, shape, st}, a);
      out[shifted].assign(base, base + n);
      dw[shifted].assign(64, 0.f), db[shifted].assign(64, 0.f);
      if (training) a.running_mean = {}, a.running_var = {};  // the batch statistics; eval: the running ones
      normkit::batch_norm_backward<float>({dy.data(), shape, st}, {x.data(), shape, st}, {base + n, shape, st}, a,
                                          dw[shifted], db[shifted]);
      out[shifted].insert(out[shifted].end(), base + n, base + 2 * n);
    }
    SCOPED_TRACE(training ? "training" : "eval");
    expect_bitwise(out[0], out[1], "y and dx");
    expect_bitwise(dw[0], dw[1], "dweight");
    expect_bitwise(db[0], db[1], "dbias");
  }
}

// Channels-last outputs past 16 MiB stream where their vectors are aligned; where every buffer
// lies off a vector's alignment (NumPy's and malloc's lie 16 bytes off 64) they are stored
// plainly and the loads straddle lines: the bits of aligned buffers all the same, for
// BatchNorm, GroupNorm and InstanceNorm, forward and backward. 8x64x92x92 floats: 17.3 MB.
TEST(ChannelsLastStreams, BuffersOffAVectorsAlignmentGiveTheSameBits) {
  const Shape shape = {8, 64, 92, 92};
  const int64_t n = numel(shape), C = 64;
  const Strides st = channels_last_strides(shape);
  const auto x0 = random_vec<float>(n, 0.5, 2.0), dy0 = random_vec<float>(n);
  const auto w = random_vec<float>(C, 1.0, 0.5), b = random_vec<float>(C);
  auto run = [&](int op, int64_t off) {  // every buffer `off` bytes past a 64-byte boundary
    std::vector<float> buf(size_t(4 * (n + 32)));
    float* at = buf.data() + (16 - reinterpret_cast<uintptr_t>(buf.data()) % 64 / sizeof(float)) % 16 + off / 4;
    float *x = at, *dy = at + (n + 32), *y = at + 2 * (n + 32), *dx = at + 3 * (n + 32);
    std::copy(x0.begin(), x0.end(), x), std::copy(dy0.begin(), dy0.end(), dy);
    const normkit::TensorView<const float> xv(x, shape, st), dyv(dy, shape, st);
    const normkit::TensorView<float> yv(y, shape, st), dxv(dx, shape, st);
    std::vector<float> dw(static_cast<size_t>(C)), db(static_cast<size_t>(C));
    if (op == 0) {
      std::vector<float> rm(static_cast<size_t>(C), 0.f), rv(static_cast<size_t>(C), 1.f);
      BatchNormArgs<float> a;
      a.weight = w, a.bias = b, a.running_mean = rm, a.running_var = rv, a.training = true;
      normkit::batch_norm_forward<float>(xv, yv, a);
      a.running_mean = {}, a.running_var = {};
      normkit::batch_norm_backward<float>(dyv, xv, dxv, a, dw, db);
    } else if (op == 1) {
      normkit::GroupNormArgs<float> a;
      a.num_groups = 8, a.weight = w, a.bias = b;
      normkit::group_norm_forward<float>(xv, yv, a);
      normkit::group_norm_backward<float>(dyv, xv, dxv, a, dw, db);
    } else {
      normkit::InstanceNormArgs<float> a;
      a.weight = w, a.bias = b;
      normkit::instance_norm_forward<float>(xv, yv, a);
      normkit::instance_norm_backward<float>(dyv, xv, dxv, a, dw, db);
    }
    std::vector<float> out(y, y + n);
    out.insert(out.end(), dx, dx + n);
    out.insert(out.end(), dw.begin(), dw.end()), out.insert(out.end(), db.begin(), db.end());
    return out;
  };
  for (int op : {0, 1, 2}) {
    const auto aligned = run(op, 0);
    for (int64_t off : {16, 48, 4}) {
      SCOPED_TRACE(std::string(op == 0 ? "BatchNorm" : op == 1 ? "GroupNorm" : "InstanceNorm") + ", " +
                   std::to_string(off) + " bytes off 64");
      expect_bitwise(run(op, off), aligned, "y, dx, dweight and dbias");
    }
  }
}

TEST(BatchNormErrors, RankTooLow) {
  BNErrorCase e;
  e.expect_fails({60}, {60}, {"1"});
}
TEST(BatchNormErrors, ChannelCountMismatch) {
  BNErrorCase e;
  e.expect_fails({3, 4, 5}, {3, 4, 5}, {"4"});  // weight, bias and running stats have 3
}
TEST(BatchNormErrors, RunningStatsChannelMismatchWithoutAffine) {
  BNErrorCase e;
  e.args.weight = e.args.bias = {};
  e.expect_fails({3, 4, 5}, {3, 4, 5}, {"4"});
}
TEST(BatchNormErrors, ParameterSizeMismatch) {
  BNErrorCase e;
  std::vector<double> two(2, 1.0);
  e.args.running_var = std::span<double>(two);
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {"running_var", "2", "3"});
  e.args.running_var = e.rv;
  e.args.weight = std::span<const double>(two);
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {"weight", "2", "3"});
}
TEST(BatchNormErrors, SavedStatsSizeMismatch) {
  BNErrorCase e;
  std::vector<double> mean = sentinel_vec<double>(2);
  Snapshot snap;
  snap.add(&mean);
  snap.add(&e.y);
  snap.add(&e.rm);
  expect_error([&] {
    normkit::batch_norm_forward<double>(cview(e.x, {4, 3, 5}), mview(e.y, {4, 3, 5}), e.args, {mean, {}});
  }, "batch_norm", {"2"});
  snap.expect_unchanged("after error");
}
TEST(BatchNormErrors, TrainingWithOneValuePerChannel) {
  BNErrorCase e;
  e.expect_fails({1, 3}, {1, 3}, {"1"});
  e.expect_fails({1, 3, 1, 1}, {1, 3, 1, 1}, {"1"});
}
TEST(BatchNormErrors, NegativeEps) {
  BNErrorCase e;
  e.args.eps = -0.5;
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {"-0.5"});
}
TEST(BatchNormErrors, MomentumOutOfRange) {
  BNErrorCase e;
  e.args.momentum = 1.5;
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {"1.5"});
  e.args.momentum = -0.25;
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {"-0.25"});
}
TEST(BatchNormErrors, OutputShapeMismatch) {
  BNErrorCase e;
  e.expect_fails({4, 3, 5}, {4, 3, 4}, {"4x3x4"});
}
TEST(BatchNormErrors, OutputStrideMismatch) {
  BNErrorCase e;
  e.expect_fails({2, 3, 5}, {2, 3, 5}, {}, {30, 10, 2});
}
TEST(BatchNormErrors, NullInputData) {
  BNErrorCase e;
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {}, {}, nullptr, true);
}

}  // namespace
