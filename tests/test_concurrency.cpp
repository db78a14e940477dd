// test_concurrency.cpp — functional calls are safe from several std::threads at once (issue 5,
// item 6): each op, run concurrently on different data (and on shared read-only inputs), gives
// the same bits as run alone, whatever thread count each caller asks for. Layers: distinct
// instances are independent; one instance is not to be shared (documented, not tested).
#include <thread>

#include "test_util.hpp"

namespace {
using namespace nk_test;
using Outputs = std::vector<std::vector<float>>;

constexpr int kCallers = 4;  // std::threads calling at once
constexpr int kRepeats = 3;  // calls per thread, to overlap with the others'

// Runs op(i) for i in [0, kCallers) alone, then from kCallers threads at once (each calling
// kRepeats times, with its own engine thread count); every result must equal the lone one.
void expect_concurrent_equals_alone(const char* what, const std::function<Outputs(int)>& op) {
  std::vector<Outputs> alone;
  for (int i = 0; i < kCallers; ++i) alone.push_back(op(i));
  std::vector<std::vector<Outputs>> got(kCallers);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i)
    callers.emplace_back([&, i] {
      normkit::set_num_threads(1 + i % 3);  // per calling thread (OpenMP's ICV is per thread)
      for (int r = 0; r < kRepeats; ++r) got[i].push_back(op(i));
    });
  for (auto& t : callers) t.join();
  for (int i = 0; i < kCallers; ++i)
    for (int r = 0; r < kRepeats; ++r) {
      ASSERT_EQ(got[i][r].size(), alone[i].size());
      for (size_t k = 0; k < alone[i].size(); ++k)
        expect_bitwise(got[i][r][k], alone[i][k],
                       std::string(what) + " caller " + std::to_string(i) + " output " + std::to_string(k));
    }
}

const Shape kShape = {8, 32, 24, 24};  // 147k elements: big enough for the engine's threads

struct Data {
  std::vector<std::vector<float>> x, dy;
  std::vector<float> w, b;
};
const Data& data() {
  static const Data d = [] {
    Data d;
    for (int i = 0; i < kCallers; ++i) {
      d.x.push_back(random_vec<float>(numel(kShape), 0.5 * i, 1.0 + i));
      d.dy.push_back(random_vec<float>(numel(kShape)));
    }
    d.w = random_vec<float>(32, 1.0, 0.5), d.b = random_vec<float>(32);
    return d;
  }();
  return d;
}

TEST(Concurrency, BatchNormForwardBackwardAndRunningStats) {
  for (bool channels_last : {false, true}) {
    const Strides st = channels_last ? channels_last_strides(kShape) : normkit::contiguous_strides(kShape);
    expect_concurrent_equals_alone(channels_last ? "batch_norm NHWC" : "batch_norm", [&](int i) {
      const auto& d = data();
      std::vector<float> y(d.x[i].size()), dx(y.size()), mean(32), rstd(32), dw(32), db(32);
      std::vector<float> rm(32, 0.f), rv(32, 1.f);  // each caller owns its running statistics
      normkit::BatchNormArgs<float> a;
      a.weight = d.w, a.bias = d.b, a.running_mean = rm, a.running_var = rv, a.training = true;
      normkit::batch_norm_forward<float>(cview(d.x[i], kShape, st), mview(y, kShape, st), a, {mean, rstd});
      normkit::batch_norm_backward<float>(cview(d.dy[i], kShape, st), cview(d.x[i], kShape, st),
                                          mview(dx, kShape, st), a, dw, db);
      return Outputs{y, mean, rstd, rm, rv, dx, dw, db};
    });
  }
}

TEST(Concurrency, LayerNormAndRMSNorm) {
  const Shape sh = {kShape[0] * kShape[1], kShape[2] * kShape[3]};
  std::vector<float> w(sh[1], 1.5f), b(sh[1], 0.25f);
  expect_concurrent_equals_alone("layer_norm", [&](int i) {
    const auto& d = data();
    std::vector<float> y(d.x[i].size()), dx(y.size()), dw(sh[1]), db(sh[1]);
    normkit::LayerNormArgs<float> a;
    a.normalized_shape = {sh[1]}, a.weight = w, a.bias = b;
    normkit::layer_norm_forward<float>(cview(d.x[i], sh), mview(y, sh), a);
    normkit::layer_norm_backward<float>(cview(d.dy[i], sh), cview(d.x[i], sh), mview(dx, sh), a, dw, db);
    return Outputs{y, dx, dw, db};
  });
  expect_concurrent_equals_alone("rms_norm", [&](int i) {
    const auto& d = data();
    std::vector<float> y(d.x[i].size()), dx(y.size()), dw(sh[1]);
    normkit::RMSNormArgs<float> a;
    a.normalized_shape = {sh[1]}, a.weight = w;
    normkit::rms_norm_forward<float>(cview(d.x[i], sh), mview(y, sh), a);
    normkit::rms_norm_backward<float>(cview(d.dy[i], sh), cview(d.x[i], sh), mview(dx, sh), a, dw);
    return Outputs{y, dx, dw};
  });
}

