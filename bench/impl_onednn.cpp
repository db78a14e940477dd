// impl_onednn.cpp — oneDNN 2.6's batch and layer normalization primitives, in each layout
// they accept (the bench times every candidate and reports the fastest). oneDNN has no group,
// RMS or weight norm; instance norm maps faithfully onto BN over a 1 x (N*C) x H x W view.
#include <dnnl.hpp>

#include <cstring>
#include <string>

#include "bench.hpp"

namespace nkbench {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using flags_t = dnnl::normalization_flags;

// The logical problem oneDNN solves: BN over dims (N, C, H, W), or LN over rows of (M, D).
struct Mapping {
  bool layer_norm = false;
  memory::dims dims;
  int64_t channels = 0;   // BN: C of the mapped problem; LN: D
  int64_t tile = 1;       // instance norm: the affine parameters repeat once per sample
};

Mapping mapping(const Case& c) {
  Mapping m;
  if (c.op == Op::LayerNorm) {
    m.layer_norm = true;
    m.dims = {c.outer(), c.inner()};
    m.channels = c.inner();
  } else if (c.op == Op::InstanceNorm) {  // statistics per (n, c) over H, W == BN on 1 x NC x H x W
    m.dims = {1, c.batch() * c.channels(), c.shape[2], c.shape[3]};
    m.channels = c.batch() * c.channels();
    m.tile = c.batch();
  } else {
    m.dims = {c.shape[0], c.shape[1], c.shape[2], c.shape[3]};
    m.channels = c.channels();
  }
  return m;
}

class OnednnRunner : public Runner {
 public:
  OnednnRunner(const Problem& p, tag layout)
      : c_(*p.c), m_(mapping(c_)), eng_(dnnl::engine::kind::cpu, 0), strm_(eng_) {
    const tag plain = m_.layer_norm ? tag::ab : c_.channels_last ? tag::nhwc : tag::nchw;
    const dt data = c_.dtype == DType::BF16 ? dt::bf16 : c_.dtype == DType::F16 ? dt::f16 : dt::f32;
    plain_md_ = memory::desc(m_.dims, data, plain);
    plain_f32_md_ = memory::desc(m_.dims, dt::f32, plain);
    md_ = memory::desc(m_.dims, data, layout);
    const bool same = layout == plain;
    for (const BufferSet& s : p.sets) {
      Set k;
      k.x = same ? memory(md_, eng_, s.x) : import(s.x);
      k.dy = same ? memory(md_, eng_, s.dy) : import(s.dy);
      k.y = same ? memory(md_, eng_, s.y) : memory(md_, eng_);
      k.dx = same ? memory(md_, eng_, s.dx) : memory(md_, eng_);
      sets_.push_back(k);
    }
    build_params(p);
    build_primitives();
  }

