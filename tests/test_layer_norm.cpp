// test_layer_norm.cpp — layer_norm_forward/backward against the oracle for row lengths that
// hit vector tails (1, 3, 5, 7, 17, 33, 1000+), multi-dim normalized_shape, weight and bias
// each optional, finite differences, strided views, and the argument errors.
#include <cstring>

#include "test_util.hpp"

namespace {
using namespace nk_test;
using normkit::LayerNormArgs;

struct LNShape {
  Shape shape, normalized;
};
const std::vector<LNShape> kShapes = {
    {{4, 1}, {1}},       {{3, 3}, {3}},          {{5, 5}, {5}},       {{2, 7}, {7}},
    {{3, 17}, {17}},     {{1, 33}, {33}},        {{2, 3, 1031}, {1031}}, {{7, 5, 3}, {5, 3}},
    {{2, 67, 9, 11}, {67, 9, 11}}, {{2, 67, 9, 11}, {9, 11}}, {{33}, {33}}};

template <class T>
struct LNCase {
  Shape shape, normalized;
  int64_t M, D;
  std::vector<T> x, w, b, dy;
  LNCase(Shape s, Shape ns) : shape(std::move(s)), normalized(std::move(ns)) {
    D = numel(normalized);
    M = numel(shape) / D;
    x = random_vec<T>(numel(shape), 3.0, 1.0);
    w = random_vec<T>(D, 1.0, 0.5);
    b = random_vec<T>(D);
    dy = random_vec<T>(numel(shape));
  }
  LayerNormArgs<T> args(bool weight = true, bool bias = true) {
    LayerNormArgs<T> a;
    a.normalized_shape = normalized;
    a.weight = cspan(w, weight);
    a.bias = cspan(b, bias);
    return a;
  }
};

template <class T>
class LayerNormTest : public ::testing::Test {};
TYPED_TEST_SUITE(LayerNormTest, FloatTypes);

template <class T>
void check_against_reference(const LNShape& s, bool weight, bool bias) {
  SCOPED_TRACE("shape " + normkit::shape_str(s.shape) + " over " + normkit::shape_str(s.normalized) +
               (weight ? " w" : "") + (bias ? " b" : ""));
  LNCase<T> c(s.shape, s.normalized);
  const int64_t n = numel(s.shape), M = c.M, D = c.D;
  const T* w = weight ? c.w.data() : nullptr;
  std::vector<T> y_ref(n), mean_ref(M), rstd_ref(M);
  normkit::reference::layer_norm_forward(c.x.data(), y_ref.data(), M, D, w, bias ? c.b.data() : nullptr,
                                         1e-5, mean_ref.data(), rstd_ref.data());
  auto y = sentinel_vec<T>(n), mean = sentinel_vec<T>(M), rstd = sentinel_vec<T>(M);
  normkit::layer_norm_forward<T>(cview(c.x, s.shape), mview(y, s.shape), c.args(weight, bias),
                                 {mean, rstd});
  expect_close(y, y_ref, tol<T>(), "y");
  expect_close(mean, mean_ref, tol<T>(), "saved mean");
  expect_close(rstd, rstd_ref, tol<T>(), "saved rstd");

  std::vector<T> dx_ref(n), dw_ref(D), db_ref(D);
  normkit::reference::layer_norm_backward(c.dy.data(), c.x.data(), dx_ref.data(), M, D, w, 1e-5,
                                          dw_ref.data(), db_ref.data());
  auto dx = sentinel_vec<T>(n), dw = sentinel_vec<T>(D), db = sentinel_vec<T>(D);
  normkit::layer_norm_backward<T>(cview(c.dy, s.shape), cview(c.x, s.shape), mview(dx, s.shape),
                                  c.args(weight, bias), mspan(dw, weight),
                                  mspan(db, bias));
  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) cancels to ~0 when D is 1 or 2: the
  // error then has the size of its terms, rstd * |dy * w|.
  double terms = 0;
  for (int64_t i = 0; i < n; ++i)
    terms = std::max(terms, std::abs(double(c.dy[size_t(i)]) * (w ? double(w[i % D]) : 1.0)) *
                                double(rstd_ref[size_t(i / D)]));
  expect_close(dx, dx_ref, grad_tol<T>(), "dx", std::max(1e-3, terms));
  if (weight) expect_close(dw, dw_ref, grad_tol<T>(), "dweight");
  if (bias) expect_close(db, db_ref, grad_tol<T>(), "dbias");
}

