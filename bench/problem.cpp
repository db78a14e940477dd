// problem.cpp — seeded data for each case, the oracle's outputs, and the output comparison.
// The generator is a splitmix64 stream (fast enough for 16M-element tensors); x has a non-zero
// mean so that a float32 E[x^2]-E[x]^2 would show up against the double-precision oracle.
#include "problem.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "normkit/half.hpp"
#include "reference/reference.hpp"

namespace nkbench {
namespace {

struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
  // Sum of four uniforms: mean 0, variance 1, close enough to normal for benchmark data.
  float normal() { return (uniform() + uniform() + uniform() + uniform() - 2.0f) * 1.7320508f; }
};

Buffer alloc(size_t bytes) {
  const size_t rounded = ((bytes + 63) / 64) * 64;
  Buffer b;
  b.p = {std::aligned_alloc(64, rounded == 0 ? 64 : rounded), std::free};
  b.bytes = bytes;
  std::memset(b.p.get(), 0, rounded);  // touch every page before anything is timed
  return b;
}

template <class T>
void fill_as(T* p, size_t n, Rng& r, float scale, float offset) {
  for (size_t i = 0; i < n; ++i) p[i] = T(offset + scale * r.normal());
}

void fill(const Case& c, void* p, Rng& r, float scale, float offset) {
  const size_t n = static_cast<size_t>(c.numel());
  switch (c.dtype) {
    case DType::F32: return fill_as(static_cast<float*>(p), n, r, scale, offset);
    case DType::BF16: return fill_as(static_cast<normkit::bfloat16*>(p), n, r, scale, offset);
    case DType::F16: return fill_as(static_cast<normkit::float16*>(p), n, r, scale, offset);
  }
}

// Channels-last cases: between the memory order (NHWC) and the oracle's NCHW.
std::vector<float> to_nchw(const Case& c, const void* p) {
  std::vector<float> mem = to_float(c, p);
  if (!c.channels_last) return mem;
  const size_t n = static_cast<size_t>(c.numel());
  const int64_t N = c.batch(), C = c.channels(), S = c.spatial();
  std::vector<float> v(n);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t ch = 0; ch < C; ++ch) v[static_cast<size_t>((i * C + ch) * S + s)] = mem[(i * S + s) * C + ch];
  return v;
}

void to_memory_order(const Case& c, std::vector<float>& v) {
  if (!c.channels_last) return;
  const int64_t N = c.batch(), C = c.channels(), S = c.spatial();
  std::vector<float> m(v.size());
  for (int64_t i = 0; i < N; ++i)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t ch = 0; ch < C; ++ch) m[static_cast<size_t>((i * S + s) * C + ch)] = v[static_cast<size_t>((i * C + ch) * S + s)];
  v.swap(m);
}

}  // namespace

std::unique_ptr<OwnedProblem> make_problem(const Case& c, int sets) {
  auto op = std::make_unique<OwnedProblem>();
  op->p.c = &c;
  const size_t n = static_cast<size_t>(c.numel());
  Rng r{0x5eed0000ull + static_cast<uint64_t>(c.name.size())};
  for (int k = 0; k < sets; ++k) {
    BufferSet s;
    for (void** dst : {&s.x, &s.dy, &s.y, &s.dx}) {
      op->storage.push_back(alloc(n * c.elem_bytes()));
      *dst = op->storage.back().p.get();
    }
    fill(c, s.x, r, 2.0f, 1.0f);
    fill(c, s.dy, r, 1.0f, 0.0f);
    op->p.sets.push_back(s);
  }
  const size_t pc = static_cast<size_t>(c.param_count());
  op->p.weight.resize(pc);
  for (float& w : op->p.weight) w = 0.5f + r.uniform();
  if (c.has_bias()) {
    op->p.bias.resize(pc);
    for (float& b : op->p.bias) b = 0.5f * r.normal();
  }
  if (c.is_batch_norm()) {
    const size_t C = static_cast<size_t>(c.channels());
    op->p.running_mean.assign(C, 0.0f);  // PyTorch's initial running statistics ...
    op->p.running_var.assign(C, 1.0f);
    if (c.op == Op::BatchNormEval) {     // ... or a trained-looking state for eval
      for (float& m : op->p.running_mean) m = 1.0f + 0.2f * r.normal();
      for (float& v : op->p.running_var) v = 2.0f + r.uniform() * 4.0f;
    }
  }
  return op;
}

