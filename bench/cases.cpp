// cases.cpp — the benchmark cases of issue 3, one line each, and the shape arithmetic on them.
// The shapes are the issue's; everything else (affine, eps) is PyTorch's module default except
// RMSNorm's eps, fixed at 1e-6 as LLaMA-style models set it, so all three libraries agree.
#include <string>

#include "bench.hpp"

namespace nkbench {

int64_t Case::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

int64_t Case::spatial() const {
  int64_t n = 1;
  for (size_t i = 2; i < shape.size(); ++i) n *= shape[i];
  return n;
}

int64_t Case::inner() const {
  int64_t n = 1;
  for (size_t i = shape.size() - static_cast<size_t>(norm_dims); i < shape.size(); ++i) n *= shape[i];
  return n;
}

int64_t Case::param_count() const {
  if (!affine) return 0;
  switch (op) {
    case Op::LayerNorm:
    case Op::RMSNorm: return inner();
    case Op::WeightNorm: return shape[0];
    default: return channels();
  }
}

std::string Case::shape_str() const {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += 'x';
    s += std::to_string(shape[i]);
  }
  return s;
}

std::vector<int64_t> Case::strides() const {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  if (channels_last) {  // C innermost, then the spatial dims, then N
    int64_t st = shape[1];
    for (size_t i = shape.size(); i-- > 2;) s[i] = st, st *= shape[i];
    s[1] = 1, s[0] = st;
  }
  return s;
}

std::string Case::layout() const {
  if (shape.size() != 4) return "row-major";
  return channels_last ? "nhwc" : "nchw";
}

const std::vector<Case>& all_cases() {
  // Issue 6's channels-last rows: the NCHW cases above them, held NHWC.
  auto nhwc = [](Case c) {
    c.name += "_nhwc";
    c.channels_last = true;
    return c;
  };
  // Issue 6's half-precision rows: activations in bfloat16 / float16, parameters float32.
  auto half = [](Case c, DType t) {
    c.name += t == DType::BF16 ? "_bf16" : "_f16";
    c.dtype = t;
    return c;
  };
  static const std::vector<Case> cases = {
      {"bn_train", Op::BatchNormTrain, {32, 256, 14, 14}},
      {"bn_eval", Op::BatchNormEval, {32, 256, 14, 14}},
      {"bn_train_big", Op::BatchNormTrain, {16, 64, 112, 112}},
      {"ln_chw", Op::LayerNorm, {32, 256, 14, 14}, 0, 3},
      {"in_affine", Op::InstanceNorm, {32, 256, 14, 14}},
      {"in_style", Op::InstanceNorm, {1, 128, 256, 256}, 0, 0, /*affine=*/false},
      {"gn32", Op::GroupNorm, {32, 256, 14, 14}, 32},
      {"gn32_detect", Op::GroupNorm, {2, 256, 100, 152}, 32},
      {"ln_last", Op::LayerNorm, {4096, 4096}, 0, 1},
      {"rms_last", Op::RMSNorm, {4096, 4096}, 0, 1, true, 1e-6},
      {"weight_norm", Op::WeightNorm, {4096, 4096}},
      nhwc({"bn_train", Op::BatchNormTrain, {32, 256, 14, 14}}),
      nhwc({"bn_train_big", Op::BatchNormTrain, {16, 64, 112, 112}}),
      nhwc({"in_affine", Op::InstanceNorm, {32, 256, 14, 14}}),
      nhwc({"gn32", Op::GroupNorm, {32, 256, 14, 14}, 32}),
      half({"bn_train", Op::BatchNormTrain, {32, 256, 14, 14}}, DType::BF16),
      half({"ln_last", Op::LayerNorm, {4096, 4096}, 0, 1}, DType::BF16),
      half({"rms_last", Op::RMSNorm, {4096, 4096}, 0, 1, true, 1e-6}, DType::BF16),
      half({"rms_last", Op::RMSNorm, {4096, 4096}, 0, 1, true, 1e-6}, DType::F16),
  };
  return cases;
}

}  // namespace nkbench
