// sync_batch_norm.cpp — SyncBatchNorm on MPI: the building blocks of batch_norm_parts.cpp
// joined by one all-gather per pass. All-gather (not all-reduce) so the merge runs in rank
// order on the same bytes everywhere: results are bit-identical on every rank.
#include <cmath>
#include <cstring>
#include <exception>
#include <string>
#include <type_traits>

#include "normkit/sync_batch_norm.hpp"
#include "op_common.hpp"

namespace normkit {
namespace {
constexpr const char* kOp = "sync_batch_norm";

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  detail::fail(kOp, std::string(call) + " failed: " + std::string(msg, static_cast<size_t>(len)));
}

// One all-gather of every rank's C records, each led by a status value (1: this rank's
// arguments were invalid). If any rank failed, every rank throws (the failing one its own
// error) before anything is written, so one bad rank never leaves the others waiting.
// Returns the records rank-major: out[r * C + c].
template <class Rec>
std::vector<Rec> exchange(const std::vector<Rec>& local, std::exception_ptr local_error, MPI_Comm comm) {
  static_assert(std::is_trivially_copyable_v<Rec> && sizeof(Rec) % sizeof(double) == 0);
  int ranks = 0;
  check_mpi(MPI_Comm_size(comm, &ranks), "MPI_Comm_size");
  const size_t per = 1 + local.size() * sizeof(Rec) / sizeof(double), C = local.size();
  std::vector<double> mine(per), all(per * static_cast<size_t>(ranks));
  mine[0] = local_error ? 1.0 : 0.0;
  if (C > 0) std::memcpy(mine.data() + 1, static_cast<const void*>(local.data()), C * sizeof(Rec));
  check_mpi(MPI_Allgather(mine.data(), static_cast<int>(per), MPI_DOUBLE, all.data(),
                          static_cast<int>(per), MPI_DOUBLE, comm),
            "MPI_Allgather");
  if (local_error) std::rethrow_exception(local_error);
  std::vector<Rec> out(C * static_cast<size_t>(ranks));
  for (size_t r = 0; r < static_cast<size_t>(ranks); ++r) {
    if (all[r * per] != 0)
      detail::fail(kOp, "rank " + std::to_string(r) + " of " + std::to_string(ranks) +
                            " had an invalid argument (its own error names it); nothing was written");
    if (C > 0) std::memcpy(static_cast<void*>(out.data() + r * C), all.data() + r * per + 1, C * sizeof(Rec));
  }
  return out;
}

// Channels every rank agrees on before any check: x's C, else the parameters' size.
template <class T>
int64_t agreed_channels(const TensorView<const T>& x, const BatchNormArgs<T>& a) {
  if (x.dim() >= 2) return x.shape[1];
  if (!a.weight.empty()) return static_cast<int64_t>(a.weight.size());
  return static_cast<int64_t>(a.running_mean.size());
}

template <class T>
void check_common(const TensorView<const T>& x, const BatchNormArgs<T>& a, int64_t C) {
  detail::check_channel_args(kOp, x, a);
  if (C <= 0 || x.shape[1] != C)
    detail::fail(kOp, "input has " + std::to_string(x.shape[1]) + " channels, expected num_features=" +
                          std::to_string(C));
}

// Training forward: exchange C x (count, mean, M2), merge, normalize, update running stats.
template <class T>
BatchNormStats forward_synced(TensorView<const T> x, TensorView<T> y, const BatchNormArgs<T>& a,
                              MPI_Comm comm, int64_t C, std::exception_ptr err) {
  std::vector<Moments> local(static_cast<size_t>(std::max<int64_t>(C, 0)));
  if (!err) try {
      check_common(x, a, C);
      detail::check_like(kOp, "output", y, x, true);
      if (!a.running_mean.empty()) detail::check_momentum(kOp, a.momentum);
      detail::check_forward_aliasing(kOp, x, y, a.weight, a.bias, SavedStats<T>{}, a.running_mean, a.running_var,
                                     !a.running_mean.empty());
      local = batch_norm_moments(x);
    } catch (const Error&) {
      err = std::current_exception();
    }
  const std::vector<Moments> merged = combine_moments(exchange(local, err, comm), C);
  BatchNormStats stats = batch_norm_stats_from(merged, a.eps, true);  // same verdict everywhere
  batch_norm_apply(x, y, stats, a.weight, a.bias);
  batch_norm_update_running(merged, a.running_mean, a.running_var, a.momentum);
  return stats;
}

// Training backward: exchange C x (sum dy, sum dy * xhat), then the local dx.
template <class T>
void backward_synced(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                     const BatchNormArgs<T>& a, const BatchNormStats& stats, MPI_Comm comm, int64_t C,
                     std::exception_ptr err, std::span<T> dweight, std::span<T> dbias) {
  std::vector<GradSums> local(static_cast<size_t>(std::max<int64_t>(C, 0)));
  if (!err) try {
      check_common(x, a, C);
      detail::check_like(kOp, "grad_output", dy, x, false);
      if (dx.data) detail::check_like(kOp, "grad_input", dx, x, true);
      detail::check_param(kOp, "grad_weight", dweight, C, "num_channels");
      detail::check_param(kOp, "grad_bias", dbias, C, "num_channels");
      detail::check_backward_aliasing(kOp, dy, x, dx, a.weight, dweight, dbias);
      local = batch_norm_grad_sums(dy, x, stats);
    } catch (const Error&) {
      err = std::current_exception();
    }
  const std::vector<GradSums> merged = combine_grad_sums(exchange(local, err, comm), C);
  batch_norm_backward_apply(dy, x, dx, stats, merged, a.weight, dweight, dbias);
}

template <class T>
std::span<T> mspan(std::vector<T>& v) {
  return {v.data(), v.size()};
}
}  // namespace

