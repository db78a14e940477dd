// test_extras_deploy.cpp — fold_batch_norm (Linear, Conv2d and ConvTranspose2d followed by
// an eval BatchNorm equal the folded layer), FrozenBatchNorm (identity when fresh, equal to
// eval BatchNorm, dx = dy * scale) and AdaIN (the InstanceNorm composition, gradients of
// content and style by finite differences), with their argument errors.
#include <cmath>

#include "test_util.hpp"

namespace {
using namespace nk_test;
using normkit::BatchNorm;
using normkit::FrozenBatchNorm;

// ---- small layers for the folding tests (plain loops, double accumulators) -----------------

// Conv2d, stride 1, padding `pad`: x (N, I, H, W), w (O, I, k, k) -> (N, O, H', W').
template <class T>
std::vector<T> conv2d(const std::vector<T>& x, const Shape& xs, const std::vector<T>& w, int64_t O,
                      int64_t k, const std::vector<T>& b, int64_t pad, Shape& ys) {
  const int64_t N = xs[0], I = xs[1], H = xs[2], W = xs[3], Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1;
  ys = {N, O, Ho, Wo};
  std::vector<T> y(size_t(numel(ys)));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < Ho; ++i)
        for (int64_t j = 0; j < Wo; ++j) {
          double acc = b.empty() ? 0.0 : double(b[static_cast<size_t>(o)]);
          for (int64_t c = 0; c < I; ++c)
            for (int64_t p = 0; p < k; ++p)
              for (int64_t q = 0; q < k; ++q) {
                const int64_t h = i + p - pad, v = j + q - pad;
                if (h < 0 || h >= H || v < 0 || v >= W) continue;
                acc += double(x[size_t(((n * I + c) * H + h) * W + v)]) * double(w[size_t(((o * I + c) * k + p) * k + q)]);
              }
          y[size_t(((n * O + o) * Ho + i) * Wo + j)] = T(acc);
        }
  return y;
}

// ConvTranspose2d with a 1x1 kernel: w (I, O, 1, 1), y[n, o] = sum_i w[i, o] x[n, i] + b[o].
template <class T>
std::vector<T> conv_transpose_1x1(const std::vector<T>& x, const Shape& xs, const std::vector<T>& w,
                                  int64_t O, const std::vector<T>& b) {
  const int64_t N = xs[0], I = xs[1], S = xs[2] * xs[3];
  std::vector<T> y(size_t(N * O * S));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t s = 0; s < S; ++s) {
        double acc = b.empty() ? 0.0 : double(b[static_cast<size_t>(o)]);
        for (int64_t i = 0; i < I; ++i) acc += double(w[size_t(i * O + o)]) * double(x[size_t((n * I + i) * S + s)]);
        y[size_t((n * O + o) * S + s)] = T(acc);
      }
  return y;
}

// A BatchNorm with non-trivial running statistics and affine parameters, in eval mode.
BatchNorm<double> trained_bn(int64_t C, bool affine) {
  BatchNorm<double> bn(C, {1e-3, 0.1, affine, true});
  bn.running_mean = random_vec<double>(C, 0.0, 2.0);
  bn.running_var = random_vec<double>(C, 1.5, 1.0);
  if (affine) bn.weight = random_vec<double>(C, 1.0, 0.5), bn.bias = random_vec<double>(C, 0.0, 1.0);
  bn.eval();
  return bn;
}

std::vector<double> bn_eval(BatchNorm<double>& bn, const std::vector<double>& x, const Shape& s) {
  std::vector<double> y(x.size());
  bn.forward(cview(x, s), mview(y, s));
  return y;
}

TEST(ExtrasDeploy, FoldLinearThenBatchNorm) {
  for (bool affine : {true, false})
    for (bool with_bias : {true, false}) {
      SCOPED_TRACE(std::string(affine ? "affine" : "no affine") + (with_bias ? " bias" : " no bias"));
      const int64_t N = 5, I = 7, O = 6;
      const auto x = random_vec<double>(N * I), w = random_vec<double>(O * I);
      const auto b = with_bias ? random_vec<double>(O) : std::vector<double>{};
      Shape ys;  // a Linear layer is a 1x1 conv on (N, I, 1, 1)
      const auto lin = conv2d(x, {N, I, 1, 1}, w, O, 1, b, 0, ys);
      auto bn = trained_bn(O, affine);
      const auto want = bn_eval(bn, lin, {N, O});
      const auto f = normkit::fold_batch_norm<double>(cview(w, {O, I}), b, bn);
      const auto got = conv2d(x, {N, I, 1, 1}, f.weight, O, 1, f.bias, 0, ys);
      expect_close(got, want, 1e-12, "linear + BN vs folded linear");
    }
}

