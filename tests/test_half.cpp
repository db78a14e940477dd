// test_half.cpp — bfloat16 / float16 storage: the conversions (round to nearest even, NaN,
// inf, float16 subnormals and overflow) in scalar and SIMD form, every op forward and
// backward against the float32 path on the same rounded inputs (float and half
// parameters, odd sizes, strided and channels-last views), RMSNorm's two casting orders
// bit for bit, bad input, and bitwise determinism across thread counts.
#include <limits>

#include "engine/rows.hpp"
#include "test_util.hpp"

namespace {
using namespace nk_test;
using normkit::bfloat16;
using normkit::float16;

template <class H>
constexpr double half_tol() { return std::is_same_v<H, float16> ? 5e-3 : 2e-2; }

float bits_to_float(uint32_t u) { return std::bit_cast<float>(u); }

// ---- conversions ---------------------------------------------------------------------------

TEST(HalfConvert, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(bfloat16(1.0f).bits, 0x3F80);
  EXPECT_EQ(bfloat16(-2.0f).bits, 0xC000);
  EXPECT_EQ(bfloat16(bits_to_float(0x3F808000)).bits, 0x3F80);  // tie, down to even
  EXPECT_EQ(bfloat16(bits_to_float(0x3F818000)).bits, 0x3F82);  // tie, up to even
  EXPECT_EQ(bfloat16(bits_to_float(0x3F808001)).bits, 0x3F81);  // above the tie
  EXPECT_EQ(bfloat16(bits_to_float(0x3F807FFF)).bits, 0x3F80);  // below the tie
  EXPECT_EQ(bfloat16(std::numeric_limits<float>::infinity()).bits, 0x7F80);
  EXPECT_EQ(bfloat16(-std::numeric_limits<float>::infinity()).bits, 0xFF80);
  EXPECT_EQ(bfloat16(std::numeric_limits<float>::max()).bits, 0x7F80);  // rounds up to inf
  EXPECT_EQ(bfloat16(std::numeric_limits<float>::quiet_NaN()).bits, 0x7FC0);
  EXPECT_EQ(bfloat16(bits_to_float(0x7F800001)).bits, 0x7FC0);  // signalling NaN stays NaN
  EXPECT_EQ(float(bfloat16::from_bits(0x4049)), 3.140625f);
  for (uint32_t b = 0; b < 0x10000; ++b) {  // every finite pattern survives a round trip
    const bfloat16 h = bfloat16::from_bits(uint16_t(b));
    if (std::isnan(float(h))) continue;
    ASSERT_EQ(bfloat16(float(h)).bits, b);
  }
}

TEST(HalfConvert, Float16RoundsToNearestEvenWithSubnormalsAndOverflow) {
  EXPECT_EQ(float16(1.0f).bits, 0x3C00);
  EXPECT_EQ(float16(-2.0f).bits, 0xC000);
  EXPECT_EQ(float16(65504.0f).bits, 0x7BFF);
  EXPECT_EQ(float16(65519.0f).bits, 0x7BFF);  // below the tie with 65536
  EXPECT_EQ(float16(65520.0f).bits, 0x7C00);  // the tie rounds to even: inf
  EXPECT_EQ(float16(1e5f).bits, 0x7C00);
  EXPECT_EQ(float16(-1e30f).bits, 0xFC00);
  EXPECT_EQ(float16(std::numeric_limits<float>::infinity()).bits, 0x7C00);
  EXPECT_EQ(float16(std::numeric_limits<float>::quiet_NaN()).bits & 0x7FFF, 0x7E00);
  EXPECT_EQ(float16(1.0f + 0x1.0p-11f).bits, 0x3C00);                 // tie, down to even
  EXPECT_EQ(float16(1.0f + 3 * 0x1.0p-11f).bits, 0x3C02);             // tie, up to even
  EXPECT_EQ(float16(0x1.0p-24f).bits, 0x0001);                        // smallest subnormal
  EXPECT_EQ(float16(0x1.0p-25f).bits, 0x0000);                        // tie with 0: even
  EXPECT_EQ(float16(0x1.8p-24f).bits, 0x0002);                        // tie, up to even
  EXPECT_EQ(float16(0x1.0p-25f * 1.0001f).bits, 0x0001);              // above the tie
  EXPECT_EQ(float16(-0x1.0p-26f).bits, 0x8000);                       // underflow keeps the sign
  EXPECT_EQ(float16(0x1.ff8p-15f).bits, 0x03FF);                      // the largest subnormal
  EXPECT_EQ(float16(0x1.ffcp-15f).bits, 0x0400);                      // tie: up to the smallest normal
  EXPECT_EQ(float(float16::from_bits(0x0001)), 0x1.0p-24f);
  EXPECT_EQ(float(float16::from_bits(0x03FF)), 1023 * 0x1.0p-24f);
  EXPECT_EQ(float(float16::from_bits(0x7BFF)), 65504.0f);
  EXPECT_TRUE(std::isinf(float(float16::from_bits(0xFC00))));
  EXPECT_TRUE(std::signbit(float(float16::from_bits(0x8000))));
  EXPECT_TRUE(std::isnan(float(float16::from_bits(0x7E00))));
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float16 h = float16::from_bits(uint16_t(b));
    if (std::isnan(float(h))) continue;
    ASSERT_EQ(float16(float(h)).bits, b);
  }
}

