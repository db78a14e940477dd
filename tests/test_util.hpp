// test_util.hpp — helpers shared by the GoogleTest files: seeded random data, sentinel
// buffers, strided views (every-other-element and channels-last), comparisons with a
// tolerance relative to the reference's scale, finite differences and error expectations.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "normkit/normkit.hpp"
#include "reference/reference.hpp"

namespace nk_test {

using normkit::Shape;
using normkit::Strides;

// Value written into outputs before a call; must be overwritten (or left alone) exactly.
inline constexpr double kSentinel = 777.0;

// Relative tolerance against the oracle: outputs/statistics and gradients.
template <class T>
constexpr double tol() { return std::is_same_v<T, float> ? 1e-5 : 1e-12; }
template <class T>
constexpr double grad_tol() { return std::is_same_v<T, float> ? 5e-5 : 1e-11; }

// The random stream, seeded afresh at the start of each test from its full name: a test's
// data depends on that test alone, not on how many numbers the tests before it drew in the
// same process (the sanitizer run executes them all in one; the CTest run, one per process).
inline std::mt19937_64& rng() {
  static std::mt19937_64 gen(20240611);
  static const ::testing::TestInfo* seeded_for = nullptr;
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  if (test != nullptr && test != seeded_for) {
    const std::string name = std::string(test->test_suite_name()) + "." + test->name();
    uint64_t h = 14695981039346656037ull;  // FNV-1a
    for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
    gen.seed(20240611 ^ h);
    seeded_for = test;
  }
  return gen;
}

// n values uniform in [offset - spread, offset + spread].
template <class T>
std::vector<T> random_vec(int64_t n, double offset = 0.0, double spread = 1.0) {
  std::uniform_real_distribution<double> u(offset - spread, offset + spread);
  std::vector<T> v(static_cast<size_t>(n));
  auto& gen = rng();
  for (auto& e : v) e = static_cast<T>(u(gen));
  return v;
}

template <class T>
std::vector<T> sentinel_vec(int64_t n) {
  return std::vector<T>(static_cast<size_t>(n), static_cast<T>(kSentinel));
}

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// x viewed as (N, C, S): S = product of the dims after the channel.
struct NCS {
  int64_t N, C, S;
};
inline NCS ncs(const Shape& s) {
  int64_t S = 1;
  for (size_t i = 2; i < s.size(); ++i) S *= s[i];
  return {s[0], s[1], S};
}

template <class T>
normkit::TensorView<const T> cview(const std::vector<T>& v, const Shape& s, Strides st = {}) {
  return normkit::TensorView<const T>(v.data(), s, std::move(st));
}
template <class T>
normkit::TensorView<T> mview(std::vector<T>& v, const Shape& s, Strides st = {}) {
  return normkit::TensorView<T>(v.data(), s, std::move(st));
}

// Parameter spans: empty ("absent") unless `on`.
template <class T>
std::span<const T> cspan(const std::vector<T>& v, bool on = true) {
  return on ? std::span<const T>(v) : std::span<const T>();
}
template <class T>
std::span<T> mspan(std::vector<T>& v, bool on = true) {
  return on ? std::span<T>(v) : std::span<T>();
}

// ---- strided layouts -------------------------------------------------------------------
// Memory offsets of the elements of `shape` in row-major logical order.
inline std::vector<int64_t> offsets(const Shape& shape, const Strides& strides) {
  std::vector<int64_t> off(static_cast<size_t>(numel(shape)));
  std::vector<int64_t> coord(shape.size(), 0);
  for (size_t i = 0; i < off.size(); ++i) {
    int64_t o = 0;
    for (size_t a = 0; a < shape.size(); ++a) o += coord[a] * strides[a];
    off[i] = o;
    for (size_t a = shape.size(); a-- > 0;) {
      if (++coord[a] < shape[a]) break;
      coord[a] = 0;
    }
  }
  return off;
}
// Every other element: strides twice the contiguous ones.
inline Strides doubled_strides(const Shape& shape) {
  Strides st = normkit::contiguous_strides(shape);
  for (auto& s : st) s *= 2;
  return st;
}
// (N, C, *spatial) stored channels-last: C has stride 1.
inline Strides channels_last_strides(const Shape& shape) {
  Strides st(shape.size());
  int64_t acc = shape[1];
  st[1] = 1;
  for (size_t a = shape.size(); a-- > 2;) {
    st[a] = acc;
    acc *= shape[a];
  }
  st[0] = acc;
  return st;
}
// A buffer big enough for `strides`, filled with the sentinel, holding `contig` at them.
template <class T>
std::vector<T> scatter(const std::vector<T>& contig, const Shape& shape, const Strides& strides) {
  const auto off = offsets(shape, strides);
  const int64_t size = off.empty() ? 0 : *std::max_element(off.begin(), off.end()) + 1;
  auto buf = sentinel_vec<T>(size + 1);  // one spare element past the end
  for (size_t i = 0; i < off.size(); ++i) buf[off[i]] = contig[i];
  return buf;
}
template <class T>
std::vector<T> gather(const std::vector<T>& buf, const Shape& shape, const Strides& strides) {
  const auto off = offsets(shape, strides);
  std::vector<T> out(off.size());
  for (size_t i = 0; i < off.size(); ++i) out[i] = buf[off[i]];
  return out;
}
// Every element of `buf` not addressed by (shape, strides) still holds the sentinel.
template <class T>
void expect_gaps_untouched(const std::vector<T>& buf, const Shape& shape, const Strides& strides,
                           const char* what) {
  std::vector<bool> used(buf.size(), false);
  for (int64_t o : offsets(shape, strides)) used[o] = true;
  for (size_t i = 0; i < buf.size(); ++i)
    if (!used[i]) ASSERT_EQ(buf[i], static_cast<T>(kSentinel)) << what << ": gap " << i << " written";
}

// ---- comparisons -----------------------------------------------------------------------
template <class T>
double max_abs(const std::vector<T>& v) {
  double m = 0;
  for (const auto& e : v) m = std::max(m, std::abs(double(e)));
  return m;
}
// max |got - want| <= rel * max(|want|) (scale floored at `floor`, 1e-3 by default; a
// gradient whose terms cancel, e.g. two elements per group, passes the terms' size).
template <class T, class U>
void expect_close(const std::vector<T>& got, const std::vector<U>& want, double rel,
                  const std::string& what, double floor = 1e-3) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = floor, worst = 0;
  size_t at = 0;
  for (const auto& w : want) scale = std::max(scale, std::abs(static_cast<double>(w)));
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::abs(static_cast<double>(got[i]) - static_cast<double>(want[i]));
    if (std::isnan(d)) {
      worst = INFINITY;
      at = i;
      break;
    }
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  EXPECT_LE(worst, rel * scale) << what << ": worst at " << at << " got " << got[at] << " want "
                                << want[at] << " (scale " << scale << ")";
}
template <class T>
void expect_bitwise(const std::vector<T>& a, const std::vector<T>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(T))) << what << " differs";
}

