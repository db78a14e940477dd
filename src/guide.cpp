// guide.cpp — the decision guide (which normalization for which situation, and why) and the
// family table for a concrete shape. Pure data and string formatting: the table's plan
// patterns come from ReductionPlan::build, so the table can never disagree with the engine.
#include "normkit/guide.hpp"

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "normkit/plan.hpp"

namespace normkit {
namespace {

struct ArchName {
  const char* name;
  Architecture arch;
};
// Canonical names first (what architecture_name prints), then aliases.
constexpr ArchName kCanonical[] = {
    {"cnn", Architecture::CNN},
    {"transformer", Architecture::Transformer},
    {"llama-lm", Architecture::LlamaLM},
    {"rnn", Architecture::RNN},
    {"online", Architecture::Online},
    {"style-transfer", Architecture::StyleTransfer},
    {"image-generation", Architecture::ImageGeneration},
};
constexpr ArchName kAliases[] = {
    {"llama", Architecture::LlamaLM},         {"lm", Architecture::LlamaLM},
    {"style", Architecture::StyleTransfer},   {"gan", Architecture::ImageGeneration},
    {"diffusion", Architecture::ImageGeneration},
};

std::string accepted_names() {
  std::string s;
  for (const auto& a : kCanonical) s += (s.empty() ? "" : ", ") + std::string(a.name);
  s += " (aliases:";
  for (const auto& a : kAliases) s += " " + std::string(a.name);
  return s + ")";
}

// Axis letters of an (N, C, *spatial) activation.
std::vector<std::string> axis_names(size_t rank) {
  switch (rank) {
    case 2: return {"N", "C"};
    case 3: return {"N", "C", "L"};
    case 4: return {"N", "C", "H", "W"};
    case 5: return {"N", "C", "D", "H", "W"};
    default: {
      std::vector<std::string> names{"N", "C"};
      for (size_t i = 2; i < rank; ++i) names.push_back("S" + std::to_string(i - 1));
      return names;
    }
  }
}

std::string join(const std::vector<std::string>& parts, size_t from, size_t to) {
  std::string s;
  for (size_t i = from; i < to; ++i) s += (i == from ? "" : ",") + parts[i];
  return s.empty() ? "(none)" : s;
}

std::vector<int64_t> range_axes(int64_t from, int64_t to) {
  std::vector<int64_t> axes;
  for (int64_t i = from; i < to; ++i) axes.push_back(i);
  return axes;
}

std::string plan_pattern(const Shape& shape, const std::vector<int64_t>& reduce,
                         const std::vector<int64_t>& affine) {
  return ReductionPlan::build(shape, contiguous_strides(shape), reduce, affine, "describe_family")
      .pattern();
}

Recommendation make(Method m, std::string settings, std::string reason, std::string pytorch,
                    std::string nk, std::string alternative) {
  return {m, std::move(settings), std::move(reason), std::move(pytorch), std::move(nk),
          std::move(alternative)};
}

Recommendation cnn_rule(int64_t batch) {
  const std::string b = std::to_string(batch);
  if (batch >= 16)
    return make(Method::BatchNorm, "momentum=0.1, eps=1e-5, track_running_stats=true",
                "batch " + b + " >= 16 gives stable per-channel statistics, and eval folds "
                "the running statistics into the conv for free",
                "nn.BatchNorm2d(C)", "normkit::BatchNorm<float>(C)",
                "GroupNorm(32) if the per-device batch later drops below 8");
  if (batch < 8)
    return make(Method::GroupNorm, "num_groups=32 (C divisible by 32), eps=1e-5, affine per channel",
                "batch " + b + " < 8 makes BatchNorm's per-channel statistics too noisy; "
                "GroupNorm's statistics are per example, independent of the batch",
                "nn.GroupNorm(32, C)", "normkit::GroupNorm<float>(32, C)",
                "SyncBatchNorm if several devices together reach a batch >= 16");
  return make(Method::GroupNorm, "num_groups=32 (C divisible by 32), eps=1e-5, affine per channel",
              "batch " + b + " is borderline: BatchNorm may still work at 8-15 but its noisy "
              "statistics often cost accuracy; GroupNorm is the safe choice",
              "nn.GroupNorm(32, C)", "normkit::GroupNorm<float>(32, C)",
              "BatchNorm2d (borderline at batch " + b + ": measure both on your task)");
}

}  // namespace

Recommendation recommend(const Situation& s) {
  if (s.batch_size < 1)
    throw Error("[guide] batch_size=" + std::to_string(s.batch_size) + " must be >= 1");
  switch (s.architecture) {
    case Architecture::LlamaLM:
      return make(Method::RMSNorm, "normalized_shape=(d_model,), eps=1e-6, weight only (no bias)",
                  "per-token statistics like LayerNorm but without the mean: cheaper, and what "
                  "LLaMA-style models are trained with",
                  "nn.RMSNorm(d_model, eps=1e-6)  (PyTorch >= 2.4)",
                  "normkit::RMSNorm<float>({d_model}, {.eps = 1e-6})",
                  "LayerNorm (GPT-2/BERT); the Gemma (1 + w) form: {.unit_offset = true}");
    case Architecture::Transformer:
      return make(Method::LayerNorm, "normalized_shape=(d_model,), eps=1e-5",
                  "per-token statistics over the features: independent of batch size, sequence "
                  "length and padding",
                  "nn.LayerNorm(d_model)", "normkit::LayerNorm<float>({d_model})",
                  "RMSNorm (drops the mean; cheaper, used by LLaMA)");
    case Architecture::StyleTransfer:
      return make(Method::InstanceNorm, "affine=true, track_running_stats=false",
                  "per-image, per-channel statistics remove each image's contrast and style, "
                  "which is what style transfer must re-impose",
                  "nn.InstanceNorm2d(C, affine=True)",
                  "normkit::InstanceNorm<float>(C, {.affine = true})",
                  "AdaIN: InstanceNorm without affine, scale and shift taken from the style");
    case Architecture::RNN:
    case Architecture::Online:
      return make(Method::LayerNorm, "normalized_shape=(hidden_size,), applied at every time step",
                  std::string(s.architecture == Architecture::RNN
                                  ? "recurrent steps share weights but not statistics; "
                                  : "one example at a time leaves no batch to average over; ") +
                      "LayerNorm's per-example statistics work at any batch and any step",
                  "nn.LayerNorm(hidden_size)", "normkit::LayerNorm<float>({hidden_size})",
                  "WeightNorm on the weights: nn.utils.weight_norm(layer), "
                  "normkit::WeightNorm<float>(weight) (no statistics at all)");
    case Architecture::ImageGeneration:
      return make(Method::GroupNorm, "num_groups=32, eps=1e-5 (Stable Diffusion's UNet uses 1e-6)",
                  "diffusion UNets and GANs train with small per-device batches and generate "
                  "one sample at a time; BatchNorm would couple the samples of a batch",
                  "nn.GroupNorm(32, C)", "normkit::GroupNorm<float>(32, C)",
                  "AdaIN / InstanceNorm in style-based generators; LayerNorm in attention blocks");
    case Architecture::CNN:
      if (s.variable_length && s.batch_size == 1)
        return make(Method::LayerNorm, "normalized_shape=(C,), per position, eps=1e-5",
                    "one variable-length example per step: there is no batch to average over, "
                    "and per-position statistics ignore the length and the padding",
                    "nn.LayerNorm(C)  (on channels-last activations)",
                    "normkit::LayerNorm<float>({C})",
                    "GroupNorm(32) if statistics over the whole example are wanted");
      return cnn_rule(s.batch_size);
  }
  throw Error("[guide] unknown architecture=" +
              std::to_string(static_cast<int>(s.architecture)));
}

const char* method_name(Method m) {
  switch (m) {
    case Method::BatchNorm: return "BatchNorm";
    case Method::LayerNorm: return "LayerNorm";
    case Method::InstanceNorm: return "InstanceNorm";
    case Method::GroupNorm: return "GroupNorm";
    case Method::RMSNorm: return "RMSNorm";
    case Method::WeightNorm: return "WeightNorm";
  }
  return "unknown";
}

const char* architecture_name(Architecture arch) {
  for (const auto& a : kCanonical)
    if (a.arch == arch) return a.name;
  return "unknown";
}

Architecture parse_architecture(const std::string& name) {
  std::string key;
  for (char c : name) key += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& a : kCanonical)
    if (key == a.name) return a.arch;
  for (const auto& a : kAliases)
    if (key == a.name) return a.arch;
  throw Error("[guide] unknown architecture='" + name + "'; accepted: " + accepted_names());
}

