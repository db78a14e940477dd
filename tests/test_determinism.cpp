// test_determinism.cpp — results are bitwise identical for any thread count (DESIGN §5):
// each op, forward outputs, saved/running statistics and gradients, with 1..4 threads on
// shapes big enough to go parallel. Compares bits, never timings.
#include <atomic>
#include <cstdint>
#include <thread>

#include "test_util.hpp"

namespace {
using namespace nk_test;

// Runs `op` (which fills `outs`) with 1..4 threads; every run must match the 1-thread bits.
template <class T>
void expect_thread_invariant(const char* what, const std::function<std::vector<std::vector<T>>()>& op) {
  const int saved = normkit::get_num_threads();
  normkit::set_num_threads(1);
  const auto base = op();
  for (int t = 2; t <= 4; ++t) {
    normkit::set_num_threads(t);
    EXPECT_EQ(normkit::get_num_threads(), t);
    const auto got = op();
    ASSERT_EQ(got.size(), base.size());
    for (size_t i = 0; i < got.size(); ++i)
      expect_bitwise(got[i], base[i], std::string(what) + " output " + std::to_string(i) + " with " +
                                          std::to_string(t) + " threads");
  }
  normkit::set_num_threads(saved);
}

TEST(Determinism, BatchNorm) {
  for (bool channels_last : {false, true}) {
    const Shape sh = {16, 64, 56, 56};
    const Strides st = channels_last ? channels_last_strides(sh) : normkit::contiguous_strides(sh);
    const auto x = random_vec<float>(numel(sh), 1.0, 2.0), dy = random_vec<float>(numel(sh));
    const auto w = random_vec<float>(64, 1.0, 0.5), b = random_vec<float>(64);
    expect_thread_invariant<float>(channels_last ? "batch_norm NHWC" : "batch_norm", [&] {
      std::vector<float> y(x.size()), dx(x.size()), mean(64), rstd(64), dw(64), db(64);
      std::vector<float> rm(64, 0.f), rv(64, 1.f);
      normkit::BatchNormArgs<float> a;
      a.weight = w, a.bias = b, a.running_mean = rm, a.running_var = rv, a.training = true;
      normkit::batch_norm_forward<float>(cview(x, sh, st), mview(y, sh, st), a, {mean, rstd});
      normkit::batch_norm_backward<float>(cview(dy, sh, st), cview(x, sh, st), mview(dx, sh, st), a, dw, db);
      return std::vector<std::vector<float>>{y, mean, rstd, rm, rv, dx, dw, db};
    });
  }
}

TEST(Determinism, LayerNormAndRMSNorm) {
  const Shape sh = {2048, 1024};
  const auto x = random_vec<float>(numel(sh), 0.5, 2.0), dy = random_vec<float>(numel(sh));
  const auto w = random_vec<float>(1024, 1.0, 0.5), b = random_vec<float>(1024);
  expect_thread_invariant<float>("layer_norm", [&] {
    std::vector<float> y(x.size()), dx(x.size()), mean(2048), rstd(2048), dw(1024), db(1024);
    normkit::LayerNormArgs<float> a;
    a.normalized_shape = {1024}, a.weight = w, a.bias = b;
    normkit::layer_norm_forward<float>(cview(x, sh), mview(y, sh), a, {mean, rstd});
    normkit::layer_norm_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, dw, db);
    return std::vector<std::vector<float>>{y, mean, rstd, dx, dw, db};
  });
  expect_thread_invariant<float>("rms_norm", [&] {
    std::vector<float> y(x.size()), dx(x.size()), rstd(2048), dw(1024);
    normkit::RMSNormArgs<float> a;
    a.normalized_shape = {1024}, a.weight = w;
    normkit::rms_norm_forward<float>(cview(x, sh), mview(y, sh), a, {{}, rstd});
    normkit::rms_norm_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, dw);
    return std::vector<std::vector<float>>{y, rstd, dx, dw};
  });
}

