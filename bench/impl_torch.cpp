// impl_torch.cpp — PyTorch's CPU kernels through libtorch (ATen), called the way torch.nn
// calls them: native_* ops for BN/LN/GN and weight norm, the composite instance_norm and the
// user-written RMSNorm expression with autograd. Per-op headers only, to keep compile time low.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/_weight_norm.h>
#include <ATen/ops/_weight_norm_interface.h>
#include <ATen/ops/_weight_norm_interface_backward.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/instance_norm.h>
#include <ATen/ops/native_batch_norm.h>
#include <ATen/ops/native_batch_norm_backward.h>
#include <ATen/ops/native_group_norm.h>
#include <ATen/ops/native_group_norm_backward.h>
#include <ATen/ops/native_layer_norm.h>
#include <ATen/ops/native_layer_norm_backward.h>
#include <torch/csrc/api/include/torch/version.h>

#include <cstring>

#include "bench.hpp"

namespace nkbench {
namespace {

// A tensor over the bench's own buffer (no copy, no ownership): torch reads exactly the
// memory normkit reads.
at::ScalarType scalar_type(const Case& c) {
  return c.dtype == DType::BF16 ? at::kBFloat16 : c.dtype == DType::F16 ? at::kHalf : at::kFloat;
}

at::Tensor view(void* p, const Case& c) {
  return at::from_blob(p, c.shape, c.strides(), at::TensorOptions().dtype(scalar_type(c)));
}

// Parameters and running statistics in the activation's dtype, as after module.to(dtype)
// (torch 1.13's CPU kernels take no float parameters with half activations).
at::Tensor owned(const std::vector<float>& v, std::vector<int64_t> shape, const Case& c) {
  if (v.empty()) return at::Tensor();
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
  std::memcpy(t.data_ptr<float>(), v.data(), v.size() * sizeof(float));
  return t.to(scalar_type(c));
}

// As float32, in memory order: row-major, or NHWC for a channels-last activation.
std::vector<float> to_vector(const at::Tensor& t, bool channels_last = false) {
  if (!t.defined()) return {};
  at::Tensor f = t.to(at::kFloat);
  at::Tensor c = channels_last ? f.contiguous(at::MemoryFormat::ChannelsLast) : f.contiguous();
  const float* p = c.data_ptr<float>();
  return std::vector<float>(p, p + c.numel());
}

class TorchRunner : public Runner {
 public:
  explicit TorchRunner(const Problem& p) : c_(*p.c) {
    for (const BufferSet& s : p.sets) {
      x_.push_back(view(s.x, c_));
      dy_.push_back(view(s.dy, c_));
      if (autograd()) xg_.push_back(view(s.x, c_).set_requires_grad(true));
    }
    std::vector<int64_t> pshape = {c_.param_count()};
    if (c_.op == Op::LayerNorm || c_.op == Op::RMSNorm) {
      pshape.assign(c_.shape.end() - c_.norm_dims, c_.shape.end());
    }
    if (c_.op == Op::WeightNorm) pshape = {c_.shape[0], 1};
    w_ = owned(p.weight, pshape, c_);
    b_ = owned(p.bias, pshape, c_);
    if (autograd() && w_.defined()) wg_ = w_.clone().set_requires_grad(true);
    if (autograd() && b_.defined()) bg_ = b_.clone().set_requires_grad(true);
    rm_ = owned(p.running_mean, {c_.channels()}, c_);
    rv_ = owned(p.running_var, {c_.channels()}, c_);
  }

