// study/norm_layer.cpp — builds normkit's layers with PyTorch's defaults (eps 1e-5,
// BatchNorm momentum 0.1, affine) and hands them NCHW views of the network's buffers.
#include "norm_layer.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <type_traits>

namespace study {

namespace {
template <class L>
constexpr bool is_sync = false;
#ifdef NORMKIT_WITH_MPI
template <class T>
constexpr bool is_sync<normkit::SyncBatchNorm<T>> = true;
#endif
}  // namespace

NormKind parse_norm(const std::string& name) {
  std::string s = name;
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (s == "bn" || s == "batchnorm" || s == "batch") return NormKind::Batch;
  if (s == "gn" || s == "groupnorm" || s == "group") return NormKind::Group;
  if (s == "ln" || s == "layernorm" || s == "layer") return NormKind::Layer;
  if (s == "in" || s == "instancenorm" || s == "instance") return NormKind::Instance;
  if (s == "none" || s == "no") return NormKind::None;
  throw normkit::Error("[study] norm=" + name +
                              " is not one of bn, gn, ln, in, none");
}

std::string norm_name(NormKind kind) {
  switch (kind) {
    case NormKind::Batch: return "BatchNorm";
    case NormKind::Group: return "GroupNorm";
    case NormKind::Layer: return "LayerNorm";
    case NormKind::Instance: return "InstanceNorm";
    case NormKind::None: break;
  }
  return "none";
}

template <class T>
NormLayer<T>::NormLayer(NormKind kind, int c, int h, int w, int groups, bool sync)
    : kind_(kind), c_(c), h_(h), w_(w) {
  if (sync && kind == NormKind::Batch) {
#ifdef NORMKIT_WITH_MPI
    layer_.template emplace<normkit::SyncBatchNorm<T>>(c, MPI_COMM_WORLD);
    return;
#else
    throw normkit::Error("[study] SyncBatchNorm needs MPI: this normkit was built without it "
                         "(apt-get install libopenmpi-dev openmpi-bin, then reconfigure)");
#endif
  }
  switch (kind) {
    case NormKind::Batch: layer_.template emplace<normkit::BatchNorm<T>>(c); break;
    case NormKind::Group: layer_.template emplace<normkit::GroupNorm<T>>(groups, c); break;
    case NormKind::Layer:
      layer_.template emplace<normkit::LayerNorm<T>>(normkit::Shape{c, h, w});
      break;
    case NormKind::Instance: {
      typename normkit::InstanceNorm<T>::Options o;
      o.affine = true;
      layer_.template emplace<normkit::InstanceNorm<T>>(c, o);
      break;
    }
    case NormKind::None: break;
  }
}

template <class T>
void NormLayer<T>::forward(const T* x, int n, T* y) {
  const normkit::Shape shape{n, c_, h_, w_};
  if (kind_ == NormKind::None) {
    std::copy(x, x + normkit::numel(shape), y);
    return;
  }
  std::visit(
      [&](auto& l) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(l)>, std::monostate>)
          l.forward(normkit::TensorView<const T>(x, shape), normkit::TensorView<T>(y, shape));
      },
      layer_);
}

template <class T>
void NormLayer<T>::backward(const T* dy, const T* x, int n, T* dx) {
  const normkit::Shape shape{n, c_, h_, w_};
  if (kind_ == NormKind::None) {
    std::copy(dy, dy + normkit::numel(shape), dx);
    return;
  }
  std::visit(
      [&](auto& l) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(l)>, std::monostate>)
          l.backward(normkit::TensorView<const T>(dy, shape), normkit::TensorView<const T>(x, shape),
                     normkit::TensorView<T>(dx, shape));
      },
      layer_);
}

template <class T>
void NormLayer<T>::train(bool on) {
  std::visit(
      [&](auto& l) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(l)>, std::monostate>) l.train(on);
      },
      layer_);
}

template <class T>
void NormLayer<T>::params(std::vector<ParamRef<T>>& out) {
  std::visit(
      [&](auto& l) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(l)>, std::monostate>) {
          l.weight_grad.resize(l.weight.size());
          l.bias_grad.resize(l.bias.size());
          constexpr bool reduced = is_sync<std::decay_t<decltype(l)>>;
          if (!l.weight.empty())
            out.push_back({l.weight.data(), l.weight_grad.data(), l.weight.size(), false, reduced});
          if (!l.bias.empty()) out.push_back({l.bias.data(), l.bias_grad.data(), l.bias.size(), false, reduced});
        }
      },
      layer_);
}

template <class T>
void NormLayer<T>::buffers(std::vector<std::vector<T>*>& out) {
  std::visit(
      [&](auto& l) {
        using L = std::decay_t<decltype(l)>;
        if constexpr (std::is_same_v<L, normkit::BatchNorm<T>> || is_sync<L>) {
          if (!l.running_mean.empty()) out.push_back(&l.running_mean);
          if (!l.running_var.empty()) out.push_back(&l.running_var);
        }
      },
      layer_);
}

template class NormLayer<float>;
template class NormLayer<double>;

}  // namespace study
