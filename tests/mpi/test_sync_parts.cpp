// test_sync_parts.cpp — the communicator-free SyncBatchNorm building blocks, with ranks
// simulated in one process: a global batch split unevenly (empty ranks included) must give
// single-process batch_norm_forward/backward's results. Needs no MPI, so it always builds.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "normkit/normkit.hpp"
#include "normkit/sync_batch_norm.hpp"
#include "sync_test_util.hpp"

namespace {
using normkit::BatchNormArgs;
using normkit::GradSums;
using normkit::Moments;
using normkit::Shape;
using normkit::Strides;
using normkit::TensorView;
using sync_test::max_rel_err;
using sync_test::random_vec;

template <class T>
struct Result {
  std::vector<T> y, dx, dw, db, rm, rv;
};

// A batch (N, C, H, W) stored row-major or channels-last, with parameters and dy.
template <class T>
struct Batch {
  Shape shape;
  Strides strides;
  std::vector<T> x, dy, w, b, rm, rv;
  Batch(int64_t N, bool channels_last) : shape{N, 5, 3, 4} {
    const int64_t C = 5, H = 3, W = 4;
    strides = channels_last ? Strides{H * W * C, 1, W * C, C} : Strides{C * H * W, H * W, W, 1};
    x = random_vec<T>(N * C * H * W, 1, 2.0, 1.5);
    dy = random_vec<T>(N * C * H * W, 2);
    w = random_vec<T>(C, 3, 1.0, 0.5), b = random_vec<T>(C, 4);
    rm = random_vec<T>(C, 5), rv = random_vec<T>(C, 6, 1.5, 0.5);
  }
  // Rank-local view of samples [n0, n0 + n) of buffer `v`.
  template <class U>
  TensorView<U> local(U* v, int64_t n0, int64_t n) const {
    Shape s = shape;
    s[0] = n;
    return TensorView<U>(v + n0 * strides[0], s, strides);
  }
};

// Single process: batch_norm_forward + batch_norm_backward in training on the whole batch.
template <class T>
Result<T> single_process(const Batch<T>& B, double momentum) {
  Result<T> r{std::vector<T>(B.x.size()), std::vector<T>(B.x.size()), std::vector<T>(B.w.size()),
              std::vector<T>(B.b.size()), B.rm, B.rv};
  BatchNormArgs<T> a;
  a.weight = B.w, a.bias = B.b, a.running_mean = r.rm, a.running_var = r.rv;
  a.training = true, a.momentum = momentum;
  normkit::batch_norm_forward<T>({B.x.data(), B.shape, B.strides}, {r.y.data(), B.shape, B.strides}, a);
  normkit::batch_norm_backward<T>({B.dy.data(), B.shape, B.strides}, {B.x.data(), B.shape, B.strides},
                                  {r.dx.data(), B.shape, B.strides}, a, r.dw, r.db);
  return r;
}

// The building blocks, one "rank" per entry of `sizes`, gathered rank-major as MPI would.
template <class T>
Result<T> simulated_ranks(const Batch<T>& B, const std::vector<int64_t>& sizes, double momentum) {
  const int64_t C = B.shape[1];
  Result<T> r{std::vector<T>(B.x.size()), std::vector<T>(B.x.size()), {}, {}, B.rm, B.rv};
  std::vector<Moments> gathered;
  for (size_t k = 0, n0 = 0; k < sizes.size(); n0 += sizes[k++]) {
    const auto m = normkit::batch_norm_moments(B.local(B.x.data(), n0, sizes[k]));
    gathered.insert(gathered.end(), m.begin(), m.end());
  }
  const auto merged = normkit::combine_moments(gathered, C);
  const auto stats = normkit::batch_norm_stats_from(merged, 1e-5);
  std::vector<GradSums> sums;
  for (size_t k = 0, n0 = 0; k < sizes.size(); n0 += sizes[k++]) {
    normkit::batch_norm_apply<T>(B.local(B.x.data(), n0, sizes[k]), B.local(r.y.data(), n0, sizes[k]),
                                 stats, B.w, B.b);
    const auto g = normkit::batch_norm_grad_sums<T>(B.local(B.dy.data(), n0, sizes[k]),
                                                    B.local(B.x.data(), n0, sizes[k]), stats);
    sums.insert(sums.end(), g.begin(), g.end());
  }
  normkit::batch_norm_update_running<T>(merged, r.rm, r.rv, momentum);
  const auto merged_sums = normkit::combine_grad_sums(sums, C);
  for (size_t k = 0, n0 = 0; k < sizes.size(); n0 += sizes[k++]) {
    std::vector<T> dw(B.w.size()), db(B.b.size());
    normkit::batch_norm_backward_apply<T>(B.local(B.dy.data(), n0, sizes[k]), B.local(B.x.data(), n0, sizes[k]),
                                          B.local(r.dx.data(), n0, sizes[k]), stats, merged_sums, B.w, dw, db);
    if (k == 0) r.dw = dw, r.db = db;
    EXPECT_EQ(0, std::memcmp(dw.data(), r.dw.data(), dw.size() * sizeof(T))) << "rank " << k;
    EXPECT_EQ(0, std::memcmp(db.data(), r.db.data(), db.size() * sizeof(T))) << "rank " << k;
  }
  return r;
}

template <class T>
class SyncParts : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(SyncParts, Types);

TYPED_TEST(SyncParts, SplitBatchMatchesSingleProcess) {
  using T = TypeParam;
  const std::vector<std::vector<int64_t>> splits = {{7}, {5, 2}, {1, 2, 4}, {4, 0, 3}, {0, 0, 7}, {3, 0, 0, 4}};
  for (bool channels_last : {false, true})
    for (const auto& sizes : splits) {
      const Batch<T> B(7, channels_last);
      const auto want = single_process(B, 0.1);
      const auto got = simulated_ranks(B, sizes, 0.1);
      const std::string where = std::string(channels_last ? "channels-last" : "contiguous") +
                                " split of " + std::to_string(sizes.size()) + " ranks, rank 0 has " +
                                std::to_string(sizes[0]);
      EXPECT_LE(max_rel_err(got.y, want.y), sync_test::tol<T>()) << "y, " << where;
      EXPECT_LE(max_rel_err(got.dx, want.dx), sync_test::tol<T>()) << "dx, " << where;
      EXPECT_LE(max_rel_err(got.dw, want.dw), sync_test::tol<T>()) << "dweight, " << where;
      EXPECT_LE(max_rel_err(got.db, want.db), sync_test::tol<T>()) << "dbias, " << where;
      EXPECT_LE(max_rel_err(got.rm, want.rm), sync_test::tol<T>()) << "running_mean, " << where;
      EXPECT_LE(max_rel_err(got.rv, want.rv), sync_test::tol<T>()) << "running_var, " << where;
    }
}

TEST(SyncPartsMerge, EmptyRanksAddNothingBitwise) {
  const Batch<float> B(6, false);
  const auto a = normkit::batch_norm_moments(B.local(B.x.data(), 0, 2));
  const auto b = normkit::batch_norm_moments(B.local(B.x.data(), 2, 4));
  const auto e = normkit::batch_norm_moments(B.local(B.x.data(), 6, 0));
  std::vector<Moments> ab(a), aeb(a);
  ab.insert(ab.end(), b.begin(), b.end());
  aeb.insert(aeb.end(), e.begin(), e.end());
  aeb.insert(aeb.end(), b.begin(), b.end());
  const auto m1 = normkit::combine_moments(ab, 5), m2 = normkit::combine_moments(aeb, 5);
  EXPECT_EQ(0, std::memcmp(m1.data(), m2.data(), m1.size() * sizeof(Moments)));
  EXPECT_EQ(m1[0].count, 72.0);
  for (const Moments& m : e) EXPECT_EQ(m.count, 0.0);
}

TEST(SyncPartsMerge, OneValuePerChannelRuleIsGlobal) {
  const std::vector<float> one = random_vec<float>(3, 7), two = random_vec<float>(3, 8);
  const auto m1 = normkit::batch_norm_moments<float>({one.data(), {1, 3}});
  const auto m0 = normkit::batch_norm_moments<float>({nullptr, {0, 3}});
  std::vector<Moments> lonely(m1);
  lonely.insert(lonely.end(), m0.begin(), m0.end());
  try {
    normkit::batch_norm_stats_from(normkit::combine_moments(lonely, 3), 1e-5);
    ADD_FAILURE() << "a global count of 1 must throw";
  } catch (const normkit::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[sync_batch_norm] expected more than 1 value per channel"),
              std::string::npos) << e.what();
  }
  // One value per channel on each of two ranks is two globally: fine, as on the whole batch.
  const auto m2 = normkit::batch_norm_moments<float>({two.data(), {1, 3}});
  std::vector<Moments> pair(m1);
  pair.insert(pair.end(), m2.begin(), m2.end());
  const auto s = normkit::batch_norm_stats_from(normkit::combine_moments(pair, 3), 1e-5);
  EXPECT_EQ(s.count, 2.0);
  for (size_t c = 0; c < 3; ++c) EXPECT_NEAR(s.mean[c], 0.5 * (double(one[c]) + double(two[c])), 1e-7);
  // Eval-style use (training = false) accepts one value.
  EXPECT_NO_THROW(normkit::batch_norm_stats_from(m1, 1e-5, false));
}

