// group_norm_silu.cpp — y = silu(group_norm(x)), the block that opens every diffusion U-Net
// ResNet block. Work is cut into blocks of whole groups of one sample: the engine
// normalizes a block and the activation runs on it while it is still in cache. Backward
// forms dz = dy * silu'(z) per block in a scratch buffer and hands it to the engine.
#include <cmath>

#include "extras/blocks.hpp"
#include "normkit/extras.hpp"
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "group_norm_silu";

// The checks of group_norm, with this op's name.
template <class T>
void check_args(const TensorView<const T>& x, const GroupNormArgs<T>& a) {
  detail::check_group_args(kOp, x, a);
}

// Blocks of whole groups [g0, g1) of one sample n, viewed as (g1 - g0, C/G, *spatial).
struct GroupBlocks {
  int64_t N, C, G, cpg, per_block, per_sample;
  Shape spatial;
  Strides spatial_strides;
  int64_t sn, sc;  // strides of N and C

  GroupBlocks(const Shape& shape, const Strides& strides, int64_t groups)
      : N(shape[0]), C(shape[1]), G(groups), cpg(shape[1] / groups), sn(strides[0]), sc(strides[1]) {
    spatial.assign(shape.begin() + 2, shape.end());
    spatial_strides.assign(strides.begin() + 2, strides.end());
    const int64_t group_len = cpg * numel(spatial);
    per_block = std::max<int64_t>(1, extras::kBlockElems / std::max<int64_t>(1, group_len));
    per_sample = (G + per_block - 1) / per_block;
  }
  int64_t count() const { return N * per_sample; }
  int64_t sample(int64_t b) const { return b / per_sample; }
  int64_t g0(int64_t b) const { return (b % per_sample) * per_block; }
  int64_t g1(int64_t b) const { return std::min(G, g0(b) + per_block); }

  template <class T>
  TensorView<T> slice(T* data, int64_t b) const {
    Shape s{g1(b) - g0(b), cpg};
    Strides st{sc * cpg, sc};
    s.insert(s.end(), spatial.begin(), spatial.end());
    st.insert(st.end(), spatial_strides.begin(), spatial_strides.end());
    return TensorView<T>(data + sample(b) * sn + g0(b) * cpg * sc, std::move(s), std::move(st));
  }
  ReductionPlan plan(const Shape& s, const Strides& st) const {
    std::vector<int64_t> reduce;
    for (size_t i = 1; i < s.size(); ++i) reduce.push_back(static_cast<int64_t>(i));
    return ReductionPlan::build(s, st, reduce, {0, 1}, kOp);
  }
  // Calls f(offset, len, stride, row, channel_in_block) for every spatial run of a block.
  template <class F>
  void for_each_channel_run(int64_t groups_in_block, F&& f) const {
    for (int64_t g = 0; g < groups_in_block; ++g)
      for (int64_t j = 0; j < cpg; ++j) {
        const int64_t base = (g * cpg + j) * sc;
        extras::for_each_run(spatial, spatial_strides, [&](int64_t o, int64_t len, int64_t st) {
          f(base + o, len, st, g, g * cpg + j);
        });
      }
  }
};

template <class T>
T silu(T z) { return z / (T(1) + std::exp(-z)); }

template <class T>
std::span<const T> sub(std::span<const T> p, int64_t start) {
  return p.empty() ? p : p.subspan(static_cast<size_t>(start));
}
}  // namespace

template <class T>
void group_norm_silu_forward(TensorView<const T> x, TensorView<T> y, const GroupNormArgs<T>& a,
                             SavedStats<T> saved) {
  check_args(x, a);
  detail::check_like(kOp, "output", y, x, true);
  const int64_t stats = x.shape[0] * a.num_groups;
  detail::check_param(kOp, "saved mean", saved.mean, stats, "N * num_groups");
  detail::check_param(kOp, "saved rstd", saved.rstd, stats, "N * num_groups");
  detail::check_forward_aliasing(kOp, x, y, a.weight, a.bias, saved);
  if (x.numel() == 0) return;
  const GroupBlocks gb(x.shape, x.strides, a.num_groups);
  const auto ns = static_cast<size_t>(stats);
  std::vector<double> mean(ns), second(ns), rstd(ns);
#pragma omp parallel for schedule(static) if (gb.count() > 1 && x.numel() >= extras::kParallelElems)
  for (int64_t b = 0; b < gb.count(); ++b) {
    const auto xb = gb.slice(x.data, b);
    const auto yb = gb.slice(y.data, b);
    const auto bp = gb.plan(xb.shape, xb.strides);
    const int64_t s0 = gb.sample(b) * gb.G + gb.g0(b), c0 = gb.g0(b) * gb.cpg;
    engine::forward(bp, Statistic::Variance, a.eps, xb.data, yb.data,
                    detail::data_or_null(sub(a.weight, c0)), detail::data_or_null(sub(a.bias, c0)),
                    mean.data() + s0, second.data() + s0, rstd.data() + s0);
    extras::for_each_run(yb.shape, yb.strides, [&](int64_t o, int64_t len, int64_t st) {
      T* p = yb.data + o;
      for (int64_t i = 0; i < len; ++i) p[i * st] = silu(p[i * st]);
    });
  }
  detail::write_saved(saved, mean, rstd);
}

