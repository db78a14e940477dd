// test_scratch.cpp — the per-thread scratch pool behind the engine's partials (src/engine/scratch.hpp): a block
// given back is the one taken next for the same size class, on the same thread only, and
// Scratch vectors behave as vectors.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>
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

// Blocks of a few KiB (per-channel coefficients and sums, several held at once by one call)
// are pooled too, eight per size class: given back, they come back untouched, where memory
// returned to malloc would have its free-list links written into its first bytes.
TEST(Scratch, SmallBlocksArePooledEightPerClass) {
  const size_t bytes = 1024;
  std::vector<void*> held;  // empties the class of what earlier tests left in it (8 at most)
  for (int i = 0; i < 8; ++i) held.push_back(pool::take(bytes));
  std::vector<unsigned char*> given;
  for (int i = 0; i < 8; ++i) {
    auto* p = static_cast<unsigned char*>(pool::take(bytes));
    std::fill(p, p + bytes, static_cast<unsigned char>(0xA0 + i));
    given.push_back(p);
  }
  for (unsigned char* p : given) pool::give(p, bytes);
  for (int i = 8; i-- > 0;) {  // the last given comes back first
    auto* p = static_cast<unsigned char*>(pool::take(bytes - 100));  // the same class
    ASSERT_EQ(p, given[size_t(i)]);
    EXPECT_EQ(std::count(p, p + bytes, static_cast<unsigned char>(0xA0 + i)), static_cast<long>(bytes));
  }
  for (unsigned char* p : given) pool::give(p, bytes);
  for (void* p : held) pool::give(p, bytes);
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