TEST(SyncPartsMerge, AllRanksEmptyChangesNothing) {
  const auto m0 = normkit::batch_norm_moments<float>({nullptr, {0, 4, 2}});
  std::vector<Moments> gathered(m0);
  gathered.insert(gathered.end(), m0.begin(), m0.end());
  const auto merged = normkit::combine_moments(gathered, 4);
  const auto s = normkit::batch_norm_stats_from(merged, 1e-5);
  EXPECT_EQ(s.count, 0.0);
  std::vector<float> rm{1, 2, 3, 4}, rv{5, 6, 7, 8};
  normkit::batch_norm_update_running<float>(merged, rm, rv, 0.1);
  EXPECT_EQ(rm, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(rv, (std::vector<float>{5, 6, 7, 8}));
  normkit::batch_norm_apply<float>({nullptr, {0, 4, 2}}, {nullptr, {0, 4, 2}}, s);
}

TEST(SyncPartsErrors, NameTheOpAndTheValue) {
  const auto expect_error = [](auto&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "expected an error containing: " << needle;
    } catch (const normkit::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([] { normkit::combine_moments(std::vector<Moments>(7), 5); },
               "[sync_batch_norm] gathered moments has 7 entries, not a multiple of num_channels=5");
  expect_error([] { normkit::combine_grad_sums(std::vector<GradSums>(3), 0); },
               "[sync_batch_norm] num_channels=0 must be positive");
  const std::vector<float> flat(4);
  expect_error([&] { normkit::batch_norm_moments<float>({flat.data(), {4}}); },
               "[sync_batch_norm] expected input of shape (N, C, *) (rank >= 2), got shape 4");
  expect_error([] { normkit::batch_norm_stats_from(std::vector<Moments>(2), -1.0); },
               "[sync_batch_norm] eps=-1 must be");
  const Batch<float> B(2, false);
  const auto stats = normkit::batch_norm_stats_from(
      normkit::combine_moments(normkit::batch_norm_moments(B.local(B.x.data(), 0, 2)), 5), 1e-5);
  std::vector<float> y(B.x.size(), 777.0f), dx(B.x.size(), 777.0f), rm(5, 0.0f), rv(5, 1.0f), rv3(3);
  expect_error([&] { normkit::batch_norm_apply<float>(B.local(B.x.data(), 0, 2), B.local(y.data(), 0, 1), stats); },
               "[sync_batch_norm] output has shape 1x5x3x4, expected 2x5x3x4");
  expect_error([&] {
    normkit::batch_norm_backward_apply<float>(B.local(B.dy.data(), 0, 2), B.local(B.x.data(), 0, 2),
                                              B.local(dx.data(), 0, 2), stats, std::vector<GradSums>(4));
  }, "[sync_batch_norm] merged gradient sums have 4 entries, expected num_channels=5");
  normkit::BatchNormStats short_stats = stats;
  short_stats.rstd.pop_back();
  expect_error([&] { normkit::batch_norm_grad_sums<float>(B.local(B.dy.data(), 0, 2), B.local(B.x.data(), 0, 2), short_stats); },
               "[sync_batch_norm] statistics have 5 means and 4 rstd values");
  const auto merged = normkit::combine_moments(normkit::batch_norm_moments(B.local(B.x.data(), 0, 2)), 5);
  expect_error([&] { normkit::batch_norm_update_running<float>(merged, rm, rv, 1.5); },
               "[sync_batch_norm] momentum=1.5 must lie in [0, 1]");
  expect_error([&] { normkit::batch_norm_update_running<float>(merged, rm, rv3, 0.1); },
               "[sync_batch_norm] running_var has 3 elements, expected 5");
  // Nothing written by the failed calls.
  for (float v : y) ASSERT_EQ(v, 777.0f);
  for (float v : dx) ASSERT_EQ(v, 777.0f);
  EXPECT_EQ(rm, std::vector<float>(5, 0.0f));
}

}  // namespace
