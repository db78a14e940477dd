// sync_test_util.hpp — what the SyncBatchNorm checks share (MPI programs and the in-process
// gtest): seeded data, the split of a global batch over ranks, and error measures.
// No gtest and no MPI here, so both kinds of program can include it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <type_traits>
#include <vector>

namespace sync_test {

// Relative tolerance against single-process BatchNorm: 1e-5 in float (the bound).
template <class T>
constexpr double tol() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

// n values uniform in [offset - spread, offset + spread]; the same on every rank for a seed.
template <class T>
std::vector<T> random_vec(int64_t n, uint64_t seed, double offset = 0.0, double spread = 1.0) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(offset - spread, offset + spread);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& e : v) e = static_cast<T>(u(gen));
  return v;
}

// Local batch sizes of `ranks` ranks. Uneven: rank r gets r + 1 samples, the last one 3.
// With an empty rank: rank 1 gets none, the others r + 2.
inline std::vector<int64_t> split(int ranks, bool with_empty) {
  std::vector<int64_t> n(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r) n[static_cast<size_t>(r)] = with_empty ? (r == 1 ? 0 : r + 2) : r + 1;
  if (!with_empty) n.back() = 3;
  return n;
}
inline int64_t first_sample(const std::vector<int64_t>& sizes, int rank) {
  return std::accumulate(sizes.begin(), sizes.begin() + rank, int64_t{0});
}

// max |got - want| / max(1, |want|): the worst relative error (absolute below 1).
template <class T, class U>
double max_rel_err(const std::vector<T>& got, const std::vector<U>& want) {
  if (got.size() != want.size()) return INFINITY;
  double e = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = double(got[i]), w = double(want[i]);
    const double d = std::abs(g - w) / std::max(1.0, std::abs(w));
    e = std::isnan(d) ? INFINITY : std::max(e, d);
  }
  return e;
}

// Elements [begin, begin + count) of v.
template <class T>
std::vector<T> slice(const std::vector<T>& v, int64_t begin, int64_t count) {
  return std::vector<T>(v.begin() + begin, v.begin() + begin + count);
}

}  // namespace sync_test
