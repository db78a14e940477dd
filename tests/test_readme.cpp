// test_readme.cpp — the README's C++ example, compiled and run as written, so that the first
// code a user copies keeps working.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <normkit/normkit.hpp>

TEST(Readme, CppExampleRuns) {
  std::vector<float> x(32 * 256 * 14 * 14), y(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(double(i)));
  normkit::TensorView<const float> xv(x.data(), {32, 256, 14, 14});
  normkit::TensorView<float> yv(y.data(), {32, 256, 14, 14});

  // Functional, like torch.nn.functional (spans: empty = absent).
  std::vector<float> gamma(256, 1.f), beta(256, 0.f);
  normkit::GroupNormArgs<float> gn{.num_groups = 32, .weight = gamma, .bias = beta};
  normkit::group_norm_forward(xv, yv, gn);

  // Layers hold parameters and state like torch.nn modules.
  normkit::BatchNorm<float> bn(256);            // affine, running stats, momentum 0.1
  bn.forward(xv, yv);                           // training: batch statistics, updates running ones
  std::vector<float> dy(x.size(), 1.f), dx(x.size());
  bn.backward({dy.data(), {32, 256, 14, 14}}, xv, {dx.data(), {32, 256, 14, 14}});  // dx; accumulates bn.weight_grad
  bn.eval();                                    // eval: running statistics

  // Any axes: normalize over (N, H, W) with a per-channel affine is BatchNorm.
  normkit::NormalizeArgs<float> any{.reduce_axes = {0, 2, 3}, .affine_axes = {1}};
  normkit::normalize_forward(xv, yv, any);

  // A training step: the forward saves its statistics, the backward reads them instead of
  // taking them from x again (PyTorch's save_mean / save_invstd; two passes over x fewer).
  std::vector<float> mean(256), rstd(256), dgamma(256), dbeta(256);
  normkit::BatchNormArgs<float> train{.weight = gamma, .bias = beta, .training = true};
  normkit::batch_norm_forward(xv, yv, train, {mean, rstd});
  normkit::batch_norm_backward<float>({dy.data(), {32, 256, 14, 14}}, xv, {dx.data(), {32, 256, 14, 14}},
                                      train, dgamma, dbeta, {mean, rstd});

  EXPECT_NEAR(dbeta[0], 32 * 14 * 14, 1e-2);
  EXPECT_GT(rstd[0], 0.f);
  EXPECT_EQ(bn.num_batches_tracked, 1);
  EXPECT_NEAR(bn.bias_grad[0], 32 * 14 * 14, 1e-2);  // sum of dy over the channel
  EXPECT_NE(bn.running_mean[0], 0.f);
}
