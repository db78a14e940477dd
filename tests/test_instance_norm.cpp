// test_instance_norm.cpp — instance_norm_forward/backward against the oracle on odd sizes,
// with and without affine and running statistics (use_input_stats on/off), finite
// differences, strided and channels-last views, and argument errors (nothing written).
#include "engine/rows.hpp"
#include "test_util.hpp"

namespace {
using namespace nk_test;
using normkit::InstanceNormArgs;

const std::vector<Shape> kShapes = {{1, 1, 3},   {3, 5, 7},    {2, 3, 17},   {1, 33, 5, 3},
                                    {2, 7, 3, 5}, {2, 67, 9, 11}, {2, 3, 3, 5, 7}, {5, 1, 33}};

template <class T>
struct INCase {
  Shape shape;
  NCS d;
  std::vector<T> x, w, b, rm, rv, dy;
  explicit INCase(Shape s) : shape(std::move(s)), d(ncs(shape)) {
    x = random_vec<T>(numel(shape), -1.0, 2.0);
    w = random_vec<T>(d.C, 1.0, 0.5);
    b = random_vec<T>(d.C);
    rm = random_vec<T>(d.C);
    rv = random_vec<T>(d.C, 1.5, 0.5);
    dy = random_vec<T>(numel(shape));
  }
  InstanceNormArgs<T> args(bool use_input_stats, bool affine, bool running) {
    InstanceNormArgs<T> a;
    a.weight = cspan(w, affine);
    a.bias = cspan(b, affine);
    a.running_mean = mspan(rm, running);
    a.running_var = mspan(rv, running);
    a.use_input_stats = use_input_stats;
    a.momentum = 0.2;
    return a;
  }
};

template <class T>
class InstanceNormTest : public ::testing::Test {};
TYPED_TEST_SUITE(InstanceNormTest, FloatTypes);

template <class T>
void check_against_reference(const Shape& shape, bool use_input_stats, bool affine, bool running) {
  SCOPED_TRACE("shape " + normkit::shape_str(shape) + (use_input_stats ? " input-stats" : " running-stats") +
               (affine ? " affine" : "") + (running ? " running" : ""));
  INCase<T> c(shape);
  const auto [N, C, S] = c.d;
  const int64_t n = numel(shape);
  const T* w = affine ? c.w.data() : nullptr;
  auto rm_ref = c.rm, rv_ref = c.rv;
  std::vector<T> y_ref(n), mean_ref(N * C), rstd_ref(N * C);
  normkit::reference::instance_norm_forward(c.x.data(), y_ref.data(), N, C, S, w,
                                            affine ? c.b.data() : nullptr,
                                            running ? rm_ref.data() : nullptr,
                                            running ? rv_ref.data() : nullptr, use_input_stats,
                                            0.2, 1e-5, mean_ref.data(), rstd_ref.data());
  auto y = sentinel_vec<T>(n), mean = sentinel_vec<T>(N * C), rstd = sentinel_vec<T>(N * C);
  const auto args = c.args(use_input_stats, affine, running);
  normkit::instance_norm_forward<T>(cview(c.x, shape), mview(y, shape), args, {mean, rstd});
  expect_close(y, y_ref, tol<T>(), "y");
  if (use_input_stats) {
    expect_close(mean, mean_ref, tol<T>(), "saved mean");
    expect_close(rstd, rstd_ref, tol<T>(), "saved rstd");
  }
  expect_close(c.rm, rm_ref, tol<T>(), "running_mean");
  expect_close(c.rv, rv_ref, tol<T>(), "running_var");

  std::vector<T> dx_ref(n), dw_ref(C), db_ref(C);
  normkit::reference::instance_norm_backward(c.dy.data(), c.x.data(), dx_ref.data(), N, C, S, w,
                                             running ? c.rm.data() : nullptr,
                                             running ? c.rv.data() : nullptr, use_input_stats,
                                             1e-5, dw_ref.data(), db_ref.data());
  auto dx = sentinel_vec<T>(n), dw = sentinel_vec<T>(C), db = sentinel_vec<T>(C);
  Snapshot running_stats;
  running_stats.add(&c.rm);
  running_stats.add(&c.rv);
  normkit::instance_norm_backward<T>(cview(c.dy, shape), cview(c.x, shape), mview(dx, shape), args,
                                     mspan(dw, affine), mspan(db, affine));
  expect_close(dx, dx_ref, grad_tol<T>(), "dx");
  if (affine) {
    expect_close(dw, dw_ref, grad_tol<T>(), "dweight");
    expect_close(db, db_ref, grad_tol<T>(), "dbias");
  }
  running_stats.expect_unchanged("backward");
  if (use_input_stats) {  // with the forward's saved statistics: the blocked path, no recompute
    auto dx_saved = sentinel_vec<T>(n), dw_saved = sentinel_vec<T>(C), db_saved = sentinel_vec<T>(C);
    normkit::instance_norm_backward<T>(cview(c.dy, shape), cview(c.x, shape), mview(dx_saved, shape), args,
                                       mspan(dw_saved, affine), mspan(db_saved, affine), {mean, rstd});
    expect_close(dx_saved, dx_ref, grad_tol<T>(), "dx (saved statistics)");
    if (affine) {
      expect_close(dw_saved, dw_ref, grad_tol<T>(), "dweight (saved statistics)");
      expect_close(db_saved, db_ref, grad_tol<T>(), "dbias (saved statistics)");
    }
  }
}

TYPED_TEST(InstanceNormTest, InputStatsMatchReference) {
  for (const auto& s : kShapes) check_against_reference<TypeParam>(s, true, true, true);
  check_against_reference<TypeParam>({3, 5, 7}, true, false, false);
  check_against_reference<TypeParam>({3, 5, 7}, true, true, false);
}

TYPED_TEST(InstanceNormTest, RunningStatsMatchReference) {
  for (const auto& s : kShapes) check_against_reference<TypeParam>(s, false, true, true);
  check_against_reference<TypeParam>({3, 5, 7}, false, false, true);
}

TYPED_TEST(InstanceNormTest, OutputHasZeroMeanUnitVariancePerInstance) {
  using T = TypeParam;
  INCase<T> c({3, 4, 9, 5});
  std::vector<T> y(numel(c.shape));
  normkit::instance_norm_forward<T>(cview(c.x, c.shape), mview(y, c.shape), c.args(true, false, false));
  const int64_t S = c.d.S;
  for (int64_t nc = 0; nc < 12; ++nc) {
    double sum = 0, sq = 0;
    for (int64_t s = 0; s < S; ++s) sum += y[nc * S + s];
    for (int64_t s = 0; s < S; ++s) sq += (y[nc * S + s] - sum / S) * (y[nc * S + s] - sum / S);
    EXPECT_NEAR(sum / S, 0.0, 1e-5);
    EXPECT_NEAR(sq / S, 1.0, 1e-4);
  }
}

void fd_check(const Shape& shape, bool use_input_stats) {
  SCOPED_TRACE(normkit::shape_str(shape));
  INCase<double> c(shape);
  const int64_t n = numel(shape);
  auto r = random_vec<double>(n);
  const auto args = c.args(use_input_stats, true, !use_input_stats);
  auto loss = [&] {
    std::vector<double> y(n);
    normkit::instance_norm_forward<double>(cview(c.x, shape), mview(y, shape), args);
    return dot(y, r);
  };
  std::vector<double> dx(n), dw(c.d.C), db(c.d.C);
  normkit::instance_norm_backward<double>(cview(r, shape), cview(c.x, shape), mview(dx, shape),
                                          args, dw, db);
  expect_close(dx, numeric_grad(loss, c.x.data(), n), kFdTol, "dx vs finite differences");
  expect_close(dw, numeric_grad(loss, c.w.data(), c.d.C), kFdTol, "dweight vs finite differences");
  expect_close(db, numeric_grad(loss, c.b.data(), c.d.C), kFdTol, "dbias vs finite differences");
}

TEST(InstanceNormGrad, FiniteDifferences) {
  fd_check({2, 3, 5}, true);
  fd_check({2, 3, 2, 3}, true);
  fd_check({2, 3, 4}, false);
}

template <class T>
void strided_check(const Shape& shape, const Strides& strides) {
  SCOPED_TRACE(normkit::shape_str(shape));
  INCase<T> c(shape);
  const int64_t n = numel(shape);
  const auto rm0 = c.rm, rv0 = c.rv;
  std::vector<T> y(n), dx(n), dw(c.d.C), db(c.d.C);
  normkit::instance_norm_forward<T>(cview(c.x, shape), mview(y, shape), c.args(true, true, true));
  normkit::instance_norm_backward<T>(cview(c.dy, shape), cview(c.x, shape), mview(dx, shape),
                                     c.args(true, true, true), dw, db);
  const auto rm1 = c.rm, rv1 = c.rv;
  c.rm = rm0;
  c.rv = rv0;
  auto xs = scatter(c.x, shape, strides), dys = scatter(c.dy, shape, strides);
  auto ys = scatter(sentinel_vec<T>(n), shape, strides), dxs = ys;
  std::vector<T> dw2(c.d.C), db2(c.d.C);
  normkit::instance_norm_forward<T>(cview(xs, shape, strides), mview(ys, shape, strides), c.args(true, true, true));
  normkit::instance_norm_backward<T>(cview(dys, shape, strides), cview(xs, shape, strides),
                                     mview(dxs, shape, strides), c.args(true, true, true), dw2, db2);
  expect_close(gather(ys, shape, strides), y, tol<T>(), "strided y");
  expect_close(gather(dxs, shape, strides), dx, grad_tol<T>(), "strided dx");
  expect_close(dw2, dw, grad_tol<T>(), "strided dweight");
  expect_close(db2, db, grad_tol<T>(), "strided dbias");
  expect_close(c.rm, rm1, tol<T>(), "strided running_mean");
  expect_close(c.rv, rv1, tol<T>(), "strided running_var");
  expect_gaps_untouched(ys, shape, strides, "y");
  expect_gaps_untouched(dxs, shape, strides, "dx");
}

TYPED_TEST(InstanceNormTest, StridedViewsMatchContiguous) {
  for (const Shape& s : std::vector<Shape>{{2, 3, 5}, {2, 7, 3, 5}}) strided_check<TypeParam>(s, doubled_strides(s));
  // {2, 67, 9, 9}: statistics of 81 elements (the column backward's compute_t lanes), 67
  // channels (whole column vectors and a tail), 81 runs per image (odd)
  for (const Shape& s : std::vector<Shape>{{2, 7, 3, 5}, {3, 33, 4, 5}, {2, 5, 3, 2, 3}, {2, 67, 9, 9}})
    strided_check<TypeParam>(s, channels_last_strides(s));
}

// Rows that follow each other in memory (NCHW) are normalized, and their dx written, a block at
// a time as one span (engine.cpp: forward_rows, backward_rows; rows::scale_shift_span and
// grad_input_rows' span), streamed on Intel once the tensor outgrows L2 (this shape: 4.4 MB
// in float). The same tensor with a gap after each row goes row by row: the same bits.
template <class T>
void span_matches_gapped_rows(const Shape& shape) {
  SCOPED_TRACE(normkit::shape_str(shape));
  INCase<T> c(shape);
  const int64_t n = numel(shape), HW = shape[2] * shape[3];
  const Strides gapped = {shape[1] * (HW + 3), HW + 3, shape[3], 1};
  // The backward with the forward's saved statistics: the blocked row pass (backward_rows).
  const int64_t NC = shape[0] * shape[1];
  std::vector<T> y(n), dx(n), dw(c.d.C), db(c.d.C), mean(NC), rstd(NC);
  normkit::instance_norm_forward<T>(cview(c.x, shape), mview(y, shape), c.args(true, true, false), {mean, rstd});
  normkit::instance_norm_backward<T>(cview(c.dy, shape), cview(c.x, shape), mview(dx, shape),
                                     c.args(true, true, false), dw, db, {mean, rstd});
  auto xs = scatter(c.x, shape, gapped), dys = scatter(c.dy, shape, gapped);
  auto ys = scatter(sentinel_vec<T>(n), shape, gapped), dxs = ys;
  normkit::instance_norm_forward<T>(cview(xs, shape, gapped), mview(ys, shape, gapped), c.args(true, true, false),
                                    {mean, rstd});
  normkit::instance_norm_backward<T>(cview(dys, shape, gapped), cview(xs, shape, gapped), mview(dxs, shape, gapped),
                                     c.args(true, true, false), dw, db, {mean, rstd});
  const auto yg = gather(ys, shape, gapped), dxg = gather(dxs, shape, gapped);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(y[size_t(i)], yg[size_t(i)]) << "y, element " << i;
    ASSERT_EQ(dx[size_t(i)], dxg[size_t(i)]) << "dx, element " << i;
  }
  expect_gaps_untouched(ys, shape, gapped, "y");
  expect_gaps_untouched(dxs, shape, gapped, "dx");
}