  void forward(int set, bool for_backward) override {
    Set& k = sets_[static_cast<size_t>(set)];
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, k.x}, {DNNL_ARG_DST, k.y}};
    add_params(args);
    const bool train_prim = for_backward || c_.op != Op::BatchNormEval;
    if (m_.layer_norm && !for_backward) {
      ln_infer_.execute(strm_, args);
    } else if (m_.layer_norm) {
      ln_fwd_.execute(strm_, args);
    } else if (train_prim) {
      bn_fwd_.execute(strm_, args);
    } else {
      bn_infer_.execute(strm_, args);
    }
    strm_.wait();
  }

  void backward(int set) override {
    Set& k = sets_[static_cast<size_t>(set)];
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, k.x}, {DNNL_ARG_DIFF_DST, k.dy}, {DNNL_ARG_DIFF_SRC, k.dx}};
    add_params(args);
    if (c_.affine) {
      args[DNNL_ARG_DIFF_SCALE] = dscale_;
      if (c_.has_bias()) args[DNNL_ARG_DIFF_SHIFT] = dshift_;
    }
    if (m_.layer_norm) {
      ln_bwd_.execute(strm_, args);
    } else {
      bn_bwd_.execute(strm_, args);
    }
    strm_.wait();
  }

  Outputs outputs(int set) override {
    Set& k = sets_[static_cast<size_t>(set)];
    Outputs o;
    o["y"] = export_plain(k.y);
    o["dx"] = export_plain(k.dx);
    if (c_.affine) {
      o["dweight"] = untile(dscale_);
      if (c_.has_bias()) o["dbias"] = untile(dshift_);
    }
    return o;
  }

 private:
  struct Set {
    memory x, dy, y, dx;
  };

  memory import(void* p) {
    memory user(plain_md_, eng_, p), m(md_, eng_);
    dnnl::reorder(user, m).execute(strm_, user, m);
    strm_.wait();
    return m;
  }

  std::vector<float> export_plain(memory& m) {  // as float32 (the reorder converts)
    std::vector<float> v(static_cast<size_t>(c_.numel()));
    memory user(plain_f32_md_, eng_, v.data());
    dnnl::reorder(m, user).execute(strm_, m, user);
    strm_.wait();
    return v;
  }

  // Parameter gradients of the mapped problem, summed back over the tiling.
  std::vector<float> untile(memory& m) const {
    const float* p = static_cast<const float*>(m.get_data_handle());
    const int64_t n = c_.param_count();
    std::vector<float> v(static_cast<size_t>(n), 0.0f);
    for (int64_t t = 0; t < m_.tile; ++t) {
      for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] += p[t * n + i];
    }
    return v;
  }

  memory vec(int64_t n) { return memory(memory::desc({n}, dt::f32, tag::a), eng_); }

  void build_params(const Problem& p) {
    const int64_t C = m_.channels;
    auto fill_tiled = [&](memory& m, const std::vector<float>& src) {
      float* d = static_cast<float*>(m.get_data_handle());
      for (int64_t t = 0; t < m_.tile; ++t) std::memcpy(d + t * c_.param_count(), src.data(), src.size() * 4);
    };
    if (c_.affine) {
      scale_ = vec(C);
      dscale_ = vec(C);
      fill_tiled(scale_, p.weight);
      if (c_.has_bias()) {
        shift_ = vec(C);
        dshift_ = vec(C);
        fill_tiled(shift_, p.bias);
      }
    }
    const int64_t stats = m_.layer_norm ? m_.dims[0] : C;
    mean_ = vec(stats);
    var_ = vec(stats);
    if (c_.op == Op::BatchNormEval) {  // oneDNN takes the variance, as the running stats hold it
      std::memcpy(mean_.get_data_handle(), p.running_mean.data(), static_cast<size_t>(C) * 4);
      std::memcpy(var_.get_data_handle(), p.running_var.data(), static_cast<size_t>(C) * 4);
    }
  }

  void add_params(std::unordered_map<int, memory>& args) {
    args[DNNL_ARG_MEAN] = mean_;
    args[DNNL_ARG_VARIANCE] = var_;
    if (c_.affine) {
      args[DNNL_ARG_SCALE] = scale_;
      if (c_.has_bias()) args[DNNL_ARG_SHIFT] = shift_;
    }
  }

  void build_primitives() {
    flags_t f = flags_t::none;
    if (c_.affine) f = f | flags_t::use_scale;
    if (c_.has_bias()) f = f | flags_t::use_shift;
    const float eps = static_cast<float>(c_.eps);
    const auto fwd_train = dnnl::prop_kind::forward_training;
    const auto fwd_infer = dnnl::prop_kind::forward_inference;
    if (m_.layer_norm) {
      using F = dnnl::layer_normalization_forward;
      using B = dnnl::layer_normalization_backward;
      const memory::desc stat({m_.dims[0]}, dt::f32, tag::a);
      F::primitive_desc train(F::desc(fwd_train, md_, stat, eps, f), eng_);
      ln_fwd_ = F(train);
      ln_infer_ = F(F::primitive_desc(F::desc(fwd_infer, md_, stat, eps, f), eng_));
      ln_bwd_ = B(B::primitive_desc(B::desc(dnnl::prop_kind::backward, md_, md_, stat, eps, f), eng_, train));
      return;
    }
    using F = dnnl::batch_normalization_forward;
    using B = dnnl::batch_normalization_backward;
    if (c_.op == Op::BatchNormEval) f = f | flags_t::use_global_stats;
    F::primitive_desc train(F::desc(fwd_train, md_, eps, f), eng_);
    bn_fwd_ = F(train);
    bn_infer_ = F(F::primitive_desc(F::desc(fwd_infer, md_, eps, f), eng_));
    bn_bwd_ = B(B::primitive_desc(B::desc(dnnl::prop_kind::backward, md_, md_, eps, f), eng_, train));
  }

  const Case& c_;
  Mapping m_;
  dnnl::engine eng_;
  dnnl::stream strm_;
  memory::desc plain_md_, plain_f32_md_, md_;
  std::vector<Set> sets_;
  memory scale_, shift_, dscale_, dshift_, mean_, var_;
  dnnl::batch_normalization_forward bn_fwd_, bn_infer_;
  dnnl::batch_normalization_backward bn_bwd_;
  dnnl::layer_normalization_forward ln_fwd_, ln_infer_;
  dnnl::layer_normalization_backward ln_bwd_;
};

}  // namespace

std::vector<Impl> onednn_impls(const Case& c) {
  std::vector<std::pair<tag, std::string>> layouts;
  if (c.op == Op::LayerNorm) {
    layouts = {{tag::ab, c.shape.size() == 4 ? "(N,CHW) rows" : "row-major"}};
  } else if (c.op == Op::InstanceNorm && c.channels_last) {
    // None: the 1 x (N*C) x H x W mapping is not a view of NHWC memory (it would need a
    // transpose), and oneDNN has no instance norm of its own.
  } else if (c.op == Op::InstanceNorm) {
    layouts = {{tag::nchw, "BN 1x(NC)xHxW nchw"}, {tag::nhwc, "BN 1x(NC)xHxW nhwc"},
               {tag::nChw8c, "BN 1x(NC)xHxW nChw8c"}, {tag::nChw16c, "BN 1x(NC)xHxW nChw16c"}};
  } else if (c.is_batch_norm()) {
    layouts = {{tag::nchw, "nchw"}, {tag::nhwc, "nhwc"}, {tag::nChw8c, "nChw8c"}, {tag::nChw16c, "nChw16c"}};
  }
  std::vector<Impl> out;
  for (auto& [t, name] : layouts) {
    tag tt = t;
    out.push_back({"onednn", name, [tt](const Problem& p) { return std::make_unique<OnednnRunner>(p, tt); }});
  }
  return out;
}

std::string onednn_version() {
  const dnnl_version_t* v = dnnl::version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

}  // namespace nkbench
