// fuzz_ops.cpp — libFuzzer harness (issue 5, item 5): builds plans and runs every op, forward
// and backward, float and double, on arbitrary shapes, axes, layouts, parameters and values.
// Properties checked (abort() on violation, so libFuzzer saves the input): no crash and no
// sanitizer report; a normkit::Error leaves every output and running statistic untouched; a
// successful forward matches the float64 oracle and never writes between strided elements.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "normkit/normkit.hpp"
#include "reference/reference.hpp"

namespace {
using normkit::Shape;
using normkit::Strides;

constexpr double kSentinel = 777.0;
std::string g_call;  // the call being run, printed with a violation

[[noreturn]] void violation(const char* what) {
  std::fprintf(stderr, "fuzz_ops: property violated: %s\n  call: %s\n", what, g_call.c_str());
  std::abort();
}

// ---- the input: one op call described by the fuzzer's bytes ------------------------------
struct Call {
  int op = 0;  // 0 batch, 1 instance, 2 group, 3 layer, 4 rms, 5 weight, 6 normalize, 7 plan only
  Shape shape;
  Strides strides;
  int64_t buffer = 0;  // elements the strided buffer needs
  bool bad_param_size = false, affine = false, running = false, training = false, specials = false;
  double eps = 1e-5, momentum = 0.1, offset = 0, scale = 1;
  int64_t groups = 1, k_trailing = 1;
  std::optional<int64_t> dim;
  std::vector<int64_t> reduce, affine_axes;
  int statistic = 0;
};

template <class E>
E pick(FuzzedDataProvider& in, std::initializer_list<E> options) {
  return *(options.begin() + in.ConsumeIntegralInRange<size_t>(0, options.size() - 1));
}

std::vector<int64_t> axes(FuzzedDataProvider& in, int64_t rank) {
  std::vector<int64_t> a(in.ConsumeIntegralInRange<size_t>(0, 3));
  for (auto& v : a) v = in.ConsumeIntegralInRange<int64_t>(-rank - 1, rank);
  return a;
}

Call read_call(FuzzedDataProvider& in) {
  Call c;
  c.op = in.ConsumeIntegralInRange(0, 7);
  const auto rank = in.ConsumeIntegralInRange<int64_t>(0, 5);
  for (int64_t i = 0; i < rank; ++i) c.shape.push_back(in.ConsumeIntegralInRange<int64_t>(-1, 6));
  bool negative = false;
  for (int64_t d : c.shape) negative |= d < 0;
  // Layout: contiguous, every other element, channels-last, a zero stride, reversed order.
  const int layout = in.ConsumeIntegralInRange(0, 4);
  c.strides = negative ? Strides(c.shape.size(), 1) : normkit::contiguous_strides(c.shape);
  if (!negative && layout == 1)
    for (auto& s : c.strides) s *= 2;
  if (!negative && layout == 2 && rank >= 3) {
    int64_t acc = std::max<int64_t>(c.shape[1], 1);
    c.strides[1] = 1;
    for (int64_t a = rank - 1; a >= 2; --a) c.strides[a] = acc, acc *= std::max<int64_t>(c.shape[a], 1);
    c.strides[0] = acc;
  }
  if (!negative && layout == 3 && rank > 0) c.strides[in.ConsumeIntegralInRange<int64_t>(0, rank - 1)] = 0;
  if (!negative && layout == 4) {
    int64_t acc = 1;
    for (int64_t a = 0; a < rank; ++a) c.strides[a] = acc, acc *= std::max<int64_t>(c.shape[a], 1);
  }
  c.buffer = 1;
  if (!negative)
    for (size_t a = 0; a < c.shape.size(); ++a)
      if (c.shape[a] > 0) c.buffer += (c.shape[a] - 1) * c.strides[a];
  c.bad_param_size = in.ConsumeIntegralInRange(0, 15) == 0;
  c.affine = in.ConsumeBool(), c.running = in.ConsumeBool(), c.training = in.ConsumeBool();
  c.specials = in.ConsumeIntegralInRange(0, 7) == 0;
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  c.eps = pick(in, {1e-5, 1e-5, 0.0, 1e-3, 1e-12, -1.0, nan, inf});
  c.momentum = pick(in, {0.1, 0.1, 0.0, 1.0, 1.5, -0.1, nan});
  c.offset = pick(in, {0.0, 0.0, 100.0, 1e4, -3.0});
  c.scale = pick(in, {1.0, 1.0, 1e-2, 30.0});
  c.groups = in.ConsumeIntegralInRange<int64_t>(-1, 8);
  c.k_trailing = in.ConsumeIntegralInRange<int64_t>(0, rank + 1);
  const auto d = in.ConsumeIntegralInRange<int64_t>(-3, rank);
  if (d != -3) c.dim = d;
  c.reduce = axes(in, rank), c.affine_axes = axes(in, rank);
  c.statistic = in.ConsumeIntegralInRange(0, 2);
  return c;
}

std::string describe(const Call& c, bool dbl) {
  const char* ops[] = {"batch_norm", "instance_norm", "group_norm", "layer_norm", "rms_norm",
                       "weight_norm", "normalize", "plan"};
  auto list = [](const std::vector<int64_t>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s + "]";
  };
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%s<%s> shape=%s strides=%s affine=%d running=%d training=%d bad_size=%d specials=%d "
                "eps=%g momentum=%g offset=%g scale=%g groups=%lld k=%lld dim=%s reduce=%s affine_axes=%s stat=%d",
                ops[c.op], dbl ? "double" : "float", list(c.shape).c_str(), list(c.strides).c_str(), c.affine,
                c.running, c.training, c.bad_param_size, c.specials, c.eps, c.momentum, c.offset, c.scale,
                (long long)c.groups, (long long)c.k_trailing, c.dim ? std::to_string(*c.dim).c_str() : "unset",
                list(c.reduce).c_str(), list(c.affine_axes).c_str(), c.statistic);
  return buf;
}

