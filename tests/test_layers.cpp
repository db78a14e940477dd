// test_layers.cpp — the torch.nn-like layers: constructor defaults as PyTorch, train/eval,
// running statistics (momentum and the cumulative average), num_batches_tracked, backward
// ACCUMULATING into the gradients, zero_grad, WeightNorm reproducing its start weight, and
// the core error cases through each layer (message names the op and value, nothing changes).
#include <limits>

#include "test_util.hpp"

namespace {
using namespace nk_test;

template <class T>
bool all_equal(const std::vector<T>& v, T value) {
  return std::all_of(v.begin(), v.end(), [&](T e) { return e == value; });
}

TEST(Layers, DefaultsMatchPyTorch) {
  normkit::BatchNorm<float> bn(7);
  EXPECT_EQ(bn.options.eps, 1e-5);
  ASSERT_TRUE(bn.options.momentum.has_value());
  EXPECT_EQ(*bn.options.momentum, 0.1);
  EXPECT_TRUE(bn.options.affine);
  EXPECT_TRUE(bn.options.track_running_stats);
  EXPECT_TRUE(bn.training());
  EXPECT_EQ(bn.num_batches_tracked, 0);
  EXPECT_EQ(bn.weight.size(), 7u);
  EXPECT_TRUE(all_equal(bn.weight, 1.0f));
  EXPECT_TRUE(all_equal(bn.bias, 0.0f));
  EXPECT_TRUE(all_equal(bn.running_mean, 0.0f));
  EXPECT_TRUE(all_equal(bn.running_var, 1.0f));
  EXPECT_EQ(bn.running_mean.size(), 7u);

  normkit::InstanceNorm<float> in(5);
  EXPECT_EQ(in.options.eps, 1e-5);
  EXPECT_FALSE(in.options.affine);
  EXPECT_FALSE(in.options.track_running_stats);
  EXPECT_TRUE(in.weight.empty());
  EXPECT_TRUE(in.running_mean.empty());

  normkit::GroupNorm<float> gn(2, 6);
  EXPECT_EQ(gn.options.eps, 1e-5);
  EXPECT_TRUE(gn.options.affine);
  EXPECT_EQ(gn.weight.size(), 6u);
  EXPECT_TRUE(all_equal(gn.weight, 1.0f));
  EXPECT_TRUE(all_equal(gn.bias, 0.0f));

  normkit::LayerNorm<float> ln({3, 4});
  EXPECT_EQ(ln.options.eps, 1e-5);
  EXPECT_TRUE(ln.options.elementwise_affine);
  EXPECT_TRUE(ln.options.bias);
  EXPECT_EQ(ln.weight.size(), 12u);
  EXPECT_TRUE(all_equal(ln.weight, 1.0f));
  EXPECT_EQ(ln.bias.size(), 12u);
  normkit::LayerNorm<float> ln_nobias({4}, {.bias = false});
  EXPECT_EQ(ln_nobias.weight.size(), 4u);
  EXPECT_TRUE(ln_nobias.bias.empty());
  normkit::LayerNorm<float> ln_plain({4}, {.elementwise_affine = false});
  EXPECT_TRUE(ln_plain.weight.empty());
  EXPECT_TRUE(ln_plain.bias.empty());

  normkit::RMSNorm<float> rms({8});
  EXPECT_FALSE(rms.options.eps.has_value());
  EXPECT_TRUE(rms.options.elementwise_affine);
  EXPECT_FALSE(rms.options.unit_offset);
  EXPECT_TRUE(all_equal(rms.weight, 1.0f));
  normkit::RMSNorm<float> gemma({8}, {.unit_offset = true});
  EXPECT_TRUE(all_equal(gemma.weight, 0.0f));  // (1 + 0): starts as the identity scale

  EXPECT_EQ(normkit::WeightNorm<float>::Options{}.dim, std::optional<int64_t>(0));
}

template <class T>
class LayersTest : public ::testing::Test {};
TYPED_TEST_SUITE(LayersTest, FloatTypes);

TYPED_TEST(LayersTest, BatchNormTrainUpdatesRunningStatsAndEvalUsesThem) {
  using T = TypeParam;
  const Shape sh = {4, 3, 5};
  normkit::BatchNorm<T> bn(3);
  bn.weight = random_vec<T>(3, 1.0, 0.5);
  bn.bias = random_vec<T>(3);
  auto x = random_vec<T>(60, 1.0, 2.0);
  std::vector<T> rm(3, T(0)), rv(3, T(1)), y_ref(60), y(60);
  normkit::reference::batch_norm_forward(x.data(), y_ref.data(), 4, 3, 5, bn.weight.data(), bn.bias.data(),
                                         rm.data(), rv.data(), true, 0.1, 1e-5);
  bn.forward(cview(x, sh), mview(y, sh));
  expect_close(y, y_ref, tol<T>(), "train y");
  expect_close(bn.running_mean, rm, tol<T>(), "running_mean");
  expect_close(bn.running_var, rv, tol<T>(), "running_var");
  EXPECT_EQ(bn.num_batches_tracked, 1);
  bn.forward(cview(x, sh), mview(y, sh));
  EXPECT_EQ(bn.num_batches_tracked, 2);

  bn.eval();
  EXPECT_FALSE(bn.training());
  auto rm2 = bn.running_mean, rv2 = bn.running_var;
  normkit::reference::batch_norm_forward(x.data(), y_ref.data(), 4, 3, 5, bn.weight.data(), bn.bias.data(),
                                         rm2.data(), rv2.data(), false, 0.1, 1e-5);
  bn.forward(cview(x, sh), mview(y, sh));
  expect_close(y, y_ref, tol<T>(), "eval y");
  expect_bitwise(bn.running_mean, rm2, "eval leaves running_mean");
  expect_bitwise(bn.running_var, rv2, "eval leaves running_var");
  EXPECT_EQ(bn.num_batches_tracked, 2);

  // eval backward: the statistics are constants, dx = dy * w * rstd_running
  auto dy = random_vec<T>(60);
  std::vector<T> dx(60), dx_ref(60), dw_ref(3), db_ref(3);
  normkit::reference::batch_norm_backward(dy.data(), x.data(), dx_ref.data(), 4, 3, 5, bn.weight.data(),
                                          rm2.data(), rv2.data(), false, 1e-5, dw_ref.data(), db_ref.data());
  bn.backward(cview(dy, sh), cview(x, sh), mview(dx, sh));
  expect_close(dx, dx_ref, grad_tol<T>(), "eval dx");
  expect_close(bn.weight_grad, dw_ref, grad_tol<T>(), "eval weight_grad");
  expect_close(bn.bias_grad, db_ref, grad_tol<T>(), "eval bias_grad");
}

TYPED_TEST(LayersTest, BatchNormMomentumUnsetIsCumulativeAverage) {
  using T = TypeParam;
  const Shape sh = {3, 2, 7};
  normkit::BatchNorm<T> bn(2, {.momentum = std::nullopt});
  std::vector<double> sum_mean(2, 0.0), sum_var(2, 0.0);
  std::vector<T> y(42);
  for (int step = 1; step <= 4; ++step) {
    auto x = random_vec<T>(42, double(step), 1.0 + step);
    for (int64_t c = 0; c < 2; ++c) {
      double m = 0, v = 0;
      for (int64_t n = 0; n < 3; ++n)
        for (int64_t s = 0; s < 7; ++s) m += x[(n * 2 + c) * 7 + s] / 21.0;
      for (int64_t n = 0; n < 3; ++n)
        for (int64_t s = 0; s < 7; ++s) v += std::pow(x[(n * 2 + c) * 7 + s] - m, 2) / 20.0;  // unbiased
      sum_mean[c] += m;
      sum_var[c] += v;
    }
    bn.forward(cview(x, sh), mview(y, sh));
    EXPECT_EQ(bn.num_batches_tracked, step);
    std::vector<double> avg_mean(2), avg_var(2);
    for (int c = 0; c < 2; ++c) avg_mean[c] = sum_mean[c] / step, avg_var[c] = sum_var[c] / step;
    expect_close(bn.running_mean, avg_mean, 10 * tol<T>(), "running_mean step " + std::to_string(step));
    expect_close(bn.running_var, avg_var, 10 * tol<T>(), "running_var step " + std::to_string(step));
  }
}

TYPED_TEST(LayersTest, BatchNormWithoutTrackingUsesBatchStatsInEval) {
  using T = TypeParam;
  const Shape sh = {4, 3, 5};
  normkit::BatchNorm<T> bn(3, {.track_running_stats = false});
  EXPECT_TRUE(bn.running_mean.empty());
  bn.eval();
  auto x = random_vec<T>(60, 1.0, 2.0);
  std::vector<T> y(60), y_ref(60);
  normkit::reference::batch_norm_forward(x.data(), y_ref.data(), 4, 3, 5, bn.weight.data(), bn.bias.data(),
                                         static_cast<T*>(nullptr), static_cast<T*>(nullptr), false, 0.1, 1e-5);
  bn.forward(cview(x, sh), mview(y, sh));
  expect_close(y, y_ref, tol<T>(), "eval y with batch statistics");
  EXPECT_EQ(bn.num_batches_tracked, 0);
}

TYPED_TEST(LayersTest, BackwardAccumulatesAndLeavesRunningStats) {
  using T = TypeParam;
  const Shape sh = {4, 3, 5};
  normkit::BatchNorm<T> bn(3);
  bn.weight = random_vec<T>(3, 1.0, 0.5);
  auto x = random_vec<T>(60, 1.0, 2.0), dy = random_vec<T>(60);
  std::vector<T> y(60), dx(60), dx_ref(60), dw_ref(3), db_ref(3);
  bn.forward(cview(x, sh), mview(y, sh));
  const auto rm = bn.running_mean, rv = bn.running_var;
  normkit::reference::batch_norm_backward(dy.data(), x.data(), dx_ref.data(), 4, 3, 5, bn.weight.data(),
                                          rm.data(), rv.data(), true, 1e-5, dw_ref.data(), db_ref.data());
  bn.backward(cview(dy, sh), cview(x, sh), mview(dx, sh));
  expect_close(dx, dx_ref, grad_tol<T>(), "dx");
  expect_close(bn.weight_grad, dw_ref, grad_tol<T>(), "weight_grad after one backward");
  expect_close(bn.bias_grad, db_ref, grad_tol<T>(), "bias_grad after one backward");
  bn.backward(cview(dy, sh), cview(x, sh), mview(dx, sh));
  for (auto& v : dw_ref) v *= 2;
  for (auto& v : db_ref) v *= 2;
  expect_close(bn.weight_grad, dw_ref, grad_tol<T>(), "weight_grad accumulated");
  expect_close(bn.bias_grad, db_ref, grad_tol<T>(), "bias_grad accumulated");
  expect_bitwise(bn.running_mean, rm, "backward leaves running_mean");
  expect_bitwise(bn.running_var, rv, "backward leaves running_var");
  EXPECT_EQ(bn.num_batches_tracked, 1);
  bn.zero_grad();
  EXPECT_TRUE(all_equal(bn.weight_grad, T(0)));
  EXPECT_TRUE(all_equal(bn.bias_grad, T(0)));
}

TYPED_TEST(LayersTest, InstanceNormTrackingRunningStats) {
  using T = TypeParam;
  const Shape sh = {3, 4, 6};
  normkit::InstanceNorm<T> in(4, {.affine = true, .track_running_stats = true});
  EXPECT_EQ(in.weight.size(), 4u);
  EXPECT_EQ(in.running_var.size(), 4u);
  auto x = random_vec<T>(72, -1.0, 2.0);
  std::vector<T> rm(4, T(0)), rv(4, T(1)), y(72), y_ref(72);
  normkit::reference::instance_norm_forward(x.data(), y_ref.data(), 3, 4, 6, in.weight.data(), in.bias.data(),
                                            rm.data(), rv.data(), true, 0.1, 1e-5);
  in.forward(cview(x, sh), mview(y, sh));
  expect_close(y, y_ref, tol<T>(), "train y");
  expect_close(in.running_mean, rm, tol<T>(), "running_mean");
  expect_close(in.running_var, rv, tol<T>(), "running_var");
  // As torch.nn.InstanceNorm: every step uses the momentum (no cumulative average) and
  // num_batches_tracked is never incremented.
  normkit::reference::instance_norm_forward(x.data(), y_ref.data(), 3, 4, 6, in.weight.data(), in.bias.data(),
                                            rm.data(), rv.data(), true, 0.1, 1e-5);
  in.forward(cview(x, sh), mview(y, sh));
  expect_close(in.running_mean, rm, tol<T>(), "running_mean step 2");
  expect_close(in.running_var, rv, tol<T>(), "running_var step 2");
  EXPECT_EQ(in.num_batches_tracked, 0);
  in.eval();
  normkit::reference::instance_norm_forward(x.data(), y_ref.data(), 3, 4, 6, in.weight.data(), in.bias.data(),
                                            rm.data(), rv.data(), false, 0.1, 1e-5);
  in.forward(cview(x, sh), mview(y, sh));
  expect_close(y, y_ref, tol<T>(), "eval y uses running stats");

  // Without tracking, eval still normalizes each instance by its own statistics.
  normkit::InstanceNorm<T> plain(4);
  plain.eval();
  normkit::reference::instance_norm_forward(x.data(), y_ref.data(), 3, 4, 6, static_cast<const T*>(nullptr),
                                            static_cast<const T*>(nullptr), static_cast<T*>(nullptr),
                                            static_cast<T*>(nullptr), true, 0.1, 1e-5);
  plain.forward(cview(x, sh), mview(y, sh));
  expect_close(y, y_ref, tol<T>(), "eval y without tracking");
}

TYPED_TEST(LayersTest, GroupLayerRMSLayersMatchFunctionalAndAccumulate) {
  using T = TypeParam;
  const Shape sh = {3, 6, 5};
  auto x = random_vec<T>(90, 0.5, 2.0), dy = random_vec<T>(90);
  std::vector<T> y(90), y_ref(90), dx(90), dx_ref(90), dw(6), db(6), dw30(30), db30(30);

  normkit::GroupNorm<T> gn(3, 6);
  gn.weight = random_vec<T>(6, 1.0, 0.5);
  gn.forward(cview(x, sh), mview(y, sh));
  normkit::reference::group_norm_forward(x.data(), y_ref.data(), 3, 6, 5, 3, gn.weight.data(), gn.bias.data(), 1e-5);
  expect_close(y, y_ref, tol<T>(), "GroupNorm y");
  gn.backward(cview(dy, sh), cview(x, sh), mview(dx, sh));
  gn.backward(cview(dy, sh), cview(x, sh), mview(dx, sh));
  normkit::reference::group_norm_backward(dy.data(), x.data(), dx_ref.data(), 3, 6, 5, 3, gn.weight.data(), 1e-5,
                                          dw.data(), db.data());
  for (auto& v : dw) v *= 2;
  expect_close(dx, dx_ref, grad_tol<T>(), "GroupNorm dx");
  expect_close(gn.weight_grad, dw, grad_tol<T>(), "GroupNorm weight_grad x2");
  gn.zero_grad();
  EXPECT_TRUE(all_equal(gn.weight_grad, T(0)));

  normkit::LayerNorm<T> ln({6, 5});
  ln.weight = random_vec<T>(30, 1.0, 0.5);
  ln.forward(cview(x, sh), mview(y, sh));
  normkit::reference::layer_norm_forward(x.data(), y_ref.data(), 3, 30, ln.weight.data(), ln.bias.data(), 1e-5);
  expect_close(y, y_ref, tol<T>(), "LayerNorm y");
  ln.backward(cview(dy, sh), cview(x, sh), mview(dx, sh));
  ln.backward(cview(dy, sh), cview(x, sh), mview(dx, sh));
  normkit::reference::layer_norm_backward(dy.data(), x.data(), dx_ref.data(), 3, 30, ln.weight.data(), 1e-5,
                                          dw30.data(), db30.data());
  for (auto& v : db30) v *= 2;
  expect_close(dx, dx_ref, grad_tol<T>(), "LayerNorm dx");
  expect_close(ln.bias_grad, db30, grad_tol<T>(), "LayerNorm bias_grad x2");

  normkit::RMSNorm<T> rms({5}, {.unit_offset = true});
  rms.weight = random_vec<T>(5, 0.0, 0.5);
  rms.forward(cview(x, sh), mview(y, sh));
  normkit::reference::rms_norm_forward(x.data(), y_ref.data(), 18, 5, rms.weight.data(), true,
                                       double(std::numeric_limits<T>::epsilon()));
  expect_close(y, y_ref, tol<T>(), "RMSNorm (1 + w) y, eps unset");
  std::vector<T> dw5(5);
  rms.backward(cview(dy, sh), cview(x, sh), mview(dx, sh));
  normkit::reference::rms_norm_backward(dy.data(), x.data(), dx_ref.data(), 18, 5, rms.weight.data(), true,
                                        double(std::numeric_limits<T>::epsilon()), dw5.data());
  expect_close(dx, dx_ref, grad_tol<T>(), "RMSNorm dx");
  expect_close(rms.weight_grad, dw5, grad_tol<T>(), "RMSNorm weight_grad");
}

TYPED_TEST(LayersTest, WeightNormStartsAtTheGivenWeight) {
  using T = TypeParam;
  for (std::optional<int64_t> dim : {std::optional<int64_t>(0), std::optional<int64_t>(1),
                                     std::optional<int64_t>(-1), std::optional<int64_t>()}) {
    SCOPED_TRACE(dim ? std::to_string(*dim) : "unset");
    const Shape sh = {5, 3, 7};
    auto weight = random_vec<T>(105, 0.1, 1.0);
    normkit::WeightNorm<T> wn(cview(weight, sh), {dim});
    EXPECT_EQ(wn.shape, sh);
    const int64_t K = (dim && *dim >= 0) ? sh[static_cast<size_t>(*dim)] : 1;
    ASSERT_EQ(static_cast<int64_t>(wn.g.size()), K);
    std::vector<T> norms_ref(K), w_ref(105);
    normkit::reference::weight_norm_forward(weight.data(), wn.g.data(), w_ref.data(), sh, dim, norms_ref.data());
    expect_close(wn.g, norms_ref, tol<T>(), "g = ||weight|| per slice");
    auto w = sentinel_vec<T>(105);
    wn.forward(mview(w, sh));
    expect_close(w, weight, tol<T>(), "w reproduces the weight");

    auto dw = random_vec<T>(105);
    std::vector<T> dv_ref(105), dg_ref(K);
    normkit::reference::weight_norm_backward(dw.data(), wn.v.data(), wn.g.data(), dv_ref.data(), dg_ref.data(),
                                             sh, dim);
    wn.backward(cview(dw, sh));
    wn.backward(cview(dw, sh));
    for (auto& e : dv_ref) e *= 2;
    for (auto& e : dg_ref) e *= 2;
    expect_close(wn.v_grad, dv_ref, grad_tol<T>(), "v_grad accumulated");
    expect_close(wn.g_grad, dg_ref, grad_tol<T>(), "g_grad accumulated");
    wn.zero_grad();
    EXPECT_TRUE(all_equal(wn.v_grad, T(0)));
    EXPECT_TRUE(all_equal(wn.g_grad, T(0)));
  }
}

TEST(Layers, ConstructorErrorsNameTheOp) {
  // Formatted as the functions format them ("eps=-1", not "eps=-1.000000").
  expect_error([] { normkit::BatchNorm<float>(3, {.momentum = 1.5}); }, "batch_norm",
               {"momentum=1.5 must lie in [0, 1]"});
  expect_error([] { normkit::BatchNorm<float>(3, {.momentum = -0.25}); }, "batch_norm",
               {"momentum=-0.25 must lie in [0, 1]"});
  expect_error([] { normkit::BatchNorm<float>(3, {.eps = -1.0}); }, "batch_norm",
               {"eps=-1 must be a finite value >= 0"});
  expect_error([] { normkit::GroupNorm<float>(4, 6); }, "group_norm", {"6", "4"});
  expect_error([] { normkit::GroupNorm<float>(0, 6); }, "group_norm", {"0"});
}

// WeightNorm reads the caller's view: it is checked before anything is read from it (null
// data, negative sizes or strides, element counts beyond int64, sizes that cannot be held).
TEST(Layers, WeightNormChecksTheViewBeforeReadingIt) {
  using View = normkit::TensorView<const float>;
  const std::vector<float> buf(6, 1.f);
  expect_error([] { normkit::WeightNorm<float>(View(nullptr, {2, 3})); }, "weight_norm",
               {"weight", "data is null"});
  expect_error([&] { normkit::WeightNorm<float>(View(buf.data(), {2, -3}, {3, 1})); }, "weight_norm",
               {"weight", "negative size", "2x-3"});
  expect_error([&] { normkit::WeightNorm<float>(View(buf.data(), {2, 3}, {-3, 1})); }, "weight_norm",
               {"weight", "negative stride -3"});
  expect_error([&] { normkit::WeightNorm<float>(View(buf.data(), {2, 3}, {1})); }, "weight_norm",
               {"weight", "1 strides"});
  const int64_t big = int64_t(1) << 40;
  expect_error([&] { normkit::WeightNorm<float>(View(buf.data(), {big, big}, {0, 0})); }, "weight_norm",
               {"weight", "overflow"});
  // Countable, but far beyond what can be allocated: an Error, not std::length_error/bad_alloc.
  expect_error([&] { normkit::WeightNorm<float>(View(buf.data(), {int64_t(1) << 62}, {0})); },
               "weight_norm", {"too large"});
  expect_error([&] { normkit::WeightNorm<float>(View(buf.data(), {2, 3}), {.dim = 2}); }, "weight_norm",
               {"dim=2"});
}

TEST(Layers, ConstructorSizesAreCheckedNotOverflowed) {
  const int64_t big = int64_t(1) << 40;
  expect_error([&] { normkit::LayerNorm<float>(normkit::Shape{big, big}); }, "layer_norm",
               {"normalized_shape", "overflow"});
  expect_error([&] { normkit::RMSNorm<float>(normkit::Shape{big, big}); }, "rms_norm",
               {"normalized_shape", "overflow"});
  expect_error([] { normkit::BatchNorm<float>(int64_t(1) << 62); }, "batch_norm",
               {"num_features=4611686018427387904", "too large"});
  expect_error([] { normkit::InstanceNorm<double>(int64_t(1) << 62); }, "instance_norm",
               {"num_features", "too large"});
  expect_error([] { normkit::GroupNorm<float>(1, int64_t(1) << 62); }, "group_norm",
               {"num_channels", "too large"});
  expect_error([] { normkit::LayerNorm<float>(normkit::Shape{int64_t(1) << 31, int64_t(1) << 31}); },
               "layer_norm", {"too large"});
  // numel itself is checked too.
  EXPECT_THROW(normkit::numel({big, big}), normkit::Error);
}

TEST(Layers, EmptyNormalizedShapeIsRejectedAsByTheFunctions) {
  expect_error([] { normkit::LayerNorm<float>(normkit::Shape{}); }, "layer_norm", {"normalized_shape is empty"});
  expect_error([] { normkit::RMSNorm<float>(normkit::Shape{}); }, "rms_norm", {"normalized_shape is empty"});
}

// PyTorch: an empty batch gives an empty output; normkit also leaves the running statistics
// as they were (PyTorch 1.13 writes NaN into InstanceNorm's).
TEST(Layers, InstanceNormEmptyBatchKeepsRunningStats) {
  normkit::InstanceNorm<float> in(3, {.affine = true, .track_running_stats = true});
  in.running_mean = {0.5f, 1.f, 2.f}, in.running_var = {3.f, 4.f, 5.f};
  const auto rm = in.running_mean, rv = in.running_var;
  std::vector<float> x(1), y = sentinel_vec<float>(1);
  in.forward(cview(x, {0, 3, 4}), mview(y, {0, 3, 4}));
  expect_bitwise(in.running_mean, rm, "running_mean");
  expect_bitwise(in.running_var, rv, "running_var");
  EXPECT_EQ(y[0], float(kSentinel));
  std::vector<float> dx = sentinel_vec<float>(1);
  in.backward(cview(x, {0, 3, 4}), cview(x, {0, 3, 4}), mview(dx, {0, 3, 4}));
  EXPECT_TRUE(all_equal(in.weight_grad, 0.f));
  EXPECT_TRUE(all_equal(in.bias_grad, 0.f));
}

TEST(Layers, ForwardErrorLeavesStateUntouched) {
  normkit::BatchNorm<double> bn(3);
  bn.running_mean = {0.5, 0.25, 0.125};
  auto x = random_vec<double>(40), y = sentinel_vec<double>(40);
  const auto rm = bn.running_mean, rv = bn.running_var;
  expect_error([&] { bn.forward(cview(x, {2, 4, 5}), mview(y, {2, 4, 5})); }, "batch_norm", {"4"});
  expect_bitwise(bn.running_mean, rm, "running_mean");
  expect_bitwise(bn.running_var, rv, "running_var");
  EXPECT_EQ(bn.num_batches_tracked, 0);
  EXPECT_TRUE(all_equal(y, kSentinel));
}

// ---- errors through the layers: the message names the op and the value; parameters,
// gradients, running statistics, num_batches_tracked and the output are as they were -------
// Byte copies of what a layer owns.
template <class L>
Snapshot layer_state(const L& l) {
  Snapshot s;
  if constexpr (requires { l.weight_grad; }) s.add(&l.weight), s.add(&l.weight_grad);
  if constexpr (requires { l.bias_grad; }) s.add(&l.bias), s.add(&l.bias_grad);
  if constexpr (requires { l.running_mean; }) s.add(&l.running_mean), s.add(&l.running_var);
  if constexpr (requires { l.v_grad; }) s.add(&l.v), s.add(&l.g), s.add(&l.v_grad), s.add(&l.g_grad);
  return s;
}

// f() throws naming op and every needle, and leaves `layer` and the output buffer `out` unchanged.
template <class L, class T, class F>
void expect_layer_error(L& layer, const std::vector<T>& out, F&& f, const std::string& op,
                        const std::vector<std::string>& needles) {
  Snapshot snap = layer_state(layer);
  snap.add(&out);
  int64_t tracked = 0;
  if constexpr (requires { layer.num_batches_tracked; }) tracked = layer.num_batches_tracked;
  expect_error(std::forward<F>(f), op, needles);
  snap.expect_unchanged("[" + op + "] layer state or output");
  if constexpr (requires { layer.num_batches_tracked; }) EXPECT_EQ(layer.num_batches_tracked, tracked) << op;
}

// One training step on good data, so running statistics, num_batches_tracked and the
// accumulated gradients all hold values an error could disturb.
template <class L, class T>
void step(L& layer, const Shape& sh) {
  auto x = random_vec<T>(numel(sh), 0.5, 2.0), dy = random_vec<T>(numel(sh));
  std::vector<T> y(x.size()), dx(x.size());
  layer.forward(cview(x, sh), mview(y, sh));
  layer.backward(cview(dy, sh), cview(x, sh), mview(dx, sh));
  ASSERT_FALSE(all_equal(layer.weight_grad, T(0))) << "the step left no gradient to protect";
}

TYPED_TEST(LayersTest, BatchNormErrorsLeaveTheLayerAsItWas) {
  using T = TypeParam;
  normkit::BatchNorm<T> bn(3);
  step<normkit::BatchNorm<T>, T>(bn, {4, 3, 5});
  ASSERT_EQ(bn.num_batches_tracked, 1);
  const auto x = random_vec<T>(60), dy = random_vec<T>(60);
  auto out = sentinel_vec<T>(60);
  // Training with one value per channel, forward and backward (PyTorch refuses it too).
  for (const Shape& sh : {Shape{1, 3}, Shape{1, 3, 1, 1}}) {
    const std::string shown = normkit::shape_str(sh);
    expect_layer_error(bn, out, [&] { bn.forward(cview(x, sh), mview(out, sh)); }, "batch_norm",
                       {"expected more than 1 value per channel", shown});
    expect_layer_error(bn, out, [&] { bn.backward(cview(dy, sh), cview(x, sh), mview(out, sh)); }, "batch_norm",
                       {"expected more than 1 value per channel", shown});
  }
  // Rank too low.
  expect_layer_error(bn, out, [&] { bn.forward(cview(x, {5}), mview(out, {5})); }, "batch_norm",
                     {"rank >= 2", "shape 5 of rank 1"});
  expect_layer_error(bn, out, [&] { bn.backward(cview(dy, {5}), cview(x, {5}), mview(out, {5})); }, "batch_norm",
                     {"rank >= 2", "shape 5 of rank 1"});
  // Channel count not matching the layer's.
  expect_layer_error(bn, out, [&] { bn.forward(cview(x, {2, 4, 5}), mview(out, {2, 4, 5})); }, "batch_norm",
                     {"weight has 3 elements, expected 4"});
  EXPECT_EQ(bn.num_batches_tracked, 1);
}

TYPED_TEST(LayersTest, InstanceNormErrorsLeaveTheLayerAsItWas) {
  using T = TypeParam;
  const Shape sh = {2, 4, 5};
  const auto x = random_vec<T>(40), dy = random_vec<T>(40);
  auto out = sentinel_vec<T>(40);
  // Channel count not matching weight / bias or the running statistics.
  normkit::InstanceNorm<T> in(3, {.affine = true, .track_running_stats = true});
  step<normkit::InstanceNorm<T>, T>(in, {2, 3, 5});
  expect_layer_error(in, out, [&] { in.forward(cview(x, sh), mview(out, sh)); }, "instance_norm",
                     {"weight has 3 elements, expected 4"});
  expect_layer_error(in, out, [&] { in.backward(cview(dy, sh), cview(x, sh), mview(out, sh)); }, "instance_norm",
                     {"weight has 3 elements, expected 4"});
  normkit::InstanceNorm<T> tracked(3, {.track_running_stats = true});
  expect_layer_error(tracked, out, [&] { tracked.forward(cview(x, sh), mview(out, sh)); }, "instance_norm",
                     {"running_mean has 3 elements, expected 4"});
  tracked.eval();
  expect_layer_error(tracked, out, [&] { tracked.forward(cview(x, sh), mview(out, sh)); }, "instance_norm",
                     {"running_mean has 3 elements, expected 4"});
  // Momentum outside [0, 1] when it is used (training with running statistics) ...
  const Shape good = {2, 3, 5};
  for (auto [m, shown] : {std::pair{-0.1, "momentum=-0.1 "}, std::pair{1.5, "momentum=1.5 "}}) {
    normkit::InstanceNorm<T> bad(3, {.momentum = m, .affine = true, .track_running_stats = true});
    expect_layer_error(bad, out, [&] { bad.forward(cview(x, good), mview(out, good)); }, "instance_norm",
                       {shown, "must lie in [0, 1]"});
    // ... and not when it is not (eval), as in PyTorch.
    bad.eval();
    EXPECT_NO_THROW(bad.forward(cview(x, good), mview(out, good)));
    out = sentinel_vec<T>(40);
  }
  // eps < 0.
  normkit::InstanceNorm<T> neg(3, {.eps = -1.0, .affine = true});
  expect_layer_error(neg, out, [&] { neg.forward(cview(x, good), mview(out, good)); }, "instance_norm",
                     {"eps=-1 "});
  expect_layer_error(neg, out, [&] { neg.backward(cview(dy, good), cview(x, good), mview(out, good)); },
                     "instance_norm", {"eps=-1 "});
}

TYPED_TEST(LayersTest, GroupNormErrorsLeaveTheLayerAsItWas) {
  using T = TypeParam;
  const auto x = random_vec<T>(40), dy = random_vec<T>(40);
  auto out = sentinel_vec<T>(40);
  // One value per group (PyTorch refuses it).
  normkit::GroupNorm<T> gn(4, 4);
  step<normkit::GroupNorm<T>, T>(gn, {2, 4, 3});
  for (const Shape& sh : {Shape{2, 4}, Shape{3, 4, 1, 1}}) {
    const std::string shown = normkit::shape_str(sh);
    expect_layer_error(gn, out, [&] { gn.forward(cview(x, sh), mview(out, sh)); }, "group_norm",
                       {"expected more than 1 value per group", shown, "num_groups=4"});
    expect_layer_error(gn, out, [&] { gn.backward(cview(dy, sh), cview(x, sh), mview(out, sh)); }, "group_norm",
                       {"expected more than 1 value per group", shown, "num_groups=4"});
  }
  // Channel count not matching the layer's.
  const Shape wide = {2, 8, 2};
  expect_layer_error(gn, out, [&] { gn.forward(cview(x, wide), mview(out, wide)); }, "group_norm",
                     {"weight has 4 elements, expected 8"});
  // eps < 0.
  normkit::GroupNorm<T> neg(2, 4, {.eps = -0.5});
  const Shape sh = {2, 4, 5};
  expect_layer_error(neg, out, [&] { neg.forward(cview(x, sh), mview(out, sh)); }, "group_norm", {"eps=-0.5 "});
  expect_layer_error(neg, out, [&] { neg.backward(cview(dy, sh), cview(x, sh), mview(out, sh)); }, "group_norm",
                     {"eps=-0.5 "});
}

TYPED_TEST(LayersTest, LayerNormAndRMSNormErrorsLeaveTheLayerAsItWas) {
  using T = TypeParam;
  const auto x = random_vec<T>(60), dy = random_vec<T>(60);
  auto out = sentinel_vec<T>(60);
  const Shape sh = {4, 3, 5};
  normkit::LayerNorm<T> ln({3, 4});
  normkit::RMSNorm<T> rms({3, 4});
  step<normkit::LayerNorm<T>, T>(ln, {5, 3, 4});
  step<normkit::RMSNorm<T>, T>(rms, {5, 3, 4});
  // normalized_shape not matching the trailing dims.
  const std::vector<std::string> mismatch = {"normalized_shape=3x4 does not match", "4x3x5"};
  expect_layer_error(ln, out, [&] { ln.forward(cview(x, sh), mview(out, sh)); }, "layer_norm", mismatch);
  expect_layer_error(ln, out, [&] { ln.backward(cview(dy, sh), cview(x, sh), mview(out, sh)); }, "layer_norm",
                     mismatch);
  expect_layer_error(rms, out, [&] { rms.forward(cview(x, sh), mview(out, sh)); }, "rms_norm", mismatch);
  expect_layer_error(rms, out, [&] { rms.backward(cview(dy, sh), cview(x, sh), mview(out, sh)); }, "rms_norm",
                     mismatch);
  // eps < 0.
  const Shape fits = {5, 3, 4};
  normkit::LayerNorm<T> ln_neg({3, 4}, {.eps = -1.0});
  normkit::RMSNorm<T> rms_neg({3, 4}, {.eps = -1e-3});
  expect_layer_error(ln_neg, out, [&] { ln_neg.forward(cview(x, fits), mview(out, fits)); }, "layer_norm",
                     {"eps=-1 "});
  expect_layer_error(ln_neg, out, [&] { ln_neg.backward(cview(dy, fits), cview(x, fits), mview(out, fits)); },
                     "layer_norm", {"eps=-1 "});
  expect_layer_error(rms_neg, out, [&] { rms_neg.forward(cview(x, fits), mview(out, fits)); }, "rms_norm",
                     {"eps=-0.001 "});
  expect_layer_error(rms_neg, out, [&] { rms_neg.backward(cview(dy, fits), cview(x, fits), mview(out, fits)); },
                     "rms_norm", {"eps=-0.001 "});
}

TYPED_TEST(LayersTest, FailedBackwardKeepsAccumulatedGradients) {
  using T = TypeParam;
  // A grad_output of the wrong shape: the error comes before any gradient is accumulated.
  const auto x = random_vec<T>(60), dy = random_vec<T>(60);
  auto out = sentinel_vec<T>(60);
  const Shape sh = {4, 3, 5}, other = {2, 3, 5};
  normkit::BatchNorm<T> bn(3);
  step<normkit::BatchNorm<T>, T>(bn, sh);
  expect_layer_error(bn, out, [&] { bn.backward(cview(dy, other), cview(x, sh), mview(out, sh)); }, "batch_norm",
                     {"grad_output has shape 2x3x5, expected 4x3x5"});
  normkit::InstanceNorm<T> in(3, {.affine = true, .track_running_stats = true});
  step<normkit::InstanceNorm<T>, T>(in, sh);
  expect_layer_error(in, out, [&] { in.backward(cview(dy, other), cview(x, sh), mview(out, sh)); },
                     "instance_norm", {"grad_output has shape 2x3x5, expected 4x3x5"});
  normkit::GroupNorm<T> gn(3, 3);
  step<normkit::GroupNorm<T>, T>(gn, sh);
  expect_layer_error(gn, out, [&] { gn.backward(cview(dy, other), cview(x, sh), mview(out, sh)); }, "group_norm",
                     {"grad_output has shape 2x3x5, expected 4x3x5"});
  normkit::LayerNorm<T> ln({5});
  step<normkit::LayerNorm<T>, T>(ln, sh);
  expect_layer_error(ln, out, [&] { ln.backward(cview(dy, other), cview(x, sh), mview(out, sh)); }, "layer_norm",
                     {"grad_output has shape 2x3x5, expected 4x3x5"});
  normkit::RMSNorm<T> rms({5});
  step<normkit::RMSNorm<T>, T>(rms, sh);
  expect_layer_error(rms, out, [&] { rms.backward(cview(dy, other), cview(x, sh), mview(out, sh)); }, "rms_norm",
                     {"grad_output has shape 2x3x5, expected 4x3x5"});
  // WeightNorm: dw not shaped like the weight.
  const auto weight = random_vec<T>(15, 0.1, 1.0);
  normkit::WeightNorm<T> wn(cview(weight, {5, 3}));
  wn.backward(cview(dy, {5, 3}));
  ASSERT_FALSE(all_equal(wn.g_grad, T(0)));
  expect_layer_error(wn, out, [&] { wn.backward(cview(dy, {3, 5})); }, "weight_norm",
                     {"grad_w has shape 3x5, expected 5x3"});
}

}  // namespace