TYPED_TEST(LayerNormTest, MatchesReference) {
  for (const auto& s : kShapes) check_against_reference<TypeParam>(s, true, true);
  check_against_reference<TypeParam>({{3, 17}, {17}}, false, false);
  check_against_reference<TypeParam>({{3, 17}, {17}}, true, false);
  check_against_reference<TypeParam>({{3, 17}, {17}}, false, true);
}

// Rows of more than one reduction chunk (32768 elements) take their statistics chunk by chunk,
// and in cache rows whose x, w and b outgrow L2 are normalized in column tiles across a block
// of rows (engine.cpp, forward_rows): odd lengths leave a partial last tile.
TYPED_TEST(LayerNormTest, LongRowsOfSeveralChunks) {
  // At least 8 rows: fewer are not fused (engine.cpp, kFuseMinStats).
  check_against_reference<TypeParam>({{9, 40009}, {40009}}, true, true);
  check_against_reference<TypeParam>({{8, 7, 5003}, {7, 5003}}, true, false);
  check_against_reference<TypeParam>({{9, 70001}, {70001}}, false, false);  // three chunks, no affine
}

// The rows of one call have the bits of each row normalized alone (one statistic: the
// unfused reduction and elementwise pass), for any thread count.
template <class T>
void check_rows_as_alone(int64_t M, int64_t D) {
  SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(D));
  const auto src = random_vec<float>(M * D, 2.0, 1.5);
  const auto w = random_vec<float>(D, 1.0, 0.5), b = random_vec<float>(D);
  std::vector<T> x(src.begin(), src.end());
  LayerNormArgs<T, float> args;
  args.normalized_shape = {D};
  args.weight = w;
  args.bias = b;
  std::vector<T> alone(x.size());
  std::vector<float> mean_alone(M), rstd_alone(M);
  for (int64_t m = 0; m < M; ++m)
    normkit::layer_norm_forward<T, float>(normkit::TensorView<const T>(x.data() + m * D, {1, D}),
                                          normkit::TensorView<T>(alone.data() + m * D, {1, D}), args,
                                          {std::span<float>(mean_alone).subspan(size_t(m), 1),
                                           std::span<float>(rstd_alone).subspan(size_t(m), 1)});
  const int saved = normkit::get_num_threads();
  for (int t = 1; t <= 4; ++t) {
    normkit::set_num_threads(t);
    std::vector<T> y(x.size());
    std::vector<float> mean(M), rstd(M);
    normkit::layer_norm_forward<T, float>(cview(x, {M, D}), mview(y, {M, D}), args, {mean, rstd});
    expect_bitwise(y, alone, "y with " + std::to_string(t) + " threads");
    expect_bitwise(mean, mean_alone, "mean with " + std::to_string(t) + " threads");
    expect_bitwise(rstd, rstd_alone, "rstd with " + std::to_string(t) + " threads");
  }
  normkit::set_num_threads(saved);
}

TEST(LayerNormRows, LongRowsHaveTheBitsOfEachRowAlone) {
  check_rows_as_alone<float>(11, 40009);
  check_rows_as_alone<normkit::bfloat16>(10, 50176);  // LayerNorm([256,14,14]), rounded xhat
  check_rows_as_alone<float>(9, 30011);                // one chunk, still tiled
}

TYPED_TEST(LayerNormTest, OutputHasZeroMeanUnitVariancePerRow) {
  using T = TypeParam;
  LNCase<T> c({6, 257}, {257});
  std::vector<T> y(numel(c.shape));
  normkit::layer_norm_forward<T>(cview(c.x, c.shape), mview(y, c.shape), c.args(false, false));
  for (int64_t m = 0; m < 6; ++m) {
    double sum = 0, sq = 0;
    for (int64_t d = 0; d < 257; ++d) sum += y[m * 257 + d];
    for (int64_t d = 0; d < 257; ++d) sq += (y[m * 257 + d] - sum / 257) * (y[m * 257 + d] - sum / 257);
    EXPECT_NEAR(sum / 257, 0.0, 1e-5);
    EXPECT_NEAR(sq / 257, 1.0, 2e-4);  // var(x) ~ 1/3: xhat variance is var / (var + eps)
  }
}