// ---- buffers ----------------------------------------------------------------------------
// Row-major element offsets of (shape, strides); empty when a size is negative.
std::vector<int64_t> offsets(const Call& c) {
  for (int64_t d : c.shape)
    if (d < 0) return {};
  std::vector<int64_t> off(static_cast<size_t>(normkit::numel(c.shape)));
  std::vector<int64_t> coord(c.shape.size(), 0);
  for (auto& o : off) {
    o = 0;
    for (size_t a = 0; a < c.shape.size(); ++a) o += coord[a] * c.strides[a];
    for (size_t a = c.shape.size(); a-- > 0;) {
      if (++coord[a] < c.shape[a]) break;
      coord[a] = 0;
    }
  }
  return off;
}

template <class T>
std::vector<T> values(FuzzedDataProvider& in, const Call& c, int64_t n) {
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& e : v) e = T(c.offset + c.scale * in.ConsumeIntegral<int16_t>() / 256.0);
  if (c.specials && n > 0) {
    const T special = pick(in, {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(), T(1e30)});
    v[in.ConsumeIntegralInRange<size_t>(0, v.size() - 1)] = special;
  }
  return v;
}

template <class T>
std::vector<T> scatter(const std::vector<T>& contig, const std::vector<int64_t>& off, int64_t size) {
  std::vector<T> buf(static_cast<size_t>(size), T(kSentinel));
  for (size_t i = 0; i < off.size(); ++i) buf[off[i]] = contig[i];
  return buf;
}

template <class T>
bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// max |got - want| <= rel * max(|want|, floor, 1), for finite oracles only. The 1 is the
// scale of a normalized output: when the variance is far below eps, y ~ 0 and both sides
// carry the rounding of a mean of offset-sized values times 1/sqrt(eps) — for double, the
// oracle's plain summation is the larger error (n * 1e-16 * 1e4 * 316 ~ 1e-6 at worst).
// `floor` is the size of the affine terms, max|w|·max|x̂| + max|b|: y = w·x̂ + b may cancel
// to ~0 (w = b = -3740 with x̂ = -1 does), and then y carries the rounding of those terms.
template <class T>
void expect_close(const std::vector<T>& got, const std::vector<double>& want, const char* what,
                  double floor = 1.0) {
  const double rel = std::is_same_v<T, float> ? 1e-4 : 1e-6;
  double scale = std::max(1.0, floor);
  for (double w : want) {
    if (!std::isfinite(w)) return;
    scale = std::max(scale, std::abs(w));
  }
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(double(got[i]) - want[i]) <= rel * scale)) {
      std::fprintf(stderr, "%s[%zu]: got %.9g want %.9g (scale %g)\n", what, i, double(got[i]), want[i], scale);
      violation("forward differs from the float64 oracle");
    }
}