// With z = xhat * w + b and s = sigmoid(z):  dz = dy * s * (1 + z * (1 - s)); then the
// GroupNorm backward of dz (op_common.hpp's backward_pass).
template <class T>
void group_norm_silu_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                              const GroupNormArgs<T>& a, std::span<T> dweight, std::span<T> dbias) {
  check_args(x, a);
  detail::check_like(kOp, "grad_output", dy, x, false);
  if (dx.data) detail::check_like(kOp, "grad_input", dx, x, true);
  const int64_t C = x.shape[1];
  detail::check_param(kOp, "grad_weight", dweight, C, "num_channels");
  detail::check_param(kOp, "grad_bias", dbias, C, "num_channels");
  detail::check_backward_aliasing(kOp, dy, x, dx, a.weight, dweight, dbias);
  if (x.numel() == 0) return detail::zero_grads(dweight, dbias);
  const GroupBlocks gb(x.shape, x.strides, a.num_groups);
  const bool param_grads = !dweight.empty() || !dbias.empty();
  // Per-sample partial parameter gradients, summed over samples in order afterwards.
  std::vector<double> pw(param_grads ? size_t(gb.N * C) : 0), pb(pw.size());
#pragma omp parallel if (gb.count() > 1 && x.numel() >= extras::kParallelElems)
  {
    std::vector<T> scratch;  // dz, laid out like the block
#pragma omp for schedule(static)
    for (int64_t b = 0; b < gb.count(); ++b) {
      const auto xb = gb.slice(x.data, b);
      const auto dyb = gb.slice(dy.data, b);
      const auto bp = gb.plan(xb.shape, xb.strides);
      const int64_t c0 = gb.g0(b) * gb.cpg, groups = gb.g1(b) - gb.g0(b);
      const auto st = detail::batch_stats(bp, xb.data, Statistic::Variance, a.eps);
      int64_t extent = 1;
      for (size_t i = 0; i < xb.shape.size(); ++i) extent += (xb.shape[i] - 1) * xb.strides[i];
      scratch.resize(size_t(extent));
      const T* w = detail::data_or_null(sub(a.weight, c0));
      const T* bias = detail::data_or_null(sub(a.bias, c0));
      gb.for_each_channel_run(groups, [&](int64_t o, int64_t len, int64_t sst, int64_t g, int64_t c) {
        const double m = st.mean[size_t(g)], r = st.rstd[size_t(g)];
        const double wv = w ? double(w[c]) : 1.0, bv = bias ? double(bias[c]) : 0.0;
        for (int64_t i = 0; i < len; ++i) {
          const int64_t k = o + i * sst;
          const double z = double(T((double(xb.data[k]) - m) * r * wv + bv));
          const double s = 1.0 / (1.0 + std::exp(-z));
          scratch[size_t(k)] = T(double(dyb.data[k]) * s * (1.0 + z * (1.0 - s)));
        }
      });
      const T* dz = scratch.data();
      if (dx.data)  // recomputes the block's statistics from x (cache-resident)
        detail::backward_pass(bp, Statistic::Variance, true, a.eps, dz, xb.data,
                              gb.slice(dx.data, b).data, detail::Stats{}, w, std::span<T>{},
                              std::span<T>{});
      if (param_grads) {
        const auto na = size_t(groups * gb.cpg);
        std::vector<double> sdz(na), sdzx(na);
        engine::reduce_grads(bp, engine::GroupBy::Affine, dz, xb.data, st.mean.data(),
                             st.rstd.data(), static_cast<const T*>(nullptr), sdz.data(), sdzx.data());
        const size_t at = size_t(gb.sample(b) * C + c0);
        std::copy(sdzx.begin(), sdzx.end(), pw.begin() + std::ptrdiff_t(at));
        std::copy(sdz.begin(), sdz.end(), pb.begin() + std::ptrdiff_t(at));
      }
    }
  }
  if (!param_grads) return;
  for (int64_t c = 0; c < C; ++c) {
    double sw = 0, sb = 0;
    for (int64_t n = 0; n < gb.N; ++n) sw += pw[size_t(n * C + c)], sb += pb[size_t(n * C + c)];
    if (!dweight.empty()) dweight[size_t(c)] = T(sw);
    if (!dbias.empty()) dbias[size_t(c)] = T(sb);
  }
}

#define NORMKIT_INSTANTIATE(T)                                                                    \
  template void group_norm_silu_forward<T>(TensorView<const T>, TensorView<T>,                    \
                                           const GroupNormArgs<T>&, SavedStats<T>);               \
  template void group_norm_silu_backward<T>(TensorView<const T>, TensorView<const T>,             \
                                            TensorView<T>, const GroupNormArgs<T>&, std::span<T>, \
                                            std::span<T>);
NORMKIT_INSTANTIATE(float)
NORMKIT_INSTANTIATE(double)

}  // namespace normkit
