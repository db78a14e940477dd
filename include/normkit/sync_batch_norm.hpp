//! @file
//! normkit/sync_batch_norm.hpp — BatchNorm whose statistics span every process of a job.
//! Part 1 (in normkit, no MPI): communicator-free building blocks, so any transport can be
//! plugged in. Part 2 (in normkit::sync, only when MPI is found): SyncBatchNorm on MPI_Comm.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "normkit/export.hpp"
#include "normkit/layers.hpp"
#include "normkit/ops.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

// ---- Part 1: building blocks (PyTorch: batch_norm_stats / batch_norm_gather_stats /
// batch_norm_elemt / batch_norm_backward_reduce / batch_norm_backward_elemt) ---------------
// x is (N, C, *) with any strides; N may be 0 (an empty local batch). The wire types are
// plain doubles, so a rank's contribution is C * 3 (forward) or C * 2 (backward) doubles.

/// Moments of one channel of one rank's batch (3 doubles on the wire).
struct Moments {
  double count = 0;  ///< number of values
  double mean = 0;   ///< their mean
  double m2 = 0;     ///< sum of (x - mean)^2
};

/// Per-channel sums of a backward pass (2 doubles on the wire).
struct GradSums {
  double sum_dy = 0;       ///< sum of dy
  double sum_dy_xhat = 0;  ///< sum of dy * xhat
};

/// The statistics a batch is normalized with, per channel, shared by forward and backward.
struct BatchNormStats {
  double count = 0;          ///< values per channel over the whole (global) batch
  std::vector<double> mean;  ///< per-channel mean
  std::vector<double> var;   ///< per-channel biased variance (M2 / count)
  std::vector<double> rstd;  ///< 1 / sqrt(var + eps)
};

/// C moments of the local batch x (N, C, *): count = N * spatial for every channel; all
/// zeros when x is empty.
template <class T>
NORMKIT_API std::vector<Moments> batch_norm_moments(TensorView<const T> x);

/// Merges per-rank moments, `gathered[r * C + c]` for ranks r = 0..R-1, with Chan's formula
/// in rank order: the same input gives bit-identical output on every rank. Empty ranks add
/// nothing.
NORMKIT_API std::vector<Moments> combine_moments(std::span<const Moments> gathered, int64_t num_channels);

/// Statistics from merged moments. With `training`, a count of exactly 1 value per channel
/// throws Error: the one-value-per-channel rule, applied to the batch `merged` covers.
NORMKIT_API BatchNormStats batch_norm_stats_from(std::span<const Moments> merged, double eps,
                                                 bool training = true);

/// y = (x - mean) * rstd * w + b with the given statistics (weight, bias: [C] or empty).
template <class T>
NORMKIT_API void batch_norm_apply(TensorView<const T> x, TensorView<T> y, const BatchNormStats& stats,
                                  std::span<const T> weight = {}, std::span<const T> bias = {});

/// running = (1 - momentum) * running + momentum * batch, the batch variance unbiased
/// (M2 / (count - 1)). Does nothing when the merged count is 0 or running_* are empty.
template <class T>
NORMKIT_API void batch_norm_update_running(std::span<const Moments> merged, std::span<T> running_mean,
                                           std::span<T> running_var, double momentum);

/// C local sums for the backward pass, xhat taken from `stats` (zeros when x is empty).
template <class T>
NORMKIT_API std::vector<GradSums> batch_norm_grad_sums(TensorView<const T> dy, TensorView<const T> x,
                                                       const BatchNormStats& stats);

/// Sums per-rank GradSums `gathered[r * C + c]` in rank order (bit-identical everywhere).
NORMKIT_API std::vector<GradSums> combine_grad_sums(std::span<const GradSums> gathered,
                                                    int64_t num_channels);