// The SIMD loads and stores give the scalar conversion's bits: every pattern times a factor
// whose products land on ties (half an ulp of the storage type), on overflow and in the
// float16 subnormals; the length leaves a vector tail.
template <class H>
void simd_matches_scalar(float alpha) {
  std::vector<H> x(0x10000 + 3), y(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = H::from_bits(uint16_t(i * 40503u));
  normkit::engine::rows::scale_shift<H>(x.data(), y.data(), int64_t(x.size()),
                                        normkit::engine::rows::SplitMean<float>(0.0), alpha, 0.0f);
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = float(x[i]) * alpha + 0.0f;
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(float(y[i]))) << i;
      continue;
    }
    if (float(H(want)) == 0.0f) {  // fused x * alpha + 0 may keep the sign of an underflow
      ASSERT_EQ(float(y[i]), 0.0f) << i;
      continue;
    }
    ASSERT_EQ(y[i].bits, H(want).bits) << "x bits " << x[i].bits << " alpha " << alpha;
  }
}

TEST(HalfConvert, SimdMatchesScalar) {
  for (float a : {1.0f, 1.0f + 0x1.0p-8f, 1.0f + 0x1.0p-9f, 3.0f, 1e30f, 1e-30f, -0.7f}) simd_matches_scalar<bfloat16>(a);
  for (float a : {1.0f, 1.0f + 0x1.0p-11f, 1.0f + 0x1.0p-12f, 3.0f, 1024.0f, 0x1.0p-13f, -0.7f})
    simd_matches_scalar<float16>(a);
}

// ---- ops against the float32 path ------------------------------------------------------------

template <class H>
std::vector<H> to_half(const std::vector<float>& v) {
  std::vector<H> h;
  for (float f : v) h.push_back(H(f));
  return h;
}
template <class H>
std::vector<float> widen(const std::vector<H>& v) {
  return std::vector<float>(v.begin(), v.end());
}
// Random values rounded to H (as float and as H: the same numbers).
template <class H>
std::vector<float> rounded(int64_t n, double offset = 0.0, double spread = 1.0) {
  return widen(to_half<H>(random_vec<float>(n, offset, spread)));
}

// |got - want| <= tol * max(1, |want|) elementwise.
template <class G>
void expect_half_close(const std::vector<G>& got, const std::vector<float>& want, double tol,
                       const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = double(float(got[i])), w = double(want[i]);
    ASSERT_LE(std::abs(g - w), tol * std::max(1.0, std::abs(w))) << what << " at " << i << ": got " << g
                                                                 << " want " << w;
  }
}