TYPED_TEST(InstanceNormTest, RowsAsOneSpanMatchRowByRowBitForBit) {
  span_matches_gapped_rows<TypeParam>({2, 61, 93, 97});  // rows of 9021: a few to a forward block
  span_matches_gapped_rows<TypeParam>({4, 97, 37, 29});  // rows of 1073: several to a backward block
  span_matches_gapped_rows<TypeParam>({3, 37, 5, 7});    // short rows, many to a block
}

// grad_input_rows over rows that follow each other (one span, GradInputSpan) writes the bits of
// the same rows one call each, at every alignment of dx, streamed or not, requesting the next
// span or not.
template <class T>
void grad_span_matches_rows(int64_t rows, int64_t len) {
  using normkit::compute_t;
  const int64_t n = rows * len;
  const auto dy = random_vec<T>(n + 16, 0.0, 1.0), x = random_vec<T>(n + 16, 3.0, 2.0);
  const auto mean = random_vec<double>(rows, 3.0, 0.5);
  const auto P = random_vec<compute_t<T>>(rows, 1.0, 0.5), Q = random_vec<compute_t<T>>(rows, 0.0, 0.1),
             R = random_vec<compute_t<T>>(rows, 0.0, 0.1);
  std::vector<int64_t> offs(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) offs[size_t(r)] = r * len;
  for (int64_t off = 0; off < 17; ++off) {
    const T* dys = dy.data() + (off * 3) % 16;  // dy, x and dx at independent alignments
    const T* xs = x.data() + (off * 5) % 16;
    std::vector<T> want(size_t(n + 32), T(-7)), got(want);
    for (int64_t r = 0; r < rows; ++r)
      normkit::engine::rows::grad_input_rows<T>(dys, xs, want.data() + off, &offs[size_t(r)], 1, len, &mean[size_t(r)],
                                                &P[size_t(r)], &Q[size_t(r)], &R[size_t(r)]);
    for (int mode = 0; mode < 4; ++mode) {
      const bool stream = mode & 1, fetch_next = mode & 2;
      std::fill(got.begin(), got.end(), T(-7));
      normkit::engine::rows::grad_input_rows<T>(dys, xs, got.data() + off, offs.data(), rows, len, mean.data(),
                                                P.data(), Q.data(), R.data(), stream, fetch_next);
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_EQ(got[i], want[i]) << "rows=" << rows << " len=" << len << " off=" << off << " stream=" << stream
                                   << " fetch_next=" << fetch_next << " i=" << i;
    }
  }
}