// ---- one call ---------------------------------------------------------------------------
template <class T>
void run(FuzzedDataProvider& in, const Call& c) {
  using CView = normkit::TensorView<const T>;
  using MView = normkit::TensorView<T>;
  const auto off = offsets(c);
  const auto n = static_cast<int64_t>(off.size());
  const auto x = values<T>(in, c, n), dy = values<T>(in, c, n);
  const auto xb = scatter(x, off, c.buffer), dyb = scatter(dy, off, c.buffer);
  auto yb = std::vector<T>(static_cast<size_t>(c.buffer), T(kSentinel)), dxb = yb;
  const CView X(xb.data(), c.shape, c.strides), DY(dyb.data(), c.shape, c.strides);
  const MView Y(yb.data(), c.shape, c.strides), DX(dxb.data(), c.shape, c.strides);
  const int64_t rank = static_cast<int64_t>(c.shape.size());
  const int64_t C = rank >= 2 ? std::max<int64_t>(c.shape[1], 0) : 1;
  // Parameters sized for the op (plus one when the fuzzer asks for a wrong size).
  auto sized = [&](int64_t k) { return std::max<int64_t>(k, 0) + (c.bad_param_size ? 1 : 0); };
  std::vector<T> w = values<T>(in, c, sized(C)), b = values<T>(in, c, sized(C));
  std::vector<T> rm(static_cast<size_t>(sized(C)), T(0)), rv(static_cast<size_t>(sized(C)), T(1));
  std::vector<T> dw(w.size(), T(kSentinel)), db(w.size(), T(kSentinel));
  for (auto& v : rv) v = std::abs(v) + T(0.5);
  auto cw = [&](const std::vector<T>& v) { return c.affine ? std::span<const T>(v) : std::span<const T>(); };
  auto mr = [&](std::vector<T>& v) { return c.running ? std::span<T>(v) : std::span<T>(); };

  std::function<void()> forward, backward, oracle;
  std::vector<double> want;  // the oracle's y, contiguous
  std::vector<double> xd(x.begin(), x.end());
  const auto N = rank >= 1 ? c.shape[0] : 0;
  int64_t S = 1;
  for (int64_t a = 2; a < rank; ++a) S *= std::max<int64_t>(c.shape[a], 0);
  std::vector<double> wd(w.begin(), w.end()), bd(b.begin(), b.end()), rmd(rm.begin(), rm.end()),
      rvd(rv.begin(), rv.end());
  const double* wp = c.affine ? wd.data() : nullptr;
  const double* bp = c.affine ? bd.data() : nullptr;
  want.assign(static_cast<size_t>(n), 0.0);

  switch (c.op) {
    case 0: {
      normkit::BatchNormArgs<T> a{cw(w), cw(b), mr(rm), mr(rv), c.training, c.momentum, c.eps};
      a.skip_nonfinite_update = c.specials;
      forward = [=] { normkit::batch_norm_forward<T>(X, Y, a); };
      backward = [&, a] { normkit::batch_norm_backward<T>(DY, X, DX, a, dw, db); };
      oracle = [&] {
        normkit::reference::batch_norm_forward<double>(xd.data(), want.data(), N, C, S, wp, bp,
                                                       c.running ? rmd.data() : nullptr,
                                                       c.running ? rvd.data() : nullptr, c.training,
                                                       c.momentum, c.eps);
      };
      break;
    }
    case 1: {
      normkit::InstanceNormArgs<T> a{cw(w), cw(b), mr(rm), mr(rv), c.training, c.momentum, c.eps};
      forward = [=] { normkit::instance_norm_forward<T>(X, Y, a); };
      backward = [&, a] { normkit::instance_norm_backward<T>(DY, X, DX, a, dw, db); };
      oracle = [&] {
        normkit::reference::instance_norm_forward<double>(xd.data(), want.data(), N, C, S, wp, bp,
                                                          c.running ? rmd.data() : nullptr,
                                                          c.running ? rvd.data() : nullptr, c.training,
                                                          c.momentum, c.eps);
      };
      break;
    }
    case 2: {
      normkit::GroupNormArgs<T> a{c.groups, cw(w), cw(b), c.eps};
      forward = [=] { normkit::group_norm_forward<T>(X, Y, a); };
      backward = [&, a] { normkit::group_norm_backward<T>(DY, X, DX, a, dw, db); };
      oracle = [&] {
        normkit::reference::group_norm_forward<double>(xd.data(), want.data(), N, C, S, c.groups, wp, bp, c.eps);
      };
      break;
    }
    case 3:
    case 4: {
      // normalized_shape: the last k dims (the fuzzer may ask for more than there are).
      Shape ns;
      for (int64_t a = std::max<int64_t>(rank - c.k_trailing, 0); a < rank; ++a) ns.push_back(c.shape[a]);
      if (c.k_trailing > rank) ns.insert(ns.begin(), 2);
      int64_t D = 1;
      for (int64_t d : ns) D *= std::max<int64_t>(d, 0);
      w = values<T>(in, c, sized(D)), b = values<T>(in, c, sized(D));
      dw.assign(w.size(), T(kSentinel)), db.assign(w.size(), T(kSentinel));
      wd.assign(w.begin(), w.end()), bd.assign(b.begin(), b.end());
      wp = c.affine ? wd.data() : nullptr, bp = c.affine ? bd.data() : nullptr;
      const int64_t M = D > 0 ? n / D : 0;
      if (c.op == 3) {
        normkit::LayerNormArgs<T> a{ns, cw(w), cw(b), c.eps};
        forward = [=] { normkit::layer_norm_forward<T>(X, Y, a); };
        backward = [&, a] { normkit::layer_norm_backward<T>(DY, X, DX, a, dw, db); };
        oracle = [&, M, D] {
          normkit::reference::layer_norm_forward<double>(xd.data(), want.data(), M, D, wp, bp, c.eps);
        };
      } else {
        normkit::RMSNormArgs<T> a{ns, cw(w), c.eps, c.training};
        forward = [=] { normkit::rms_norm_forward<T>(X, Y, a); };
        backward = [&, a] { normkit::rms_norm_backward<T>(DY, X, DX, a, dw); };
        oracle = [&, M, D] {
          normkit::reference::rms_norm_forward<double>(xd.data(), want.data(), M, D, wp, c.training, c.eps);
        };
      }
      break;
    }
    case 5: {
      const int64_t G = (c.dim && *c.dim >= 0 && *c.dim < rank) ? std::max<int64_t>(c.shape[*c.dim], 0) : 1;
      w = values<T>(in, c, sized(G));
      dw.assign(w.size(), T(kSentinel));
      wd.assign(w.begin(), w.end());
      const normkit::WeightNormArgs<T> a{c.dim};
      forward = [=] { normkit::weight_norm_forward<T>(X, w, Y, a); };
      backward = [&, a] { normkit::weight_norm_backward<T>(DY, X, w, DX, dw, a); };
      oracle = [&] { normkit::reference::weight_norm_forward<double>(xd.data(), wd.data(), want.data(), c.shape, c.dim); };
      break;
    }
    case 6: {
      normkit::NormalizeArgs<T> a;
      a.reduce_axes = c.reduce, a.affine_axes = c.affine_axes, a.eps = c.eps;
      a.statistic = static_cast<normkit::Statistic>(c.statistic);
      // Affine parameters: one per combination of the (valid, distinct) affine axes.
      int64_t A = 1;
      std::vector<bool> red(static_cast<size_t>(rank), false), aff(static_cast<size_t>(rank), false);
      bool valid = true;
      for (int64_t ax : c.reduce) {
        const int64_t i = ax < 0 ? ax + rank : ax;
        valid &= i >= 0 && i < rank && !red[i];
        if (i >= 0 && i < rank) red[i] = true;
      }
      for (int64_t ax : c.affine_axes) {
        const int64_t i = ax < 0 ? ax + rank : ax;
        valid &= i >= 0 && i < rank && !aff[i];
        if (i >= 0 && i < rank && !aff[i]) aff[i] = true, A *= std::max<int64_t>(c.shape[i], 0);
      }
      w = values<T>(in, c, sized(A)), b = values<T>(in, c, sized(A));
      dw.assign(w.size(), T(kSentinel)), db.assign(w.size(), T(kSentinel));
      wd.assign(w.begin(), w.end()), bd.assign(b.begin(), b.end());
      wp = c.affine ? wd.data() : nullptr, bp = c.affine ? bd.data() : nullptr;
      a.weight = cw(w), a.bias = cw(b);
      forward = [=] { normkit::normalize_forward<T>(X, Y, a); };
      backward = [&, a] { normkit::normalize_backward<T>(DY, X, DX, a, dw, db); };
      if (valid)
        oracle = [&, red, aff, a] {
          normkit::reference::normalize_forward<double>(xd.data(), want.data(), c.shape, red, aff, a.statistic,
                                                        wp, bp, c.eps);
        };
      break;
    }
    default:  // the plan alone
      try {
        const auto plan = normkit::ReductionPlan::build(c.shape, c.strides, c.reduce, c.affine_axes);
        if (plan.numel() != n) violation("plan.numel() differs from the tensor's element count");
      } catch (const normkit::Error&) {
      }
      return;
  }

  const auto rm0 = rm, rv0 = rv, yb0 = yb, dxb0 = dxb, dw0 = dw, db0 = db;  // after the op sized them
  bool ok = true;
  try {
    forward();
  } catch (const normkit::Error&) {
    ok = false;
    if (!same_bytes(yb, yb0) || !same_bytes(rm, rm0) || !same_bytes(rv, rv0))
      violation("a forward that threw wrote into its outputs");
  }
  if (ok) {
    // Strided outputs: the gaps between elements keep the sentinel.
    std::vector<bool> used(yb.size(), false);
    for (int64_t o : off) used[o] = true;
    const T sentinel = T(kSentinel);
    for (size_t i = 0; i < yb.size(); ++i)
      if (!used[i] && std::memcmp(&yb[i], &sentinel, sizeof(T)) != 0)
        violation("forward wrote between strided elements");
    bool finite = !c.specials && c.eps >= 1e-5;
    if (finite && oracle) {
      double affine_terms = 1.0;
      if (c.op != 5 && (wp != nullptr || bp != nullptr)) {  // x̂ first: the oracle without affine
        const auto keep_rm = rmd, keep_rv = rvd;
        const double *keep_w = wp, *keep_b = bp;
        wp = bp = nullptr;
        oracle();
        wp = keep_w, bp = keep_b, rmd = keep_rm, rvd = keep_rv;
        auto max_abs = [](const std::vector<double>& v) {
          double m = 0;
          for (double e : v) m = std::max(m, std::abs(e));
          return m;
        };
        // (+1: the Gemma RMSNorm form multiplies by 1 + w; RMSNorm has no bias.)
        affine_terms = (max_abs(wd) + 1) * max_abs(want) + (bp && c.op != 4 ? max_abs(bd) : 0.0);
      }
      oracle();
      std::vector<T> got(off.size());
      for (size_t i = 0; i < off.size(); ++i) got[i] = yb[off[i]];
      expect_close(got, want, "y", affine_terms);
      if (c.op == 0 && c.running && c.training) {  // the oracle updated its copies too
        expect_close(rm, rmd, "running_mean");
        expect_close(rv, rvd, "running_var");
      }
    }
  }
  try {
    backward();
  } catch (const normkit::Error&) {
    if (!same_bytes(dxb, dxb0) || !same_bytes(dw, dw0) || !same_bytes(db, db0))
      violation("a backward that threw wrote into its outputs");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool once = [] {
    normkit::set_num_threads(1);  // libFuzzer runs one input at a time; keep it cheap
    return true;
  }();
  (void)once;
  FuzzedDataProvider in(data, size);
  const bool use_double = in.ConsumeBool();
  const Call c = read_call(in);
  g_call = describe(c, use_double);
  if (use_double)
    run<double>(in, c);
  else
    run<float>(in, c);
  return 0;
}