TEST(LayerNormGrad, FiniteDifferences) {
  for (const auto& s : std::vector<LNShape>{{{3, 7}, {7}}, {{2, 3, 4}, {3, 4}}}) {
    SCOPED_TRACE(normkit::shape_str(s.shape));
    LNCase<double> c(s.shape, s.normalized);
    const int64_t n = numel(s.shape);
    auto r = random_vec<double>(n);
    auto loss = [&] {
      std::vector<double> y(n);
      normkit::layer_norm_forward<double>(cview(c.x, s.shape), mview(y, s.shape), c.args());
      return dot(y, r);
    };
    std::vector<double> dx(n), dw(c.D), db(c.D);
    normkit::layer_norm_backward<double>(cview(r, s.shape), cview(c.x, s.shape), mview(dx, s.shape),
                                         c.args(), dw, db);
    expect_close(dx, numeric_grad(loss, c.x.data(), n), kFdTol, "dx vs finite differences");
    expect_close(dw, numeric_grad(loss, c.w.data(), c.D), kFdTol, "dweight vs finite differences");
    expect_close(db, numeric_grad(loss, c.b.data(), c.D), kFdTol, "dbias vs finite differences");
  }
}

template <class T>
void strided_check(const LNShape& s, const Strides& strides) {
  SCOPED_TRACE(normkit::shape_str(s.shape));
  LNCase<T> c(s.shape, s.normalized);
  const int64_t n = numel(s.shape);
  std::vector<T> y(n), dx(n), dw(c.D), db(c.D), dw2(c.D), db2(c.D);
  normkit::layer_norm_forward<T>(cview(c.x, s.shape), mview(y, s.shape), c.args());
  normkit::layer_norm_backward<T>(cview(c.dy, s.shape), cview(c.x, s.shape), mview(dx, s.shape),
                                  c.args(), dw, db);
  auto xs = scatter(c.x, s.shape, strides), dys = scatter(c.dy, s.shape, strides);
  auto ys = scatter(sentinel_vec<T>(n), s.shape, strides), dxs = ys;
  normkit::layer_norm_forward<T>(cview(xs, s.shape, strides), mview(ys, s.shape, strides), c.args());
  normkit::layer_norm_backward<T>(cview(dys, s.shape, strides), cview(xs, s.shape, strides),
                                  mview(dxs, s.shape, strides), c.args(), dw2, db2);
  expect_close(gather(ys, s.shape, strides), y, tol<T>(), "strided y");
  expect_close(gather(dxs, s.shape, strides), dx, grad_tol<T>(), "strided dx");
  expect_close(dw2, dw, grad_tol<T>(), "strided dweight");
  expect_close(db2, db, grad_tol<T>(), "strided dbias");
  expect_gaps_untouched(ys, s.shape, strides, "y");
  expect_gaps_untouched(dxs, s.shape, strides, "dx");
}

TYPED_TEST(LayerNormTest, StridedViewsMatchContiguous) {
  strided_check<TypeParam>({{5, 17}, {17}}, doubled_strides({5, 17}));
  strided_check<TypeParam>({{5, 17}, {17}}, {1, 5});  // transposed storage
  strided_check<TypeParam>({{2, 7, 3, 5}, {7, 3, 5}}, channels_last_strides({2, 7, 3, 5}));
  strided_check<TypeParam>({{2, 7, 3, 5}, {3, 5}}, channels_last_strides({2, 7, 3, 5}));
}