template <class T>
BatchNormStats sync_batch_norm_forward(TensorView<const T> x, TensorView<T> y,
                                       const BatchNormArgs<T>& args, MPI_Comm comm) {
  if (!args.training) {
    batch_norm_forward(x, y, args);
    return {};
  }
  return forward_synced(x, y, args, comm, agreed_channels(x, args), nullptr);
}

template <class T>
void sync_batch_norm_backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx,
                              const BatchNormArgs<T>& args, const BatchNormStats& stats,
                              MPI_Comm comm, std::span<T> dweight, std::span<T> dbias) {
  if (!args.training) return batch_norm_backward(dy, x, dx, args, dweight, dbias);
  backward_synced(dy, x, dx, args, stats, comm, agreed_channels(x, args), nullptr, dweight, dbias);
}

// ---- the layer --------------------------------------------------------------------------------
template <class T>
SyncBatchNorm<T>::SyncBatchNorm(int64_t n, MPI_Comm c, Options o) : num_features(n), comm(c), options(o) {
  if (n <= 0) detail::fail(kOp, "num_features=" + std::to_string(n) + " must be positive");
  if (c == MPI_COMM_NULL) detail::fail(kOp, "comm=MPI_COMM_NULL: pass the communicator of the ranks that share a batch");
  if (o.momentum) detail::check_momentum(kOp, *o.momentum);
  detail::check_eps(kOp, o.eps);
  const auto N = static_cast<size_t>(n);
  if (o.affine) weight.assign(N, T(1)), bias.assign(N, T(0)), weight_grad.assign(N, T(0)), bias_grad.assign(N, T(0));
  if (o.track_running_stats) running_mean.assign(N, T(0)), running_var.assign(N, T(1));
}

// As normkit::BatchNorm::args(): batch statistics in training or when none are tracked.
template <class T>
BatchNormArgs<T> SyncBatchNorm<T>::args() {
  BatchNormArgs<T> a;
  a.weight = {weight.data(), weight.size()}, a.bias = {bias.data(), bias.size()}, a.eps = options.eps;
  a.training = training() || !options.track_running_stats;
  if (options.track_running_stats) a.running_mean = mspan(running_mean), a.running_var = mspan(running_var);
  return a;
}

template <class T>
void SyncBatchNorm<T>::forward(TensorView<const T> x, TensorView<T> y) {
  BatchNormArgs<T> a = args();
  if (!synced()) {  // eval: local, no communication (as torch.nn.SyncBatchNorm)
    batch_norm_forward(x, y, a);
    saved = {}, saved_shape_.clear();
    return;
  }
  const bool update = options.track_running_stats;
  if (update) a.momentum = options.momentum ? *options.momentum : 1.0 / double(num_batches_tracked + 1);
  saved = forward_synced(x, y, a, comm, num_features, nullptr);
  saved_shape_ = x.shape;
  if (update) ++num_batches_tracked;
}

template <class T>
void SyncBatchNorm<T>::backward(TensorView<const T> dy, TensorView<const T> x, TensorView<T> dx) {
  BatchNormArgs<T> a = args();
  std::vector<T> dw(weight_grad.size()), db(bias_grad.size());
  if (!synced()) {
    if (a.training) a.running_mean = {}, a.running_var = {};
    batch_norm_backward(dy, x, dx, a, mspan(dw), mspan(db));
  } else {
    std::exception_ptr err;
    if (saved.mean.empty() || saved_shape_ != x.shape)
      err = std::make_exception_ptr(Error(std::string("[") + kOp + "] backward input shape " +
                                          shape_str(x.shape) + " does not match the last training forward (" +
                                          (saved.mean.empty() ? std::string("none") : shape_str(saved_shape_)) + ")"));
    backward_synced(dy, x, dx, a, saved, comm, num_features, err, mspan(dw), mspan(db));
  }
  for (size_t i = 0; i < dw.size(); ++i) weight_grad[i] += dw[i];
  for (size_t i = 0; i < db.size(); ++i) bias_grad[i] += db[i];
}

template <class T>
void SyncBatchNorm<T>::zero_grad() {
  std::fill(weight_grad.begin(), weight_grad.end(), T(0));
  std::fill(bias_grad.begin(), bias_grad.end(), T(0));
}

#define NORMKIT_INSTANTIATE(T)                                                                        \
  template BatchNormStats sync_batch_norm_forward<T>(TensorView<const T>, TensorView<T>,              \
                                                     const BatchNormArgs<T>&, MPI_Comm);              \
  template void sync_batch_norm_backward<T>(TensorView<const T>, TensorView<const T>, TensorView<T>,  \
                                            const BatchNormArgs<T>&, const BatchNormStats&, MPI_Comm, \
                                            std::span<T>, std::span<T>);                              \
  template class SyncBatchNorm<T>;
NORMKIT_INSTANTIATE(float)
NORMKIT_INSTANTIATE(double)

}  // namespace normkit
