// test_normalize.cpp — the generic normalize_forward/backward over arbitrary reduce/affine
// axes and all three statistics, against the oracle's coordinate-by-coordinate version;
// finite differences, strided views, equivalence with the presets, and argument errors.
#include "test_util.hpp"

namespace {
using namespace nk_test;
using normkit::NormalizeArgs;
using normkit::Statistic;

struct NCase {
  Shape shape;
  std::vector<int64_t> reduce, affine;
  Statistic statistic;
};
const std::vector<NCase> kCases = {
    {{2, 3, 4, 5}, {0, 2}, {1, 3}, Statistic::Variance},
    {{3, 5, 7}, {-1}, {-1}, Statistic::MeanSquare},
    {{3, 5, 7}, {1}, {0, 2}, Statistic::L2Norm},
    {{2, 67, 9, 11}, {0, 2, 3}, {1}, Statistic::Variance},
    {{2, 67, 9, 11}, {1, 3}, {}, Statistic::MeanSquare},
    {{17, 33}, {0}, {1}, Statistic::Variance},
    {{5, 1, 7, 3}, {1, 2}, {2}, Statistic::Variance},
    {{1, 3, 5}, {0, 1, 2}, {0, 1, 2}, Statistic::Variance},
    {{7, 3, 5}, {0, 1, 2}, {}, Statistic::L2Norm},
    {{4, 3, 2, 5, 3}, {1, 3}, {0, 4}, Statistic::Variance}};

std::vector<bool> mask(const std::vector<int64_t>& axes, size_t rank) {
  std::vector<bool> m(rank, false);
  for (int64_t a : axes) m[static_cast<size_t>(a < 0 ? a + static_cast<int64_t>(rank) : a)] = true;
  return m;
}
int64_t count(const Shape& s, const std::vector<bool>& m, bool on) {
  int64_t n = 1;
  for (size_t i = 0; i < s.size(); ++i)
    if (m[i] == on) n *= s[i];
  return n;
}
std::string stat_name(Statistic s) {
  return s == Statistic::Variance ? "Variance" : s == Statistic::MeanSquare ? "MeanSquare" : "L2Norm";
}

template <class T>
struct Data {
  NCase k;
  std::vector<bool> rmask, amask;
  int64_t n, S, P;
  std::vector<T> x, w, b, dy;
  explicit Data(NCase kc) : k(std::move(kc)) {
    rmask = mask(k.reduce, k.shape.size());
    amask = mask(k.affine, k.shape.size());
    n = numel(k.shape);
    S = count(k.shape, rmask, false);
    P = count(k.shape, amask, true);
    x = random_vec<T>(n, k.statistic == Statistic::Variance ? 2.0 : 0.3, 1.0);
    w = random_vec<T>(P, 1.0, 0.5);
    b = random_vec<T>(P);
    dy = random_vec<T>(n);
  }
  double eps() const { return k.statistic == Statistic::L2Norm ? 0.0 : 1e-5; }
  NormalizeArgs<T> args(bool affine = true) const {
    NormalizeArgs<T> a;
    a.reduce_axes = k.reduce;
    a.affine_axes = k.affine;
    a.statistic = k.statistic;
    a.weight = cspan(w, affine);
    a.bias = cspan(b, affine && k.statistic == Statistic::Variance);
    a.eps = eps();
    return a;
  }
};

template <class T>
class NormalizeTest : public ::testing::Test {};
TYPED_TEST_SUITE(NormalizeTest, FloatTypes);

TYPED_TEST(NormalizeTest, MatchesReference) {
  using T = TypeParam;
  for (const auto& kc : kCases) {
    Data<T> d(kc);
    const Shape& sh = d.k.shape;
    SCOPED_TRACE(normkit::shape_str(sh) + " " + stat_name(d.k.statistic));
    const bool has_bias = d.k.statistic == Statistic::Variance;
    const T* bias = has_bias ? d.b.data() : nullptr;
    std::vector<T> y_ref(d.n), mean_ref(d.S), rstd_ref(d.S), dx_ref(d.n), dw_ref(d.P), db_ref(d.P);
    normkit::reference::normalize_forward(d.x.data(), y_ref.data(), sh, d.rmask, d.amask, d.k.statistic,
                                          d.w.data(), bias, d.eps(), mean_ref.data(), rstd_ref.data());
    normkit::reference::normalize_backward(d.dy.data(), d.x.data(), dx_ref.data(), sh, d.rmask, d.amask,
                                           d.k.statistic, d.w.data(), d.eps(), dw_ref.data(), db_ref.data());
    auto y = sentinel_vec<T>(d.n), mean = sentinel_vec<T>(d.S), rstd = sentinel_vec<T>(d.S);
    auto dx = sentinel_vec<T>(d.n), dw = sentinel_vec<T>(d.P), db = sentinel_vec<T>(d.P);
    normkit::normalize_forward<T>(cview(d.x, sh), mview(y, sh), d.args(), {mean, rstd});
    normkit::normalize_backward<T>(cview(d.dy, sh), cview(d.x, sh), mview(dx, sh), d.args(), dw,
                                   mspan(db, has_bias));
    expect_close(y, y_ref, tol<T>(), "y");
    expect_close(mean, mean_ref, tol<T>(), "saved mean");
    expect_close(rstd, rstd_ref, tol<T>(), "saved rstd");
    expect_close(dx, dx_ref, grad_tol<T>(), "dx");
    expect_close(dw, dw_ref, grad_tol<T>(), "dweight");
    if (has_bias) expect_close(db, db_ref, grad_tol<T>(), "dbias");
  }
}

// The generic path with BatchNorm's / LayerNorm's axes gives the presets' results.
TYPED_TEST(NormalizeTest, PresetsAreSpecialCases) {
  using T = TypeParam;
  const Shape sh = {3, 5, 4, 7};
  auto x = random_vec<T>(numel(sh), 1.0, 2.0), w = random_vec<T>(5, 1.0, 0.5), b = random_vec<T>(5);
  std::vector<T> y1(numel(sh)), y2(numel(sh));
  NormalizeArgs<T> na;
  na.reduce_axes = {0, 2, 3};
  na.affine_axes = {1};
  na.weight = w;
  na.bias = b;
  normkit::normalize_forward<T>(cview(x, sh), mview(y1, sh), na);
  normkit::BatchNormArgs<T> ba;
  ba.weight = w;
  ba.bias = b;
  ba.training = true;
  normkit::batch_norm_forward<T>(cview(x, sh), mview(y2, sh), ba);
  expect_close(y1, y2, tol<T>(), "normalize vs batch_norm");

  auto lw = random_vec<T>(28, 1.0, 0.5);
  na.reduce_axes = {2, 3};
  na.affine_axes = {2, 3};
  na.weight = lw;
  na.bias = {};
  na.statistic = Statistic::MeanSquare;
  na.eps = 1e-6;
  normkit::normalize_forward<T>(cview(x, sh), mview(y1, sh), na);
  normkit::RMSNormArgs<T> ra;
  ra.normalized_shape = {4, 7};
  ra.weight = lw;
  ra.eps = 1e-6;
  normkit::rms_norm_forward<T>(cview(x, sh), mview(y2, sh), ra);
  expect_close(y1, y2, tol<T>(), "normalize vs rms_norm");
}

TYPED_TEST(NormalizeTest, OutputOverReducedAxesHasZeroMeanUnitVariance) {
  using T = TypeParam;
  const Shape sh = {4, 6, 5, 3};  // reduce over axes 0 and 3: one statistic per (c, h)
  auto x = random_vec<T>(numel(sh), -3.0, 1.0);
  std::vector<T> y(numel(sh));
  NormalizeArgs<T> a;
  a.reduce_axes = {0, 3};
  normkit::normalize_forward<T>(cview(x, sh), mview(y, sh), a);
  for (int64_t c = 0; c < 6; ++c)
    for (int64_t h = 0; h < 5; ++h) {
      double sum = 0, sq = 0;
      for (int64_t n = 0; n < 4; ++n)
        for (int64_t w = 0; w < 3; ++w) sum += y[((n * 6 + c) * 5 + h) * 3 + w];
      for (int64_t n = 0; n < 4; ++n)
        for (int64_t w = 0; w < 3; ++w) sq += std::pow(y[((n * 6 + c) * 5 + h) * 3 + w] - sum / 12, 2);
      EXPECT_NEAR(sum / 12, 0.0, 1e-5);
      EXPECT_NEAR(sq / 12, 1.0, 1e-3);  // var(x) is random here; var / (var + eps)
    }
}

TEST(NormalizeGrad, FiniteDifferences) {
  for (const auto& kc : std::vector<NCase>{{{2, 3, 4}, {0, 2}, {1}, Statistic::Variance},
                                           {{3, 2, 3}, {1, 2}, {2}, Statistic::MeanSquare},
                                           {{3, 4}, {0}, {0, 1}, Statistic::L2Norm},
                                           {{2, 3, 2, 2}, {1, 3}, {0, 2}, Statistic::Variance}}) {
    Data<double> d(kc);
    const Shape& sh = d.k.shape;
    SCOPED_TRACE(normkit::shape_str(sh) + " " + stat_name(d.k.statistic));
    auto r = random_vec<double>(d.n);
    auto loss = [&] {
      std::vector<double> y(d.n);
      normkit::normalize_forward<double>(cview(d.x, sh), mview(y, sh), d.args());
      return dot(y, r);
    };
    const bool has_bias = d.k.statistic == Statistic::Variance;
    std::vector<double> dx(d.n), dw(d.P), db(d.P);
    normkit::normalize_backward<double>(cview(r, sh), cview(d.x, sh), mview(dx, sh), d.args(), dw,
                                        mspan(db, has_bias));
    expect_close(dx, numeric_grad(loss, d.x.data(), d.n), kFdTol, "dx vs finite differences");
    expect_close(dw, numeric_grad(loss, d.w.data(), d.P), kFdTol, "dweight vs finite differences");
    if (has_bias) expect_close(db, numeric_grad(loss, d.b.data(), d.P), kFdTol, "dbias vs finite differences");
  }
}

// L2Norm divides by max(||x||, eps), as torch.nn.functional.normalize: rows whose norm is
// below eps are divided by eps, and there the divisor is a constant (dx = dy * w / eps).
TEST(NormalizeL2, ClampsAtEpsForwardAndBackward) {
  const Shape sh = {6, 5};
  const double eps = 0.5;
  auto x = random_vec<double>(numel(sh), 0.0, 1.0);
  for (int64_t i = 0; i < 5; ++i) x[static_cast<size_t>(2 * 5 + i)] *= 0.05;  // row 2: ||x|| < eps
  for (int64_t i = 0; i < 5; ++i) x[static_cast<size_t>(4 * 5 + i)] *= 0.07;  // row 4 too
  auto w = random_vec<double>(5, 1.0, 0.5), r = random_vec<double>(numel(sh));
  NormalizeArgs<double> a;
  a.reduce_axes = {1};
  a.affine_axes = {1};
  a.statistic = Statistic::L2Norm;
  a.weight = w;
  a.eps = eps;
  std::vector<double> y(numel(sh)), want(numel(sh));
  normkit::normalize_forward<double>(cview(x, sh), mview(y, sh), a);
  int clamped = 0;
  for (int64_t m = 0; m < 6; ++m) {
    double ss = 0;
    for (int64_t i = 0; i < 5; ++i) ss += x[static_cast<size_t>(m * 5 + i)] * x[static_cast<size_t>(m * 5 + i)];
    clamped += std::sqrt(ss) < eps;
    ASSERT_GT(std::abs(std::sqrt(ss) - eps), 1e-3) << "row " << m << " sits on the kink";
    for (int64_t i = 0; i < 5; ++i)
      want[static_cast<size_t>(m * 5 + i)] = x[static_cast<size_t>(m * 5 + i)] / std::max(std::sqrt(ss), eps) * w[size_t(i)];
  }
  ASSERT_EQ(clamped, 2);
  expect_close(y, want, 1e-14, "y vs x / max(||x||, eps) * w");
  auto loss = [&] {
    std::vector<double> yy(numel(sh));
    normkit::normalize_forward<double>(cview(x, sh), mview(yy, sh), a);
    return dot(yy, r);
  };
  std::vector<double> dx(numel(sh)), dw(5);
  normkit::normalize_backward<double>(cview(r, sh), cview(x, sh), mview(dx, sh), a, dw);
  expect_close(dx, numeric_grad(loss, x.data(), numel(sh)), kFdTol, "dx vs finite differences");
  expect_close(dw, numeric_grad(loss, w.data(), 5), kFdTol, "dweight vs finite differences");
  std::vector<bool> red = {false, true}, aff = {false, true};
  std::vector<double> dx_ref(numel(sh)), dw_ref(5), db_ref(5);
  normkit::reference::normalize_backward(r.data(), x.data(), dx_ref.data(), sh, red, aff, Statistic::L2Norm,
                                         w.data(), eps, dw_ref.data(), db_ref.data());
  expect_close(dx, dx_ref, 1e-12, "dx vs the oracle");
}

TYPED_TEST(NormalizeTest, StridedViewsMatchContiguous) {
  using T = TypeParam;
  for (const auto& [kc, channels_last] : std::vector<std::pair<NCase, bool>>{
           {{{2, 5, 3, 7}, {0, 2, 3}, {1}, Statistic::Variance}, true},
           {{{2, 5, 3, 7}, {2, 3}, {1}, Statistic::Variance}, true},
           {{{2, 6, 3, 7}, {1, 3}, {}, Statistic::MeanSquare}, true},
           {{{4, 5, 3}, {1}, {0, 2}, Statistic::Variance}, false},
           {{{4, 5, 3}, {0, 2}, {}, Statistic::L2Norm}, false}}) {
    Data<T> d(kc);
    const Shape& sh = d.k.shape;
    const Strides st = channels_last ? channels_last_strides(sh) : doubled_strides(sh);
    SCOPED_TRACE(normkit::shape_str(sh) + (channels_last ? " channels-last" : " doubled"));
    const bool has_bias = d.k.statistic == Statistic::Variance;
    std::vector<T> y(d.n), dx(d.n), dw(d.P), db(d.P), dw2(d.P), db2(d.P);
    normkit::normalize_forward<T>(cview(d.x, sh), mview(y, sh), d.args());
    normkit::normalize_backward<T>(cview(d.dy, sh), cview(d.x, sh), mview(dx, sh), d.args(), dw, mspan(db, has_bias));
    auto xs = scatter(d.x, sh, st), dys = scatter(d.dy, sh, st);
    auto ys = scatter(sentinel_vec<T>(d.n), sh, st), dxs = ys;
    normkit::normalize_forward<T>(cview(xs, sh, st), mview(ys, sh, st), d.args());
    normkit::normalize_backward<T>(cview(dys, sh, st), cview(xs, sh, st), mview(dxs, sh, st), d.args(), dw2,
                                   mspan(db2, has_bias));
    expect_close(gather(ys, sh, st), y, tol<T>(), "strided y");
    expect_close(gather(dxs, sh, st), dx, grad_tol<T>(), "strided dx");
    expect_close(dw2, dw, grad_tol<T>(), "strided dweight");
    expect_close(db2, db, grad_tol<T>(), "strided dbias");
    expect_gaps_untouched(ys, sh, st, "y");
    expect_gaps_untouched(dxs, sh, st, "dx");
  }
}

// ---- errors --------------------------------------------------------------------------------
struct NErrorCase {
  std::vector<double> x = random_vec<double>(60), y = sentinel_vec<double>(60),
                      w = random_vec<double>(3), dy = random_vec<double>(60),
                      dx = sentinel_vec<double>(60), dw = sentinel_vec<double>(3);
  NormalizeArgs<double> args;
  NErrorCase() {
    args.reduce_axes = {0, 2};
    args.affine_axes = {1};
    args.weight = w;
  }
  void expect_fails(const Shape& xs, const Shape& ys, const std::vector<std::string>& needles,
                    Strides y_strides = {}, bool null_x = false) {
    Snapshot snap;
    for (auto* v : {&y, &dx, &dw}) snap.add(v);
    const double* xp = null_x ? nullptr : x.data();
    expect_error([&] {
      normkit::normalize_forward<double>({xp, xs}, {y.data(), ys, y_strides}, args);
    }, "normalize", needles);
    expect_error([&] {
      normkit::normalize_backward<double>({dy.data(), ys, y_strides}, {xp, xs}, {dx.data(), ys, y_strides},
                                          args, dw);
    }, "normalize", needles);
    snap.expect_unchanged("after error");
  }
};

TEST(NormalizeErrors, BadAxes) {
  NErrorCase e;
  e.args.reduce_axes = {0, 3};
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {"3"});
  e.args.reduce_axes = {0, -3};
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {"-3"});
  e.args.reduce_axes = {0};
  e.args.affine_axes = {5};
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {"5"});
}
TEST(NormalizeErrors, WeightSizeMismatch) {
  NErrorCase e;
  e.expect_fails({4, 5, 3}, {4, 5, 3}, {"3", "5"});
}
TEST(NormalizeErrors, NegativeEps) {
  NErrorCase e;
  e.args.eps = -0.75;
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {"-0.75"});
}
TEST(NormalizeErrors, OutputShapeAndStrideMismatch) {
  NErrorCase e;
  e.expect_fails({4, 3, 5}, {4, 3, 4}, {"4x3x4"});
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {}, {1, 4, 12});
}
TEST(NormalizeErrors, NullInputData) {
  NErrorCase e;
  e.expect_fails({4, 3, 5}, {4, 3, 5}, {}, {}, true);
}

}  // namespace
