// test_rms_norm.cpp — rms_norm_forward/backward against the oracle (LLaMA form and the
// Gemma (1 + w) form, weight optional, eps unset = machine epsilon of T), finite
// differences, strided views, and the argument errors.
#include <cstring>
#include <limits>

#include "test_util.hpp"

namespace {
using namespace nk_test;
using normkit::RMSNormArgs;

struct RMSShape {
  Shape shape, normalized;
};
const std::vector<RMSShape> kShapes = {{{4, 1}, {1}},     {{3, 3}, {3}},          {{5, 5}, {5}},
                                       {{2, 7}, {7}},     {{3, 17}, {17}},        {{1, 33}, {33}},
                                       {{2, 3, 1031}, {1031}}, {{7, 5, 3}, {5, 3}}, {{2, 67, 9, 11}, {9, 11}}};

template <class T>
struct RMSCase {
  Shape shape, normalized;
  int64_t M, D;
  std::vector<T> x, w, dy;
  RMSCase(Shape s, Shape ns) : shape(std::move(s)), normalized(std::move(ns)) {
    D = numel(normalized);
    M = numel(shape) / D;
    x = random_vec<T>(numel(shape), 0.5, 1.0);
    w = random_vec<T>(D, 1.0, 0.5);
    dy = random_vec<T>(numel(shape));
  }
  RMSNormArgs<T> args(bool weight, bool unit_offset, std::optional<double> eps) {
    RMSNormArgs<T> a;
    a.normalized_shape = normalized;
    a.weight = cspan(w, weight);
    a.unit_offset = unit_offset;
    a.eps = eps;
    return a;
  }
};

template <class T>
class RMSNormTest : public ::testing::Test {};
TYPED_TEST_SUITE(RMSNormTest, FloatTypes);

template <class T>
void check_against_reference(const RMSShape& s, bool weight, bool unit_offset, std::optional<double> eps) {
  SCOPED_TRACE("shape " + normkit::shape_str(s.shape) + (weight ? " w" : "") + (unit_offset ? " 1+w" : "") +
               (eps ? " eps=" + std::to_string(*eps) : " eps unset"));
  RMSCase<T> c(s.shape, s.normalized);
  const int64_t n = numel(s.shape), M = c.M, D = c.D;
  const double e = eps.value_or(std::numeric_limits<T>::epsilon());
  const T* w = weight ? c.w.data() : nullptr;
  std::vector<T> y_ref(n), rstd_ref(M);
  normkit::reference::rms_norm_forward(c.x.data(), y_ref.data(), M, D, w, unit_offset, e, rstd_ref.data());
  auto y = sentinel_vec<T>(n), mean = sentinel_vec<T>(M), rstd = sentinel_vec<T>(M);
  const auto args = c.args(weight, unit_offset, eps);
  normkit::rms_norm_forward<T>(cview(c.x, s.shape), mview(y, s.shape), args, {mean, rstd});
  expect_close(y, y_ref, tol<T>(), "y");
  expect_close(mean, std::vector<T>(M, T(0)), 0.0, "saved mean (0 for RMSNorm)");
  expect_close(rstd, rstd_ref, tol<T>(), "saved rstd");

  std::vector<T> dx_ref(n), dw_ref(D);
  normkit::reference::rms_norm_backward(c.dy.data(), c.x.data(), dx_ref.data(), M, D, w, unit_offset,
                                        e, dw_ref.data());
  auto dx = sentinel_vec<T>(n), dw = sentinel_vec<T>(D);
  normkit::rms_norm_backward<T>(cview(c.dy, s.shape), cview(c.x, s.shape), mview(dx, s.shape), args,
                                mspan(dw, weight));
  // Rows of one element: dx = rstd * w * dy * eps / (x^2 + eps), a difference of terms of size
  // rstd * |w * dy| (hundreds where x is near 0), so the error is held to the terms' size.
  std::vector<double> w_eff(c.w.begin(), c.w.end());
  for (auto& v : w_eff) v = weight ? (unit_offset ? 1.0 + v : v) : 1.0;
  expect_close(dx, dx_ref, grad_tol<T>(), "dx", std::max(1e-3, max_abs(rstd_ref) * max_abs(c.dy) * max_abs(w_eff)));
  if (weight) expect_close(dw, dw_ref, grad_tol<T>(), "dweight");
}

TYPED_TEST(RMSNormTest, MatchesReference) {
  for (const auto& s : kShapes) {
    check_against_reference<TypeParam>(s, true, false, std::nullopt);
    check_against_reference<TypeParam>(s, true, true, 1e-6);
  }
  check_against_reference<TypeParam>({{3, 17}, {17}}, false, false, 1e-5);
  check_against_reference<TypeParam>({{3, 17}, {17}}, true, false, 0.0);
}

// eps unset means numeric_limits<T>::epsilon(): visible on rows of tiny values.
TYPED_TEST(RMSNormTest, UnsetEpsIsMachineEpsilon) {
  using T = TypeParam;
  const Shape shape = {2, 5};
  std::vector<T> x = {1e-4f, -2e-4f, 3e-4f, 0, 1e-4f, 1, 2, 3, 4, 5}, y(10), rstd(2);
  RMSNormArgs<T> a;
  a.normalized_shape = {5};
  normkit::rms_norm_forward<T>(cview(x, shape), mview(y, shape), a, {{}, rstd});
  for (int64_t m = 0; m < 2; ++m) {
    double ms = 0;
    for (int64_t d = 0; d < 5; ++d) ms += double(x[m * 5 + d]) * x[m * 5 + d] / 5;
    EXPECT_NEAR(rstd[m], 1.0 / std::sqrt(ms + std::numeric_limits<T>::epsilon()),
                tol<T>() / std::sqrt(ms + std::numeric_limits<T>::epsilon()));
  }
}

TYPED_TEST(RMSNormTest, UnitOffsetWithZeroWeightIsPlainRMSNorm) {
  using T = TypeParam;
  RMSCase<T> c({3, 33}, {33});
  std::fill(c.w.begin(), c.w.end(), T(0));
  std::vector<T> y1(99), y2(99);
  normkit::rms_norm_forward<T>(cview(c.x, c.shape), mview(y1, c.shape), c.args(true, true, 1e-6));
  normkit::rms_norm_forward<T>(cview(c.x, c.shape), mview(y2, c.shape), c.args(false, false, 1e-6));
  expect_close(y1, y2, tol<T>(), "(1 + 0) * xhat vs xhat");
}

TEST(RMSNormGrad, FiniteDifferences) {
  for (bool unit_offset : {false, true}) {
    SCOPED_TRACE(unit_offset ? "unit_offset" : "plain");
    const Shape shape = {3, 7}, ns = {7};
    RMSCase<double> c(shape, ns);
    const int64_t n = 21;
    auto r = random_vec<double>(n);
    const auto args = c.args(true, unit_offset, 1e-5);
    auto loss = [&] {
      std::vector<double> y(n);
      normkit::rms_norm_forward<double>(cview(c.x, shape), mview(y, shape), args);
      return dot(y, r);
    };
    std::vector<double> dx(n), dw(7);
    normkit::rms_norm_backward<double>(cview(r, shape), cview(c.x, shape), mview(dx, shape), args, dw);
    expect_close(dx, numeric_grad(loss, c.x.data(), n), kFdTol, "dx vs finite differences");
    expect_close(dw, numeric_grad(loss, c.w.data(), 7), kFdTol, "dweight vs finite differences");
  }
}

template <class T>
void strided_check(const RMSShape& s, const Strides& strides) {
  SCOPED_TRACE(normkit::shape_str(s.shape));
  RMSCase<T> c(s.shape, s.normalized);
  const int64_t n = numel(s.shape);
  const auto args = c.args(true, false, 1e-6);
  std::vector<T> y(n), dx(n), dw(c.D), dw2(c.D);
  normkit::rms_norm_forward<T>(cview(c.x, s.shape), mview(y, s.shape), args);
  normkit::rms_norm_backward<T>(cview(c.dy, s.shape), cview(c.x, s.shape), mview(dx, s.shape), args, dw);
  auto xs = scatter(c.x, s.shape, strides), dys = scatter(c.dy, s.shape, strides);
  auto ys = scatter(sentinel_vec<T>(n), s.shape, strides), dxs = ys;
  normkit::rms_norm_forward<T>(cview(xs, s.shape, strides), mview(ys, s.shape, strides), args);
  normkit::rms_norm_backward<T>(cview(dys, s.shape, strides), cview(xs, s.shape, strides),
                                mview(dxs, s.shape, strides), args, dw2);
  expect_close(gather(ys, s.shape, strides), y, tol<T>(), "strided y");
  expect_close(gather(dxs, s.shape, strides), dx, grad_tol<T>(), "strided dx");
  expect_close(dw2, dw, grad_tol<T>(), "strided dweight");
  expect_gaps_untouched(ys, s.shape, strides, "y");
  expect_gaps_untouched(dxs, s.shape, strides, "dx");
}

TYPED_TEST(RMSNormTest, StridedViewsMatchContiguous) {
  strided_check<TypeParam>({{5, 17}, {17}}, doubled_strides({5, 17}));
  strided_check<TypeParam>({{5, 17}, {17}}, {1, 5});
  strided_check<TypeParam>({{2, 7, 3, 5}, {3, 5}}, channels_last_strides({2, 7, 3, 5}));
}

// ---- errors --------------------------------------------------------------------------------
struct RMSErrorCase {
  std::vector<double> x = random_vec<double>(60), y = sentinel_vec<double>(60),
                      w = random_vec<double>(20), dy = random_vec<double>(60),
                      dx = sentinel_vec<double>(60), dw = sentinel_vec<double>(20);
  RMSNormArgs<double> args;
  RMSErrorCase() {
    args.normalized_shape = {4, 5};
    args.weight = w;
  }
  void expect_fails(const Shape& xs, const Shape& ys, const std::vector<std::string>& needles,
                    Strides y_strides = {}, bool null_x = false) {
    Snapshot snap;
    for (auto* v : {&y, &dx, &dw}) snap.add(v);
    const double* xp = null_x ? nullptr : x.data();
    expect_error([&] {
      normkit::rms_norm_forward<double>({xp, xs}, {y.data(), ys, y_strides}, args);
    }, "rms_norm", needles);
    expect_error([&] {
      normkit::rms_norm_backward<double>({dy.data(), ys, y_strides}, {xp, xs},
                                         {dx.data(), ys, y_strides}, args, dw);
    }, "rms_norm", needles);
    snap.expect_unchanged("after error");
  }
};

TEST(RMSNormErrors, NormalizedShapeNotMatchingTrailingDims) {
  RMSErrorCase e;
  e.expect_fails({3, 5, 4}, {3, 5, 4}, {"4x5", "3x5x4"});
  e.args.normalized_shape = {2, 3, 4, 5};
  e.expect_fails({3, 4, 5}, {3, 4, 5}, {"2x3x4x5"});
}
TEST(RMSNormErrors, NegativeEps) {
  RMSErrorCase e;
  e.args.eps = -0.125;
  e.expect_fails({3, 4, 5}, {3, 4, 5}, {"-0.125"});
}
TEST(RMSNormErrors, OutputShapeAndStrideMismatch) {
  RMSErrorCase e;
  e.expect_fails({3, 4, 5}, {3, 4, 4}, {"3x4x4"});
  e.expect_fails({3, 4, 5}, {3, 4, 5}, {}, {1, 3, 12});
}
TEST(RMSNormErrors, NullInputData) {
  RMSErrorCase e;
  e.expect_fails({3, 4, 5}, {3, 4, 5}, {}, {}, true);
}

// Outputs of 16 MiB and more are written with non-temporal stores; where y lies just ahead of
// x or of the weight modulo 4 KiB the rows are read from copies placed elsewhere (engine.cpp,
// AwayFromStores; the weight alone, no bias, is RMSNorm's case). The same bits as separate
// buffers, and the reference's values.
TEST(RMSNormStreams, OutputJustAheadOfInputOrWeightGivesTheSameBits) {
  const int64_t M = 1030, D = 4096, n = M * D;  // 16.1 MiB
  const auto x_alone = random_vec<float>(n, 1.0, 2.0), w = random_vec<float>(D, 1.0, 0.5);
  // The weight at `ahead` bytes behind y modulo 4 KiB (in `store`).
  auto place = [&](std::vector<float>& store, const float* y, int64_t ahead) {
    store.assign(w.size() + 1024, 0.f);
    const uintptr_t want = (reinterpret_cast<uintptr_t>(y) - uintptr_t(ahead)) % 4096;
    size_t o = 0;  // float-aligned, so one of the first 1024 positions
    while (reinterpret_cast<uintptr_t>(store.data() + o) % 4096 != want) ++o;
    std::copy(w.begin(), w.end(), store.begin() + std::ptrdiff_t(o));
    RMSNormArgs<float> args;
    args.normalized_shape = {D};
    args.weight = std::span<const float>(store.data() + o, w.size());
    args.eps = 1e-5;
    return args;
  };
  // The baseline: separate buffers, the weight half a page from y (no copy involved).
  std::vector<float> y_alone(static_cast<size_t>(n)), y_ref(static_cast<size_t>(n)), w_far;
  normkit::rms_norm_forward<float>(cview(x_alone, {M, D}), mview(y_alone, {M, D}), place(w_far, y_alone.data(), 2048));
  normkit::reference::rms_norm_forward(x_alone.data(), y_ref.data(), M, D, w.data(), false, 1e-5);
  expect_close(y_alone, y_ref, tol<float>(), "y");
  for (int64_t ahead : {64, 600}) {
    SCOPED_TRACE("y " + std::to_string(ahead) + " bytes past the end of x");
    std::vector<float> buf(static_cast<size_t>(2 * n + ahead / 4 + 16)), ws;
    float* x = buf.data();
    float* y = x + n + ahead / 4;
    std::copy(x_alone.begin(), x_alone.end(), x);
    normkit::rms_norm_forward<float>(normkit::TensorView<const float>(x, {M, D}), normkit::TensorView<float>(y, {M, D}),
                                     place(ws, y, 2048));
    EXPECT_EQ(std::memcmp(y, y_alone.data(), static_cast<size_t>(n) * sizeof(float)), 0);
  }
  for (int64_t ahead : {64, 448}) {
    SCOPED_TRACE("y " + std::to_string(ahead) + " bytes ahead of the weight modulo 4 KiB");
    std::vector<float> y(static_cast<size_t>(n)), ws;
    normkit::rms_norm_forward<float>(cview(x_alone, {M, D}), mview(y, {M, D}), place(ws, y.data(), ahead));
    EXPECT_EQ(std::memcmp(y.data(), y_alone.data(), static_cast<size_t>(n) * sizeof(float)), 0);
  }
}

}  // namespace