// The data of one op call in float32 and H storage, on the same (rounded) values; when
// half_params, the parameters are rounded to H too and passed as H.
template <class H>
struct Case {
  Shape shape;
  Strides strides;
  std::vector<float> x, dy;  // logical order
  std::vector<float> w, b;   // empty: absent
  bool half_params = false;

  // (buffer in memory order with gaps, view strides)
  template <class T>
  std::vector<T> place(const std::vector<float>& v) const {
    std::vector<T> c;
    for (float f : v) c.push_back(T(f));
    const auto off = offs();
    std::vector<T> buf(off.empty() ? 1 : size_t(*std::max_element(off.begin(), off.end())) + 2, T(0.0f));
    for (size_t i = 0; i < off.size(); ++i) buf[size_t(off[i])] = c[i];
    return buf;
  }
  std::vector<int64_t> offs() const { return offsets(shape, strides); }
  template <class T>
  std::vector<float> pick(const std::vector<T>& buf) const {
    std::vector<float> out;
    for (int64_t o : offs()) out.push_back(float(buf[size_t(o)]));
    return out;
  }
};

template <class H>
Case<H> make_case(const Shape& shape, const Strides& strides, int64_t nparam, bool bias, bool half_params,
                  double offset = 0.5) {
  Case<H> c;
  c.shape = shape;
  c.strides = strides.empty() ? normkit::contiguous_strides(shape) : strides;
  c.x = rounded<H>(numel(shape), offset, 2.0);
  c.dy = rounded<H>(numel(shape));
  c.half_params = half_params;
  if (nparam > 0) {
    c.w = random_vec<float>(nparam, 1.0, 0.5);
    if (bias) c.b = random_vec<float>(nparam);
    if (half_params) c.w = widen(to_half<H>(c.w)), c.b = widen(to_half<H>(c.b));
  }
  return c;
}

// Runs fwd(x, y, w, b) / bwd(dy, x, dx, w, dw, db) in float32 and in H with parameters of type
// P, compares y, dx, dw, db. The callables are generic over (T, P).
template <class H, class P, class Fwd, class Bwd>
void compare_with_float(const Case<H>& c, const std::string& what, Fwd&& fwd, Bwd&& bwd) {
  const size_t np = c.w.size();
  auto run = [&](auto tag, auto ptag) {
    using T = decltype(tag);
    using Q = decltype(ptag);
    auto x = c.template place<T>(c.x), dy = c.template place<T>(c.dy);
    std::vector<T> y(x.size(), T(0.0f)), dx(x.size(), T(0.0f));
    std::vector<Q> w, b, dw(np), db(c.b.size());
    for (float f : c.w) w.push_back(Q(f));
    for (float f : c.b) b.push_back(Q(f));
    const normkit::TensorView<const T> xv(x.data(), c.shape, c.strides), dyv(dy.data(), c.shape, c.strides);
    const normkit::TensorView<T> yv(y.data(), c.shape, c.strides), dxv(dx.data(), c.shape, c.strides);
    fwd(xv, yv, std::span<const Q>(w), std::span<const Q>(b));
    bwd(dyv, xv, dxv, std::span<const Q>(w), std::span<const Q>(b), std::span<Q>(dw), std::span<Q>(db));
    return std::vector<std::vector<float>>{c.pick(y), c.pick(dx), widen(dw), widen(db)};
  };
  const auto want = run(float{}, float{});
  const auto got = run(H{}, P{});
  const double tol = half_tol<H>();
  expect_half_close(got[0], want[0], tol, what + " y");
  expect_half_close(got[1], want[1], tol, what + " dx");
  expect_half_close(got[2], want[2], tol, what + " dweight");
  expect_half_close(got[3], want[3], tol, what + " dbias");
}

