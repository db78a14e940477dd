// test_plan.cpp — ReductionPlan::build: the merged kept/reduced patterns each preset
// produces on contiguous tensors, size-1 axes dropped, the counts (num_stats, stat_size,
// num_affine), the block the engine runs along, and bad axes rejected with the op's name.
#include "test_util.hpp"

namespace {
using namespace nk_test;
using normkit::ReductionPlan;

ReductionPlan plan(const Shape& s, const std::vector<int64_t>& reduce, const std::vector<int64_t>& affine = {},
                   Strides st = {}) {
  return ReductionPlan::build(s, st, reduce, affine);
}

TEST(Plan, BatchNormOnNCHWIsRKR) {
  const auto p = plan({8, 16, 5, 7}, {0, 2, 3}, {1});
  EXPECT_EQ(p.pattern(), "[R,K,R]");
  EXPECT_EQ(p.num_stats(), 16);
  EXPECT_EQ(p.stat_size(), 8 * 35);
  EXPECT_EQ(p.num_affine(), 16);
  EXPECT_EQ(p.numel(), 8 * 16 * 35);
  ASSERT_EQ(p.dims().size(), 3u);
  EXPECT_EQ(p.dims()[0].size, 8);
  EXPECT_EQ(p.dims()[1].size, 16);
  EXPECT_EQ(p.dims()[2].size, 35);  // H and W merged
  EXPECT_TRUE(p.dims()[0].reduced());
  EXPECT_FALSE(p.dims()[1].reduced());
  EXPECT_TRUE(p.dims()[1].affine());
  EXPECT_FALSE(p.dims()[2].affine());
  EXPECT_EQ(p.run_dim(), 2u);
  EXPECT_EQ(p.dims()[2].stride, 1);
}

TEST(Plan, LayerNormOverTrailingDimsIsKR) {
  const auto p = plan({4, 6, 5, 3}, {1, 2, 3}, {1, 2, 3});
  EXPECT_EQ(p.pattern(), "[K,R]");
  EXPECT_EQ(p.num_stats(), 4);
  EXPECT_EQ(p.stat_size(), 90);
  EXPECT_EQ(p.num_affine(), 90);
  const auto q = plan({2, 3, 1031}, {-1}, {-1});  // leading dims merge into one kept block
  EXPECT_EQ(q.pattern(), "[K,R]");
  EXPECT_EQ(q.num_stats(), 6);
  EXPECT_EQ(q.stat_size(), 1031);
  EXPECT_EQ(q.dims()[0].size, 6);
}

TEST(Plan, ReduceFirstAxisOfMatrixIsRK) {
  const auto p = plan({33, 17}, {0}, {1});
  EXPECT_EQ(p.pattern(), "[R,K]");
  EXPECT_EQ(p.num_stats(), 17);
  EXPECT_EQ(p.stat_size(), 33);
  EXPECT_EQ(p.num_affine(), 17);
}

TEST(Plan, InstanceNormOnNCHWIsKR) {
  const auto p = plan({4, 6, 5, 3}, {2, 3});
  EXPECT_EQ(p.pattern(), "[K,R]");
  EXPECT_EQ(p.num_stats(), 24);
  EXPECT_EQ(p.stat_size(), 15);
  EXPECT_EQ(p.num_affine(), 1);  // no affine axes: one broadcast parameter
  // Per-channel affine makes C a different kind of kept axis than N (it may stay a block
  // of its own); the statistics are the same and the reduced block is still last.
  const auto q = plan({4, 6, 5, 3}, {2, 3}, {1});
  EXPECT_EQ(q.num_stats(), 24);
  EXPECT_EQ(q.stat_size(), 15);
  EXPECT_EQ(q.num_affine(), 6);
  EXPECT_TRUE(q.dims().back().reduced());
  EXPECT_EQ(q.dims().back().size, 15);
}

TEST(Plan, SizeOneAxesAreDropped) {
  EXPECT_EQ(plan({1, 16, 5, 7}, {0, 2, 3}, {1}).pattern(), "[K,R]");  // BatchNorm with N = 1
  EXPECT_EQ(plan({8, 16, 1, 1}, {0, 2, 3}, {1}).pattern(), "[R,K]");  // BatchNorm on (N, C, 1, 1)
  EXPECT_EQ(plan({8, 1, 5, 7}, {0, 2, 3}, {1}).pattern(), "[R]");     // one channel
  EXPECT_EQ(plan({4, 1, 6}, {-1}).pattern(), "[K,R]");
  const auto p = plan({1, 16, 1, 7}, {0, 2, 3}, {1});
  EXPECT_EQ(p.pattern(), "[K,R]");
  EXPECT_EQ(p.num_stats(), 16);
  EXPECT_EQ(p.stat_size(), 7);
}

TEST(Plan, NegativeAxesCountFromTheEnd) {
  const auto a = plan({3, 5, 7}, {-1, -3}, {-2});
  const auto b = plan({3, 5, 7}, {0, 2}, {1});
  EXPECT_EQ(a.pattern(), b.pattern());
  EXPECT_EQ(a.pattern(), "[R,K,R]");
  EXPECT_EQ(a.num_stats(), 5);
  EXPECT_EQ(a.stat_size(), 21);
}

TEST(Plan, StridedAxesDoNotMerge) {
  // (8, 16) reduce the last axis, but the rows are padded (stride 20): the kept and
  // reduced blocks stay as they are, and axes that are not adjacent in memory do not merge.
  const auto p = plan({8, 16}, {1}, {}, {20, 1});
  EXPECT_EQ(p.pattern(), "[K,R]");
  const auto q = plan({4, 5, 16}, {1, 2}, {}, {100, 20, 1});  // padded rows inside the reduction
  EXPECT_EQ(q.dims().size(), 3u);  // the padded reduced axes stay two blocks ...
  EXPECT_EQ(q.pattern(), "[K,R]");  // ... that read as one reduced block
  EXPECT_EQ(q.stat_size(), 80);
}

TEST(Plan, ChannelsLastRunsAlongChannels) {
  const Shape s = {4, 6, 5, 3};
  const auto p = plan(s, {0, 2, 3}, {1}, channels_last_strides(s));
  EXPECT_EQ(p.num_stats(), 6);
  EXPECT_EQ(p.stat_size(), 60);
  const auto& run = p.dims()[p.run_dim()];
  EXPECT_EQ(run.stride, 1);
  EXPECT_EQ(run.size, 6);
  EXPECT_FALSE(run.reduced());
}

TEST(Plan, BadAxesThrowNamingTheOp) {
  const Shape s = {2, 3, 4, 5};
  expect_error([&] { ReductionPlan::build(s, {}, {4}, {}, "my_norm"); }, "my_norm", {"4"});
  expect_error([&] { ReductionPlan::build(s, {}, {-5}, {}, "my_norm"); }, "my_norm", {"-5"});
  expect_error([&] { ReductionPlan::build(s, {}, {1, 1}, {}, "my_norm"); }, "my_norm", {"1"});
  expect_error([&] { ReductionPlan::build(s, {}, {1, -3}, {}, "my_norm"); }, "my_norm", {"-3"});
  expect_error([&] { ReductionPlan::build(s, {}, {0}, {7}, "my_norm"); }, "my_norm", {"7"});
  expect_error([&] { ReductionPlan::build(s, {}, {0}, {2, 2}, "my_norm"); }, "my_norm", {"2"});
  expect_error([&] { ReductionPlan::build(s, {1, 1}, {0}, {}, "my_norm"); }, "my_norm", {"2"});
  expect_error([&] { ReductionPlan::build(s, {}, {9}); }, "normalize", {"9"});
}

}  // namespace