TEST(InstanceNormSpan, GradInputRowsMatchOneRowAtATimeBitForBit) {
  for (int64_t len : {1, 7, 16, 17, 63, 196})
    for (int64_t rows : {1, 2, 5, 33}) grad_span_matches_rows<float>(rows, len), grad_span_matches_rows<double>(rows, len);
}

// ---- errors --------------------------------------------------------------------------------
struct INErrorCase {
  std::vector<double> x = random_vec<double>(60), y = sentinel_vec<double>(60),
                      w = random_vec<double>(3), b = random_vec<double>(3),
                      rm = sentinel_vec<double>(3), rv = sentinel_vec<double>(3),
                      dy = random_vec<double>(60), dx = sentinel_vec<double>(60),
                      dw = sentinel_vec<double>(3), db = sentinel_vec<double>(3);
  InstanceNormArgs<double> args;
  INErrorCase() {
    args.weight = w;
    args.bias = b;
    args.running_mean = rm;
    args.running_var = rv;
  }
  void expect_fails(const Shape& xs, const Shape& ys, const std::vector<std::string>& needles,
                    Strides y_strides = {}, bool null_x = false) {
    Snapshot snap;
    for (auto* v : {&y, &rm, &rv, &dx, &dw, &db}) snap.add(v);
    const double* xp = null_x ? nullptr : x.data();
    expect_error([&] {
      normkit::instance_norm_forward<double>({xp, xs}, {y.data(), ys, y_strides}, args);
    }, "instance_norm", needles);
    expect_error([&] {
      normkit::instance_norm_backward<double>({dy.data(), ys, y_strides}, {xp, xs},
                                              {dx.data(), ys, y_strides}, args, dw, db);
    }, "instance_norm", needles);
    snap.expect_unchanged("after error");
  }
};