template <class H>
class HalfOps : public ::testing::Test {};
using HalfTypes = ::testing::Types<bfloat16, float16>;
TYPED_TEST_SUITE(HalfOps, HalfTypes);

template <class T>
using CV = normkit::TensorView<const T>;
template <class T>
using MV = normkit::TensorView<T>;
template <class T>
using CS = std::span<const T>;
template <class T>
using MS = std::span<T>;

// Runs one op for P = float parameters and P = H parameters on every shape/layout given.
template <class H, class Fwd, class Bwd>
void check_op(const char* name, const std::vector<std::pair<Shape, Strides>>& layouts,
              const std::function<int64_t(const Shape&)>& nparam, bool bias, Fwd&& fwd, Bwd&& bwd,
              double offset = 0.5) {
  for (bool hp : {false, true})
    for (const auto& [sh, st] : layouts) {
      const auto c = make_case<H>(sh, st, nparam(sh), bias, hp, offset);
      const std::string what = std::string(name) + " " + normkit::shape_str(sh) + (st.empty() ? "" : " strided") +
                               (hp ? " half params" : " float params");
      if (hp)
        compare_with_float<H, H>(c, what, fwd, bwd);
      else
        compare_with_float<H, float>(c, what, fwd, bwd);
    }
}

std::vector<std::pair<Shape, Strides>> channel_layouts() {
  std::vector<std::pair<Shape, Strides>> v;
  for (const Shape& sh : {Shape{3, 5, 7, 3}, Shape{4, 16, 9, 11}, Shape{2, 6, 33}}) {
    v.push_back({sh, {}});
    v.push_back({sh, channels_last_strides(sh)});
    v.push_back({sh, doubled_strides(sh)});
  }
  return v;
}
std::vector<std::pair<Shape, Strides>> row_layouts() {
  std::vector<std::pair<Shape, Strides>> v;
  for (const Shape& sh : {Shape{3, 37}, Shape{8, 1000}, Shape{2, 5, 7, 9}, Shape{16, 67}}) {
    v.push_back({sh, {}});
    v.push_back({sh, doubled_strides(sh)});
  }
  return v;
}
auto channels = [](const Shape& s) { return s[1]; };
auto last_dim = [](const Shape& s) { return s.back(); };

TYPED_TEST(HalfOps, LayerNorm) {
  check_op<TypeParam>(
      "layer_norm", row_layouts(), last_dim, true,
      []<class T, class Q>(CV<T> x, MV<T> y, CS<Q> w, CS<Q> b) {
        normkit::layer_norm_forward(x, y, normkit::LayerNormArgs<T, Q>{{x.shape.back()}, w, b});
      },
      []<class T, class Q>(CV<T> dy, CV<T> x, MV<T> dx, CS<Q> w, CS<Q> b, MS<Q> dw, MS<Q> db) {
        normkit::layer_norm_backward(dy, x, dx, normkit::LayerNormArgs<T, Q>{{x.shape.back()}, w, b}, dw, db);
      });
}

TYPED_TEST(HalfOps, RMSNorm) {
  for (bool gemma : {false, true})
    check_op<TypeParam>(
        gemma ? "rms_norm gemma" : "rms_norm", row_layouts(), last_dim, false,
        [gemma]<class T, class Q>(CV<T> x, MV<T> y, CS<Q> w, CS<Q>) {
          normkit::RMSNormArgs<T, Q> a{{x.shape.back()}, w, 1e-6, gemma};
          normkit::rms_norm_forward(x, y, a);
        },
        [gemma]<class T, class Q>(CV<T> dy, CV<T> x, MV<T> dx, CS<Q> w, CS<Q>, MS<Q> dw, MS<Q>) {
          normkit::RMSNormArgs<T, Q> a{{x.shape.back()}, w, 1e-6, gemma};
          normkit::rms_norm_backward(dy, x, dx, a, dw);
        });
}

