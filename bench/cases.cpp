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

const std::vector<Case>& all_cases() {
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
  };
  return cases;
}

}  // namespace nkbench