  void forward(int set, bool for_backward) override {
    const at::Tensor& x = x_[static_cast<size_t>(set)];
    switch (c_.op) {
      case Op::BatchNormTrain:
      case Op::BatchNormEval:
        std::tie(y_, s1_, s2_) = at::native_batch_norm(x, w_, b_, rm_, rv_, training(), 0.1, c_.eps);
        break;
      case Op::LayerNorm:
        std::tie(y_, s1_, s2_) = at::native_layer_norm(x, normalized_shape(), w_, b_, c_.eps);
        break;
      case Op::GroupNorm:
        std::tie(y_, s1_, s2_) = at::native_group_norm(x, w_, b_, c_.batch(), c_.channels(), c_.spatial(),
                                                       c_.groups, c_.eps);
        break;
      case Op::InstanceNorm:
        if (for_backward) {
          y_ = at::instance_norm(xg_[static_cast<size_t>(set)], wg_, bg_, {}, {}, true, 0.1, c_.eps, false);
        } else {
          y_ = at::instance_norm(x, w_, b_, {}, {}, true, 0.1, c_.eps, false);
        }
        break;
      case Op::RMSNorm: {
        // As PyTorch 1.13 users write it (there is no fused rms_norm): x * rsqrt(mean(x^2) + eps) * w
        const at::Tensor& xx = for_backward ? xg_[static_cast<size_t>(set)] : x;
        const at::Tensor& w = for_backward ? wg_ : w_;
        y_ = xx.mul(xx.pow(2).mean({-1}, true).add(c_.eps).rsqrt()).mul(w);
        break;
      }
      case Op::WeightNorm:
        if (for_backward) {
          std::tie(y_, s1_) = at::_weight_norm_interface(x, w_, 0);
        } else {
          y_ = at::_weight_norm(x, w_, 0);
        }
        break;
    }
  }

  void backward(int set) override {
    const size_t k = static_cast<size_t>(set);
    const at::Tensor& x = x_[k];
    const at::Tensor& dy = dy_[k];
    switch (c_.op) {
      case Op::BatchNormTrain:
      case Op::BatchNormEval:
        std::tie(dx_, dw_, db_) = at::native_batch_norm_backward(dy, x, w_, rm_, rv_, s1_, s2_, training(),
                                                                 c_.eps, {true, true, true});
        break;
      case Op::LayerNorm:
        std::tie(dx_, dw_, db_) = at::native_layer_norm_backward(dy, x, normalized_shape(), s1_, s2_, w_, b_,
                                                                 {true, true, true});
        break;
      case Op::GroupNorm:
        std::tie(dx_, dw_, db_) = at::native_group_norm_backward(dy, x, s1_, s2_, w_, c_.batch(), c_.channels(),
                                                                 c_.spatial(), c_.groups, {true, true, true});
        break;
      case Op::InstanceNorm:
      case Op::RMSNorm:
        for (const at::Tensor* t : {&xg_[k], &wg_, &bg_}) {
          if (t->defined()) t->mutable_grad().reset();
        }
        y_.backward(dy);
        dx_ = xg_[k].grad();
        dw_ = wg_.defined() ? wg_.grad() : at::Tensor();
        db_ = bg_.defined() ? bg_.grad() : at::Tensor();
        break;
      case Op::WeightNorm:
        std::tie(dx_, dw_) = at::_weight_norm_interface_backward(dy, x, w_, s1_, 0);
        break;
    }
  }

  Outputs outputs(int) override {
    Outputs o;
    o["y"] = to_vector(y_, c_.channels_last);
    if (dx_.defined()) o["dx"] = to_vector(dx_, c_.channels_last);
    if (dw_.defined()) o["dweight"] = to_vector(dw_);
    if (db_.defined()) o["dbias"] = to_vector(db_);
    if (c_.op == Op::BatchNormTrain) {
      o["running_mean"] = to_vector(rm_);
      o["running_var"] = to_vector(rv_);
    }
    return o;
  }

 private:
  bool autograd() const { return c_.op == Op::InstanceNorm || c_.op == Op::RMSNorm; }
  bool training() const { return c_.op == Op::BatchNormTrain; }
  at::IntArrayRef normalized_shape() const {
    return at::IntArrayRef(c_.shape.data() + c_.shape.size() - static_cast<size_t>(c_.norm_dims),
                           static_cast<size_t>(c_.norm_dims));
  }

  const Case& c_;
  std::vector<at::Tensor> x_, dy_, xg_;
  at::Tensor w_, b_, wg_, bg_, rm_, rv_;
  at::Tensor y_, s1_, s2_, dx_, dw_, db_;
};

}  // namespace

std::vector<Impl> torch_impls(const Case& c) {
  return {{"torch", c.layout(), [](const Problem& p) { return std::make_unique<TorchRunner>(p); }}};
}

void torch_set_threads(int n) { at::set_num_threads(n); }

std::string torch_version() { return TORCH_VERSION; }

}  // namespace nkbench
