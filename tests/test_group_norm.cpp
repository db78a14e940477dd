// test_group_norm.cpp — group_norm_forward/backward against the oracle on odd sizes and
// group counts, finite differences, strided/channels-last views, the identities G=C ==
// InstanceNorm and G=1 == LayerNorm over (C, *) with per-channel affine, and the errors.
#include "test_util.hpp"

namespace {
using namespace nk_test;
using normkit::GroupNormArgs;

struct GNShape {
  Shape shape;
  int64_t groups;
};
const std::vector<GNShape> kShapes = {{{1, 3, 5}, 3},     {{3, 6, 7}, 2},      {{2, 33, 17}, 11},
                                      {{2, 6, 1}, 3},     {{1, 5, 3, 3}, 1},   {{2, 66, 9, 11}, 3},
                                      {{2, 4, 3, 5, 7}, 2}, {{5, 17, 3}, 17}, {{3, 2}, 1}};

template <class T>
struct GNCase {
  Shape shape;
  NCS d;
  int64_t G;
  std::vector<T> x, w, b, dy;
  GNCase(Shape s, int64_t g) : shape(std::move(s)), d(ncs(shape)), G(g) {
    x = random_vec<T>(numel(shape), 1.0, 2.0);
    w = random_vec<T>(d.C, 1.0, 0.5);
    b = random_vec<T>(d.C);
    dy = random_vec<T>(numel(shape));
  }
  GroupNormArgs<T> args(bool affine = true) {
    GroupNormArgs<T> a;
    a.num_groups = G;
    a.weight = cspan(w, affine);
    a.bias = cspan(b, affine);
    return a;
  }
};

template <class T>
class GroupNormTest : public ::testing::Test {};
TYPED_TEST_SUITE(GroupNormTest, FloatTypes);

template <class T>
void check_against_reference(const Shape& shape, int64_t G, bool affine) {
  SCOPED_TRACE("shape " + normkit::shape_str(shape) + " G=" + std::to_string(G));
  GNCase<T> c(shape, G);
  const auto [N, C, S] = c.d;
  const int64_t n = numel(shape);
  const T* w = affine ? c.w.data() : nullptr;
  std::vector<T> y_ref(n), mean_ref(N * G), rstd_ref(N * G);
  normkit::reference::group_norm_forward(c.x.data(), y_ref.data(), N, C, S, G, w,
                                         affine ? c.b.data() : nullptr, 1e-5, mean_ref.data(),
                                         rstd_ref.data());
  auto y = sentinel_vec<T>(n), mean = sentinel_vec<T>(N * G), rstd = sentinel_vec<T>(N * G);
  normkit::group_norm_forward<T>(cview(c.x, shape), mview(y, shape), c.args(affine),
                                 {mean, rstd});
  expect_close(y, y_ref, tol<T>(), "y");
  expect_close(mean, mean_ref, tol<T>(), "saved mean");
  expect_close(rstd, rstd_ref, tol<T>(), "saved rstd");

  std::vector<T> dx_ref(n), dw_ref(C), db_ref(C);
  normkit::reference::group_norm_backward(c.dy.data(), c.x.data(), dx_ref.data(), N, C, S, G, w,
                                          1e-5, dw_ref.data(), db_ref.data());
  auto dx = sentinel_vec<T>(n), dw = sentinel_vec<T>(C), db = sentinel_vec<T>(C);
  normkit::group_norm_backward<T>(cview(c.dy, shape), cview(c.x, shape), mview(dx, shape),
                                  c.args(affine), mspan(dw, affine), mspan(db, affine));
  // With two elements per group dx is ~0 by cancellation of O(|dy| * rstd) terms: judge it
  // against the size of those terms.
  expect_close(dx, dx_ref, grad_tol<T>(), "dx", 1.0);
  if (affine) {
    expect_close(dw, dw_ref, grad_tol<T>(), "dweight");
    expect_close(db, db_ref, grad_tol<T>(), "dbias");
  }
}

TYPED_TEST(GroupNormTest, MatchesReference) {
  for (const auto& s : kShapes) check_against_reference<TypeParam>(s.shape, s.groups, true);
  check_against_reference<TypeParam>({3, 6, 7}, 3, false);
  // Groups of 34532 elements, more than one of the engine's reduction chunks (32768): the
  // statistics merge per-chunk partials; dweight and dbias come from the backward's per-run sums.
  check_against_reference<TypeParam>({4, 8, 97, 89}, 2, true);
}

TYPED_TEST(GroupNormTest, GroupsEqualChannelsIsInstanceNorm) {
  using T = TypeParam;
  GNCase<T> c({3, 5, 4, 7}, 5);
  const int64_t n = numel(c.shape);
  std::vector<T> yg(n), yi(n), dxg(n), dxi(n), dwg(5), dwi(5), dbg(5), dbi(5);
  normkit::InstanceNormArgs<T> ia;
  ia.weight = c.w;
  ia.bias = c.b;
  normkit::group_norm_forward<T>(cview(c.x, c.shape), mview(yg, c.shape), c.args());
  normkit::instance_norm_forward<T>(cview(c.x, c.shape), mview(yi, c.shape), ia);
  normkit::group_norm_backward<T>(cview(c.dy, c.shape), cview(c.x, c.shape), mview(dxg, c.shape),
                                  c.args(), dwg, dbg);
  normkit::instance_norm_backward<T>(cview(c.dy, c.shape), cview(c.x, c.shape), mview(dxi, c.shape),
                                     ia, dwi, dbi);
  expect_close(yg, yi, tol<T>(), "y");
  expect_close(dxg, dxi, grad_tol<T>(), "dx");
  expect_close(dwg, dwi, grad_tol<T>(), "dweight");
  expect_close(dbg, dbi, grad_tol<T>(), "dbias");
}

TYPED_TEST(GroupNormTest, OneGroupIsLayerNormWithPerChannelAffine) {
  using T = TypeParam;
  GNCase<T> c({3, 5, 4, 7}, 1);
  const int64_t n = numel(c.shape), S = c.d.S;
  std::vector<T> yg(n), yl(n);
  normkit::group_norm_forward<T>(cview(c.x, c.shape), mview(yg, c.shape), c.args());
  normkit::LayerNormArgs<T> la;
  la.normalized_shape = {5, 4, 7};
  normkit::layer_norm_forward<T>(cview(c.x, c.shape), mview(yl, c.shape), la);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t ch = (i / S) % 5;
    yl[i] = static_cast<T>(yl[i] * double(c.w[ch]) + c.b[ch]);
  }
  expect_close(yg, yl, tol<T>(), "G=1 vs LayerNorm");
}