std::vector<FamilyRow> describe_family(const Shape& shape, int64_t num_groups) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank < 2)
    throw Error("[describe_family] rank=" + std::to_string(rank) +
                " is too low: expected (N, C, *spatial)");
  int64_t total = 1;
  for (int64_t i = 0; i < rank; ++i) {
    const int64_t d = shape[static_cast<size_t>(i)];
    if (d < 1)
      throw Error("[describe_family] size=" + std::to_string(d) + " at axis " +
                  std::to_string(i) + " must be >= 1");
    if (__builtin_mul_overflow(total, d, &total))
      throw Error("[describe_family] shape=" + shape_str(shape) + " has more than 2^63 elements");
  }
  const int64_t n = shape[0], c = shape[1], spatial = total / (n * c);
  if (num_groups < 1)
    throw Error("[describe_family] num_groups=" + std::to_string(num_groups) + " must be >= 1");
  if (c % num_groups != 0)
    throw Error("[describe_family] num_channels=" + std::to_string(c) +
                " is not divisible by num_groups=" + std::to_string(num_groups));

  const auto names = axis_names(shape.size());
  const std::string spatial_axes = join(names, 2, names.size());
  const std::string all_but_n = join(names, 1, names.size());
  const auto trailing = range_axes(1, rank);
  const std::string var = "mean, biased var";

  std::vector<int64_t> bn_reduce{0};
  for (int64_t i = 2; i < rank; ++i) bn_reduce.push_back(i);
  // GroupNorm runs on the view (N, G, C/G, *spatial): reduce C/G and space.
  Shape grouped{n, num_groups, c / num_groups};
  grouped.insert(grouped.end(), shape.begin() + 2, shape.end());
  const auto gn_reduce = range_axes(2, rank + 1);

  std::vector<FamilyRow> rows;
  const std::string and_space = spatial_axes == "(none)" ? "" : "," + spatial_axes;
  rows.push_back({Method::BatchNorm, "N" + and_space,
                  "C", var + " (running: unbiased)", "C", c, n * spatial,
                  plan_pattern(shape, bn_reduce, {1})});
  rows.push_back({Method::LayerNorm, all_but_n, "N", var, all_but_n, n, c * spatial,
                  plan_pattern(shape, trailing, trailing)});
  rows.push_back({Method::InstanceNorm, spatial_axes, "N,C", var, "C", n * c, spatial,
                  plan_pattern(shape, range_axes(2, rank), {1})});
  rows.push_back({Method::GroupNorm, "C/G" + and_space,
                  "N,G (G=" + std::to_string(num_groups) + ")", var, "C", n * num_groups,
                  (c / num_groups) * spatial, plan_pattern(grouped, gn_reduce, {1, 2})});
  rows.push_back({Method::RMSNorm, all_but_n, "N", "mean of squares", all_but_n, n, c * spatial,
                  plan_pattern(shape, trailing, trailing)});
  // A weight tensor of the same shape, dim=0: one L2 norm per output slice.
  rows.push_back({Method::WeightNorm, "all but dim 0", "dim 0", "L2 norm", "dim 0 (g)", n,
                  c * spatial, plan_pattern(shape, trailing, {0})});
  return rows;
}

}  // namespace normkit
