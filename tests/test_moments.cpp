// test_moments.cpp — the per-statistic arithmetic after the sums, vectorized across the
// statistics (src/engine/rows_moments.cpp: row_moments, merge_chunk_moments, finish_moments),
// gives the bits of the scalar formulas the engine takes elsewhere (engine.cpp:
// shifted_moments, chan_merge, finish_stats, rstd_of), written out here as plain C++. Column
// statistics (InstanceNorm/GroupNorm channels-last) take either path depending on the shape,
// so any difference would make a result depend on it. The same for merge_fine (GroupNorm's
// coarse statistics from its fine ones), whose merge weights are computed once per call.
// This file, like rows_moments.cpp and engine.cpp, is compiled with -ffp-contract=off
// (CMakeLists.txt).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "engine/engine.hpp"
#include "engine/rows.hpp"

namespace rows = normkit::engine::rows;

namespace {

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

struct Sums {
  std::vector<double> shift, s1, s2;
};

// Sums of n deviations: typical ones, some whose shift lies far from the mean, some whose
// second sum rounds below s1^2 / n, and a few not finite.
Sums make_sums(size_t count, double n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Sums s;
  for (size_t k = 0; k < count; ++k) {
    const double shift = 10.0 * u(rng), md = 0.1 * u(rng), var = 0.5 + 0.4 * u(rng);
    double s1 = md * n, s2 = n * (var + md * md);
    switch (k % 7) {
      case 3: s1 = 50.0 * n * (1.0 + u(rng)); break;  // far: the mean lies many deviations away
      case 4: s2 = s1 * s1 / n * (1.0 - 1e-15); break;  // m2 rounds to or below 0
      case 5: if (k % 3 == 0) s2 = std::numeric_limits<double>::quiet_NaN(); break;
      case 6: if (k % 4 == 0) s1 = std::numeric_limits<double>::infinity(); break;
      default: break;
    }
    s.shift.push_back(shift), s.s1.push_back(s1), s.s2.push_back(s2);
  }
  return s;
}

struct Moments {
  double n, mean, m2;
};

Moments shifted_moments(double n, double shift, double s1, double s2) {
  const double md = s1 / n, m2 = s2 - s1 * md;
  return {n, shift + md, m2 < 0 ? 0.0 : m2};
}

bool shift_too_far(double n, double s1, double s2) {
  const double md = s1 / n;
  return !(md * md * n <= 16.0 * (s2 - s1 * md));
}

Moments chan_merge(const Moments& x, const Moments& y) {
  const double n = x.n + y.n, delta = y.mean - x.mean;
  return {n, x.mean + delta * (y.n / n), x.m2 + y.m2 + delta * delta * (x.n * y.n / n)};
}

double rstd_of(double second, double eps) { return 1.0 / std::sqrt(second + eps); }

TEST(Moments, RowMomentsHaveTheScalarFormulasBits) {
  for (double n : {1.0, 3.0, 196.0, 50176.0})
    for (size_t count : {size_t(1), size_t(7), size_t(37), size_t(64)}) {
      const Sums s = make_sums(count, n, unsigned(count * 131 + n));
      std::vector<double> mean(count), second(count), rstd(count), far(count);
      const bool any = rows::row_moments(int64_t(count), n, true, false, 1e-5, s.shift.data(), s.s1.data(), s.s2.data(),
                                         mean.data(), second.data(), rstd.data(), far.data());
      bool want_any = false;
      for (size_t k = 0; k < count; ++k) {
        const Moments m = shifted_moments(n, s.shift[k], s.s1[k], s.s2[k]);
        const bool too_far = shift_too_far(n, s.s1[k], s.s2[k]);
        want_any = want_any || too_far;
        EXPECT_EQ(far[k] != 0.0, too_far) << "n=" << n << " k=" << k;
        EXPECT_TRUE(same_bits(mean[k], m.mean)) << "n=" << n << " k=" << k << ": " << mean[k] << " vs " << m.mean;
        EXPECT_TRUE(same_bits(second[k], m.m2 / n)) << "n=" << n << " k=" << k;
        EXPECT_TRUE(same_bits(rstd[k], rstd_of(m.m2 / n, 1e-5))) << "n=" << n << " k=" << k;
      }
      EXPECT_EQ(any, want_any);
    }
}

TEST(Moments, ChunksMergedAndFinishedHaveTheScalarFormulasBits) {
  const std::vector<double> chunks = {128.0, 68.0, 1.0, 4096.0};  // runs per chunk, in order
  for (size_t count : {size_t(1), size_t(9), size_t(256), size_t(261)}) {
    std::vector<double> mean(count), m2(count), far(count), second(count), rstd(count);
    std::vector<Moments> want(count);
    double acc_n = 0.0;
    for (size_t c = 0; c < chunks.size(); ++c) {
      const double n = chunks[c];
      const Sums s = make_sums(count, n, unsigned(1000 * c + count));
      const bool any = rows::merge_chunk_moments(int64_t(count), acc_n, n, s.shift.data(), s.s1.data(), s.s2.data(),
                                                 mean.data(), m2.data(), far.data());
      bool want_any = false;
      for (size_t k = 0; k < count; ++k) {
        const Moments part = shifted_moments(n, s.shift[k], s.s1[k], s.s2[k]);
        want[k] = c == 0 ? part : chan_merge(want[k], part);
        const bool too_far = shift_too_far(n, s.s1[k], s.s2[k]);
        want_any = want_any || too_far;
        EXPECT_EQ(far[k] != 0.0, too_far) << "chunk " << c << " k=" << k;
        EXPECT_TRUE(same_bits(mean[k], want[k].mean)) << "chunk " << c << " k=" << k;
        EXPECT_TRUE(same_bits(m2[k], want[k].m2)) << "chunk " << c << " k=" << k;
      }
      EXPECT_EQ(any, want_any) << "chunk " << c;
      acc_n += n;
    }
    rows::finish_moments(int64_t(count), acc_n, 1e-3, m2.data(), second.data(), rstd.data());
    for (size_t k = 0; k < count; ++k) {
      EXPECT_TRUE(same_bits(second[k], want[k].m2 / acc_n)) << "k=" << k;
      EXPECT_TRUE(same_bits(rstd[k], rstd_of(want[k].m2 / acc_n, 1e-3))) << "k=" << k;
    }
  }
}

// merge_fine against Chan's merge with the running count, as written out before its weights
// were taken once per call: fine statistics of n elements each, r at a time, including r
// past its table of weights and a NaN.
TEST(Moments, MergeFineHasTheRunningCountsBits) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (double n : {1.0, 3.0, 196.0, 6272.0})
    for (int64_t r : {1, 2, 5, 8, 63, 64, 65, 130}) {
      const int64_t coarse = 5;
      std::vector<double> fmean(size_t(coarse * r)), fsecond(fmean.size());
      for (size_t f = 0; f < fmean.size(); ++f)
        fmean[f] = 3.0 + u(rng) * (f % 11 == 0 ? 1e3 : 1.0), fsecond[f] = 0.5 + 0.4 * u(rng);
      if (r > 2) fmean[size_t(2 * r + 1)] = std::numeric_limits<double>::quiet_NaN();
      std::vector<double> mean(static_cast<size_t>(coarse)), second(static_cast<size_t>(coarse));
      normkit::engine::merge_fine(normkit::Statistic::Variance, coarse, r, n, fmean.data(), fsecond.data(), mean.data(),
                                  second.data());
      for (int64_t s = 0; s < coarse; ++s) {
        double cn = n, cm = fmean[size_t(s * r)], cm2 = fsecond[size_t(s * r)] * n;
        for (int64_t i = 1; i < r; ++i) {
          const size_t f = size_t(s * r + i);
          const double tn = cn + n, delta = fmean[f] - cm;
          cm += delta * (n / tn);
          cm2 += fsecond[f] * n + delta * delta * (cn * n / tn);
          cn = tn;
        }
        EXPECT_TRUE(same_bits(mean[size_t(s)], cm)) << "n=" << n << " r=" << r << " s=" << s;
        EXPECT_TRUE(same_bits(second[size_t(s)], cm2 / cn)) << "n=" << n << " r=" << r << " s=" << s;
      }
    }
}

}  // namespace