TEST(InstanceNormErrors, RankTooLow) {
  INErrorCase e;
  e.expect_fails({60}, {60}, {"60"});
}
TEST(InstanceNormErrors, ChannelCountMismatch) {
  INErrorCase e;
  e.expect_fails({3, 4, 5}, {3, 4, 5}, {"4"});
  e.args.weight = e.args.bias = {};  // the running statistics alone
  e.expect_fails({3, 4, 5}, {3, 4, 5}, {"4"});
}
TEST(InstanceNormErrors, NegativeEps) {
  INErrorCase e;
  e.args.eps = -1e-3;
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {"-0.001"});
}
TEST(InstanceNormErrors, MomentumOutOfRange) {
  INErrorCase e;
  e.args.momentum = 2.5;
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {"2.5"});
}
TEST(InstanceNormErrors, OutputShapeAndStrideMismatch) {
  INErrorCase e;
  e.expect_fails({4, 3, 5}, {4, 3, 4}, {"4x3x4"});
  e.expect_fails({2, 3, 5}, {2, 3, 5}, {}, {30, 10, 2});
}
TEST(InstanceNormErrors, NullInputData) {
  INErrorCase e;
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {}, {}, true);
}

// Channels-last InstanceNorm is normalized image by image while the image is in cache; where y
// is aligned to whole vectors and the tensor outgrows the threads' L2 on Intel, y streams and
// the next image is requested meanwhile (engine.cpp, forward_columns). The values do not depend
// on it: y at a 64-byte boundary equals, bit for bit, y one element further on (plain stores).
// 8x128x33x33: 4.5 MB in float32, 2.2 MB in bfloat16.
template <class T>
void check_channels_last_streamed_bits() {
  const Shape shape = {8, 128, 33, 33};
  const int64_t n = numel(shape);
  const Strides st = channels_last_strides(shape);
  const auto src = random_vec<float>(n, 0.5, 2.0);
  const std::vector<T> x(src.begin(), src.end());
  const auto w = random_vec<float>(128, 1.0, 0.5), b = random_vec<float>(128);
  std::vector<T> out[2];
  for (int shifted = 0; shifted < 2; ++shifted) {
    std::vector<T> buf(size_t(n + 64));
    const size_t lanes = 64 / sizeof(T);
    T* base = buf.data() + (lanes - reinterpret_cast<uintptr_t>(buf.data()) % 64 / sizeof(T)) % lanes + shifted;
    ASSERT_EQ(reinterpret_cast<uintptr_t>(base) % 64, shifted ? sizeof(T) : 0);
    InstanceNormArgs<T, float> a;
    a.weight = w, a.bias = b;
    normkit::instance_norm_forward<T, float>({x.data(), shape, st}, {base, shape, st}, a);
    out[shifted].assign(base, base + n);
  }
  expect_bitwise(out[0], out[1], "y");
}