TYPED_TEST(GroupNormTest, OutputHasZeroMeanUnitVariancePerGroup) {
  using T = TypeParam;
  GNCase<T> c({2, 6, 5, 3}, 3);
  std::vector<T> y(numel(c.shape));
  normkit::group_norm_forward<T>(cview(c.x, c.shape), mview(y, c.shape), c.args(false));
  const int64_t per = 2 * 15;  // C/G channels x spatial, contiguous per (n, g)
  for (int64_t g = 0; g < 6; ++g) {
    double sum = 0, sq = 0;
    for (int64_t k = 0; k < per; ++k) sum += y[g * per + k];
    for (int64_t k = 0; k < per; ++k) sq += (y[g * per + k] - sum / per) * (y[g * per + k] - sum / per);
    EXPECT_NEAR(sum / per, 0.0, 1e-5);
    EXPECT_NEAR(sq / per, 1.0, 1e-4);
  }
}

TEST(GroupNormGrad, FiniteDifferences) {
  for (const auto& [shape, G] : std::vector<GNShape>{{{2, 4, 3}, 2}, {{2, 6, 2, 2}, 3}}) {
    SCOPED_TRACE(normkit::shape_str(shape));
    GNCase<double> c(shape, G);
    const int64_t n = numel(shape);
    auto r = random_vec<double>(n);
    auto loss = [&] {
      std::vector<double> y(n);
      normkit::group_norm_forward<double>(cview(c.x, shape), mview(y, shape), c.args());
      return dot(y, r);
    };
    std::vector<double> dx(n), dw(c.d.C), db(c.d.C);
    normkit::group_norm_backward<double>(cview(r, shape), cview(c.x, shape), mview(dx, shape),
                                         c.args(), dw, db);
    expect_close(dx, numeric_grad(loss, c.x.data(), n), kFdTol, "dx vs finite differences");
    expect_close(dw, numeric_grad(loss, c.w.data(), c.d.C), kFdTol, "dweight vs finite differences");
    expect_close(db, numeric_grad(loss, c.b.data(), c.d.C), kFdTol, "dbias vs finite differences");
  }
}