TEST(Determinism, GroupNormAndInstanceNorm) {
  const Shape sh = {16, 64, 28, 28};
  const auto x = random_vec<double>(numel(sh), -1.0, 2.0), dy = random_vec<double>(numel(sh));
  const auto w = random_vec<double>(64, 1.0, 0.5), b = random_vec<double>(64);
  expect_thread_invariant<double>("group_norm", [&] {
    std::vector<double> y(x.size()), dx(x.size()), mean(16 * 8), rstd(16 * 8), dw(64), db(64);
    normkit::GroupNormArgs<double> a;
    a.num_groups = 8, a.weight = w, a.bias = b;
    normkit::group_norm_forward<double>(cview(x, sh), mview(y, sh), a, {mean, rstd});
    normkit::group_norm_backward<double>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, dw, db);
    return std::vector<std::vector<double>>{y, mean, rstd, dx, dw, db};
  });
  const Shape big = {4, 16, 97, 89};  // groups of 34532 elements: more than one reduction chunk
  const auto xb = random_vec<double>(numel(big), -1.0, 2.0), dyb = random_vec<double>(numel(big));
  expect_thread_invariant<double>("group_norm, big groups", [&] {
    std::vector<double> y(xb.size()), dx(xb.size()), mean(4 * 4), rstd(4 * 4), dw(16), db(16);
    normkit::GroupNormArgs<double> a;
    a.num_groups = 4, a.weight = std::span<const double>(w).first(16), a.bias = std::span<const double>(b).first(16);
    normkit::group_norm_forward<double>(cview(xb, big), mview(y, big), a, {mean, rstd});
    normkit::group_norm_backward<double>(cview(dyb, big), cview(xb, big), mview(dx, big), a, dw, db);
    return std::vector<std::vector<double>>{y, mean, rstd, dx, dw, db};
  });
  const Strides cl = channels_last_strides(sh);  // GroupNorm NHWC: statistics per channel, merged per group
  expect_thread_invariant<double>("group_norm NHWC", [&] {
    std::vector<double> y(x.size()), dx(x.size()), mean(16 * 8), rstd(16 * 8), dw(64), db(64);
    normkit::GroupNormArgs<double> a;
    a.num_groups = 8, a.weight = w, a.bias = b;
    normkit::group_norm_forward<double>(cview(x, sh, cl), mview(y, sh, cl), a, {mean, rstd});
    normkit::group_norm_backward<double>(cview(dy, sh, cl), cview(x, sh, cl), mview(dx, sh, cl), a, dw, db);
    return std::vector<std::vector<double>>{y, mean, rstd, dx, dw, db};
  });
  expect_thread_invariant<double>("instance_norm", [&] {
    std::vector<double> y(x.size()), dx(x.size()), dw(64), db(64), rm(64, 0.0), rv(64, 1.0);
    normkit::InstanceNormArgs<double> a;
    a.weight = w, a.bias = b, a.running_mean = rm, a.running_var = rv;
    normkit::instance_norm_forward<double>(cview(x, sh), mview(y, sh), a);
    normkit::instance_norm_backward<double>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, dw, db);
    return std::vector<std::vector<double>>{y, rm, rv, dx, dw, db};
  });
}

TEST(Determinism, WeightNormAndNormalize) {
  const Shape sh = {1024, 1024};
  const auto v = random_vec<float>(numel(sh), 0.0, 1.0), dw = random_vec<float>(numel(sh));
  const auto g = random_vec<float>(1024, 1.0, 0.5);
  for (std::optional<int64_t> dim : {std::optional<int64_t>(0), std::optional<int64_t>(1), std::optional<int64_t>()}) {
    const int64_t K = dim ? 1024 : 1;
    const std::vector<float> gk(g.begin(), g.begin() + K);
    expect_thread_invariant<float>("weight_norm", [&] {
      std::vector<float> w(v.size()), dv(v.size()), norms(K), dg(K);
      normkit::weight_norm_forward<float>(cview(v, sh), gk, mview(w, sh), {dim}, norms);
      normkit::weight_norm_backward<float>(cview(dw, sh), cview(v, sh), gk, mview(dv, sh), dg, {dim});
      return std::vector<std::vector<float>>{w, norms, dv, dg};
    });
  }
  const Shape sh4 = {8, 32, 64, 64};
  const auto x = random_vec<float>(numel(sh4), 1.0, 1.0), dy = random_vec<float>(numel(sh4));
  const auto wa = random_vec<float>(8 * 64);
  expect_thread_invariant<float>("normalize", [&] {
    std::vector<float> y(x.size()), dx(x.size()), dwa(wa.size());
    normkit::NormalizeArgs<float> a;
    a.reduce_axes = {1, 3}, a.affine_axes = {0, 2}, a.weight = wa;
    normkit::normalize_forward<float>(cview(x, sh4), mview(y, sh4), a);
    normkit::normalize_backward<float>(cview(dy, sh4), cview(x, sh4), mview(dx, sh4), a, dwa);
    return std::vector<std::vector<float>>{y, dx, dwa};
  });
}

