// add_norm.cpp — fused residual add + RMSNorm / LayerNorm (vLLM's fused_add_rms_norm):
// sum = x + residual is written once per block of rows and normalized by the engine while
// the block is still in cache, so memory sees x, residual read once and sum, y written once.
// For half types (later) the add is to be done in float32 and rounded once into sum.
#include <limits>

#include "extras/blocks.hpp"
#include "normkit/extras.hpp"
#include "op_common.hpp"

namespace normkit {
namespace {

// What differs between the two ops, resolved at the door.
template <class T>
struct NormSpec {
  const char* op;
  Statistic statistic;
  Shape normalized_shape;
  double eps;
  std::vector<T> weight;  // the scale actually applied (Gemma: 1 + w); empty: none
  std::span<const T> bias;
};

template <class T>
NormSpec<T> spec_of(const RMSNormArgs<T>& a, const char* op) {
  if (a.eps) detail::check_eps(op, *a.eps);
  NormSpec<T> s{op, Statistic::MeanSquare, a.normalized_shape,
                a.eps ? *a.eps : double(std::numeric_limits<T>::epsilon()),
                std::vector<T>(a.weight.begin(), a.weight.end()), {}};
  if (a.unit_offset)
    for (auto& v : s.weight) v = T(1) + v;
  return s;
}
template <class T>
NormSpec<T> spec_of(const LayerNormArgs<T>& a, const char* op) {
  detail::check_eps(op, a.eps);
  return {op, Statistic::Variance, a.normalized_shape, a.eps,
          std::vector<T>(a.weight.begin(), a.weight.end()), a.bias};
}

// Checks x and the parameters; returns the plan over the whole tensor.
template <class T>
ReductionPlan checked_plan(const NormSpec<T>& s, const TensorView<const T>& x,
                           std::span<const T> weight) {
  detail::check_tensor(s.op, "input", x);
  const auto axes = detail::trailing_axes(s.op, x.shape, s.normalized_shape);
  const int64_t D = numel(s.normalized_shape);
  detail::check_param(s.op, "weight", weight, D, "normalized_shape elements");
  detail::check_param(s.op, "bias", s.bias, D, "normalized_shape elements");
  return ReductionPlan::build(x.shape, x.strides, axes, axes, s.op);
}

template <class T>
const T* ptr(const std::vector<T>& v) { return v.empty() ? nullptr : v.data(); }

// sum = x + residual over one block (all views share strides).
template <class T>
void add_block(const TensorView<const T>& x, const TensorView<const T>& r, const TensorView<T>& sum) {
  extras::for_each_run(x.shape, x.strides, [&](int64_t o, int64_t len, int64_t st) {
    const T* a = x.data + o;
    const T* b = r.data + o;
    T* c = sum.data + o;
    if (st == 1) {
      for (int64_t i = 0; i < len; ++i) c[i] = a[i] + b[i];
    } else {
      for (int64_t i = 0; i < len; ++i) c[i * st] = a[i * st] + b[i * st];
    }
  });
}

template <class T>
void add_into(const TensorView<T>& dx, const TensorView<const T>& d) {
  extras::for_each_run(dx.shape, dx.strides, [&](int64_t o, int64_t len, int64_t st) {
    for (int64_t i = 0; i < len; ++i) dx.data[o + i * st] += d.data[o + i * st];
  });
}

template <class T>
void forward_impl(const NormSpec<T>& s, std::span<const T> weight, TensorView<const T> x,
                  TensorView<const T> residual, TensorView<T> y, TensorView<T> sum,
                  SavedStats<T> saved) {
  const ReductionPlan plan = checked_plan(s, x, weight);
  detail::check_like(s.op, "residual", residual, x, false);
  detail::check_like(s.op, "output", y, x, true);
  detail::check_like(s.op, "sum", sum, x, true);
  if (y.data == sum.data && x.numel() > 0) detail::fail(s.op, "output and sum must be distinct buffers");
  detail::check_param(s.op, "saved mean", saved.mean, plan.num_stats(), "one per row");
  detail::check_param(s.op, "saved rstd", saved.rstd, plan.num_stats(), "one per row");
  detail::check_no_overlap(s.op, {detail::region("input", x, false), detail::region("residual", residual, false),
                                  detail::region("output", y, true), detail::region("sum", sum, true),
                                  detail::region("weight", weight, false), detail::region("bias", s.bias, false),
                                  detail::region("saved mean", saved.mean, true),
                                  detail::region("saved rstd", saved.rstd, true)});
  if (x.numel() == 0) return;
  const size_t lead = x.shape.size() - s.normalized_shape.size();
  const extras::RowBlocks blocks(x.shape, x.strides, lead);
  const auto axes = blocks.inner_axes(lead);
  const auto n = static_cast<size_t>(plan.num_stats());
  std::vector<double> mean(n), second(n), rstd(n);
  // One block per task: add, then normalize the block from cache. Inside a parallel region
  // the engine runs on the calling thread.
#pragma omp parallel for schedule(static) if (blocks.count > 1 && x.numel() >= extras::kParallelElems)
  for (int64_t b = 0; b < blocks.count; ++b) {
    const int64_t r0 = blocks.begin(b), r1 = blocks.end(b);
    const auto xb = blocks.slice(x, r0, r1), rb = blocks.slice(residual, r0, r1);
    const auto sb = blocks.slice(sum, r0, r1), yb = blocks.slice(y, r0, r1);
    add_block(xb, rb, sb);
    const auto bp = ReductionPlan::build(sb.shape, sb.strides, axes, axes, s.op);
    engine::forward(bp, s.statistic, s.eps, static_cast<const T*>(sb.data), yb.data, ptr(s.weight),
                    detail::data_or_null(s.bias), mean.data() + r0, second.data() + r0,
                    rstd.data() + r0);
  }
  detail::write_saved(saved, mean, rstd);
}

// dx = norm_backward(dy at sum) + dsum, block by block (the engine's fused backward, then
// dsum added while the block is in cache); dweight and dbias over the whole tensor with the
// statistics the blocks found.
template <class T>
void backward_impl(const NormSpec<T>& s, std::span<const T> weight, TensorView<const T> dy,
                   TensorView<const T> dsum, TensorView<const T> sum, TensorView<T> dx,
                   std::span<T> dweight, std::span<T> dbias) {
  const ReductionPlan plan = checked_plan(s, sum, weight);
  detail::check_like(s.op, "grad_output", dy, sum, false);
  if (dsum.data) detail::check_like(s.op, "grad_sum", dsum, sum, false);
  if (dx.data) detail::check_like(s.op, "grad_input", dx, sum, true);
  detail::check_param(s.op, "grad_weight", dweight, plan.num_affine(), "normalized_shape elements");
  detail::check_param(s.op, "grad_bias", dbias, plan.num_affine(), "normalized_shape elements");
  detail::check_no_overlap(s.op, {detail::region("grad_output", dy, false), detail::region("grad_sum", dsum, false),
                                  detail::region("sum", sum, false), detail::region("grad_input", dx, true),
                                  detail::region("weight", weight, false), detail::region("grad_weight", dweight, true),
                                  detail::region("grad_bias", dbias, true)});
  if (sum.numel() == 0) return detail::zero_grads(dweight, dbias);
  const size_t lead = sum.shape.size() - s.normalized_shape.size();
  const extras::RowBlocks blocks(sum.shape, sum.strides, lead);
  const auto axes = blocks.inner_axes(lead);
  detail::Stats all(static_cast<size_t>(plan.num_stats()));
#pragma omp parallel for schedule(static) if (blocks.count > 1 && sum.numel() >= extras::kParallelElems)
  for (int64_t b = 0; b < blocks.count; ++b) {
    const int64_t r0 = blocks.begin(b), r1 = blocks.end(b);
    const auto sb = blocks.slice(sum, r0, r1);
    const auto bp = ReductionPlan::build(sb.shape, sb.strides, axes, axes, s.op);
    const auto dxb = blocks.slice(dx, r0, r1);
    std::vector<double> unused(size_t(r1 - r0) * 2);  // per-statistic sums: LN/RMS weights vary in a row
    engine::backward(bp, s.statistic, true, s.eps, blocks.slice(dy, r0, r1).data, sb.data, dxb.data,
                     ptr(s.weight), all.mean.data() + r0, all.var.data() + r0, all.rstd.data() + r0,
                     unused.data(), unused.data() + (r1 - r0));
    if (dx.data && dsum.data) add_into(dxb, blocks.slice(dsum, r0, r1));
  }
  if (dweight.empty() && dbias.empty()) return;
  const auto na = static_cast<size_t>(plan.num_affine());
  std::vector<double> sdy(na), sdyx(na);
  engine::reduce_grads(plan, engine::GroupBy::Affine, dy.data, sum.data, all.mean.data(),
                       all.rstd.data(), static_cast<const T*>(nullptr), sdy.data(), sdyx.data());
  // d(1 + w)/dw = 1: the Gemma form has the same weight gradient.
  for (size_t a = 0; a < dweight.size(); ++a) dweight[a] = T(sdyx[a]);
  for (size_t a = 0; a < dbias.size(); ++a) dbias[a] = T(sdy[a]);
}

}  // namespace

template <class T>
void add_rms_norm_forward(TensorView<const T> x, TensorView<const T> residual, TensorView<T> y,
                          TensorView<T> sum, const RMSNormArgs<T>& args, SavedStats<T> saved) {
  const auto s = spec_of(args, "add_rms_norm");
  forward_impl(s, args.weight, x, residual, y, sum, saved);
}
template <class T>
void add_rms_norm_backward(TensorView<const T> dy, TensorView<const T> dsum, TensorView<const T> sum,
                           TensorView<T> dx, const RMSNormArgs<T>& args, std::span<T> dweight) {
  const auto s = spec_of(args, "add_rms_norm_backward");
  backward_impl(s, args.weight, dy, dsum, sum, dx, dweight, std::span<T>{});
}
template <class T>
void add_layer_norm_forward(TensorView<const T> x, TensorView<const T> residual, TensorView<T> y,
                            TensorView<T> sum, const LayerNormArgs<T>& args, SavedStats<T> saved) {
  const auto s = spec_of(args, "add_layer_norm");
  forward_impl(s, args.weight, x, residual, y, sum, saved);
}
template <class T>
void add_layer_norm_backward(TensorView<const T> dy, TensorView<const T> dsum,
                             TensorView<const T> sum, TensorView<T> dx,
                             const LayerNormArgs<T>& args, std::span<T> dweight,
                             std::span<T> dbias) {
  const auto s = spec_of(args, "add_layer_norm_backward");
  backward_impl(s, args.weight, dy, dsum, sum, dx, dweight, dbias);
}

#define NORMKIT_INSTANTIATE(T)                                                                     \
  template void add_rms_norm_forward<T>(TensorView<const T>, TensorView<const T>, TensorView<T>,  \
                                        TensorView<T>, const RMSNormArgs<T>&, SavedStats<T>);     \
  template void add_rms_norm_backward<T>(TensorView<const T>, TensorView<const T>,                 \
                                         TensorView<const T>, TensorView<T>,                       \
                                         const RMSNormArgs<T>&, std::span<T>);                     \
  template void add_layer_norm_forward<T>(TensorView<const T>, TensorView<const T>,                \
                                          TensorView<T>, TensorView<T>, const LayerNormArgs<T>&,   \
                                          SavedStats<T>);                                          \
  template void add_layer_norm_backward<T>(TensorView<const T>, TensorView<const T>,               \
                                           TensorView<const T>, TensorView<T>,                     \
                                           const LayerNormArgs<T>&, std::span<T>, std::span<T>);
NORMKIT_INSTANTIATE(float)
NORMKIT_INSTANTIATE(double)

}  // namespace normkit