TEST(ExtrasDeploy, FoldConv2dAndConvTranspose) {
  const int64_t N = 2, I = 3, O = 4, H = 6, W = 5;
  const auto x = random_vec<double>(N * I * H * W);
  auto bn = trained_bn(O, true);
  {
    const auto w = random_vec<double>(O * I * 9), b = random_vec<double>(O);
    Shape ys;
    const auto y = conv2d(x, {N, I, H, W}, w, O, 3, b, 1, ys);
    const auto want = bn_eval(bn, y, ys);
    const auto f = normkit::fold_batch_norm<double>(cview(w, {O, I, 3, 3}), b, bn);
    EXPECT_EQ(f.weight.size(), w.size());
    expect_close(conv2d(x, {N, I, H, W}, f.weight, O, 3, f.bias, 1, ys), want, 1e-12, "conv3x3 + BN");
  }
  {
    const auto w = random_vec<double>(I * O), b = random_vec<double>(O);
    const auto y = conv_transpose_1x1(x, {N, I, H, W}, w, O, b);
    const auto want = bn_eval(bn, y, {N, O, H, W});
    const auto f = normkit::fold_batch_norm<double>(cview(w, {I, O, 1, 1}), b, bn, true);
    expect_close(conv_transpose_1x1(x, {N, I, H, W}, f.weight, O, f.bias), want, 1e-12, "conv transpose + BN");
  }
}

TEST(ExtrasDeploy, FoldFormulaAndStridedWeight) {
  // W' = W * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta; W read through strides
  const std::vector<float> m{0.5f, -1.f}, v{4.f, 0.25f}, g{2.f, 3.f}, beta{0.1f, 0.2f}, b{1.f, 2.f};
  const std::vector<float> w_t{1, 2, 3, 4, 5, 6};  // W = w_t^T: shape (2, 3), strides (1, 2)
  const auto f = normkit::fold_batch_norm<float>(normkit::TensorView<const float>(w_t.data(), {2, 3}, {1, 2}),
                                                 b, m, v, g, beta, 0.0);
  expect_close(f.weight, std::vector<double>{1, 3, 5, 12, 24, 36}, 1e-7, "W'");
  expect_close(f.bias, std::vector<double>{0.5 * 1 + 0.1, 3 * 6 + 0.2}, 1e-7, "b'");
}

TEST(ExtrasDeploy, FoldRefusesTrainingModeAndBadSizes) {
  BatchNorm<float> bn(3);
  const std::vector<float> w(6);
  expect_error([&] { normkit::fold_batch_norm<float>(cview(w, {3, 2}), {}, bn); }, "fold_batch_norm",
               {"training mode", "eval()"});
  bn.eval();
  EXPECT_NO_THROW(normkit::fold_batch_norm<float>(cview(w, {3, 2}), {}, bn));
  expect_error([&] { normkit::fold_batch_norm<float>(cview(w, {2, 3}), {}, bn); }, "fold_batch_norm",
               {"running_mean has 3 elements", "expected 2"});
  BatchNorm<float> untracked(3, {1e-5, 0.1, true, false});
  untracked.eval();
  expect_error([&] { normkit::fold_batch_norm<float>(cview(w, {3, 2}), {}, untracked); }, "fold_batch_norm",
               {"track_running_stats=false"});
  const std::vector<float> rm(3), rv(3, 1.f);
  expect_error([&] { normkit::fold_batch_norm<float>(cview(w, {3, 2}), {}, rm, {}, {}, {}); },
               "fold_batch_norm", {"running_var are required"});
  expect_error([&] { normkit::fold_batch_norm<float>(cview(w, {3, 2}), {}, rm, rv, {}, {}, -1.0); },
               "fold_batch_norm", {"eps=-1"});
}

// ---- FrozenBatchNorm ------------------------------------------------------------------------

TEST(ExtrasDeploy, FrozenBatchNormFreshIsIdentity) {
  FrozenBatchNorm<float> f(4);
  EXPECT_FLOAT_EQ(f.running_var[0], 1.0f - 1e-5f);
  const Shape sh{2, 4, 3, 5};
  const auto x = random_vec<float>(numel(sh));
  std::vector<float> y(x.size());
  f.forward(cview(x, sh), mview(y, sh));
  expect_close(y, x, 1e-6, "fresh FrozenBatchNorm");
}

