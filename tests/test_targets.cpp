// test_targets.cpp — every SIMD target this build compiled (AVX-512, AVX2, SSE4, ...), not
// only the one the machine picks: LayerNorm, RMSNorm and BatchNorm forward and backward in
// float and bfloat16 on rows with tails, starting at an odd element (unaligned), agree with
// the best target's results to rounding, as do BatchNorm and InstanceNorm on channels-last
// views of the same data. Highway's dispatch is forced per target, so a
// primitive that only breaks on a lesser target (an aligned load, a lane order) shows here.
#include <hwy/targets.h>

#include "test_util.hpp"

namespace {
using namespace nk_test;
using normkit::bfloat16;

struct Inputs {
  std::vector<float> x, dy, w, b;
};

// Outputs of a few ops on a (rows, cols) tensor that starts one element into its buffer.
template <class T>
std::vector<double> outputs(int64_t rows, int64_t cols, const Inputs& in) {
  const Shape sh{rows, cols};
  std::vector<T> x(in.x.begin(), in.x.end()), dy(in.dy.begin(), in.dy.end()), y(x.size()), dx(x.size());
  const std::vector<float>& w = in.w;
  const std::vector<float>& b = in.b;
  std::vector<float> dw(static_cast<size_t>(cols)), db(static_cast<size_t>(cols));
  const normkit::TensorView<const T> xv(x.data() + 1, sh), dyv(dy.data() + 1, sh);
  const normkit::TensorView<T> yv(y.data() + 1, sh), dxv(dx.data() + 1, sh);
  std::vector<double> out;
  auto keep = [&](const std::vector<T>& v) {
    for (size_t i = 1; i < v.size(); ++i) out.push_back(double(float(v[i])));
  };
  normkit::LayerNormArgs<T, float> ln;
  ln.normalized_shape = {cols}, ln.weight = w, ln.bias = b;
  normkit::layer_norm_forward<T, float>(xv, yv, ln);
  normkit::layer_norm_backward<T, float>(dyv, xv, dxv, ln, dw, db);
  keep(y), keep(dx), out.insert(out.end(), dw.begin(), dw.end());
  normkit::RMSNormArgs<T, float> rms;
  rms.normalized_shape = {cols}, rms.weight = w;
  normkit::rms_norm_forward<T, float>(xv, yv, rms);
  normkit::rms_norm_backward<T, float>(dyv, xv, dxv, rms, dw);
  keep(y), keep(dx);
  const Shape nchw{rows, 1, cols, 1};  // BatchNorm over one channel: runs of `cols`
  std::vector<float> rm(1, 0.f), rv(1, 1.f), w1(1, 1.5f), b1(1, 0.25f), dw1(1), db1(1);
  normkit::BatchNormArgs<T, float> bn;
  bn.weight = w1, bn.bias = b1, bn.running_mean = rm, bn.running_var = rv, bn.training = true;
  const normkit::TensorView<const T> x4(x.data() + 1, nchw), dy4(dy.data() + 1, nchw);
  normkit::batch_norm_forward<T, float>(x4, normkit::TensorView<T>(y.data() + 1, nchw), bn);
  normkit::batch_norm_backward<T, float>(dy4, x4, normkit::TensorView<T>(dx.data() + 1, nchw), bn, dw1, db1);
  keep(y), keep(dx);
  // NCHW with `rows` channels of `cols` pixels, eval: the forward writes the channels as one
  // span (rows::scale_shift_span), vectors straddling two channels.
  const Shape spans{1, rows, cols, 1};
  const size_t R = static_cast<size_t>(rows);
  std::vector<float> rms_(R, 0.f), rvs(R, 1.f), ws(w.begin(), w.begin() + std::min(w.size(), R)), bs(ws);
  ws.resize(R, 0.75f), bs.resize(R, -0.5f);
  normkit::BatchNormArgs<T, float> bns;
  bns.weight = ws, bns.bias = bs, bns.running_mean = rms_, bns.running_var = rvs, bns.training = false;
  normkit::batch_norm_forward<T, float>(normkit::TensorView<const T>(x.data() + 1, spans),
                                        normkit::TensorView<T>(y.data() + 1, spans), bns);
  keep(y);
  // Channels-last: `rows` pixels of `cols` channels, BatchNorm's consecutive-run column passes
  // (C stride 1, H stride cols) and InstanceNorm's per-image fusion.
  const Shape nhwc{1, cols, rows, 1};
  const normkit::Strides cl{rows * cols, 1, cols, cols};
  const size_t C = static_cast<size_t>(cols);
  std::vector<float> rmc(C, 0.f), rvc(C, 1.f), dwc(C), dbc(C);
  normkit::BatchNormArgs<T, float> bnc;
  bnc.weight = w, bnc.bias = b, bnc.running_mean = rmc, bnc.running_var = rvc, bnc.training = true;
  const normkit::TensorView<const T> xc(x.data() + 1, nhwc, cl), dyc(dy.data() + 1, nhwc, cl);
  const normkit::TensorView<T> yc(y.data() + 1, nhwc, cl), dxc(dx.data() + 1, nhwc, cl);
  normkit::batch_norm_forward<T, float>(xc, yc, bnc);
  normkit::batch_norm_backward<T, float>(dyc, xc, dxc, bnc, dwc, dbc);
  keep(y), keep(dx), out.insert(out.end(), dwc.begin(), dwc.end());
  normkit::InstanceNormArgs<T, float> in_args;
  in_args.weight = w, in_args.bias = b;
  normkit::instance_norm_forward<T, float>(xc, yc, in_args);
  normkit::instance_norm_backward<T, float>(dyc, xc, dxc, in_args, dwc, dbc);
  keep(y), keep(dx), out.insert(out.end(), dbc.begin(), dbc.end());
  return out;
}

template <class T>
void every_target_agrees(double tol) {
  std::vector<int64_t> targets;
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) targets.push_back(t);
  ASSERT_FALSE(targets.empty());
  // 70 rows: channels-last statistics of 64 elements and more take the float-lane dx
  for (int64_t rows : {7, 70}) {
    for (int64_t cols : {5, 37, 100, 1027}) {
      const Inputs in{random_vec<float>(rows * cols + 1, 0.5, 2.0), random_vec<float>(rows * cols + 1),
                      random_vec<float>(cols, 1.0, 0.3), random_vec<float>(cols)};
      hwy::SetSupportedTargetsForTest(0);
      const auto best = outputs<T>(rows, cols, in);
      for (int64_t t : targets) {
        hwy::SetSupportedTargetsForTest(t);
        const auto got = outputs<T>(rows, cols, in);
        hwy::SetSupportedTargetsForTest(0);
        ASSERT_EQ(got.size(), best.size());
        double worst = 0, scale = 1e-30;
        for (size_t i = 0; i < got.size(); ++i)
          worst = std::max(worst, std::abs(got[i] - best[i])), scale = std::max(scale, std::abs(best[i]));
        EXPECT_LE(worst / scale, tol) << hwy::TargetName(t) << " rows=" << rows << " cols=" << cols;
      }
    }
  }
}

TEST(Targets, FloatAgreesOnEveryCompiledTarget) { every_target_agrees<float>(1e-5); }
TEST(Targets, BFloat16AgreesOnEveryCompiledTarget) { every_target_agrees<bfloat16>(2e-2); }
}  // namespace