TEST(Concurrency, GroupNormInstanceNormNormalizeWeightNorm) {
  expect_concurrent_equals_alone("group_norm", [&](int i) {
    const auto& d = data();
    std::vector<float> y(d.x[i].size()), dx(y.size()), dw(32), db(32);
    normkit::GroupNormArgs<float> a;
    a.num_groups = 8, a.weight = d.w, a.bias = d.b;
    normkit::group_norm_forward<float>(cview(d.x[i], kShape), mview(y, kShape), a);
    normkit::group_norm_backward<float>(cview(d.dy[i], kShape), cview(d.x[i], kShape), mview(dx, kShape), a, dw, db);
    return Outputs{y, dx, dw, db};
  });
  expect_concurrent_equals_alone("instance_norm", [&](int i) {
    const auto& d = data();
    std::vector<float> y(d.x[i].size()), rm(32, 0.f), rv(32, 1.f);
    normkit::InstanceNormArgs<float> a;
    a.weight = d.w, a.bias = d.b, a.running_mean = rm, a.running_var = rv;
    normkit::instance_norm_forward<float>(cview(d.x[i], kShape), mview(y, kShape), a);
    return Outputs{y, rm, rv};
  });
  expect_concurrent_equals_alone("normalize", [&](int i) {
    const auto& d = data();
    std::vector<float> y(d.x[i].size()), dx(y.size());
    normkit::NormalizeArgs<float> a;
    a.reduce_axes = {0, 2};
    normkit::normalize_forward<float>(cview(d.x[i], kShape), mview(y, kShape), a);
    normkit::normalize_backward<float>(cview(d.dy[i], kShape), cview(d.x[i], kShape), mview(dx, kShape), a);
    return Outputs{y, dx};
  });
  const Shape ws = {256, 32 * 18};  // a weight tensor: 256 output channels
  expect_concurrent_equals_alone("weight_norm", [&](int i) {
    const auto& d = data();
    const std::vector<float> v(d.x[i].begin(), d.x[i].begin() + numel(ws));
    const std::vector<float> dw(d.dy[i].begin(), d.dy[i].begin() + numel(ws));
    std::vector<float> g(256, 2.f), w(v.size()), dv(v.size()), dg(256), norms(256);
    normkit::weight_norm_forward<float>(cview(v, ws), g, mview(w, ws), {0}, norms);
    normkit::weight_norm_backward<float>(cview(dw, ws), cview(v, ws), g, mview(dv, ws), dg, {0});
    return Outputs{w, norms, dv, dg};
  });
}

// Several callers reading the same input, weight and running statistics (eval) at once.
TEST(Concurrency, SharedReadOnlyInputs) {
  std::vector<float> rm = random_vec<float>(32), rv = random_vec<float>(32, 2.0, 0.5);
  expect_concurrent_equals_alone("batch_norm eval, shared x", [&](int i) {
    const auto& d = data();
    std::vector<float> y(d.x[0].size());
    normkit::BatchNormArgs<float> a;
    a.weight = d.w, a.bias = d.b, a.running_mean = rm, a.running_var = rv, a.eps = 1e-5 * (i + 1);
    normkit::batch_norm_forward<float>(cview(d.x[0], kShape), mview(y, kShape), a);
    return Outputs{y};
  });
}

// Distinct layer instances in different threads are independent.
TEST(Concurrency, DistinctLayerInstances) {
  expect_concurrent_equals_alone("BatchNorm layers", [&](int i) {
    const auto& d = data();
    normkit::BatchNorm<float> bn(32);
    std::vector<float> y(d.x[i].size()), dx(y.size());
    for (int step = 0; step < 2; ++step) bn.forward(cview(d.x[i], kShape), mview(y, kShape));
    bn.backward(cview(d.dy[i], kShape), cview(d.x[i], kShape), mview(dx, kShape));
    bn.eval();
    bn.forward(cview(d.x[i], kShape), mview(y, kShape));
    return Outputs{y, dx, bn.running_mean, bn.running_var, bn.weight_grad, bn.bias_grad};
  });
}

}  // namespace