TEST(InstanceNormChannelsLast, StreamedOutputsMatchPlainOnesBitForBit) {
  check_channels_last_streamed_bits<float>();
  check_channels_last_streamed_bits<normkit::bfloat16>();
}

// Channels-last InstanceNorm's backward takes each image's statistics, sums and dx while the
// image is in cache (engine.cpp, backward_columns); a single image takes the unfused passes.
// Every partial is the same: dx of a batch has the bits of each image's dx computed alone.
template <class T>
void check_channels_last_backward_per_image(const Shape& shape) {
  const auto w = random_vec<float>(shape[1], 1.0, 0.5), b = random_vec<float>(shape[1]);
  InstanceNormArgs<T, float> a;
  a.weight = w, a.bias = b;
  std::vector<float> dw(static_cast<size_t>(shape[1])), db(dw.size());
  expect_backward_per_image<T>(
      shape, shape[1], [&](auto x, auto y, auto saved) { normkit::instance_norm_forward<T, float>(x, y, a, saved); },
      [&](auto dy, auto x, auto dx, auto saved) { normkit::instance_norm_backward<T, float>(dy, x, dx, a, dw, db, saved); });
}

TEST(InstanceNormChannelsLast, BackwardOfABatchHasTheBitsOfEachImageAlone) {
  check_channels_last_backward_per_image<float>({5, 67, 9, 11});  // channel tails, odd runs
  check_channels_last_backward_per_image<float>({4, 256, 14, 14});
  check_channels_last_backward_per_image<normkit::bfloat16>({3, 64, 7, 9});
}