/// dx = rstd * w * (dy - sum_dy / M - xhat * sum_dy_xhat / M), M = stats.count, from the
/// merged sums; dx.data may be null to skip dx. Writes dweight = sum_dy_xhat and
/// dbias = sum_dy (OVERWRITTEN; spans may be empty), the same on every rank.
template <class T>
NORMKIT_API void batch_norm_backward_apply(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                                           const BatchNormStats& stats, std::span<const GradSums> merged,
                                           std::span<const T> weight = {}, std::span<T> dweight = {},
                                           std::span<T> dbias = {});

}  // namespace normkit

// ---- Part 2: SyncBatchNorm on MPI (target normkit::sync, which defines NORMKIT_WITH_MPI) --
#if defined(NORMKIT_WITH_MPI) || defined(MPI_VERSION)
#include <mpi.h>

namespace normkit {

/// SyncBatchNorm forward. In training (args.training): statistics over every rank of
/// `comm` (one all-gather of C x (count, mean, M2)); every rank, empty or not, must call it;
/// running statistics are updated with the global batch, identically on every rank; returns
/// the global statistics backward needs. Otherwise: no communication, exactly
/// batch_norm_forward on the local batch, and an empty BatchNormStats. An invalid argument
/// on any rank makes every rank throw (nothing is written anywhere).
template <class T>
NORMKIT_API BatchNormStats sync_batch_norm_forward(TensorView<const T> x, TensorView<T> y,
                                                   const BatchNormArgs<T>& args, MPI_Comm comm);

/// SyncBatchNorm backward. In training: one all-gather of C x (sum dy, sum dy * xhat), then
/// the local dx; dweight and dbias (OVERWRITTEN) are the global sums, bit-identical on every
/// rank. `stats` is what the matching forward returned. Otherwise: exactly
/// batch_norm_backward on the local batch.
template <class T>
NORMKIT_API void sync_batch_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                                          const BatchNormArgs<T>& args, const BatchNormStats& stats,
                                          MPI_Comm comm, std::span<T> dweight = {}, std::span<T> dbias = {});

/// torch.nn.SyncBatchNorm: options, members and gradient accumulation as normkit::BatchNorm.
/// Training synchronizes over `comm`; eval never communicates (running statistics, or local
/// batch statistics when none are tracked, as PyTorch). backward() uses the statistics of
/// the last training forward(), so call them in pairs, on every rank of `comm`.
template <class T = float>
class NORMKIT_API SyncBatchNorm : public Module {
 public:
  using Options = typename BatchNorm<T>::Options;  ///< the same options as BatchNorm
  /// num_features = C; `comm`: the ranks that share one batch (it is used, not duplicated).
  SyncBatchNorm(int64_t num_features, MPI_Comm comm, Options options = {});
  /// Writes y; in training, a collective over `comm` that also updates running statistics.
  void forward(TensorView<const T> x, TensorView<T> y);
  /// Writes dx and accumulates the (global, in training) parameter gradients.
  void backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx);
  /// Sets weight_grad and bias_grad to 0.
  void zero_grad();

  int64_t num_features;                  ///< C
  MPI_Comm comm;                         ///< the communicator statistics are shared over
  Options options;                       ///< constructor options
  std::vector<T> weight;                 ///< [C], 1 at start; empty unless affine
  std::vector<T> bias;                   ///< [C], 0 at start; empty unless affine
  std::vector<T> weight_grad;            ///< accumulated gradient of weight
  std::vector<T> bias_grad;              ///< accumulated gradient of bias
  std::vector<T> running_mean;           ///< [C]; empty unless track_running_stats
  std::vector<T> running_var;            ///< [C], unbiased; empty unless track_running_stats
  int64_t num_batches_tracked = 0;       ///< training forwards done (same on every rank)
  BatchNormStats saved;                  ///< statistics of the last training forward (global)

 private:
  BatchNormArgs<T> args();
  bool synced() const { return training(); }
  Shape saved_shape_;
};

}  // namespace normkit
#endif