template <class T>
void strided_check(const Shape& shape, int64_t G, const Strides& strides) {
  SCOPED_TRACE(normkit::shape_str(shape));
  GNCase<T> c(shape, G);
  const int64_t n = numel(shape);
  std::vector<T> y(n), dx(n), dw(c.d.C), db(c.d.C), dw2(c.d.C), db2(c.d.C);
  normkit::group_norm_forward<T>(cview(c.x, shape), mview(y, shape), c.args());
  normkit::group_norm_backward<T>(cview(c.dy, shape), cview(c.x, shape), mview(dx, shape), c.args(),
                                  dw, db);
  auto xs = scatter(c.x, shape, strides), dys = scatter(c.dy, shape, strides);
  auto ys = scatter(sentinel_vec<T>(n), shape, strides), dxs = ys;
  normkit::group_norm_forward<T>(cview(xs, shape, strides), mview(ys, shape, strides), c.args());
  normkit::group_norm_backward<T>(cview(dys, shape, strides), cview(xs, shape, strides),
                                  mview(dxs, shape, strides), c.args(), dw2, db2);
  expect_close(gather(ys, shape, strides), y, tol<T>(), "strided y");
  expect_close(gather(dxs, shape, strides), dx, grad_tol<T>(), "strided dx");
  expect_close(dw2, dw, grad_tol<T>(), "strided dweight");
  expect_close(db2, db, grad_tol<T>(), "strided dbias");
  expect_gaps_untouched(ys, shape, strides, "y");
  expect_gaps_untouched(dxs, shape, strides, "dx");
}

TYPED_TEST(GroupNormTest, StridedViewsMatchContiguous) {
  strided_check<TypeParam>({2, 6, 5}, 3, doubled_strides({2, 6, 5}));
  strided_check<TypeParam>({2, 6, 3, 5}, 2, doubled_strides({2, 6, 3, 5}));
  strided_check<TypeParam>({2, 6, 3, 5}, 2, channels_last_strides({2, 6, 3, 5}));
  strided_check<TypeParam>({3, 33, 4, 5}, 11, channels_last_strides({3, 33, 4, 5}));
  strided_check<TypeParam>({2, 4, 3, 2, 3}, 4, channels_last_strides({2, 4, 3, 2, 3}));
}

// ---- errors --------------------------------------------------------------------------------
struct GNErrorCase {
  std::vector<double> x = random_vec<double>(60), y = sentinel_vec<double>(60),
                      w = random_vec<double>(6), b = random_vec<double>(6),
                      dy = random_vec<double>(60), dx = sentinel_vec<double>(60),
                      dw = sentinel_vec<double>(6), db = sentinel_vec<double>(6);
  GroupNormArgs<double> args;
  GNErrorCase() {
    args.num_groups = 2;
    args.weight = w;
    args.bias = b;
  }
  void expect_fails(const Shape& xs, const Shape& ys, const std::vector<std::string>& needles,
                    Strides y_strides = {}, bool null_x = false) {
    Snapshot snap;
    for (auto* v : {&y, &dx, &dw, &db}) snap.add(v);
    const double* xp = null_x ? nullptr : x.data();
    expect_error([&] {
      normkit::group_norm_forward<double>({xp, xs}, {y.data(), ys, y_strides}, args);
    }, "group_norm", needles);
    expect_error([&] {
      normkit::group_norm_backward<double>({dy.data(), ys, y_strides}, {xp, xs},
                                           {dx.data(), ys, y_strides}, args, dw, db);
    }, "group_norm", needles);
    snap.expect_unchanged("after error");
  }
};