TEST(ExtrasDeploy, FrozenBatchNormEqualsEvalBatchNorm) {
  for (bool channels_last : {false, true}) {
    SCOPED_TRACE(channels_last ? "channels-last" : "NCHW");
    auto bn = trained_bn(5, true);
    auto f = FrozenBatchNorm<double>::from(bn);
    const Shape sh{3, 5, 4, 6};
    const Strides st = channels_last ? channels_last_strides(sh) : normkit::contiguous_strides(sh);
    const auto x = random_vec<double>(numel(sh));
    const auto want = bn_eval(bn, x, sh);
    auto xb = scatter(x, sh, st), yb = scatter(std::vector<double>(x.size()), sh, st);
    f.forward(cview(xb, sh, st), mview(yb, sh, st));
    expect_close(gather(yb, sh, st), want, 1e-12, "frozen vs eval BN");
    // backward: dx = dy * weight / sqrt(running_var + eps), checked by finite differences
    const auto gy = random_vec<double>(numel(sh));
    auto gyb = scatter(gy, sh, st), dxb = scatter(std::vector<double>(x.size()), sh, st);
    f.backward(cview(gyb, sh, st), mview(dxb, sh, st));
    auto xx = x;
    auto loss = [&]() {
      std::vector<double> y(xx.size());
      f.forward(cview(xx, sh), mview(y, sh));
      return dot(y, gy);
    };
    expect_close(gather(dxb, sh, st), numeric_grad(loss, xx.data(), int64_t(xx.size())), kFdTol, "dx");
  }
}

TEST(ExtrasDeploy, FrozenBatchNormErrors) {
  FrozenBatchNorm<float> f(4);
  std::vector<float> x(30), y(30);
  expect_error([&] { f.forward(cview(x, {2, 5, 3}), mview(y, {2, 5, 3})); }, "frozen_batch_norm",
               {"5 channels", "num_features=4"});
  expect_error([] { FrozenBatchNorm<float> g(0); }, "frozen_batch_norm", {"num_features=0"});
  BatchNorm<float> untracked(3, {1e-5, 0.1, true, false});
  expect_error([&] { FrozenBatchNorm<float>::from(untracked); }, "frozen_batch_norm", {"track_running_stats=false"});
}

// ---- AdaIN ----------------------------------------------------------------------------------

// Reference composition: style mean and sigma = 1 / rstd from the oracle's InstanceNorm,
// content normalized by the oracle's InstanceNorm (no affine), then y = xhat * sigma + mean.
template <class T>
std::vector<T> adain_ref(const std::vector<T>& c, const Shape& cs, const std::vector<T>& s, const Shape& ss,
                         double eps) {
  const auto [N, C, Sc] = ncs(cs);
  const int64_t Ss = ncs(ss).S;
  std::vector<T> xhat(c.size()), unused(s.size()), ms(size_t(N * C)), rs(size_t(N * C));
  normkit::reference::instance_norm_forward(s.data(), unused.data(), N, C, Ss, (const T*)nullptr,
                                            (const T*)nullptr, (T*)nullptr, (T*)nullptr, true, 0.1, eps,
                                            ms.data(), rs.data());
  normkit::reference::instance_norm_forward(c.data(), xhat.data(), N, C, Sc, (const T*)nullptr,
                                            (const T*)nullptr, (T*)nullptr, (T*)nullptr, true, 0.1, eps);
  std::vector<T> y(c.size());
  for (int64_t k = 0; k < N * C; ++k)
    for (int64_t i = 0; i < Sc; ++i)
      y[size_t(k * Sc + i)] = T(double(xhat[size_t(k * Sc + i)]) / double(rs[static_cast<size_t>(k)]) + double(ms[static_cast<size_t>(k)]));
  return y;
}

template <class T>
class ExtrasAdainTest : public ::testing::Test {};
TYPED_TEST_SUITE(ExtrasAdainTest, FloatTypes);

TYPED_TEST(ExtrasAdainTest, MatchesInstanceNormComposition) {
  using T = TypeParam;
  struct Case {
    Shape content, style;
    bool channels_last;
  };
  for (const Case& k : {Case{{2, 3, 5, 4}, {2, 3, 7, 6}, false}, Case{{1, 3, 64, 48}, {1, 3, 32, 40}, false},
                        Case{{4, 16, 9}, {4, 16, 11}, false}, Case{{2, 8, 6, 5}, {2, 8, 4, 4}, true}}) {
    SCOPED_TRACE(normkit::shape_str(k.content) + " <- " + normkit::shape_str(k.style));
    const auto c = random_vec<T>(numel(k.content), 0.5, 1.0), s = random_vec<T>(numel(k.style), -1.0, 2.0);
    const auto want = adain_ref(c, k.content, s, k.style, 1e-5);
    const Strides cst = k.channels_last ? channels_last_strides(k.content) : normkit::contiguous_strides(k.content);
    const Strides sst = k.channels_last ? channels_last_strides(k.style) : normkit::contiguous_strides(k.style);
    auto cb = scatter(c, k.content, cst), sb = scatter(s, k.style, sst);
    auto yb = scatter(std::vector<T>(c.size()), k.content, cst);
    const int64_t NC = k.content[0] * k.content[1];
    auto mean = sentinel_vec<T>(NC), rstd = sentinel_vec<T>(NC);
    normkit::adain_forward<T>(cview(cb, k.content, cst), cview(sb, k.style, sst), mview(yb, k.content, cst),
                              1e-5, {mean, rstd});
    expect_close(gather(yb, k.content, cst), want, tol<T>() * 4, "y");
    expect_gaps_untouched(yb, k.content, cst, "y");
    std::vector<T> unused(c.size()), mean_ref(static_cast<size_t>(NC)), rstd_ref(static_cast<size_t>(NC));
    const auto d = ncs(k.content);
    normkit::reference::instance_norm_forward(c.data(), unused.data(), d.N, d.C, d.S, (const T*)nullptr,
                                              (const T*)nullptr, (T*)nullptr, (T*)nullptr, true, 0.1, 1e-5,
                                              mean_ref.data(), rstd_ref.data());
    expect_close(mean, mean_ref, tol<T>(), "saved content mean");
    expect_close(rstd, rstd_ref, tol<T>(), "saved content rstd");
  }
}