// ---- errors --------------------------------------------------------------------------------
struct LNErrorCase {
  std::vector<double> x = random_vec<double>(60), y = sentinel_vec<double>(60),
                      w = random_vec<double>(20), b = random_vec<double>(20),
                      dy = random_vec<double>(60), dx = sentinel_vec<double>(60),
                      dw = sentinel_vec<double>(20), db = sentinel_vec<double>(20);
  LayerNormArgs<double> args;
  LNErrorCase() {
    args.normalized_shape = {4, 5};
    args.weight = w;
    args.bias = b;
  }
  void expect_fails(const Shape& xs, const Shape& ys, const std::vector<std::string>& needles,
                    Strides y_strides = {}, bool null_x = false) {
    Snapshot snap;
    for (auto* v : {&y, &dx, &dw, &db}) snap.add(v);
    const double* xp = null_x ? nullptr : x.data();
    expect_error([&] {
      normkit::layer_norm_forward<double>({xp, xs}, {y.data(), ys, y_strides}, args);
    }, "layer_norm", needles);
    expect_error([&] {
      normkit::layer_norm_backward<double>({dy.data(), ys, y_strides}, {xp, xs},
                                           {dx.data(), ys, y_strides}, args, dw, db);
    }, "layer_norm", needles);
    snap.expect_unchanged("after error");
  }
};

TEST(LayerNormErrors, NormalizedShapeNotMatchingTrailingDims) {
  LNErrorCase e;
  e.expect_fails({3, 5, 4}, {3, 5, 4}, {"4x5", "3x5x4"});
}
TEST(LayerNormErrors, NormalizedShapeLongerThanInput) {
  LNErrorCase e;
  e.args.normalized_shape = {3, 4, 5};
  e.expect_fails({20}, {20}, {"3x4x5"});
}
TEST(LayerNormErrors, EmptyNormalizedShape) {
  LNErrorCase e;
  e.args.normalized_shape = {};
  e.expect_fails({3, 4, 5}, {3, 4, 5}, {});
}
TEST(LayerNormErrors, NegativeEps) {
  LNErrorCase e;
  e.args.eps = -1.0;
  e.expect_fails({3, 4, 5}, {3, 4, 5}, {"-1"});
}
TEST(LayerNormErrors, OutputShapeAndStrideMismatch) {
  LNErrorCase e;
  e.expect_fails({3, 4, 5}, {3, 5, 4}, {"3x5x4"});
  e.expect_fails({3, 4, 5}, {3, 4, 5}, {}, {1, 3, 12});
}
TEST(LayerNormErrors, NullInputData) {
  LNErrorCase e;
  e.expect_fails({3, 4, 5}, {3, 4, 5}, {}, {}, true);
}

// Outputs of 16 MiB and more are written with non-temporal stores; where y lies just ahead of
// x (or of w and b) modulo 4 KiB, the rows are read from copies placed elsewhere, or the row
// pairs walk their rows from the end or store plainly (performance paths: engine.cpp,
// AwayFromStores; rows_simd-inl.h, BytesAhead). Every layout must give the same bits as separate
// buffers, and float32 the reference's values.
template <class T>
void check_offsets_from_input(int64_t M, int64_t D) {
  const int64_t n = M * D;
  const auto src = random_vec<float>(n, 1.0, 2.0);
  const auto w = random_vec<float>(D, 1.0, 0.5), b = random_vec<float>(D);
  LayerNormArgs<T, float> args;
  args.normalized_shape = {D};
  args.weight = w;
  args.bias = b;
  std::vector<T> x_alone(n), y_alone(n);
  for (int64_t i = 0; i < n; ++i) x_alone[size_t(i)] = T(src[size_t(i)]);
  normkit::layer_norm_forward<T, float>(cview(x_alone, {M, D}), mview(y_alone, {M, D}), args);
  if constexpr (std::is_same_v<T, float>) {
    std::vector<float> y_ref(static_cast<size_t>(n));
    normkit::reference::layer_norm_forward(src.data(), y_ref.data(), M, D, w.data(), b.data(), 1e-5);
    expect_close(y_alone, y_ref, tol<float>(), "y");
  }
  // Rows a few at a time (in cache, plain stores; an odd count takes the single-row path) give
  // the streamed rows' bits.
  for (const auto& [first, count] : {std::pair<int64_t, int64_t>{0, 3}, {M - 2, 2}}) {
    SCOPED_TRACE("rows " + std::to_string(first) + " + " + std::to_string(count) + " alone");
    std::vector<T> y_few(size_t(count * D));
    normkit::layer_norm_forward<T, float>(normkit::TensorView<const T>(x_alone.data() + first * D, {count, D}),
                                          mview(y_few, {count, D}), args);
    EXPECT_EQ(std::memcmp(y_few.data(), y_alone.data() + first * D, y_few.size() * sizeof(T)), 0);
  }
  for (int64_t ahead : {32, 64, 256, 512, 600, 4096}) {
    SCOPED_TRACE("y " + std::to_string(ahead) + " bytes past the end of x");
    std::vector<T> buf(size_t(2 * n + (ahead + 64) / int64_t(sizeof(T))));
    T* x = buf.data();
    T* y = buf.data() + n + ahead / int64_t(sizeof(T));
    std::copy(x_alone.begin(), x_alone.end(), x);
    normkit::layer_norm_forward<T, float>(normkit::TensorView<const T>(x, {M, D}), normkit::TensorView<T>(y, {M, D}),
                                          args);
    EXPECT_EQ(std::memcmp(y, y_alone.data(), size_t(n) * sizeof(T)), 0);
  }
  // The weight and bias, read along every row, count as x does.
  for (int64_t ahead : {16, 64, 256, 600}) {
    SCOPED_TRACE("y " + std::to_string(ahead) + " bytes ahead of the weight and bias modulo 4 KiB");
    std::vector<T> y(static_cast<size_t>(n));
    auto place = [&](std::vector<float>& store, const std::vector<float>& v) {
      store.assign(v.size() + 1024, 0.f);
      const uintptr_t want = (reinterpret_cast<uintptr_t>(y.data()) - uintptr_t(ahead)) % 4096;
      size_t o = 0;  // float-aligned, so one of the first 1024 positions
      while (reinterpret_cast<uintptr_t>(store.data() + o) % 4096 != want) ++o;
      std::copy(v.begin(), v.end(), store.begin() + std::ptrdiff_t(o));
      return std::span<const float>(store.data() + o, v.size());
    };
    std::vector<float> ws, bs;
    LayerNormArgs<T, float> placed = args;
    placed.weight = place(ws, w), placed.bias = place(bs, b);
    normkit::layer_norm_forward<T, float>(cview(x_alone, {M, D}), mview(y, {M, D}), placed);
    EXPECT_EQ(std::memcmp(y.data(), y_alone.data(), size_t(n) * sizeof(T)), 0);
  }
}