// InstanceNorm's backward over rows (NCHW) takes the statistics it is not given block by
// block as the forward takes them (engine.cpp, row_block_stats): in float64, where the saved
// statistics keep every bit, dx and the affine gradients are those of a backward given the
// forward's statistics, at any thread count; rows of one and of two reduction chunks, rows
// whose first elements lie far from their mean (the second pass around the first's mean).
TEST(InstanceNormRows, RecomputedStatisticsGiveTheSavedStatisticsBits) {
  const int saved_threads = normkit::get_num_threads();
  for (const Shape& shape : std::vector<Shape>{{3, 67, 9, 11}, {2, 5, 200, 200}, {9, 9, 1, 2}}) {
    for (const bool ordered : {false, true}) {
      SCOPED_TRACE(normkit::shape_str(shape) + (ordered ? " ordered" : " random"));
      const int64_t n = numel(shape), C = shape[1], per = n / (shape[0] * C);
      auto x = random_vec<double>(n, 0.5, 2.0);
      if (ordered)
        for (int64_t i = 0; i < n; ++i) x[size_t(i)] = 1000.0 + 3.0 * double(i % per);
      const auto dy = random_vec<double>(n), w = random_vec<double>(C, 1.0, 0.5), b = random_vec<double>(C);
      InstanceNormArgs<double> a;
      a.weight = w, a.bias = b;
      std::vector<double> y(x.size()), mean(static_cast<size_t>(n / per)), rstd(mean.size());
      normkit::instance_norm_forward<double>(cview(x, shape), mview(y, shape), a, {mean, rstd});
      for (int t = 1; t <= 3; ++t) {
        normkit::set_num_threads(t);
        std::vector<double> dx[2], dw[2], db[2];
        for (int given = 0; given < 2; ++given) {
          dx[given].assign(x.size(), 0.0), dw[given].assign(size_t(C), 0.0), db[given].assign(size_t(C), 0.0);
          normkit::instance_norm_backward<double>(cview(dy, shape), cview(x, shape), mview(dx[given], shape), a,
                                                  dw[given], db[given],
                                                  given ? normkit::SavedStats<double>{mean, rstd}
                                                        : normkit::SavedStats<double>{});
        }
        const std::string at = std::to_string(t) + " threads: ";
        expect_bitwise(dx[0], dx[1], at + "dx");
        expect_bitwise(dw[0], dw[1], at + "dweight");
        expect_bitwise(db[0], db[1], at + "dbias");
      }
    }
  }
  normkit::set_num_threads(saved_threads);
}

}  // namespace