TYPED_TEST(HalfOps, BatchNormTrainingAndEval) {
  for (bool training : {true, false})
    check_op<TypeParam>(
        training ? "batch_norm train" : "batch_norm eval", channel_layouts(), channels, true,
        [training]<class T, class Q>(CV<T> x, MV<T> y, CS<Q> w, CS<Q> b) {
          std::vector<Q> rm(w.size(), Q(0.25f)), rv(w.size(), Q(1.5f));
          normkit::BatchNormArgs<T, Q> a{w, b, rm, rv, training};
          normkit::batch_norm_forward(x, y, a);
        },
        [training]<class T, class Q>(CV<T> dy, CV<T> x, MV<T> dx, CS<Q> w, CS<Q> b, MS<Q> dw, MS<Q> db) {
          std::vector<Q> rm(w.size(), Q(0.25f)), rv(w.size(), Q(1.5f));
          normkit::BatchNormArgs<T, Q> a{w, b, rm, rv, training};
          normkit::batch_norm_backward(dy, x, dx, a, dw, db);
        });
}

TYPED_TEST(HalfOps, InstanceNorm) {
  check_op<TypeParam>(
      "instance_norm", channel_layouts(), channels, true,
      []<class T, class Q>(CV<T> x, MV<T> y, CS<Q> w, CS<Q> b) {
        normkit::instance_norm_forward(x, y, normkit::InstanceNormArgs<T, Q>{w, b});
      },
      []<class T, class Q>(CV<T> dy, CV<T> x, MV<T> dx, CS<Q> w, CS<Q> b, MS<Q> dw, MS<Q> db) {
        normkit::instance_norm_backward(dy, x, dx, normkit::InstanceNormArgs<T, Q>{w, b}, dw, db);
      });
}

TYPED_TEST(HalfOps, GroupNorm) {
  std::vector<std::pair<Shape, Strides>> layouts;
  for (const Shape& sh : {Shape{3, 6, 7, 3}, Shape{2, 12, 9, 11}}) {
    layouts.push_back({sh, {}});
    layouts.push_back({sh, channels_last_strides(sh)});
  }
  check_op<TypeParam>(
      "group_norm", layouts, channels, true,
      []<class T, class Q>(CV<T> x, MV<T> y, CS<Q> w, CS<Q> b) {
        normkit::group_norm_forward(x, y, normkit::GroupNormArgs<T, Q>{3, w, b});
      },
      []<class T, class Q>(CV<T> dy, CV<T> x, MV<T> dx, CS<Q> w, CS<Q> b, MS<Q> dw, MS<Q> db) {
        normkit::group_norm_backward(dy, x, dx, normkit::GroupNormArgs<T, Q>{3, w, b}, dw, db);
      });
}

TYPED_TEST(HalfOps, Normalize) {
  // Statistics over axes 0 and 2, affine along axis 2 (a reduced axis: the affine sums pass).
  check_op<TypeParam>(
      "normalize", {{{5, 3, 7}, {}}, {{5, 3, 7}, {1, 35, 5}}}, [](const Shape& s) { return s[2]; }, true,
      []<class T, class Q>(CV<T> x, MV<T> y, CS<Q> w, CS<Q> b) {
        normkit::normalize_forward(x, y, normkit::NormalizeArgs<T, Q>{{0, 2}, {2}, normkit::Statistic::Variance, w, b});
      },
      []<class T, class Q>(CV<T> dy, CV<T> x, MV<T> dx, CS<Q> w, CS<Q> b, MS<Q> dw, MS<Q> db) {
        normkit::normalize_backward(dy, x, dx,
                                    normkit::NormalizeArgs<T, Q>{{0, 2}, {2}, normkit::Statistic::Variance, w, b}, dw, db);
      });
}

