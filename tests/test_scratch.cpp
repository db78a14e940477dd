// test_scratch.cpp — the per-thread scratch pool behind the engine's partials (src/engine/scratch.hpp): a block
// given back is the one taken next for the same size class, on the same thread only, and
// Scratch vectors behave as vectors.
#include <gtest/gtest.h>

#include <numeric>
#include <thread>

#include "engine/scratch.hpp"

namespace pool = normkit::engine::pool;
using normkit::engine::Scratch;

TEST(Scratch, LargeBlockIsReusedBySameThread) {
  const size_t bytes = size_t{3} << 20;  // a size malloc would map and unmap each call
  void* a = pool::take(bytes);
  ASSERT_NE(a, nullptr);
  static_cast<char*>(a)[bytes - 1] = 1;  // the whole size is usable
  pool::give(a, bytes);
  void* b = pool::take(bytes - 1000);  // the same size class (powers of two)
  EXPECT_EQ(b, a);
  void* c = pool::take(bytes);  // the class is empty again: a new block
  EXPECT_NE(c, a);
  pool::give(b, bytes - 1000);
  pool::give(c, bytes);
}

TEST(Scratch, OtherThreadsHaveTheirOwnBlocks) {
  const size_t bytes = size_t{1} << 20;
  void* mine = pool::take(bytes);
  pool::give(mine, bytes);
  void* theirs = nullptr;
  std::thread t([&] {
    theirs = pool::take(bytes);
    pool::give(theirs, bytes);
  });
  t.join();
  EXPECT_NE(theirs, mine);
  void* again = pool::take(bytes);
  EXPECT_EQ(again, mine);
  pool::give(again, bytes);
}

TEST(Scratch, SmallAndHugeSizesAndVectors) {
  void* small = pool::take(100);  // below the pooled sizes: plain new/delete
  ASSERT_NE(small, nullptr);
  pool::give(small, 100);
  pool::give(nullptr, 1 << 20);  // a no-op
  Scratch<double> v(100000, 1.5);
  EXPECT_EQ(std::accumulate(v.begin(), v.end(), 0.0), 150000.0);
  v.resize(300000, 2.0);
  EXPECT_EQ(v[299999], 2.0);
  EXPECT_EQ(v[0], 1.5);
  Scratch<double> w = v;
  EXPECT_EQ(w, v);
  v.clear();
  v.shrink_to_fit();
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(w.size(), 300000u);
}
