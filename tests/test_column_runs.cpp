// test_column_runs.cpp — the channels-last row primitives that take several consecutive runs
// at a time, sharing each vector of coefficients they load (rows::col_scale_shift_block four
// runs, rows::col_grad_input_lanes two), give every run the bits it gets alone (one run per
// call: the one-at-a-time loop): float, double, bfloat16 and float16; leftover runs; run
// lengths of whole vectors and ragged ones; plain and streamed stores. The data puts x within
// a thousandth of the mean, so the order in which the two halves of the split mean are taken
// off shows in the bits.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "engine/rows.hpp"
#include "normkit/half.hpp"

namespace rows = normkit::engine::rows;

namespace {

// `count` elements of T at a 64-byte boundary (streamed stores need it).
template <class T>
struct Aligned {
  explicit Aligned(size_t count)
      : n(count), p(static_cast<T*>(std::aligned_alloc(64, (count * sizeof(T) + 63) / 64 * 64 + 64))) {}
  ~Aligned() { std::free(p); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
  size_t n;
  T* p;
};

template <class S>
void expect_runs_alone_bits(int64_t count, int64_t len, bool stream) {
  using C = normkit::compute_t<S>;
  const size_t n = static_cast<size_t>(count * len), L = static_cast<size_t>(len);
  std::mt19937_64 rng(static_cast<uint64_t>(count * 1000 + len));
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<C> hi(L), lo(L), alpha(L), beta(L), P(L), Q(L), R(L);
  for (size_t i = 0; i < L; ++i) {
    hi[i] = C(1.0 + 0.25 * u(rng)), lo[i] = C(3e-8 * (1.0 + u(rng)));
    alpha[i] = C(1.5 + u(rng)), beta[i] = C(0.5 * u(rng));
    P[i] = C(0.7 + 0.2 * u(rng)), Q[i] = C(-0.3 + 0.1 * u(rng)), R[i] = C(0.05 * u(rng));
  }
  Aligned<S> x(n), dy(n), y_all(n), y_one(n), dx_all(n), dx_one(n);
  for (size_t k = 0; k < n; ++k) {
    x.p[k] = S(float(double(hi[k % L]) + 1e-3 * u(rng)));
    dy.p[k] = S(float(u(rng)));
  }
  const char* what = sizeof(S) == 8 ? "double" : sizeof(S) == 4 ? "float" : "half";
  rows::col_scale_shift_block<S>(x.p, y_all.p, nullptr, count, len, hi.data(), lo.data(), alpha.data(), beta.data(),
                                 stream);
  for (int64_t r = 0; r < count; ++r)
    rows::col_scale_shift_block<S>(x.p + r * len, y_one.p + r * len, nullptr, 1, len, hi.data(), lo.data(),
                                   alpha.data(), beta.data(), stream);
  EXPECT_EQ(std::memcmp(y_all.p, y_one.p, n * sizeof(S)), 0)
      << "col_scale_shift_block " << what << " " << count << " runs of " << len << (stream ? ", streamed" : "");
  rows::col_grad_input_lanes<S>(dy.p, x.p, dx_all.p, count, len, hi.data(), lo.data(), P.data(), Q.data(), R.data(),
                                stream);
  for (int64_t r = 0; r < count; ++r)
    rows::col_grad_input_lanes<S>(dy.p + r * len, x.p + r * len, dx_one.p + r * len, 1, len, hi.data(), lo.data(),
                                  P.data(), Q.data(), R.data(), stream);
  EXPECT_EQ(std::memcmp(dx_all.p, dx_one.p, n * sizeof(S)), 0)
      << "col_grad_input_lanes " << what << " " << count << " runs of " << len << (stream ? ", streamed" : "");
}

template <class S>
void expect_all_shapes() {
  for (int64_t len : {7, 16, 40, 64, 256})
    for (int64_t count : {1, 2, 3, 4, 5, 7, 9, 13})
      for (bool stream : {false, true}) expect_runs_alone_bits<S>(count, len, stream);
}

TEST(ColumnRuns, SeveralAtATimeHaveTheBitsOfEachAlone) {
  expect_all_shapes<float>();
  expect_all_shapes<double>();
  expect_all_shapes<normkit::bfloat16>();
  expect_all_shapes<normkit::float16>();
}

}  // namespace
