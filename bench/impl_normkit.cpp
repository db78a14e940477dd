// impl_normkit.cpp — normkit through its public functional API (normkit/ops.hpp), float32,
// writing into the bench's own y/dx buffers (the ones the copy kernel is timed on).
// Only public headers: the bench measures what a user of the library gets.
#include <span>

#include "bench.hpp"
#include "normkit/normkit.hpp"

namespace nkbench {
namespace {

using normkit::TensorView;

class NormkitRunner : public Runner {
 public:
  explicit NormkitRunner(const Problem& p)
      : p_(p), c_(*p.c), rm_(p.running_mean), rv_(p.running_var),
        dw_(static_cast<size_t>(c_.param_count())), db_(c_.has_bias() ? dw_.size() : 0) {}

  void forward(int set, bool) override {
    const BufferSet& s = p_.sets[static_cast<size_t>(set)];
    TensorView<const float> x(s.x, c_.shape);
    TensorView<float> y(s.y, c_.shape);
    switch (c_.op) {
      case Op::BatchNormTrain:
      case Op::BatchNormEval: normkit::batch_norm_forward<float>(x, y, bn_args()); break;
      case Op::InstanceNorm: normkit::instance_norm_forward<float>(x, y, in_args()); break;
      case Op::GroupNorm: normkit::group_norm_forward<float>(x, y, gn_args()); break;
      case Op::LayerNorm: normkit::layer_norm_forward<float>(x, y, ln_args()); break;
      case Op::RMSNorm: normkit::rms_norm_forward<float>(x, y, rms_args()); break;
      case Op::WeightNorm:
        normkit::weight_norm_forward<float>(x, weight(), y, normkit::WeightNormArgs<float>{0});
        break;
    }
  }

  void backward(int set) override {
    const BufferSet& s = p_.sets[static_cast<size_t>(set)];
    TensorView<const float> x(s.x, c_.shape), dy(s.dy, c_.shape);
    TensorView<float> dx(s.dx, c_.shape);
    std::span<float> dw(dw_), db(db_);
    switch (c_.op) {
      case Op::BatchNormTrain:
      case Op::BatchNormEval: normkit::batch_norm_backward<float>(dy, x, dx, bn_args(), dw, db); break;
      case Op::InstanceNorm: normkit::instance_norm_backward<float>(dy, x, dx, in_args(), dw, db); break;
      case Op::GroupNorm: normkit::group_norm_backward<float>(dy, x, dx, gn_args(), dw, db); break;
      case Op::LayerNorm: normkit::layer_norm_backward<float>(dy, x, dx, ln_args(), dw, db); break;
      case Op::RMSNorm: normkit::rms_norm_backward<float>(dy, x, dx, rms_args(), dw); break;
      case Op::WeightNorm:
        normkit::weight_norm_backward<float>(dy, x, weight(), dx, dw, normkit::WeightNormArgs<float>{0});
        break;
    }
  }

  Outputs outputs(int set) override {
    const BufferSet& s = p_.sets[static_cast<size_t>(set)];
    const size_t n = static_cast<size_t>(c_.numel());
    Outputs o;
    o["y"].assign(s.y, s.y + n);
    o["dx"].assign(s.dx, s.dx + n);
    if (!dw_.empty()) o["dweight"] = dw_;
    if (!db_.empty()) o["dbias"] = db_;
    if (c_.op == Op::BatchNormTrain) {
      o["running_mean"] = rm_;
      o["running_var"] = rv_;
    }
    return o;
  }

 private:
  std::span<const float> weight() const { return p_.weight; }
  std::span<const float> bias() const { return p_.bias; }
  normkit::Shape trailing() const {
    return normkit::Shape(c_.shape.end() - c_.norm_dims, c_.shape.end());
  }
  normkit::BatchNormArgs<float> bn_args() {
    normkit::BatchNormArgs<float> a;
    a.weight = weight();
    a.bias = bias();
    a.running_mean = rm_;
    a.running_var = rv_;
    a.training = c_.op == Op::BatchNormTrain;
    a.eps = c_.eps;
    return a;
  }
  normkit::InstanceNormArgs<float> in_args() const {
    normkit::InstanceNormArgs<float> a;
    a.weight = weight();
    a.bias = bias();
    a.eps = c_.eps;
    return a;
  }
  normkit::GroupNormArgs<float> gn_args() const {
    normkit::GroupNormArgs<float> a;
    a.num_groups = c_.groups;
    a.weight = weight();
    a.bias = bias();
    a.eps = c_.eps;
    return a;
  }
  normkit::LayerNormArgs<float> ln_args() const {
    normkit::LayerNormArgs<float> a;
    a.normalized_shape = trailing();
    a.weight = weight();
    a.bias = bias();
    a.eps = c_.eps;
    return a;
  }
  normkit::RMSNormArgs<float> rms_args() const {
    normkit::RMSNormArgs<float> a;
    a.normalized_shape = trailing();
    a.weight = weight();
    a.eps = c_.eps;
    return a;
  }

  const Problem& p_;
  const Case& c_;
  std::vector<float> rm_, rv_, dw_, db_;
};

}  // namespace

std::vector<Impl> normkit_impls(const Case& c) {
  const char* layout = c.shape.size() == 4 ? "nchw" : "row-major";
  return {{"normkit", layout, [](const Problem& p) { return std::make_unique<NormkitRunner>(p); }}};
}

void normkit_set_threads(int n) { normkit::set_num_threads(n); }

}  // namespace nkbench
