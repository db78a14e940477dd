// study/net.cpp — forward and backward through the three conv stages, the pool and the
// classifier. A convolution has a bias only when no normalization follows it (a norm's
// mean subtraction would cancel the bias).
#include "net.hpp"

#include <algorithm>

namespace study {

template <class T>
Net<T>::Net(const NetConfig& cfg) : cfg_(cfg), fc_(cfg.c3, cfg.classes) {
  const bool bias = cfg.norm == NormKind::None;
  const int chans[4] = {1, cfg.c1, cfg.c2, cfg.c3};
  const int strides[3] = {1, 2, 2};
  int h = cfg.in_h, w = cfg.in_w;
  stages_.reserve(3);
  for (int s = 0; s < 3; ++s) {
    Conv2d<T> conv(chans[s], chans[s + 1], 3, strides[s], 1, bias);
    const int oh = conv.out_size(h), ow = conv.out_size(w);
    stages_.push_back(Stage{std::move(conv),
                            NormLayer<T>(cfg.norm, chans[s + 1], oh, ow, cfg.groups, cfg.sync_bn),
                            h, w, oh, ow, {}, {}, {}, {}, {}});
    h = oh;
    w = ow;
  }
  for (Stage& st : stages_) {
    params_.push_back({st.conv.weight.data(), st.conv.weight_grad.data(), st.conv.weight.size(), true});
    if (bias) params_.push_back({st.conv.bias.data(), st.conv.bias_grad.data(), st.conv.bias.size(), false});
    st.norm.params(params_);
  }
  params_.push_back({fc_.weight.data(), fc_.weight_grad.data(), fc_.weight.size(), true});
  params_.push_back({fc_.bias.data(), fc_.bias_grad.data(), fc_.bias.size(), false});
}

template <class T>
void Net<T>::init(Rng& rng) {
  for (Stage& st : stages_) st.conv.init(rng);
  fc_.init(rng);
}

template <class T>
void Net<T>::resize(int n) {
  if (n == n_) return;
  n_ = n;
  for (Stage& st : stages_) {
    const size_t sz = static_cast<size_t>(n) * st.conv.cout * st.oh * st.ow;
    for (auto* v : {&st.a, &st.b, &st.c, &st.da, &st.db}) v->assign(sz, T(0));
  }
  pooled_.assign(static_cast<size_t>(n) * cfg_.c3, T(0));
  dpooled_.assign(pooled_.size(), T(0));
  logits_.assign(static_cast<size_t>(n) * cfg_.classes, T(0));
  dc_.assign(stages_.back().c.size(), T(0));
}

template <class T>
const T* Net<T>::forward(const T* x, int n) {
  resize(n);
  const T* in = x;
  for (Stage& st : stages_) {
    st.conv.forward(in, n, st.h, st.w, st.a.data());
    st.norm.forward(st.a.data(), n, st.b.data());
    relu_forward(st.b.data(), static_cast<int64_t>(st.b.size()), st.c.data());
    in = st.c.data();
  }
  const Stage& last = stages_.back();
  gap_forward(last.c.data(), n, cfg_.c3, last.oh * last.ow, pooled_.data());
  fc_.forward(pooled_.data(), n, logits_.data());
  return logits_.data();
}

template <class T>
void Net<T>::backward(const T* x, const T* dlogits, int n) {
  fc_.backward(pooled_.data(), dlogits, n, dpooled_.data());
  Stage& last = stages_.back();
  gap_backward(dpooled_.data(), n, cfg_.c3, last.oh * last.ow, dc_.data());
  // dc_ holds d(relu output) of the current stage; conv backward writes the previous one's.
  for (int s = 2; s >= 0; --s) {
    Stage& st = stages_[s];
    relu_backward(st.c.data(), dc_.data(), static_cast<int64_t>(st.c.size()), st.db.data());
    st.norm.backward(st.db.data(), st.a.data(), n, st.da.data());
    const T* in = s == 0 ? x : stages_[s - 1].c.data();
    if (s > 0) dc_.resize(stages_[s - 1].c.size());
    st.conv.backward(in, st.da.data(), n, st.h, st.w, s == 0 ? nullptr : dc_.data());
  }
  dc_.resize(last.c.size());
}

template <class T>
void Net<T>::train(bool on) {
  for (Stage& st : stages_) st.norm.train(on);
}

template <class T>
std::vector<std::vector<T>*> Net<T>::buffers() {
  std::vector<std::vector<T>*> out;
  for (Stage& st : stages_) st.norm.buffers(out);
  return out;
}

template <class T>
void Net<T>::zero_grad() {
  for (ParamRef<T>& p : params_) std::fill(p.grad, p.grad + p.size, T(0));
}

template class Net<float>;
template class Net<double>;

}  // namespace study
