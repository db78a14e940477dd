// impl_normkit.cpp — normkit through its public functional API (normkit/ops.hpp), with the
// case's storage type (float32, bfloat16, float16; parameters float32 — mixed precision),
// writing into the bench's own y/dx buffers (the ones the copy kernel is timed on).
// Only public headers: the bench measures what a user of the library gets.
#include <span>
#include <vector>

#include "bench.hpp"
#include "problem.hpp"
#include "normkit/normkit.hpp"

namespace nkbench {
namespace {

using normkit::TensorView;

template <class T>
class NormkitRunner : public Runner {
 public:
  explicit NormkitRunner(const Problem& p)
      : p_(p), c_(*p.c), rm_(p.running_mean), rv_(p.running_var),
        dw_(static_cast<size_t>(c_.param_count())), db_(c_.has_bias() ? dw_.size() : 0) {}

  // for_backward: keep the statistics for the backward (SavedStats), as a training step does
  // and as torch keeps save_mean / save_invstd; inference saves nothing.
  void forward(int set, bool for_backward) override {
    const BufferSet& s = p_.sets[static_cast<size_t>(set)];
    TensorView<const T> x(static_cast<const T*>(s.x), c_.shape, c_.strides());
    TensorView<T> y(static_cast<T*>(s.y), c_.shape, c_.strides());
    const normkit::SavedStats<float> sv = for_backward ? saved() : normkit::SavedStats<float>{};
    switch (c_.op) {
      case Op::BatchNormTrain:
      case Op::BatchNormEval: normkit::batch_norm_forward<T, float>(x, y, bn_args(), sv); break;
      case Op::InstanceNorm: normkit::instance_norm_forward<T, float>(x, y, in_args(), sv); break;
      case Op::GroupNorm: normkit::group_norm_forward<T, float>(x, y, gn_args(), sv); break;
      case Op::LayerNorm: normkit::layer_norm_forward<T, float>(x, y, ln_args(), sv); break;
      case Op::RMSNorm: normkit::rms_norm_forward<T, float>(x, y, rms_args(), sv); break;
      case Op::WeightNorm:  // for the backward its norms, as torch's _weight_norm_interface keeps them
        norms_.resize(for_backward ? static_cast<size_t>(c_.shape[0]) : 0);
        normkit::weight_norm_forward<T, float>(x, weight(), y, normkit::WeightNormArgs<T>{0}, norms_);
        break;
    }
  }

  void backward(int set) override {
    const BufferSet& s = p_.sets[static_cast<size_t>(set)];
    TensorView<const T> x(static_cast<const T*>(s.x), c_.shape, c_.strides());
    TensorView<const T> dy(static_cast<const T*>(s.dy), c_.shape, c_.strides());
    TensorView<T> dx(static_cast<T*>(s.dx), c_.shape, c_.strides());
    std::span<float> dw(dw_), db(db_);
    const normkit::SavedStats<float> sv = c_.op == Op::BatchNormEval ? normkit::SavedStats<float>{} : saved();
    switch (c_.op) {
      case Op::BatchNormTrain:
      case Op::BatchNormEval: normkit::batch_norm_backward<T, float>(dy, x, dx, bn_args(), dw, db, sv); break;
      case Op::InstanceNorm: normkit::instance_norm_backward<T, float>(dy, x, dx, in_args(), dw, db, sv); break;
      case Op::GroupNorm: normkit::group_norm_backward<T, float>(dy, x, dx, gn_args(), dw, db, sv); break;
      case Op::LayerNorm: normkit::layer_norm_backward<T, float>(dy, x, dx, ln_args(), dw, db, sv); break;
      case Op::RMSNorm: normkit::rms_norm_backward<T, float>(dy, x, dx, rms_args(), dw, sv); break;
      case Op::WeightNorm:
        normkit::weight_norm_backward<T, float>(dy, x, weight(), dx, dw, normkit::WeightNormArgs<T>{0}, norms_);
        break;
    }
  }