// A per-image norm's channels-last backward (InstanceNorm, GroupNorm) of a batch has the bits
// of each image's backward computed alone, with the statistics recomputed or saved by the
// forward, at 1 to 3 threads. forward(x, y, saved) and backward(dy, x, dx, saved) run the op
// on views; `stats` statistics per image.
template <class T, class Forward, class Backward>
void expect_backward_per_image(const Shape& shape, int64_t stats, Forward&& forward, Backward&& backward) {
  SCOPED_TRACE(normkit::shape_str(shape));
  const int64_t N = shape[0], n = numel(shape), per = n / N;
  const Strides st = channels_last_strides(shape);
  Shape one = shape;
  one[0] = 1;
  const Strides st1 = channels_last_strides(one);
  const auto xs = random_vec<float>(n, 0.5, 2.0), dys = random_vec<float>(n);
  const std::vector<T> x(xs.begin(), xs.end()), dy(dys.begin(), dys.end());
  auto run = [&](const T* xp, const T* dyp, T* dx, const Shape& s, const Strides& str, int64_t count, bool saved) {
    std::vector<T> y(static_cast<size_t>(numel(s)));
    std::vector<float> mean(static_cast<size_t>(count * stats)), rstd(mean.size());
    normkit::SavedStats<float> given{};
    if (saved) {
      forward(normkit::TensorView<const T>(xp, s, str), normkit::TensorView<T>(y.data(), s, str),
              normkit::SavedStats<float>{mean, rstd});
      given = {mean, rstd};
    }
    backward(normkit::TensorView<const T>(dyp, s, str), normkit::TensorView<const T>(xp, s, str),
             normkit::TensorView<T>(dx, s, str), given);
  };
  const int saved_threads = normkit::get_num_threads();
  for (const bool saved : {false, true}) {
    std::vector<T> alone(x.size());
    for (int64_t i = 0; i < N; ++i) run(x.data() + i * per, dy.data() + i * per, alone.data() + i * per, one, st1, 1, saved);
    for (int t = 1; t <= 3; ++t) {
      normkit::set_num_threads(t);
      std::vector<T> dx(x.size());
      run(x.data(), dy.data(), dx.data(), shape, st, N, saved);
      expect_bitwise(dx, alone, std::string(saved ? "saved" : "recomputed") + " statistics, " + std::to_string(t) +
                                    " threads: dx");
    }
  }
  normkit::set_num_threads(saved_threads);
}

// ---- finite differences ----------------------------------------------------------------
// Central differences of loss() with respect to p[0..n).
inline std::vector<double> numeric_grad(const std::function<double()>& loss, double* p, int64_t n,
                                        double h = 1e-5) {
  std::vector<double> g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double keep = p[i];
    p[i] = keep + h;
    const double up = loss();
    p[i] = keep - h;
    const double down = loss();
    p[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}
inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
inline constexpr double kFdTol = 1e-6;

// ---- errors ----------------------------------------------------------------------------
// f() throws normkit::Error whose what() contains "[op]" and every needle.
template <class F>
void expect_error(F&& f, const std::string& op, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "[" << op << "] expected normkit::Error, nothing thrown";
  } catch (const normkit::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[" + op + "]"), std::string::npos) << "message: " << msg;
    for (const auto& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "[" << op << "] threw a non-normkit exception: " << e.what();
  }
}

// Byte copies of buffers, to check later that a failed call wrote nothing.
class Snapshot {
 public:
  template <class T>
  void add(const std::vector<T>* v) {
    const size_t bytes = v->size() * sizeof(T);
    bufs_.push_back({v->data(), bytes,
                     bytes ? std::string(reinterpret_cast<const char*>(v->data()), bytes) : std::string()});
  }
  void expect_unchanged(const std::string& what) const {
    for (size_t i = 0; i < bufs_.size(); ++i)
      if (bufs_[i].bytes > 0)  // an empty vector's data() may be null: memcmp(nullptr, ..) is UB
        EXPECT_EQ(0, std::memcmp(bufs_[i].p, bufs_[i].copy.data(), bufs_[i].bytes))
          << what << ": buffer " << i << " was written";
  }

 private:
  struct Buf {
    const void* p;
    size_t bytes;
    std::string copy;
  };
  std::vector<Buf> bufs_;
};

using FloatTypes = ::testing::Types<float, double>;

}  // namespace nk_test
