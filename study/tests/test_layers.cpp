// study/tests/test_layers.cpp — the training stack's gradients against central finite
// differences, in double: convolution (stride 1 and 2, odd sizes, with and without bias),
// linear, ReLU, global average pooling, softmax cross-entropy; one SGD step by hand; and He
// initialization's statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "layers.hpp"
#include "sgd.hpp"

using namespace study;

namespace {

std::vector<double> randn(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<double> v(n);
  for (double& x : v) x = r.normal();
  return v;
}

// Checks d loss / d v[i] == grad[i] for every i, loss() re-evaluated with v perturbed.
void check_fd(std::vector<double>& v, const std::vector<double>& grad,
              const std::function<double()>& loss, const char* what, double h = 1e-5) {
  ASSERT_EQ(v.size(), grad.size()) << what;
  for (size_t i = 0; i < v.size(); ++i) {
    const double keep = v[i];
    v[i] = keep + h;
    const double lp = loss();
    v[i] = keep - h;
    const double lm = loss();
    v[i] = keep;
    const double fd = (lp - lm) / (2 * h);
    EXPECT_NEAR(grad[i], fd, 1e-6 * (1 + std::abs(fd))) << what << "[" << i << "]";
  }
}

// The conv is checked through loss = sum(y * r) for a fixed random r (so dy = r).
void conv_case(int cin, int cout, int stride, bool bias, int n, int h, int w) {
  Conv2d<double> conv(cin, cout, 3, stride, 1, bias);
  Rng rng(7);
  conv.init(rng);
  for (double& b : conv.bias) b = rng.normal();
  std::vector<double> x = randn(static_cast<size_t>(n) * cin * h * w, 11);
  const int oh = conv.out_size(h), ow = conv.out_size(w);
  const std::vector<double> r = randn(static_cast<size_t>(n) * cout * oh * ow, 13);
  std::vector<double> y(r.size()), dx(x.size(), 42.0);
  auto loss = [&] {
    conv.forward(x.data(), n, h, w, y.data());
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += y[i] * r[i];
    return s;
  };
  std::fill(conv.weight_grad.begin(), conv.weight_grad.end(), 0.0);
  std::fill(conv.bias_grad.begin(), conv.bias_grad.end(), 0.0);
  conv.backward(x.data(), r.data(), n, h, w, dx.data());
  check_fd(x, dx, loss, "conv dx");
  check_fd(conv.weight, conv.weight_grad, loss, "conv dW");
  if (bias) check_fd(conv.bias, conv.bias_grad, loss, "conv db");
  // Backward accumulates into the parameter gradients.
  const std::vector<double> once = conv.weight_grad;
  conv.backward(x.data(), r.data(), n, h, w, nullptr);
  for (size_t i = 0; i < once.size(); ++i) EXPECT_NEAR(conv.weight_grad[i], 2 * once[i], 1e-12);
}

}  // namespace

TEST(Layers, ConvStride1MatchesFiniteDifferences) { conv_case(2, 3, 1, true, 2, 5, 6); }
TEST(Layers, ConvStride2MatchesFiniteDifferences) { conv_case(3, 4, 2, false, 2, 7, 6); }
TEST(Layers, ConvStride2EvenSize) { conv_case(1, 2, 2, true, 1, 8, 8); }

TEST(Layers, ConvMatchesDirectLoop) {
  // y[o][i][j] = sum_{c,ki,kj} W[o][c][ki][kj] x[c][i*s-1+ki][j*s-1+kj]
  Conv2d<double> conv(2, 3, 3, 2, 1, true);
  Rng rng(3);
  conv.init(rng);
  conv.bias = {0.5, -1, 2};
  const int h = 5, w = 4, oh = conv.out_size(h), ow = conv.out_size(w);
  ASSERT_EQ(oh, 3);
  ASSERT_EQ(ow, 2);
  std::vector<double> x = randn(2 * h * w, 5), y(3 * oh * ow);
  conv.forward(x.data(), 1, h, w, y.data());
  for (int o = 0; o < 3; ++o)
    for (int i = 0; i < oh; ++i)
      for (int j = 0; j < ow; ++j) {
        double s = conv.bias[o];
        for (int c = 0; c < 2; ++c)
          for (int ki = 0; ki < 3; ++ki)
            for (int kj = 0; kj < 3; ++kj) {
              const int yi = i * 2 - 1 + ki, xj = j * 2 - 1 + kj;
              if (yi >= 0 && yi < h && xj >= 0 && xj < w)
                s += conv.weight[((o * 2 + c) * 3 + ki) * 3 + kj] * x[(c * h + yi) * w + xj];
            }
        EXPECT_NEAR(y[(o * oh + i) * ow + j], s, 1e-12);
      }
}

TEST(Layers, LinearMatchesFiniteDifferences) {
  Linear<double> fc(5, 3);
  Rng rng(1);
  fc.init(rng);
  fc.bias = {0.1, -0.2, 0.3};
  const int n = 4;
  std::vector<double> x = randn(n * 5, 2), y(n * 3), dx(x.size());
  const std::vector<double> r = randn(n * 3, 4);
  auto loss = [&] {
    fc.forward(x.data(), n, y.data());
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += y[i] * r[i];
    return s;
  };
  fc.backward(x.data(), r.data(), n, dx.data());
  check_fd(x, dx, loss, "linear dx");
  check_fd(fc.weight, fc.weight_grad, loss, "linear dW");
  check_fd(fc.bias, fc.bias_grad, loss, "linear db");
}