  Outputs outputs(int set) override {
    const BufferSet& s = p_.sets[static_cast<size_t>(set)];
    Outputs o;
    o["y"] = to_float(c_, s.y);
    o["dx"] = to_float(c_, s.dx);
    if (!dw_.empty()) o["dweight"] = dw_;
    if (!db_.empty()) o["dbias"] = db_;
    if (c_.op == Op::BatchNormTrain) {
      o["running_mean"] = rm_;
      o["running_var"] = rv_;
    }
    return o;
  }

 private:
  // One statistic per channel (BatchNorm), per (n, c) (InstanceNorm), per (n, group)
  // (GroupNorm), per row (LayerNorm, RMSNorm); WeightNorm keeps its norms (norms_) instead.
  normkit::SavedStats<float> saved() {
    int64_t n = 0;
    switch (c_.op) {
      case Op::BatchNormTrain:
      case Op::BatchNormEval: n = c_.channels(); break;
      case Op::InstanceNorm: n = c_.batch() * c_.channels(); break;
      case Op::GroupNorm: n = c_.batch() * c_.groups; break;
      case Op::LayerNorm:
      case Op::RMSNorm: n = c_.outer(); break;
      case Op::WeightNorm: return {};
    }
    mean_.resize(static_cast<size_t>(n)), rstd_.resize(static_cast<size_t>(n));
    return {mean_, rstd_};
  }
  std::vector<float> norms_;  // WeightNorm's ||v|| per row, from the forward for the backward
  std::span<const float> weight() const { return p_.weight; }
  std::span<const float> bias() const { return p_.bias; }
  normkit::Shape trailing() const {
    return normkit::Shape(c_.shape.end() - c_.norm_dims, c_.shape.end());
  }
  normkit::BatchNormArgs<T, float> bn_args() {
    normkit::BatchNormArgs<T, float> a;
    a.weight = weight();
    a.bias = bias();
    a.running_mean = rm_;
    a.running_var = rv_;
    a.training = c_.op == Op::BatchNormTrain;
    a.eps = c_.eps;
    return a;
  }
  normkit::InstanceNormArgs<T, float> in_args() const {
    normkit::InstanceNormArgs<T, float> a;
    a.weight = weight();
    a.bias = bias();
    a.eps = c_.eps;
    return a;
  }
  normkit::GroupNormArgs<T, float> gn_args() const {
    normkit::GroupNormArgs<T, float> a;
    a.num_groups = c_.groups;
    a.weight = weight();
    a.bias = bias();
    a.eps = c_.eps;
    return a;
  }
  normkit::LayerNormArgs<T, float> ln_args() const {
    normkit::LayerNormArgs<T, float> a;
    a.normalized_shape = trailing();
    a.weight = weight();
    a.bias = bias();
    a.eps = c_.eps;
    return a;
  }
  normkit::RMSNormArgs<T, float> rms_args() const {
    normkit::RMSNormArgs<T, float> a;
    a.normalized_shape = trailing();
    a.weight = weight();
    a.eps = c_.eps;
    return a;
  }

  const Problem& p_;
  const Case& c_;
  std::vector<float> rm_, rv_, dw_, db_, mean_, rstd_;
};

}  // namespace

std::vector<Impl> normkit_impls(const Case& c) {
  switch (c.dtype) {
    case DType::BF16:
      return {{"normkit", c.layout(), [](const Problem& p) { return std::make_unique<NormkitRunner<normkit::bfloat16>>(p); }}};
    case DType::F16:
      return {{"normkit", c.layout(), [](const Problem& p) { return std::make_unique<NormkitRunner<normkit::float16>>(p); }}};
    default:
      return {{"normkit", c.layout(), [](const Problem& p) { return std::make_unique<NormkitRunner<float>>(p); }}};
  }
}

void normkit_set_threads(int n) { normkit::set_num_threads(n); }

}  // namespace nkbench
