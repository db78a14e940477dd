//! @file
//! normkit/plan.hpp — the reduction plan: the one idea the library is built on.
//! A normalization is fixed by the axes it averages over. From a shape, its strides, the
//! reduced axes and the axes the affine parameters vary along, the plan merges adjacent
//! axes that behave alike into a few blocks; the engine runs any plan.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "normkit/tensor.hpp"

namespace normkit {

/// One merged block of axes. Three linear maps take a block coordinate to an offset:
/// into memory, into the statistics (0 for reduced blocks), into the affine parameters
/// (0 for blocks the parameters do not vary along).
struct PlanDim {
  int64_t size = 1;           ///< elements along the block
  int64_t stride = 0;         ///< memory stride, in elements
  int64_t stat_stride = 0;    ///< 0: the block is reduced (averaged over)
  int64_t affine_stride = 0;  ///< 0: the affine parameters are broadcast along it
  bool reduced() const { return stat_stride == 0; }  ///< averaged over?
  bool affine() const { return affine_stride != 0; }  ///< do weight and bias vary along it?
};

/// Plans have at most this many blocks (after merging); build() refuses more.
inline constexpr size_t kMaxPlanDims = 32;

/// The merged blocks of one normalization: what the engine runs.
class NORMKIT_API ReductionPlan {
 public:
  /// `reduce_axes` and `affine_axes` are axis indices of `shape` (negative counts from the
  /// end, as in PyTorch). Duplicates and out-of-range axes throw normkit::Error naming `op`.
  static ReductionPlan build(const Shape& shape, const Strides& strides,
                             const std::vector<int64_t>& reduce_axes,
                             const std::vector<int64_t>& affine_axes = {},
                             const char* op = "normalize");

  const std::vector<PlanDim>& dims() const { return dims_; }  ///< the merged blocks
  int64_t num_stats() const { return num_stats_; }      ///< statistics computed
  int64_t stat_size() const { return stat_size_; }      ///< elements averaged per statistic
  int64_t num_affine() const { return num_affine_; }    ///< affine parameters (1: no affine axes)
  int64_t numel() const { return num_stats_ * stat_size_; }  ///< elements of the tensor
  /// The pattern of kept (K) and reduced (R) blocks in axis order, e.g. "[R,K,R]" for
  /// BatchNorm on NCHW and "[K,R]" for LayerNorm. Blocks split only because the affine
  /// parameters vary along one of them (InstanceNorm's N and C) read as one letter.
  std::string pattern() const;
  /// The block with the smallest memory stride: the engine's contiguous runs follow it.
  size_t run_dim() const { return run_dim_; }

 private:
  std::vector<PlanDim> dims_;
  int64_t num_stats_ = 1, stat_size_ = 1, num_affine_ = 1;
  size_t run_dim_ = 0;
};

}  // namespace normkit