TYPED_TEST(HalfOps, WeightNorm) {
  check_op<TypeParam>(
      "weight_norm", {{{5, 13}, {}}, {{7, 3, 3, 5}, {}}, {{6, 9}, {1, 6}}}, [](const Shape& s) { return s[0]; },
      false,
      []<class T, class Q>(CV<T> v, MV<T> w, CS<Q> g, CS<Q>) {
        normkit::weight_norm_forward<T, Q>(v, g, w, normkit::WeightNormArgs<T>{0});
      },
      []<class T, class Q>(CV<T> dw, CV<T> v, MV<T> dv, CS<Q> g, CS<Q>, MS<Q> dg, MS<Q>) {
        normkit::weight_norm_backward<T, Q>(dw, v, g, dv, dg, normkit::WeightNormArgs<T>{0});
      });
}

// Running statistics of the parameter type: float (mixed precision) or H, rounded.
TYPED_TEST(HalfOps, BatchNormRunningStatistics) {
  using H = TypeParam;
  const Shape sh{4, 5, 6, 7};
  const auto x = rounded<H>(numel(sh), 3.0, 2.0);
  const auto xh = to_half<H>(x);
  std::vector<float> yf(x.size()), rmf(5, 0.f), rvf(5, 1.f), rmm(5, 0.f), rvm(5, 1.f);
  std::vector<H> yh(x.size()), rmh(5, H(0.0f)), rvh(5, H(1.0f));
  normkit::BatchNormArgs<float> af{{}, {}, rmf, rvf, true};
  normkit::batch_norm_forward<float>(cview(x, sh), mview(yf, sh), af);
  normkit::BatchNormArgs<H, float> am{{}, {}, rmm, rvm, true};
  normkit::batch_norm_forward<H>(cview(xh, sh), mview(yh, sh), am);
  normkit::BatchNormArgs<H> ah{{}, {}, rmh, rvh, true};
  normkit::batch_norm_forward<H>(cview(xh, sh), mview(yh, sh), ah);
  for (size_t c = 0; c < 5; ++c) {
    EXPECT_NEAR(rmm[c], rmf[c], 1e-6) << c;  // statistics are float32 either way
    EXPECT_NEAR(rvm[c], rvf[c], 1e-6) << c;
    EXPECT_EQ(rmh[c].bits, H(rmf[c]).bits) << c;  // written back rounded
    EXPECT_EQ(rvh[c].bits, H(rvf[c]).bits) << c;
  }
}

// RMSNorm's casting orders, bit for bit: MultiplyThenCast y = H(x * r * w);
// NormalizeThenCast y = H(H(x * r) * w), with r the float32 rstd the op saves.
TYPED_TEST(HalfOps, RMSNormCastingOrders) {
  using H = TypeParam;
  const Shape sh{6, 77};
  const auto x = to_half<H>(random_vec<float>(numel(sh), 0.0, 3.0));
  const auto w = to_half<H>(random_vec<float>(77, 1.0, 0.7));
  size_t differ = 0;
  for (auto cast : {normkit::HalfCast::MultiplyThenCast, normkit::HalfCast::NormalizeThenCast}) {
    std::vector<H> y(x.size());
    std::vector<float> rstd(6);
    normkit::RMSNormArgs<H> a{{77}, w, 1e-6};
    a.cast = cast;
    normkit::rms_norm_forward<H>(cview(x, sh), mview(y, sh), a, {{}, rstd});
    for (size_t i = 0; i < x.size(); ++i) {
      const float xr = float(x[i]) * rstd[i / 77], wv = float(w[i % 77]);
      const H want = cast == normkit::HalfCast::MultiplyThenCast ? H(xr * wv) : H(float(H(xr)) * wv);
      ASSERT_EQ(y[i].bits, want.bits) << i;
      differ += cast == normkit::HalfCast::NormalizeThenCast && H(xr * wv).bits != y[i].bits;
    }
  }
  EXPECT_GT(differ, 0u);  // the two orders are not the same function
}