TEST(ExtrasDeploy, AdainOfItselfIsIdentity) {
  const Shape sh{2, 3, 8, 8};
  const auto x = random_vec<double>(numel(sh), 1.0, 3.0);
  std::vector<double> y(x.size());
  normkit::adain_forward<double>(cview(x, sh), cview(x, sh), mview(y, sh), 0.0);
  expect_close(y, x, 1e-12, "adain(x, x) with eps = 0");
}

TEST(ExtrasDeploy, AdainGradientsByFiniteDifferences) {
  for (bool channels_last : {false, true}) {
    SCOPED_TRACE(channels_last ? "channels-last" : "NCHW");
    const Shape cs{2, 3, 4, 3}, ss{2, 3, 2, 5};
    const Strides cst = channels_last ? channels_last_strides(cs) : normkit::contiguous_strides(cs);
    const Strides sst = channels_last ? channels_last_strides(ss) : normkit::contiguous_strides(ss);
    auto c = random_vec<double>(numel(cs)), s = random_vec<double>(numel(ss), 0.5, 1.0);
    const auto gy = random_vec<double>(numel(cs));
    auto loss = [&]() {
      std::vector<double> y(c.size());
      normkit::adain_forward<double>(cview(c, cs), cview(s, ss), mview(y, cs), 1e-5);
      return dot(y, gy);
    };
    auto cb = scatter(c, cs, cst), sb = scatter(s, ss, sst), gyb = scatter(gy, cs, cst);
    auto dcb = scatter(std::vector<double>(c.size()), cs, cst), dsb = scatter(std::vector<double>(s.size()), ss, sst);
    normkit::adain_backward<double>(cview(gyb, cs, cst), cview(cb, cs, cst), cview(sb, ss, sst),
                                    mview(dcb, cs, cst), mview(dsb, ss, sst), 1e-5);
    expect_close(gather(dcb, cs, cst), numeric_grad(loss, c.data(), int64_t(c.size())), kFdTol, "dcontent");
    expect_close(gather(dsb, ss, sst), numeric_grad(loss, s.data(), int64_t(s.size())), kFdTol, "dstyle");
    expect_gaps_untouched(dsb, ss, sst, "dstyle");
    // either gradient alone
    std::vector<double> ds_only(s.size());
    normkit::adain_backward<double>(cview(gy, cs), cview(c, cs), cview(s, ss), {}, mview(ds_only, ss), 1e-5);
    expect_close(ds_only, gather(dsb, ss, sst), 1e-12, "dstyle without dcontent");
  }
}

TEST(ExtrasDeploy, AdainErrors) {
  std::vector<float> c(24), s(24), y(24);
  expect_error([&] { normkit::adain_forward<float>(cview(c, {2, 3, 4}), cview(s, {3, 2, 4}), mview(y, {2, 3, 4})); },
               "adain", {"must agree in N and C", "2x3x4", "3x2x4"});
  expect_error([&] { normkit::adain_forward<float>(cview(c, {2, 3, 4}), cview(s, {2, 3, 0}), mview(y, {2, 3, 4})); },
               "adain", {"no spatial elements"});
  expect_error([&] { normkit::adain_forward<float>(cview(c, {2, 3, 4}), cview(s, {2, 3, 4}), mview(y, {2, 3, 4}), -1.0); },
               "adain", {"eps=-1"});
  expect_error([&] { normkit::adain_forward<float>(cview(c, {24}), cview(s, {24}), mview(y, {24})); },
               "adain", {"rank >= 2"});
}

}  // namespace