TEST(GroupNormErrors, RankTooLow) {
  GNErrorCase e;
  e.expect_fails({60}, {60}, {"60"});
}
TEST(GroupNormErrors, ChannelCountMismatch) {
  GNErrorCase e;
  e.expect_fails({2, 10, 3}, {2, 10, 3}, {"10"});  // weight has 6
}
TEST(GroupNormErrors, ZeroGroups) {
  GNErrorCase e;
  e.args.num_groups = 0;
  e.expect_fails({2, 6, 5}, {2, 6, 5}, {"num_groups=0"});
}
TEST(GroupNormErrors, GroupsNotDividingChannels) {
  GNErrorCase e;
  e.args.num_groups = 4;
  e.expect_fails({2, 6, 5}, {2, 6, 5}, {"6", "4"});
}
TEST(GroupNormErrors, OneValuePerGroup) {
  GNErrorCase e;
  e.args.num_groups = 6;
  e.expect_fails({2, 6}, {2, 6}, {"1"});
  e.expect_fails({2, 6, 1, 1}, {2, 6, 1, 1}, {"1"});
}
TEST(GroupNormErrors, NegativeEps) {
  GNErrorCase e;
  e.args.eps = -2.0;
  e.expect_fails({2, 6, 5}, {2, 6, 5}, {"-2"});
}
TEST(GroupNormErrors, OutputShapeAndStrideMismatch) {
  GNErrorCase e;
  e.expect_fails({2, 6, 5}, {2, 6, 4}, {"2x6x4"});
  e.expect_fails({2, 6, 5}, {2, 6, 5}, {}, {1, 2, 12});
}
TEST(GroupNormErrors, NullInputData) {
  GNErrorCase e;
  e.expect_fails({2, 6, 5}, {2, 6, 5}, {}, {}, true);
}

// Channels-last GroupNorm as InstanceNorm's (test_instance_norm.cpp): y streamed where aligned
// on Intel past L2, the next image requested meanwhile, has the bits of y written plainly one
// element further on. GroupNorm(32) on 8x128x33x33 floats (4.5 MB).
TEST(GroupNormChannelsLast, StreamedOutputsMatchPlainOnesBitForBit) {
  const Shape shape = {8, 128, 33, 33};
  const int64_t n = numel(shape);
  const Strides st = channels_last_strides(shape);
  const auto x = random_vec<float>(n, 0.5, 2.0);
  const auto w = random_vec<float>(128, 1.0, 0.5), b = random_vec<float>(128);
  std::vector<float> out[2];
  for (int shifted = 0; shifted < 2; ++shifted) {
    std::vector<float> buf(size_t(n + 64));
    float* base = buf.data() + (16 - reinterpret_cast<uintptr_t>(buf.data()) % 64 / sizeof(float)) % 16 + shifted;
    ASSERT_EQ(reinterpret_cast<uintptr_t>(base) % 64, shifted ? sizeof(float) : 0);
    normkit::GroupNormArgs<float> a;
    a.num_groups = 32, a.weight = w, a.bias = b;
    normkit::group_norm_forward<float>({x.data(), shape, st}, {base, shape, st}, a);
    out[shifted].assign(base, base + n);
  }
  expect_bitwise(out[0], out[1], "y");
}

// Channels-last GroupNorm's backward with a few channels per group runs on per-channel
// statistics merged per group, each image's statistics, sums and dx while the image is in
// cache (engine.cpp, backward_columns); a single image takes the unfused passes. dx of a batch
// has the bits of each image's dx computed alone.
template <class T>
void check_channels_last_backward_per_image(const Shape& shape, int64_t G) {
  SCOPED_TRACE("G=" + std::to_string(G));
  const auto w = random_vec<float>(shape[1], 1.0, 0.5), b = random_vec<float>(shape[1]);
  normkit::GroupNormArgs<T, float> a;
  a.num_groups = G, a.weight = w, a.bias = b;
  std::vector<float> dw(static_cast<size_t>(shape[1])), db(dw.size());
  expect_backward_per_image<T>(
      shape, G, [&](auto x, auto y, auto saved) { normkit::group_norm_forward<T, float>(x, y, a, saved); },
      [&](auto dy, auto x, auto dx, auto saved) { normkit::group_norm_backward<T, float>(dy, x, dx, a, dw, db, saved); });
}

TEST(GroupNormChannelsLast, BackwardOfABatchHasTheBitsOfEachImageAlone) {
  check_channels_last_backward_per_image<float>({5, 66, 9, 11}, 6);  // 11 channels a group, tails
  check_channels_last_backward_per_image<float>({4, 256, 14, 14}, 32);
  check_channels_last_backward_per_image<normkit::bfloat16>({3, 64, 7, 9}, 16);
}

}  // namespace