TEST(Layers, ReluAndPoolMatchFiniteDifferences) {
  const int n = 2, c = 3, hw = 5;
  std::vector<double> x = randn(n * c * hw, 9);
  for (double& v : x)
    if (std::abs(v) < 1e-3) v = 0.5;  // keep away from the kink
  const std::vector<double> r = randn(n * c, 10);
  std::vector<double> a(x.size()), p(n * c), dp = r, da(x.size()), dx(x.size());
  auto loss = [&] {
    relu_forward(x.data(), static_cast<int64_t>(x.size()), a.data());
    gap_forward(a.data(), n, c, hw, p.data());
    double s = 0;
    for (size_t i = 0; i < p.size(); ++i) s += p[i] * r[i];
    return s;
  };
  loss();
  gap_backward(dp.data(), n, c, hw, da.data());
  relu_backward(a.data(), da.data(), static_cast<int64_t>(x.size()), dx.data());
  check_fd(x, dx, loss, "relu+gap dx");
}

TEST(Layers, SoftmaxCrossEntropy) {
  const int n = 3, k = 4;
  std::vector<double> z = randn(n * k, 12), dz(z.size()), scratch(z.size());
  const std::vector<uint8_t> labels = {0, 3, 1};
  int correct = -1;
  softmax_xent(z.data(), labels.data(), n, k, dz.data(), &correct);
  check_fd(z, dz, [&] { return softmax_xent(z.data(), labels.data(), n, k, scratch.data(), nullptr); },
           "xent dz");
  EXPECT_EQ(correct, count_correct(z.data(), labels.data(), n, k));
  // Uniform logits: loss = log(k); large logits do not overflow.
  std::vector<double> u(k, 1000.0), du(k);
  EXPECT_NEAR(softmax_xent(u.data(), labels.data(), 1, k, du.data(), nullptr), std::log(k), 1e-12);
}

TEST(Layers, SgdStepIsPyTorchsFormula) {
  std::vector<double> w = {1.0, -2.0}, g = {0.5, 0.25}, b = {3.0}, gb = {1.0};
  Sgd<double> sgd({{w.data(), g.data(), 2, true}, {b.data(), gb.data(), 1, false}}, 0.9, 0.1);
  sgd.step(0.5);  // v = g + wd*w; w -= lr*v
  EXPECT_DOUBLE_EQ(w[0], 1.0 - 0.5 * (0.5 + 0.1));
  EXPECT_DOUBLE_EQ(w[1], -2.0 - 0.5 * (0.25 - 0.2));
  EXPECT_DOUBLE_EQ(b[0], 3.0 - 0.5 * 1.0);  // no decay on biases
  const double v0 = 0.5 + 0.1 * 1.0, w0 = w[0];
  sgd.step(0.5);  // v = 0.9 v + g + wd*w
  EXPECT_DOUBLE_EQ(w[0], w0 - 0.5 * (0.9 * v0 + 0.5 + 0.1 * w0));
}

// He normal: mean 0, std sqrt(2 / fan_in), fan_in = cin*k*k (conv) or in (linear), biases 0.
// N >= 73,728 weights, so the sample std is within 0.3% (one standard error) of the truth and
// the mean within 0.004 std; about 68.3% of a normal lies within one std (a uniform: 57.7%).
// The fan-ins (9, 576, 512) differ from the fan-outs (73,728, 1,152, 256).
namespace {
template <class T>
void expect_he_normal(const std::vector<T>& w, int fan_in, const char* what) {
  const double n = static_cast<double>(w.size()), want = std::sqrt(2.0 / fan_in);
  double mean = 0, var = 0, within = 0;
  for (T v : w) mean += v / n;
  for (T v : w) var += (v - mean) * (v - mean) / (n - 1);
  for (T v : w) within += std::abs(v) < want ? 1.0 / n : 0.0;
  EXPECT_LT(std::abs(mean), 0.02 * want) << what << ": mean " << mean;
  EXPECT_NEAR(std::sqrt(var) / want, 1.0, 0.03) << what << ": std " << std::sqrt(var) << ", want " << want;
  EXPECT_NEAR(within, 0.6827, 0.01) << what << ": fraction within one std";
}
}  // namespace

TEST(Layers, HeInitializationHasStdSqrt2OverFanIn) {
  Rng rng(3);
  Conv2d<float> first(1, 8192, 3, 1, 1, true);  // fan_in 9, as the network's first layer
  std::fill(first.bias.begin(), first.bias.end(), 5.0f);
  first.init(rng);
  expect_he_normal(first.weight, 9, "conv 1->8192");
  EXPECT_TRUE(std::all_of(first.bias.begin(), first.bias.end(), [](float b) { return b == 0; }));
  Conv2d<float> conv(64, 128, 3, 2, 1, false);  // fan_in 576
  conv.init(rng);
  expect_he_normal(conv.weight, 64 * 9, "conv 64->128");
  Linear<float> fc(512, 256);  // fan_in 512
  std::fill(fc.bias.begin(), fc.bias.end(), 5.0f);
  fc.init(rng);
  expect_he_normal(fc.weight, 512, "linear 512->256");
  EXPECT_TRUE(std::all_of(fc.bias.begin(), fc.bias.end(), [](float b) { return b == 0; }));
  Linear<double> fc64(512, 256);  // the double instantiation the gradient checks use
  fc64.init(rng);
  expect_he_normal(fc64.weight, 512, "linear<double> 512->256");
}