TEST(LayerNormStreams, OutputJustAheadOfInputGivesTheSameBits) {
  check_offsets_from_input<float>(1030, 4096);              // 16.1 MiB: streamed, pairs from the end
  check_offsets_from_input<normkit::bfloat16>(2050, 4096);  // the half pairs' path
  check_offsets_from_input<float>(1031, 4100);              // a length the backward walk does not take
  // Smaller tensors stream on Intel where they outgrow the threads' L2 (engine.cpp,
  // streams_past_l2), without the copies; elsewhere these take plain stores.
  check_offsets_from_input<float>(2050, 1024);              // 8 MiB
  check_offsets_from_input<normkit::bfloat16>(4100, 1024);  // 8 MiB, the half pairs
  check_offsets_from_input<float>(33, 50176);               // rows of [256,14,14]: untiled when streamed
}

// The backward writes dx of rows of 2 KiB or more with non-temporal stores on Intel where the
// tensor outgrows the threads' L2 (engine.cpp, backward): the same bits as the same rows in a
// call small enough to stay in cache (plain stores), and the reference's values.
// M rows of D: x, dy, a weight and a bias, and LayerNorm's arguments over the rows.
template <class T>
struct Rows {
  int64_t M, D, n;
  std::vector<T> x, dy, w, b;
  Rows(int64_t m, int64_t d)
      : M(m), D(d), n(m * d), x(random_vec<T>(n, 1.0, 2.0)), dy(random_vec<T>(n, 0.0, 1.0)),
        w(random_vec<T>(d, 1.0, 0.5)), b(random_vec<T>(d)) {}
  LayerNormArgs<T> args() const {
    LayerNormArgs<T> a;
    a.normalized_shape = {D};
    a.weight = w;
    a.bias = b;
    return a;
  }
};

