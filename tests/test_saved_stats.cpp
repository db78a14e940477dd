// test_saved_stats.cpp — training backwards given the forward's SavedStats (as PyTorch's
// save_mean / save_invstd) instead of taking the statistics from x again: the same dx,
// dweight and dbias up to the float rounding of the saved values, for every op that has
// them, NCHW and channels-last; and the checks at the door, which write nothing.
#include "test_util.hpp"

namespace {
using namespace nk_test;

// Runs fwd(saved) then compares bwd(no saved) with bwd(saved).
template <class T, class Fwd, class Bwd>
void expect_saved_matches(const std::string& what, int64_t num_stats, Fwd&& fwd, Bwd&& bwd) {
  SCOPED_TRACE(what);
  std::vector<T> mean(static_cast<size_t>(num_stats)), rstd(static_cast<size_t>(num_stats));
  fwd(normkit::SavedStats<T>{mean, rstd});
  std::vector<T> dx0, dw0, db0, dx1, dw1, db1;
  bwd(normkit::SavedStats<T>{}, dx0, dw0, db0);
  bwd(normkit::SavedStats<T>{mean, rstd}, dx1, dw1, db1);
  // The saved statistics are rounded to T; dx scales with rstd, so relative error ~ eps(T).
  const double rel = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  expect_close(dx1, dx0, rel, "dx");
  if (!dw0.empty()) expect_close(dw1, dw0, rel, "dweight");
  if (!db0.empty()) expect_close(db1, db0, rel, "dbias");
  // And they are read, not ignored: other statistics give another dx.
  for (auto& r : rstd) r = T(2) * r;
  bwd(normkit::SavedStats<T>{mean, rstd}, dx1, dw1, db1);
  double diff = 0;
  for (size_t i = 0; i < dx0.size(); ++i) diff = std::max(diff, std::abs(double(dx1[i]) - double(dx0[i])));
  EXPECT_GT(diff, 1e-2) << "a backward given rstd * 2 returned the same dx";
}

template <class T>
class SavedStatsTest : public ::testing::Test {};
TYPED_TEST_SUITE(SavedStatsTest, FloatTypes);

TYPED_TEST(SavedStatsTest, BatchInstanceGroupNormAnyLayout) {
  using T = TypeParam;
  const Shape sh = {3, 16, 5, 7};
  const auto x = random_vec<T>(numel(sh), 2.0, 1.5), dy = random_vec<T>(numel(sh));
  const auto w = random_vec<T>(16, 1.0, 0.5), b = random_vec<T>(16);
  for (bool cl : {false, true}) {
    const Strides st = cl ? channels_last_strides(sh) : normkit::contiguous_strides(sh);
    const std::string layout = cl ? " NHWC" : " NCHW";
    auto grads = [&](std::vector<T>& dx, std::vector<T>& dw, std::vector<T>& db) {
      dx.assign(x.size(), T(0)), dw.assign(16, T(0)), db.assign(16, T(0));
    };
    normkit::BatchNormArgs<T> ba;
    ba.weight = w, ba.bias = b, ba.training = true;
    expect_saved_matches<T>("batch_norm" + layout, 16,
        [&](normkit::SavedStats<T> s) {
          std::vector<T> y(x.size());
          normkit::batch_norm_forward<T>(cview(x, sh, st), mview(y, sh, st), ba, s);
        },
        [&](normkit::SavedStats<T> s, std::vector<T>& dx, std::vector<T>& dw, std::vector<T>& db) {
          grads(dx, dw, db);
          normkit::batch_norm_backward<T>(cview(dy, sh, st), cview(x, sh, st), mview(dx, sh, st), ba, dw, db, s);
        });
    normkit::InstanceNormArgs<T> ia;
    ia.weight = w, ia.bias = b;
    expect_saved_matches<T>("instance_norm" + layout, 3 * 16,
        [&](normkit::SavedStats<T> s) {
          std::vector<T> y(x.size());
          normkit::instance_norm_forward<T>(cview(x, sh, st), mview(y, sh, st), ia, s);
        },
        [&](normkit::SavedStats<T> s, std::vector<T>& dx, std::vector<T>& dw, std::vector<T>& db) {
          grads(dx, dw, db);
          normkit::instance_norm_backward<T>(cview(dy, sh, st), cview(x, sh, st), mview(dx, sh, st), ia, dw, db, s);
        });
    normkit::GroupNormArgs<T> ga;  // C/G = 4: channels-last takes the per-channel path
    ga.num_groups = 4, ga.weight = w, ga.bias = b;
    expect_saved_matches<T>("group_norm" + layout, 3 * 4,
        [&](normkit::SavedStats<T> s) {
          std::vector<T> y(x.size());
          normkit::group_norm_forward<T>(cview(x, sh, st), mview(y, sh, st), ga, s);
        },
        [&](normkit::SavedStats<T> s, std::vector<T>& dx, std::vector<T>& dw, std::vector<T>& db) {
          grads(dx, dw, db);
          normkit::group_norm_backward<T>(cview(dy, sh, st), cview(x, sh, st), mview(dx, sh, st), ga, dw, db, s);
        });
  }
}

TYPED_TEST(SavedStatsTest, LayerNormAndRMSNorm) {
  using T = TypeParam;
  const Shape sh = {37, 67};  // odd: vector tails
  const auto x = random_vec<T>(numel(sh), 1.0, 2.0), dy = random_vec<T>(numel(sh));
  const auto w = random_vec<T>(67, 1.0, 0.5), b = random_vec<T>(67);
  normkit::LayerNormArgs<T> la;
  la.normalized_shape = {67}, la.weight = w, la.bias = b;
  expect_saved_matches<T>("layer_norm", 37,
      [&](normkit::SavedStats<T> s) {
        std::vector<T> y(x.size());
        normkit::layer_norm_forward<T>(cview(x, sh), mview(y, sh), la, s);
      },
      [&](normkit::SavedStats<T> s, std::vector<T>& dx, std::vector<T>& dw, std::vector<T>& db) {
        dx.assign(x.size(), T(0)), dw.assign(67, T(0)), db.assign(67, T(0));
        normkit::layer_norm_backward<T>(cview(dy, sh), cview(x, sh), mview(dx, sh), la, dw, db, s);
      });
  normkit::RMSNormArgs<T> ra;
  ra.normalized_shape = {67}, ra.weight = w;
  expect_saved_matches<T>("rms_norm", 37,
      [&](normkit::SavedStats<T> s) {
        std::vector<T> y(x.size());
        normkit::rms_norm_forward<T>(cview(x, sh), mview(y, sh), ra, s);
      },
      [&](normkit::SavedStats<T> s, std::vector<T>& dx, std::vector<T>& dw, std::vector<T>& db) {
        dx.assign(x.size(), T(0)), dw.assign(67, T(0)), db.clear();
        normkit::rms_norm_backward<T>(cview(dy, sh), cview(x, sh), mview(dx, sh), ra, dw, s);
      });
  // RMSNorm has no mean: rstd alone will do.
  std::vector<T> y(x.size()), rstd(37), dx_a(x.size()), dx_b(x.size());
  normkit::rms_norm_forward<T>(cview(x, sh), mview(y, sh), ra, {{}, rstd});
  normkit::rms_norm_backward<T>(cview(dy, sh), cview(x, sh), mview(dx_a, sh), ra, {}, {{}, rstd});
  normkit::rms_norm_backward<T>(cview(dy, sh), cview(x, sh), mview(dx_b, sh), ra);
  expect_close(dx_a, dx_b, std::is_same_v<T, float> ? 2e-5 : 1e-12, "rms_norm dx, rstd only");
}

TEST(SavedStatsErrors, RefusedAtTheDoorAndNothingWritten) {
  const Shape sh = {4, 6, 3};
  const auto x = random_vec<float>(numel(sh), 1.0, 1.0), dy = random_vec<float>(numel(sh));
  std::vector<float> mean(6, 0.f), rstd(6, 1.f), short_rstd(5, 1.f), neg(6, -1.f);
  normkit::BatchNormArgs<float> a;
  a.training = true;
  auto call = [&](normkit::SavedStats<float> s, bool training = true) {
    auto dx = sentinel_vec<float>(numel(sh));
    const auto before = dx;
    a.training = training;
    try {
      normkit::batch_norm_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, {}, {}, s);
    } catch (...) {
      expect_bitwise(dx, before, "dx after a refused call");
      throw;
    }
  };
  expect_error([&] { call({{}, rstd}); }, "batch_norm", {"saved rstd given without saved mean"});
  expect_error([&] { call({mean, {}}); }, "batch_norm", {"saved mean given without saved rstd"});
  expect_error([&] { call({mean, short_rstd}); }, "batch_norm", {"saved rstd", "5", "expected 6"});
  expect_error([&] { call({mean, neg}); }, "batch_norm", {"saved rstd[0]", "not positive"});
  std::vector<float> rm(6, 0.f), rv(6, 1.f);
  a.running_mean = rm, a.running_var = rv;
  expect_error([&] { call({mean, rstd}, false); }, "batch_norm", {"training mode"});
}

}  // namespace
