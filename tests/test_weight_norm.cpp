// test_weight_norm.cpp — weight_norm_forward/backward (w = g * v / ||v||) against the oracle
// for every `dim` of odd-sized weights and for the whole tensor (dim unset or -1), finite
// differences for v and g, strided views, and the argument errors (nothing written).
#include "test_util.hpp"

namespace {
using namespace nk_test;
using normkit::WeightNormArgs;

struct WNShape {
  Shape shape;
  std::optional<int64_t> dim;
};
const std::vector<WNShape> kShapes = {
    {{33}, 0},         {{3, 5}, 0},      {{3, 5}, 1},      {{7, 3, 17}, 0}, {{7, 3, 17}, 1},
    {{7, 3, 17}, 2},   {{7, 3, 17}, -1}, {{7, 3, 17}, std::nullopt},         {{1, 1}, 0},
    {{67, 9, 3, 3}, 0}, {{5, 1031}, 0},  {{1031, 5}, 1},   {{2, 3, 5, 7}, 3}};

int64_t slices(const WNShape& s) {
  if (!s.dim || *s.dim == -1) return 1;
  return s.shape[static_cast<size_t>(*s.dim)];
}

template <class T>
struct WNCase {
  Shape shape;
  std::optional<int64_t> dim;
  int64_t K;
  std::vector<T> v, g, dw;
  explicit WNCase(const WNShape& s) : shape(s.shape), dim(s.dim), K(slices(s)) {
    v = random_vec<T>(numel(shape), 0.2, 1.0);
    g = random_vec<T>(K, 1.0, 0.5);
    dw = random_vec<T>(numel(shape));
  }
  WeightNormArgs<T> args() const { return {dim}; }
};

template <class T>
class WeightNormTest : public ::testing::Test {};
TYPED_TEST_SUITE(WeightNormTest, FloatTypes);

std::string dim_str(std::optional<int64_t> d) { return d ? std::to_string(*d) : "unset"; }

TYPED_TEST(WeightNormTest, MatchesReference) {
  using T = TypeParam;
  for (const auto& s : kShapes) {
    SCOPED_TRACE(normkit::shape_str(s.shape) + " dim=" + dim_str(s.dim));
    WNCase<T> c(s);
    const int64_t n = numel(s.shape), K = c.K;
    std::vector<T> w_ref(n), norms_ref(K), dv_ref(n), dg_ref(K);
    normkit::reference::weight_norm_forward(c.v.data(), c.g.data(), w_ref.data(), s.shape, s.dim,
                                            norms_ref.data());
    normkit::reference::weight_norm_backward(c.dw.data(), c.v.data(), c.g.data(), dv_ref.data(),
                                             dg_ref.data(), s.shape, s.dim);
    auto w = sentinel_vec<T>(n), norms = sentinel_vec<T>(K), dv = sentinel_vec<T>(n), dg = sentinel_vec<T>(K);
    normkit::weight_norm_forward<T>(cview(c.v, s.shape), cspan(c.g), mview(w, s.shape), c.args(), norms);
    normkit::weight_norm_backward<T>(cview(c.dw, s.shape), cview(c.v, s.shape), cspan(c.g),
                                     mview(dv, s.shape), dg, c.args());
    expect_close(w, w_ref, tol<T>(), "w");
    expect_close(norms, norms_ref, tol<T>(), "norms");
    // Slices of one element: dv = g / ||v|| * (dw - vhat * (dw . vhat)) is a difference of terms
    // of size |g / ||v|| * dw| (large where |v| is small), so the error is held to their size.
    std::vector<double> g_over_norm(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) g_over_norm[size_t(k)] = double(c.g[size_t(k)]) / double(norms_ref[size_t(k)]);
    expect_close(dv, dv_ref, grad_tol<T>(), "dv", std::max(1e-3, max_abs(g_over_norm) * max_abs(c.dw)));
    expect_close(dg, dg_ref, grad_tol<T>(), "dg");
  }
}

TYPED_TEST(WeightNormTest, MinusOneAndUnsetAreTheWholeTensor) {
  using T = TypeParam;
  WNCase<T> c({{4, 6, 5}, std::nullopt});
  std::vector<T> w1(120), w2(120), n1(1), n2(1);
  normkit::weight_norm_forward<T>(cview(c.v, c.shape), cspan(c.g), mview(w1, c.shape), {std::nullopt}, n1);
  normkit::weight_norm_forward<T>(cview(c.v, c.shape), cspan(c.g), mview(w2, c.shape), {int64_t{-1}}, n2);
  expect_bitwise(w1, w2, "dim unset vs -1");
  double ss = 0;
  for (T e : c.v) ss += double(e) * e;
  EXPECT_NEAR(n1[0], std::sqrt(ss), tol<T>() * std::sqrt(ss));
}

TYPED_TEST(WeightNormTest, SlicesHaveNormG) {
  using T = TypeParam;
  WNCase<T> c({{5, 3, 7}, 1});
  std::vector<T> w(105);
  normkit::weight_norm_forward<T>(cview(c.v, c.shape), cspan(c.g), mview(w, c.shape), c.args());
  for (int64_t k = 0; k < 3; ++k) {
    double ss = 0;
    for (int64_t o = 0; o < 5; ++o)
      for (int64_t i = 0; i < 7; ++i) ss += double(w[(o * 3 + k) * 7 + i]) * w[(o * 3 + k) * 7 + i];
    EXPECT_NEAR(std::sqrt(ss), std::abs(double(c.g[k])), 10 * tol<T>());
  }
}

TEST(WeightNormGrad, FiniteDifferences) {
  for (const auto& s : std::vector<WNShape>{{{3, 5}, 0}, {{3, 2, 4}, 1}, {{4, 3}, std::nullopt}, {{2, 3, 4}, 2}}) {
    SCOPED_TRACE(normkit::shape_str(s.shape) + " dim=" + dim_str(s.dim));
    WNCase<double> c(s);
    const int64_t n = numel(s.shape);
    auto loss = [&] {
      std::vector<double> w(n);
      normkit::weight_norm_forward<double>(cview(c.v, s.shape), cspan(c.g), mview(w, s.shape), c.args());
      return dot(w, c.dw);
    };
    std::vector<double> dv(n), dg(c.K);
    normkit::weight_norm_backward<double>(cview(c.dw, s.shape), cview(c.v, s.shape), cspan(c.g),
                                          mview(dv, s.shape), dg, c.args());
    expect_close(dv, numeric_grad(loss, c.v.data(), n), kFdTol, "dv vs finite differences");
    expect_close(dg, numeric_grad(loss, c.g.data(), c.K), kFdTol, "dg vs finite differences");
  }
}

TYPED_TEST(WeightNormTest, StridedViewsMatchContiguous) {
  using T = TypeParam;
  for (const auto& [s, strides] : std::vector<std::pair<WNShape, Strides>>{
           {{{5, 17}, 0}, doubled_strides({5, 17})},
           {{{5, 17}, 1}, {1, 5}},
           {{{4, 3, 5}, 0}, {1, 20, 4}},
           {{{4, 3, 5}, std::nullopt}, doubled_strides({4, 3, 5})}}) {
    SCOPED_TRACE(normkit::shape_str(s.shape) + " dim=" + dim_str(s.dim));
    WNCase<T> c(s);
    const int64_t n = numel(s.shape);
    std::vector<T> w(n), dv(n), dg(c.K), dg2(c.K);
    normkit::weight_norm_forward<T>(cview(c.v, s.shape), cspan(c.g), mview(w, s.shape), c.args());
    normkit::weight_norm_backward<T>(cview(c.dw, s.shape), cview(c.v, s.shape), cspan(c.g),
                                     mview(dv, s.shape), dg, c.args());
    auto vs = scatter(c.v, s.shape, strides), dws = scatter(c.dw, s.shape, strides);
    auto ws = scatter(sentinel_vec<T>(n), s.shape, strides), dvs = ws;
    normkit::weight_norm_forward<T>(cview(vs, s.shape, strides), cspan(c.g), mview(ws, s.shape, strides), c.args());
    normkit::weight_norm_backward<T>(cview(dws, s.shape, strides), cview(vs, s.shape, strides), cspan(c.g),
                                     mview(dvs, s.shape, strides), dg2, c.args());
    expect_close(gather(ws, s.shape, strides), w, tol<T>(), "strided w");
    expect_close(gather(dvs, s.shape, strides), dv, grad_tol<T>(), "strided dv");
    expect_close(dg2, dg, grad_tol<T>(), "strided dg");
    expect_gaps_untouched(ws, s.shape, strides, "w");
    expect_gaps_untouched(dvs, s.shape, strides, "dv");
  }
}

// The forward's norms given to the backward (as PyTorch's _weight_norm_interface_backward takes
// them): in double the very values the backward would take from v, so the same bits; in float
// rounded to float, so within rounding of the backward that takes them itself. Every dim and
// the whole tensor; 4096 x 1031 and 8 x 530000 (33-34 MB, which stream and request the next
// rows) besides the odd small shapes.
TEST(WeightNormSavedNorms, GiveTheGradientsOfTheRecomputedOnesBitForBit) {
  std::vector<WNShape> shapes = kShapes;
  shapes.push_back({{4096, 1031}, 0});
  shapes.push_back({{8, 530000}, 0});
  for (const auto& s : shapes) {
    SCOPED_TRACE(normkit::shape_str(s.shape) + " dim=" + dim_str(s.dim));
    WNCase<double> c(s);
    const int64_t n = numel(s.shape);
    std::vector<double> w(n), norms(c.K), dv(n), dg(c.K), dv_saved = sentinel_vec<double>(n),
                                           dg_saved = sentinel_vec<double>(c.K);
    normkit::weight_norm_forward<double>(cview(c.v, s.shape), cspan(c.g), mview(w, s.shape), c.args(), norms);
    normkit::weight_norm_backward<double>(cview(c.dw, s.shape), cview(c.v, s.shape), cspan(c.g),
                                          mview(dv, s.shape), dg, c.args());
    normkit::weight_norm_backward<double>(cview(c.dw, s.shape), cview(c.v, s.shape), cspan(c.g),
                                          mview(dv_saved, s.shape), dg_saved, c.args(), cspan(norms));
    expect_bitwise(dv_saved, dv, "dv");
    expect_bitwise(dg_saved, dg, "dg");
    // and they are what it reads: twice the norms, half of dg = sum(dw * v) / ||v||
    std::vector<double> twice(norms), half_dg(dg);
    for (auto& v : twice) v *= 2;
    for (auto& v : half_dg) v /= 2;
    normkit::weight_norm_backward<double>(cview(c.dw, s.shape), cview(c.v, s.shape), cspan(c.g),
                                          mview(dv_saved, s.shape), dg_saved, c.args(), cspan(twice));
    expect_close(dg_saved, half_dg, 1e-12, "dg of twice the norms");
  }
}

TYPED_TEST(WeightNormTest, SavedNormsMatchRecomputedOnes) {
  using T = TypeParam;
  using C = normkit::compute_t<T>;
  for (const auto& s : std::vector<WNShape>{{{67, 9, 3, 3}, 0}, {{5, 1031}, 0}, {{1031, 5}, 1}, {{7, 3, 17}, -1}}) {
    SCOPED_TRACE(normkit::shape_str(s.shape) + " dim=" + dim_str(s.dim));
    WNCase<T> c(s);
    const int64_t n = numel(s.shape);
    std::vector<T> w(n), dv(n), dg(c.K), dv_saved = sentinel_vec<T>(n), dg_saved = sentinel_vec<T>(c.K);
    std::vector<C> norms(c.K);
    normkit::weight_norm_forward<T>(cview(c.v, s.shape), cspan(c.g), mview(w, s.shape), c.args(), norms);
    normkit::weight_norm_backward<T>(cview(c.dw, s.shape), cview(c.v, s.shape), cspan(c.g), mview(dv, s.shape), dg,
                                     c.args());
    normkit::weight_norm_backward<T>(cview(c.dw, s.shape), cview(c.v, s.shape), cspan(c.g),
                                     mview(dv_saved, s.shape), dg_saved, c.args(), cspan(norms));
    expect_close(dv_saved, dv, grad_tol<T>(), "dv");
    expect_close(dg_saved, dg, grad_tol<T>(), "dg");
  }
}

// ---- errors --------------------------------------------------------------------------------
struct WNErrorCase {
  std::vector<double> v = random_vec<double>(60), g = random_vec<double>(4),
                      w = sentinel_vec<double>(60), dw = random_vec<double>(60),
                      dv = sentinel_vec<double>(60), dg = sentinel_vec<double>(4),
                      norms = sentinel_vec<double>(4);
  void expect_fails(const Shape& vs, const Shape& ws, std::optional<int64_t> dim,
                    const std::vector<std::string>& needles, Strides w_strides = {}, bool null_v = false) {
    Snapshot snap;
    for (auto* b : {&w, &dv, &dg, &norms}) snap.add(b);
    const double* vp = null_v ? nullptr : v.data();
    expect_error([&] {
      normkit::weight_norm_forward<double>({vp, vs}, cspan(g), {w.data(), ws, w_strides}, {dim}, norms);
    }, "weight_norm", needles);
    expect_error([&] {
      normkit::weight_norm_backward<double>({dw.data(), ws, w_strides}, {vp, vs}, cspan(g),
                                            {dv.data(), ws, w_strides}, dg, {dim});
    }, "weight_norm", needles);
    snap.expect_unchanged("after error");
  }
};

TEST(WeightNormErrors, DimOutOfRange) {
  WNErrorCase e;
  e.expect_fails({4, 15}, {4, 15}, 2, {"2"});
  e.expect_fails({4, 15}, {4, 15}, -3, {"-3"});
}
TEST(WeightNormErrors, GSizeMismatch) {
  WNErrorCase e;
  e.g.resize(3);
  e.expect_fails({4, 15}, {4, 15}, 0, {"3", "4"});
  e.g.resize(2);
  e.expect_fails({4, 15}, {4, 15}, std::nullopt, {"2", "1"});
}
TEST(WeightNormErrors, OutputShapeAndStrideMismatch) {
  WNErrorCase e;
  e.expect_fails({4, 15}, {4, 14}, 0, {"4x14"});
  e.expect_fails({4, 15}, {4, 15}, 0, {}, {1, 4});
}
TEST(WeightNormErrors, SavedNormsOfTheWrongCountOrNegative) {
  WNErrorCase e;
  Snapshot snap;
  for (auto* b : {&e.dv, &e.dg}) snap.add(b);
  auto backward = [&](const std::vector<double>& norms) {
    normkit::weight_norm_backward<double>({e.dw.data(), {4, 15}}, {e.v.data(), {4, 15}}, cspan(e.g),
                                          {e.dv.data(), {4, 15}}, e.dg, {0}, cspan(norms));
  };
  expect_error([&] { backward({1.0, 2.0, 3.0}); }, "weight_norm", {"norms", "3", "4"});
  expect_error([&] { backward({1.0, 2.0, -0.5, 3.0}); }, "weight_norm", {"norms[2]", "-0.5", "negative"});
  snap.expect_unchanged("after error");
}
TEST(WeightNormErrors, NullInputData) {
  WNErrorCase e;
  e.expect_fails({4, 15}, {4, 15}, 0, {}, {}, true);
}

}  // namespace
