// plan.cpp — builds the reduction plan: classify each axis (reduced? affine?), drop size-1
// axes, and merge neighbours whose three linear maps (memory, statistic, affine) compose.
#include "normkit/plan.hpp"

#include <algorithm>
#include <string>

namespace normkit {
namespace {

std::vector<bool> axis_mask(const std::vector<int64_t>& axes, int64_t rank, const char* op,
                            const char* what) {
  std::vector<bool> mask(static_cast<size_t>(rank), false);
  for (int64_t a : axes) {
    const int64_t k = a < 0 ? a + rank : a;
    if (k < 0 || k >= rank)
      throw Error(std::string("[") + op + "] " + what + " axis " + std::to_string(a) +
                  " is out of range for rank " + std::to_string(rank));
    if (mask[static_cast<size_t>(k)])
      throw Error(std::string("[") + op + "] " + what + " axis " + std::to_string(a) +
                  " is repeated");
    mask[static_cast<size_t>(k)] = true;
  }
  return mask;
}

}  // namespace

ReductionPlan ReductionPlan::build(const Shape& shape, const Strides& strides_in,
                                   const std::vector<int64_t>& reduce_axes,
                                   const std::vector<int64_t>& affine_axes, const char* op) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  const Strides strides = strides_in.empty() ? contiguous_strides(shape) : strides_in;
  if (strides.size() != shape.size())
    throw Error(std::string("[") + op + "] " + std::to_string(strides.size()) +
                " strides given for a rank-" + std::to_string(rank) + " shape");
  for (int64_t d : shape)
    if (d < 0) throw Error(std::string("[") + op + "] negative size in shape " + shape_str(shape));
  const auto reduced = axis_mask(reduce_axes, rank, op, "reduce");
  const auto affine = axis_mask(affine_axes, rank, op, "affine");

  // Statistic and affine indices are row-major over the kept / affine axes, in axis order.
  std::vector<PlanDim> all(static_cast<size_t>(rank));
  ReductionPlan plan;
  for (int64_t i = rank - 1; i >= 0; --i) {
    const size_t k = static_cast<size_t>(i);
    all[k].size = shape[k];
    all[k].stride = strides[k];
    if (!reduced[k]) { all[k].stat_stride = plan.num_stats_; plan.num_stats_ *= shape[k]; }
    else plan.stat_size_ *= shape[k];
    if (affine[k]) { all[k].affine_stride = plan.num_affine_; plan.num_affine_ *= shape[k]; }
  }
  // Size-1 axes carry no information; a kept axis of size 0 empties the whole tensor.
  for (const PlanDim& d : all) {
    if (d.size == 1) continue;
    if (!plan.dims_.empty()) {
      PlanDim& p = plan.dims_.back();
      const bool same_kind = p.reduced() == d.reduced() && p.affine() == d.affine();
      if (same_kind && p.stride == d.stride * d.size && p.stat_stride == d.stat_stride * d.size &&
          p.affine_stride == d.affine_stride * d.size) {
        p.size *= d.size;
        p.stride = d.stride;
        p.stat_stride = d.stat_stride;
        p.affine_stride = d.affine_stride;
        continue;
      }
    }
    plan.dims_.push_back(d);
  }
  if (plan.dims_.empty()) plan.dims_.push_back(PlanDim{1, 1, 1, 0});
  if (plan.dims_.size() > kMaxPlanDims)
    throw Error(std::string("[") + op + "] " + std::to_string(plan.dims_.size()) +
                " axes remain after merging; at most " + std::to_string(kMaxPlanDims) + " are supported");
  size_t best = plan.dims_.size() - 1;
  for (size_t i = 0; i < plan.dims_.size(); ++i)
    if (plan.dims_[i].size > 1 && plan.dims_[i].stride < plan.dims_[best].stride) best = i;
  plan.run_dim_ = best;
  return plan;
}

std::string ReductionPlan::pattern() const {
  // Blocks that differ only in their affine stride read as one: the pattern describes the
  // statistics, the way DESIGN.md's table does.
  std::string s = "[";
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (i > 0 && dims_[i].reduced() == dims_[i - 1].reduced()) continue;
    s += std::string(i ? "," : "") + (dims_[i].reduced() ? "R" : "K");
  }
  return s + "]";
}

}  // namespace normkit