// A streamed row whose output is not at a vector's alignment (NumPy's and malloc's buffers lie
// 16 bytes off 64) writes its first elements plainly and streams the rest (rows_simd-inl.h,
// StreamHead): every offset gives the bits of aligned buffers, for LayerNorm's and RMSNorm's
// forward and LayerNorm's dx, float and bfloat16 (the half pairs), with every buffer equally
// off as NumPy's are, and with y off alone.
template <class T>
void check_misaligned_rows(int64_t M, int64_t D) {
  SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(D));
  const int64_t n = M * D;
  const Rows<T> r(M, D);
  LayerNormArgs<T> ln = r.args();
  normkit::RMSNormArgs<T> rms;
  rms.normalized_shape = {D};
  rms.weight = r.w;
  // A buffer of n elements `off` bytes past a 64-byte boundary.
  struct Placed {
    std::vector<unsigned char> bytes;
    T* p;
    Placed(int64_t n, int64_t off) : bytes(size_t(n) * sizeof(T) + 128) {
      const uintptr_t base = (reinterpret_cast<uintptr_t>(bytes.data()) + 63) / 64 * 64;
      p = reinterpret_cast<T*>(base + uintptr_t(off));
    }
  };
  auto run = [&](int64_t xo, int64_t yo) {
    Placed x(n, xo), dy(n, xo), y_ln(n, yo), y_rms(n, yo), dx(n, yo);
    std::copy(r.x.begin(), r.x.end(), x.p), std::copy(r.dy.begin(), r.dy.end(), dy.p);
    const normkit::TensorView<const T> xv(x.p, {M, D}), dyv(dy.p, {M, D});
    normkit::layer_norm_forward<T>(xv, normkit::TensorView<T>(y_ln.p, {M, D}), ln);
    normkit::rms_norm_forward<T>(xv, normkit::TensorView<T>(y_rms.p, {M, D}), rms);
    normkit::layer_norm_backward<T>(dyv, xv, normkit::TensorView<T>(dx.p, {M, D}), ln);
    std::vector<std::vector<T>> out;
    for (const Placed* b : {&y_ln, &y_rms, &dx}) out.emplace_back(b->p, b->p + n);
    return out;
  };
  const auto aligned = run(0, 0);
  for (const auto& [xo, yo] : {std::pair<int64_t, int64_t>{16, 16}, {4, 4}, {48, 48}, {0, 16}, {36, 36}}) {
    SCOPED_TRACE("x " + std::to_string(xo) + ", y " + std::to_string(yo) + " bytes off 64");
    const auto got = run(xo, yo);
    expect_bitwise(got[0], aligned[0], "LayerNorm y");
    expect_bitwise(got[1], aligned[1], "RMSNorm y");
    expect_bitwise(got[2], aligned[2], "LayerNorm dx");
  }
}

TEST(LayerNormStreams, OutputsOffAVectorsAlignmentGiveTheSameBits) {
  check_misaligned_rows<float>(1030, 4096);              // 16.1 MiB: streamed, row pairs
  check_misaligned_rows<float>(1031, 4100);              // an odd row count and vector tails
  check_misaligned_rows<normkit::bfloat16>(2050, 4096);  // the half pairs
}

void check_streamed_dx(int64_t M, int64_t D) {
  SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(D));
  const Rows<float> rows(M, D);
  const int64_t n = rows.n;
  const auto& x = rows.x;
  const auto& dy = rows.dy;
  const auto& w = rows.w;
  const LayerNormArgs<float> args = rows.args();
  std::vector<float> dx(static_cast<size_t>(n)), dw(static_cast<size_t>(D)), db(static_cast<size_t>(D));
  normkit::layer_norm_backward<float>(cview(dy, {M, D}), cview(x, {M, D}), mview(dx, {M, D}), args, dw, db);
  std::vector<float> dx_ref(static_cast<size_t>(n)), dw_ref(static_cast<size_t>(D)), db_ref(static_cast<size_t>(D));
  normkit::reference::layer_norm_backward(dy.data(), x.data(), dx_ref.data(), M, D, w.data(), 1e-5, dw_ref.data(),
                                          db_ref.data());
  expect_close(dx, dx_ref, tol<float>(), "dx");
  constexpr int64_t kFew = 9;  // enough rows for the fused backward, few enough to stay in cache
  for (const int64_t first : {int64_t{0}, M - kFew}) {
    SCOPED_TRACE("rows " + std::to_string(first) + " + 9 alone");
    std::vector<float> dx_few(static_cast<size_t>(kFew * D)), dw_few(static_cast<size_t>(D)), db_few(static_cast<size_t>(D));
    normkit::layer_norm_backward<float>(normkit::TensorView<const float>(dy.data() + first * D, {kFew, D}),
                                        normkit::TensorView<const float>(x.data() + first * D, {kFew, D}),
                                        mview(dx_few, {kFew, D}), args, dw_few, db_few);
    EXPECT_EQ(std::memcmp(dx_few.data(), dx.data() + first * D, dx_few.size() * sizeof(float)), 0);
  }
}

