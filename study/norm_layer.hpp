// study/norm_layer.hpp — the slot between a convolution and its ReLU: one of normkit's
// layers (BatchNorm, GroupNorm, LayerNorm over (C,H,W), affine InstanceNorm) or nothing.
// The study compares exactly these layers, so the slot only forwards to them. With MPI
// (NORMKIT_WITH_MPI) BatchNorm can be SyncBatchNorm over MPI_COMM_WORLD (data-parallel runs).
#pragma once

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "normkit/layers.hpp"
#ifdef NORMKIT_WITH_MPI
#include "normkit/sync_batch_norm.hpp"
#endif

namespace study {

enum class NormKind { None, Batch, Group, Layer, Instance };

// "bn", "gn", "ln", "in", "none" (and the long names "batchnorm", ...) -> NormKind.
NormKind parse_norm(const std::string& name);
// The names the study's files use: "BatchNorm", "GroupNorm", "LayerNorm", "InstanceNorm", "none".
std::string norm_name(NormKind kind);

// A pointer to one trainable tensor and its gradient.
template <class T>
struct ParamRef {
  T* value;
  T* grad;
  size_t size;
  bool decay;  // weight decay applies (conv/linear weights only)
  // The gradient is already the sum over every rank's batch (SyncBatchNorm's affine), so a
  // data-parallel step must not all-reduce it again.
  bool reduced_over_ranks = false;
};

template <class T>
class NormLayer {
 public:
  // x is [N, c, h, w]; `groups` is used by GroupNorm only. `sync`: BatchNorm becomes
  // SyncBatchNorm over MPI_COMM_WORLD (throws normkit::Error in a build without MPI).
  NormLayer(NormKind kind, int c, int h, int w, int groups, bool sync = false);
  void forward(const T* x, int n, T* y);
  // Overwrites dx; accumulates the affine parameters' gradients.
  void backward(const T* dy, const T* x, int n, T* dx);
  void train(bool on);
  void params(std::vector<ParamRef<T>>& out);
  // Running statistics (BatchNorm's running_mean, running_var; nothing for the others).
  void buffers(std::vector<std::vector<T>*>& out);
  NormKind kind() const { return kind_; }

 private:
  NormKind kind_;
  int c_, h_, w_;
  std::variant<std::monostate, normkit::BatchNorm<T>, normkit::GroupNorm<T>,
               normkit::LayerNorm<T>, normkit::InstanceNorm<T>
#ifdef NORMKIT_WITH_MPI
               , normkit::SyncBatchNorm<T>
#endif
               >
      layer_;
};

}  // namespace study