// Outputs of 16 MiB and more are written with non-temporal stores (bfloat16 rows by their
// even/odd loops, rows_simd-inl.h): the same bits as the same rows a few at a time, in cache.
TYPED_TEST(HalfOps, StreamedOutputsGiveTheBitsOfRowsInCache) {
  using H = TypeParam;
  {  // InstanceNorm, planes of 1000: whole stretches and a tail; dx too
    const int64_t N = 9, C = 1000, L = 1000, plane = C * L;  // 18 MB
    const auto x = to_half<H>(random_vec<float>(N * plane, 0.5, 2.0)), dy = to_half<H>(random_vec<float>(N * plane));
    const auto w = random_vec<float>(C, 1.0, 0.5), b = random_vec<float>(C);
    normkit::InstanceNormArgs<H, float> a;
    a.weight = w, a.bias = b;
    std::vector<H> y(x.size()), dx(x.size());
    std::vector<float> dw(static_cast<size_t>(C)), db(static_cast<size_t>(C));
    normkit::instance_norm_forward<H, float>(cview(x, {N, C, L}), mview(y, {N, C, L}), a);
    normkit::instance_norm_backward<H, float>(cview(dy, {N, C, L}), cview(x, {N, C, L}), mview(dx, {N, C, L}), a, dw,
                                              db);
    for (int64_t n : {int64_t{0}, N - 1}) {
      std::vector<H> one(static_cast<size_t>(plane)), dx_one(static_cast<size_t>(plane));
      const normkit::TensorView<const H> x_one(x.data() + n * plane, {1, C, L}), dy_one(dy.data() + n * plane, {1, C, L});
      normkit::instance_norm_forward<H, float>(x_one, mview(one, {1, C, L}), a);
      normkit::instance_norm_backward<H, float>(dy_one, x_one, mview(dx_one, {1, C, L}), a, dw, db);
      EXPECT_EQ(std::memcmp(one.data(), y.data() + n * plane, one.size() * sizeof(H)), 0) << "image " << n;
      EXPECT_EQ(std::memcmp(dx_one.data(), dx.data() + n * plane, one.size() * sizeof(H)), 0) << "dx, image " << n;
    }
  }
  for (auto cast : {normkit::HalfCast::MultiplyThenCast, normkit::HalfCast::NormalizeThenCast}) {
    const int64_t M = 2051, D = 4100;  // 16.8 MB; rows in pairs and one alone, a tail after the lines
    const auto x = to_half<H>(random_vec<float>(M * D, 0.0, 3.0));
    const auto w = random_vec<float>(D, 1.0, 0.5);
    normkit::RMSNormArgs<H, float> a{{D}, w, 1e-6};
    a.cast = cast;
    std::vector<H> y(x.size());
    normkit::rms_norm_forward<H, float>(cview(x, {M, D}), mview(y, {M, D}), a);
    for (const auto& [first, count] : {std::pair<int64_t, int64_t>{0, 3}, {M - 3, 3}}) {
      std::vector<H> few(static_cast<size_t>(count * D));
      normkit::rms_norm_forward<H, float>(normkit::TensorView<const H>(x.data() + first * D, {count, D}),
                                          mview(few, {count, D}), a);
      EXPECT_EQ(std::memcmp(few.data(), y.data() + first * D, few.size() * sizeof(H)), 0) << "rows from " << first;
    }
  }
}

TYPED_TEST(HalfOps, EpsDefaultsToFloat32Epsilon) {
  using H = TypeParam;
  const Shape sh{2, 5};
  const auto x = to_half<H>(random_vec<float>(10));
  std::vector<H> y1(10), y2(10);
  normkit::rms_norm_forward<H>(cview(x, sh), mview(y1, sh), normkit::RMSNormArgs<H>{{5}});
  normkit::rms_norm_forward<H>(cview(x, sh), mview(y2, sh),
                               normkit::RMSNormArgs<H>{{5}, {}, double(std::numeric_limits<float>::epsilon())});
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(y1[i].bits, y2[i].bits);
}

