//! @file
//! normkit/guide.hpp — which normalization to use and why: the decision guide, and the
//! family table (what each method averages over) for a concrete activation shape.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "normkit/tensor.hpp"

namespace normkit {

/// The six members of the family.
enum class Method { BatchNorm, LayerNorm, InstanceNorm, GroupNorm, RMSNorm, WeightNorm };

/// The situations the decision guide knows.
enum class Architecture { CNN, Transformer, LlamaLM, RNN, Online, StyleTransfer, ImageGeneration };

/// What the decision guide is asked.
struct Situation {
  Architecture architecture = Architecture::CNN;  ///< the kind of model
  int64_t batch_size = 32;                        ///< examples per device per step
  bool variable_length = false;                   ///< sequences of varying length
};

/// What the decision guide answers.
struct Recommendation {
  Method method;            ///< what to use
  std::string settings;     ///< e.g. "num_groups=32"
  std::string reason;       ///< one line
  std::string pytorch;      ///< the torch.nn spelling
  std::string normkit;      ///< the normkit C++ spelling
  std::string alternative;  ///< what else would do, or ""
};

/// The decision guide. Throws normkit::Error for a batch size < 1.
NORMKIT_API Recommendation recommend(const Situation& situation);

NORMKIT_API const char* method_name(Method method);            ///< "BatchNorm"
NORMKIT_API const char* architecture_name(Architecture arch);  ///< "cnn", "transformer", ...
/// Parses the names architecture_name() prints (and a few aliases: "llama", "lm", "gan",
/// "diffusion", "style"); throws normkit::Error listing the accepted names otherwise.
NORMKIT_API Architecture parse_architecture(const std::string& name);

/// One row of the family table for an activation of shape (N, C, *spatial).
struct FamilyRow {
  Method method;             ///< the row's method
  std::string reduced_axes;  ///< "N,H,W"
  std::string stat_per;      ///< "C"
  std::string statistic;     ///< "mean, biased var"
  std::string affine_per;    ///< "C"
  int64_t num_stats;         ///< statistics computed
  int64_t stat_size;         ///< elements averaged per statistic
  std::string pattern;       ///< the merged plan pattern, e.g. "[R,K,R]"
};
/// The table for `shape` (rank >= 2). WeightNorm's row describes a weight tensor of the
/// same shape with dim=0. Throws normkit::Error if num_groups does not divide C.
NORMKIT_API std::vector<FamilyRow> describe_family(const Shape& shape, int64_t num_groups = 32);

}  // namespace normkit