// A region's threads split its statistics by their pace in earlier regions (engine::Pace),
// so which thread computes what changes from call to call. A thread spinning beside 2..4
// region threads on this 2-core machine makes them uneven; every call must still have the
// 1-thread bits. The ops cover the three ways a region splits statistics: one at a time
// (BatchNorm on NCHW), blocks of rows (InstanceNorm, LayerNorm), pipelines (GroupNorm on NCHW).
TEST(Determinism, UnevenThreadsChangeNoBits) {
  const Shape sh = {16, 64, 28, 28}, rows = {1024, 1000};
  const auto x = random_vec<float>(numel(sh), -1.0, 2.0), dy = random_vec<float>(numel(sh));
  const auto xr = random_vec<float>(numel(rows), 0.5, 2.0), dyr = random_vec<float>(numel(rows));
  const auto w = random_vec<float>(1000, 1.0, 0.5), b = random_vec<float>(1000);
  const std::span<const float> wc(w.data(), 64), bc(b.data(), 64);
  auto all_ops = [&] {
    std::vector<std::vector<float>> out;
    {
      std::vector<float> y(x.size()), dx(x.size()), mean(64), rstd(64), dw(64), db(64), rm(64, 0.f), rv(64, 1.f);
      normkit::BatchNormArgs<float> a;
      a.weight = wc, a.bias = bc, a.running_mean = rm, a.running_var = rv, a.training = true;
      normkit::batch_norm_forward<float>(cview(x, sh), mview(y, sh), a, {mean, rstd});
      normkit::batch_norm_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, dw, db, {mean, rstd});
      for (auto* v : {&y, &mean, &rstd, &rm, &rv, &dx, &dw, &db}) out.push_back(*v);
    }
    {
      std::vector<float> y(x.size()), dx(x.size()), mean(16 * 64), rstd(16 * 64), dw(64), db(64);
      normkit::InstanceNormArgs<float> a;
      a.weight = wc, a.bias = bc;
      normkit::instance_norm_forward<float>(cview(x, sh), mview(y, sh), a, {mean, rstd});
      normkit::instance_norm_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, dw, db, {mean, rstd});
      for (auto* v : {&y, &mean, &rstd, &dx, &dw, &db}) out.push_back(*v);
    }
    {
      std::vector<float> y(x.size()), dx(x.size()), mean(16 * 8), rstd(16 * 8), dw(64), db(64);
      normkit::GroupNormArgs<float> a;
      a.num_groups = 8, a.weight = wc, a.bias = bc;
      normkit::group_norm_forward<float>(cview(x, sh), mview(y, sh), a, {mean, rstd});
      normkit::group_norm_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, dw, db);
      for (auto* v : {&y, &mean, &rstd, &dx, &dw, &db}) out.push_back(*v);
    }
    {
      std::vector<float> y(xr.size()), dx(xr.size()), mean(1024), rstd(1024), dw(1000), db(1000);
      normkit::LayerNormArgs<float> a;
      a.normalized_shape = {1000}, a.weight = w, a.bias = b;
      normkit::layer_norm_forward<float>(cview(xr, rows), mview(y, rows), a, {mean, rstd});
      normkit::layer_norm_backward<float>(cview(dyr, rows), cview(xr, rows), mview(dx, rows), a, dw, db);
      for (auto* v : {&y, &mean, &rstd, &dx, &dw, &db}) out.push_back(*v);
    }
    return out;
  };
  const int saved = normkit::get_num_threads();
  normkit::set_num_threads(1);
  const auto base = all_ops();
  std::atomic<bool> stop{false};
  std::thread spinner([&] {
    volatile uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) n = n + 1;
  });
  for (int round = 0; round < 6; ++round)
    for (int t = 2; t <= 4; ++t) {
      normkit::set_num_threads(t);
      const auto got = all_ops();
      ASSERT_EQ(got.size(), base.size());
      for (size_t i = 0; i < got.size(); ++i)
        expect_bitwise(got[i], base[i], "output " + std::to_string(i) + " with " + std::to_string(t) +
                                            " threads beside a spinning one, round " + std::to_string(round));
    }
  stop = true;
  spinner.join();
  normkit::set_num_threads(saved);
}

}  // namespace