TYPED_TEST(HalfOps, BadInputThrowsAndWritesNothing) {
  using H = TypeParam;
  const Shape sh{3, 8};
  const auto x = to_half<H>(random_vec<float>(24));
  std::vector<H> y(24, H(777.0f));
  const std::vector<float> w3(3, 1.f);
  expect_error([&] {
    normkit::layer_norm_forward<H>(cview(x, sh), mview(y, sh), normkit::LayerNormArgs<H, float>{{8}, w3});
  }, "layer_norm", {"weight has 3 elements, expected 8"});
  expect_error([&] {
    normkit::rms_norm_forward<H>(cview(x, sh), mview(y, sh), normkit::RMSNormArgs<H>{{8}, {}, -1.0});
  }, "rms_norm", {"eps=-1"});
  std::vector<H> rm(8, H(0.0f));
  expect_error([&] {
    normkit::batch_norm_forward<H>(cview(x, sh), mview(y, sh), normkit::BatchNormArgs<H>{{}, {}, rm, {}, true});
  }, "batch_norm", {"running_mean and running_var must be given together"});
  for (const H& v : y) ASSERT_EQ(v.bits, H(777.0f).bits);
}

// DESIGN §5 holds for half storage too: bitwise identical for 1..4 threads.
TYPED_TEST(HalfOps, DeterministicAcrossThreads) {
  using H = TypeParam;
  const int saved = normkit::get_num_threads();
  auto run = [&] {
    std::vector<std::vector<uint16_t>> out;
    auto bits = [&](const std::vector<H>& v) {
      std::vector<uint16_t> b;
      for (const H& h : v) b.push_back(h.bits);
      out.push_back(b);
    };
    {
      const Shape sh{512, 1024};
      static const auto x = to_half<H>(random_vec<float>(numel(sh), 0.5, 2.0));
      static const auto dy = to_half<H>(random_vec<float>(numel(sh)));
      static const auto w = random_vec<float>(1024, 1.0, 0.5), b = random_vec<float>(1024);
      std::vector<H> y(x.size()), dx(x.size());
      std::vector<float> dw(1024), db(1024);
      normkit::LayerNormArgs<H, float> a{{1024}, w, b};
      normkit::layer_norm_forward<H>(cview(x, sh), mview(y, sh), a);
      normkit::layer_norm_backward<H>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, dw, db);
      bits(y), bits(dx), bits(to_half<H>(dw)), bits(to_half<H>(db));
    }
    for (bool cl : {false, true}) {
      const Shape sh{8, 32, 28, 28};
      const Strides st = cl ? channels_last_strides(sh) : normkit::contiguous_strides(sh);
      static const auto x = to_half<H>(random_vec<float>(numel(sh), 1.0, 2.0));
      static const auto dy = to_half<H>(random_vec<float>(numel(sh)));
      std::vector<H> y(x.size()), dx(x.size()), w(32, H(1.5f)), dw(32), db(32);
      std::vector<H> rm(32, H(0.0f)), rv(32, H(1.0f));
      normkit::BatchNormArgs<H> a{w, {}, rm, rv, true};
      normkit::batch_norm_forward<H>(cview(x, sh, st), mview(y, sh, st), a);
      normkit::batch_norm_backward<H>(cview(dy, sh, st), cview(x, sh, st), mview(dx, sh, st), a, dw, db);
      bits(y), bits(dx), bits(dw), bits(db), bits(rm), bits(rv);
    }
    return out;
  };
  normkit::set_num_threads(1);
  const auto base = run();
  for (int t = 2; t <= 4; ++t) {
    normkit::set_num_threads(t);
    const auto got = run();
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], base[i]) << "output " << i << " with " << t << " threads";
  }
  normkit::set_num_threads(saved);
}

}  // namespace
