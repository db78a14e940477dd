// test_pace.cpp — engine::Pace and for_each_share, how a region's threads split its items:
// the shares are contiguous, cover every item once and follow the threads' weights; the
// weights move toward the threads' relative speeds (a quarter of the way per region, within
// [1/2, 2]), so a thread that keeps taking longer gets less (checked with given times, not
// measured ones); regions with more than Pace::kMaxThreads split evenly. (That the split
// changes no bit of any op: Determinism.UnevenThreadsChangeNoBits.)
#include <gtest/gtest.h>
#include <omp.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "engine/pace.hpp"

using normkit::engine::for_each_share;
using normkit::engine::Pace;

namespace {

TEST(Pace, StartsEvenAndLearnsAQuarterOfTheWay) {
  Pace pace;
  int64_t cut[3];
  pace.split(1000, 2, cut);
  EXPECT_EQ(cut[0], 0);
  EXPECT_EQ(cut[1], 500);
  EXPECT_EQ(cut[2], 1000);
  const int64_t half[3] = {0, 50, 100};
  const double seconds[2] = {1.0, 2.0};  // speeds 50 and 25 items/s, mean 37.5
  pace.learn(2, half, seconds);
  EXPECT_DOUBLE_EQ(pace.weight(0), 0.75 + 0.25 * (50 / 37.5));
  EXPECT_DOUBLE_EQ(pace.weight(1), 0.75 + 0.25 * (25 / 37.5));
  pace.split(1000, 2, cut);
  EXPECT_EQ(cut[1], int64_t(1000 * (pace.weight(0) / (pace.weight(0) + pace.weight(1)))));
  EXPECT_GT(cut[1], 500);
}

TEST(Pace, SharesFollowTheThreadsSpeeds) {
  // Thread t takes cost[t] seconds per item: the split settles where all finish together.
  for (int nt : {2, 3, 5}) {
    Pace pace;
    const double cost[5] = {1.0, 1.5, 1.0, 2.0, 1.2};
    const int64_t total = 100000;
    int64_t cut[Pace::kMaxThreads + 1];
    for (int round = 0; round < 60; ++round) {
      pace.split(total, nt, cut);
      double seconds[Pace::kMaxThreads];
      for (int t = 0; t < nt; ++t) seconds[t] = double(cut[t + 1] - cut[t]) * cost[t];
      pace.learn(nt, cut, seconds);
    }
    pace.split(total, nt, cut);
    double inv = 0;
    for (int t = 0; t < nt; ++t) inv += 1 / cost[t];
    for (int t = 0; t < nt; ++t)
      EXPECT_NEAR(double(cut[t + 1] - cut[t]) / double(total), (1 / cost[t]) / inv, 0.01) << nt << " threads, thread " << t;
  }
}

TEST(Pace, WeightsStayWithinBoundsAndSplitsCoverTheItems) {
  Pace pace;
  for (int round = 0; round < 50; ++round) {  // thread 0 a thousand times faster
    const int64_t cut[4] = {0, 100, 200, 300};
    const double seconds[3] = {1e-3, 1.0, 1.0};
    pace.learn(3, cut, seconds);
  }
  EXPECT_LE(pace.weight(0), 2.0);
  EXPECT_GE(pace.weight(1), 0.5);
  for (int64_t total : {0, 1, 2, 3, 7, 1000})
    for (int nt = 1; nt <= Pace::kMaxThreads; ++nt) {
      int64_t cut[Pace::kMaxThreads + 1];
      pace.split(total, nt, cut);
      EXPECT_EQ(cut[0], 0);
      EXPECT_EQ(cut[nt], total);
      for (int t = 0; t < nt; ++t) EXPECT_LE(cut[t], cut[t + 1]) << "total " << total << ", " << nt << " threads";
    }
  const double w0 = pace.weight(0);
  const int64_t empty[3] = {0, 0, 10};  // an empty share teaches nothing
  const double seconds[2] = {1.0, 1.0};
  pace.learn(2, empty, seconds);
  EXPECT_EQ(pace.weight(0), w0);
}

// for_each_share over `total` items with `threads`; thread 1 sleeps `us_per_item` per item.
// Returns how often each item was visited and thread 1's share.
std::vector<int> visit(Pace& pace, int threads, int64_t total, int us_per_item, int64_t* share1) {
  std::vector<std::atomic<int>> seen(static_cast<size_t>(total));
  for_each_share(threads, total, pace, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) seen[size_t(q)]++;
    if (omp_get_thread_num() == 1) {
      *share1 = q1 - q0;
      std::this_thread::sleep_for(std::chrono::microseconds(us_per_item * (q1 - q0)));
    }
  });
  std::vector<int> out(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) out[size_t(i)] = seen[size_t(i)].load();
  return out;
}

TEST(Pace, ForEachShareVisitsEveryItemOnceAndLearns) {
  for (int threads : {1, 2, 3, 4, Pace::kMaxThreads + 1}) {
    Pace pace;
    int64_t share1 = -1, first = -1;
    for (int call = 0; call < 12; ++call) {
      for (int v : visit(pace, threads, 600, 20, &share1)) ASSERT_EQ(v, 1) << threads << " threads, call " << call;
      if (call == 0) first = share1;
    }
    if (threads >= 2 && threads <= Pace::kMaxThreads) {
      EXPECT_EQ(first, 600 * 2 / threads - 600 / threads);  // the first call splits evenly
      // The region's times were learned (which way is the threads' business: no timing is
      // asserted here; Pace.SharesFollowTheThreadsSpeeds checks where the learning goes).
      EXPECT_NE(pace.weight(0), 1.0) << threads << " threads";
    }
    if (threads > Pace::kMaxThreads) {
      EXPECT_EQ(share1, 600 * 2 / threads - 600 / threads);  // always even
      EXPECT_EQ(pace.weight(0), 1.0);
    }
  }
}

}  // namespace