Outputs reference_outputs(const Problem& p) {
  namespace ref = normkit::reference;
  const Case& c = *p.c;
  const size_t n = static_cast<size_t>(c.numel());
  const std::vector<float> x_nchw = to_nchw(c, p.sets[0].x), dy_nchw = to_nchw(c, p.sets[0].dy);
  const struct {
    const float *x, *dy;
  } s{x_nchw.data(), dy_nchw.data()};
  Outputs out;
  std::vector<float>& y = out["y"];
  std::vector<float>& dx = out["dx"];
  y.resize(n);
  dx.resize(n);
  const size_t pc = static_cast<size_t>(c.param_count());
  float* dw = nullptr;
  float* db = nullptr;
  if (c.affine) dw = (out["dweight"] = std::vector<float>(pc)).data();
  if (c.has_bias()) db = (out["dbias"] = std::vector<float>(pc)).data();
  const float* w = p.weight.empty() ? nullptr : p.weight.data();
  const float* b = p.bias.empty() ? nullptr : p.bias.data();
  const int64_t N = c.batch(), C = c.shape.size() > 1 ? c.channels() : 0, S = c.spatial();
  const int64_t M = c.norm_dims ? c.outer() : 0, D = c.norm_dims ? c.inner() : 0;
  switch (c.op) {
    case Op::BatchNormTrain:
    case Op::BatchNormEval: {
      const bool training = c.op == Op::BatchNormTrain;
      std::vector<float> rm = p.running_mean, rv = p.running_var;
      ref::batch_norm_forward<float>(s.x, y.data(), N, C, S, w, b, rm.data(), rv.data(), training, 0.1,
                                     c.eps);
      ref::batch_norm_backward<float>(s.dy, s.x, dx.data(), N, C, S, w, p.running_mean.data(),
                                      p.running_var.data(), training, c.eps, dw, db);
      if (training) {
        out["running_mean"] = rm;
        out["running_var"] = rv;
      }
      break;
    }
    case Op::InstanceNorm:
      ref::instance_norm_forward<float>(s.x, y.data(), N, C, S, w, b, nullptr, nullptr, true, 0.1, c.eps);
      ref::instance_norm_backward<float>(s.dy, s.x, dx.data(), N, C, S, w, nullptr, nullptr, true, c.eps,
                                         dw, db);
      break;
    case Op::GroupNorm:
      ref::group_norm_forward<float>(s.x, y.data(), N, C, S, c.groups, w, b, c.eps);
      ref::group_norm_backward<float>(s.dy, s.x, dx.data(), N, C, S, c.groups, w, c.eps, dw, db);
      break;
    case Op::LayerNorm:
      ref::layer_norm_forward<float>(s.x, y.data(), M, D, w, b, c.eps);
      ref::layer_norm_backward<float>(s.dy, s.x, dx.data(), M, D, w, c.eps, dw, db);
      break;
    case Op::RMSNorm:
      ref::rms_norm_forward<float>(s.x, y.data(), M, D, w, false, c.eps);
      ref::rms_norm_backward<float>(s.dy, s.x, dx.data(), M, D, w, false, c.eps, dw);
      break;
    case Op::WeightNorm:
      ref::weight_norm_forward<float>(s.x, w, y.data(), c.shape, 0);
      ref::weight_norm_backward<float>(s.dy, s.x, w, dx.data(), dw, c.shape, 0);
      break;
  }
  to_memory_order(c, y);
  to_memory_order(c, dx);
  return out;
}

std::vector<float> to_float(const Case& c, const void* p) {
  const size_t n = static_cast<size_t>(c.numel());
  switch (c.dtype) {
    case DType::BF16: {
      const auto* h = static_cast<const normkit::bfloat16*>(p);
      return std::vector<float>(h, h + n);
    }
    case DType::F16: {
      const auto* h = static_cast<const normkit::float16*>(p);
      return std::vector<float>(h, h + n);
    }
    default: {
      const auto* f = static_cast<const float*>(p);
      return std::vector<float>(f, f + n);
    }
  }
}

double tolerance(const Case& c) { return c.dtype == DType::BF16 ? 2e-2 : c.dtype == DType::F16 ? 5e-3 : 2e-3; }

std::string compare_outputs(const Outputs& got, const Outputs& want, const std::vector<std::string>& keys,
                            double rel) {
  for (const std::string& k : keys) {
    auto w = want.find(k);
    if (w == want.end()) continue;
    auto g = got.find(k);
    if (g == got.end()) return "output '" + k + "' is missing";
    if (g->second.size() != w->second.size()) {
      return "output '" + k + "' has " + std::to_string(g->second.size()) + " values, expected " +
             std::to_string(w->second.size());
    }
    double scale = 1.0;
    for (float v : w->second) scale = std::max(scale, static_cast<double>(std::fabs(v)));
    const double tol = rel * scale;
    for (size_t i = 0; i < w->second.size(); ++i) {
      const double a = g->second[i], r = w->second[i];
      if (!(std::fabs(a - r) <= tol)) {  // also catches NaN
        std::ostringstream m;
        m << "output '" << k << "' index=" << i << " got=" << a << " want=" << r << " (tolerance " << tol
          << ")";
        return m.str();
      }
    }
  }
  return "";
}

}  // namespace nkbench