TEST(LayerNormStreams, StreamedGradientsMatchRowsInCacheBitForBit) {
  check_streamed_dx(2050, 1024);  // 8 MiB
  check_streamed_dx(33, 50176);   // rows of [256,14,14]
}

}  // namespace

namespace {
// LayerNorm's and RMSNorm's dweight and dbias over rows do not depend on whether dx is asked
// for: the fused backward takes them from blocks of cached rows beside the dx pass, and
// without dx from the same blocks alone; the same bits, for rows with vector tails, several
// row blocks per thread, 1 to 3 threads, saved or recomputed statistics, in cache and past
// 16 MiB (dx streamed).
template <class T>
void expect_affine_sums_without_dx(int64_t M, int64_t D) {
  SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(D));
  const Rows<T> r(M, D);
  const int64_t n = r.n;
  const LayerNormArgs<T> ln = r.args();
  normkit::RMSNormArgs<T> rms;
  rms.normalized_shape = {D};
  rms.weight = r.w;
  std::vector<T> mean(static_cast<size_t>(M)), rstd(static_cast<size_t>(M)), rstd_rms(static_cast<size_t>(M)),
      y(static_cast<size_t>(n));
  normkit::layer_norm_forward<T>(cview(r.x, {M, D}), mview(y, {M, D}), ln, {mean, rstd});
  normkit::rms_norm_forward<T>(cview(r.x, {M, D}), mview(y, {M, D}), rms, {{}, rstd_rms});
  const int saved_threads = normkit::get_num_threads();
  for (const int threads : {1, 2, 3}) {
    normkit::set_num_threads(threads);
    for (const bool saved : {false, true}) {
      SCOPED_TRACE(std::to_string(threads) + " threads, " + (saved ? "saved" : "recomputed") + " statistics");
      std::vector<T> dx(static_cast<size_t>(n)), dw(static_cast<size_t>(D)), db(static_cast<size_t>(D)),
          dw_alone(static_cast<size_t>(D)), db_alone(static_cast<size_t>(D));
      const normkit::SavedStats<T> ln_stats = saved ? normkit::SavedStats<T>{mean, rstd} : normkit::SavedStats<T>{};
      normkit::layer_norm_backward<T>(cview(r.dy, {M, D}), cview(r.x, {M, D}), mview(dx, {M, D}), ln, dw, db, ln_stats);
      normkit::layer_norm_backward<T>(cview(r.dy, {M, D}), cview(r.x, {M, D}), normkit::TensorView<T>(), ln, dw_alone,
                                      db_alone, ln_stats);
      expect_bitwise(dw, dw_alone, "LayerNorm dweight");
      expect_bitwise(db, db_alone, "LayerNorm dbias");
      const normkit::SavedStats<T> rms_stats = saved ? normkit::SavedStats<T>{{}, rstd_rms} : normkit::SavedStats<T>{};
      normkit::rms_norm_backward<T>(cview(r.dy, {M, D}), cview(r.x, {M, D}), mview(dx, {M, D}), rms, dw, rms_stats);
      normkit::rms_norm_backward<T>(cview(r.dy, {M, D}), cview(r.x, {M, D}), normkit::TensorView<T>(), rms, dw_alone,
                                    rms_stats);
      expect_bitwise(dw, dw_alone, "RMSNorm dweight");
    }
  }
  normkit::set_num_threads(saved_threads);
}

TEST(RowAffineSums, DoNotDependOnWhetherDxIsAskedFor) {
  expect_affine_sums_without_dx<float>(67, 1031);    // tails; several 8-row blocks per thread
  expect_affine_sums_without_dx<float>(300, 96);     // 32-row blocks
  expect_affine_sums_without_dx<double>(45, 1027);
  expect_affine_sums_without_dx<float>(2100, 2050);  // 17 MB: dx streamed
}
}  // namespace
