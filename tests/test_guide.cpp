// test_guide.cpp — the decision guide (every rule of recommend), architecture names, and the
// family table's numbers for the 32x256x14x14 example. Also compiles the normkit spellings the
// guide prints, so the advice cannot name a constructor that does not exist.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "normkit/normkit.hpp"

namespace {

using normkit::Architecture;
using normkit::Method;

normkit::Recommendation rec(Architecture a, int64_t batch, bool variable_length = false) {
  return normkit::recommend({a, batch, variable_length});
}

void expect_filled(const normkit::Recommendation& r) {
  EXPECT_FALSE(r.settings.empty());
  EXPECT_FALSE(r.reason.empty());
  EXPECT_EQ(r.reason.find('\n'), std::string::npos) << "reason must be one line";
  EXPECT_FALSE(r.pytorch.empty());
  EXPECT_NE(r.normkit.find("normkit::"), std::string::npos);
  EXPECT_FALSE(r.alternative.empty());
}

TEST(Guide, CnnLargeBatchIsBatchNorm) {
  for (int64_t b : {16, 32, 256}) {
    const auto r = rec(Architecture::CNN, b);
    EXPECT_EQ(r.method, Method::BatchNorm) << b;
    EXPECT_EQ(r.pytorch, "nn.BatchNorm2d(C)");
    EXPECT_EQ(r.normkit, "normkit::BatchNorm<float>(C)");
    expect_filled(r);
  }
}

TEST(Guide, CnnSmallBatchIsGroupNorm32) {
  for (int64_t b : {1, 2, 4, 7}) {
    const auto r = rec(Architecture::CNN, b);
    EXPECT_EQ(r.method, Method::GroupNorm) << b;
    EXPECT_NE(r.settings.find("num_groups=32"), std::string::npos);
    EXPECT_EQ(r.pytorch, "nn.GroupNorm(32, C)");
    EXPECT_EQ(r.normkit, "normkit::GroupNorm<float>(32, C)");
    expect_filled(r);
  }
}

TEST(Guide, CnnBorderlineBatchIsGroupNormAndSaysSo) {
  for (int64_t b : {8, 12, 15}) {
    const auto r = rec(Architecture::CNN, b);
    EXPECT_EQ(r.method, Method::GroupNorm) << b;
    EXPECT_NE(r.reason.find("borderline"), std::string::npos) << r.reason;
    EXPECT_NE(r.alternative.find("BatchNorm"), std::string::npos) << r.alternative;
    expect_filled(r);
  }
}

TEST(Guide, TransformerIsLayerNorm) {
  for (int64_t b : {1, 8, 64}) {
    const auto r = rec(Architecture::Transformer, b, b == 1);
    EXPECT_EQ(r.method, Method::LayerNorm);
    EXPECT_EQ(r.pytorch, "nn.LayerNorm(d_model)");
    expect_filled(r);
  }
}

TEST(Guide, LlamaIsRMSNorm) {
  const auto r = rec(Architecture::LlamaLM, 4);
  EXPECT_EQ(r.method, Method::RMSNorm);
  EXPECT_NE(r.pytorch.find("nn.RMSNorm"), std::string::npos);
  expect_filled(r);
}

TEST(Guide, StyleTransferIsInstanceNorm) {
  const auto r = rec(Architecture::StyleTransfer, 4);
  EXPECT_EQ(r.method, Method::InstanceNorm);
  EXPECT_NE(r.pytorch.find("nn.InstanceNorm2d"), std::string::npos);
  expect_filled(r);
}

TEST(Guide, RnnAndOnlineAreLayerNormWithWeightNormAlternative) {
  for (auto a : {Architecture::RNN, Architecture::Online}) {
    const auto r = rec(a, 1);
    EXPECT_EQ(r.method, Method::LayerNorm) << normkit::architecture_name(a);
    EXPECT_NE(r.alternative.find("WeightNorm"), std::string::npos) << r.alternative;
    expect_filled(r);
  }
}

TEST(Guide, VariableLengthBatchOneIsLayerNorm) {
  const auto r = rec(Architecture::CNN, 1, true);
  EXPECT_EQ(r.method, Method::LayerNorm);
  expect_filled(r);
  // Variable length alone, with a batch, keeps the batch-size rule.
  EXPECT_EQ(rec(Architecture::CNN, 32, true).method, Method::BatchNorm);
}

TEST(Guide, ImageGenerationIsGroupNorm32) {
  for (int64_t b : {1, 8, 64}) {
    const auto r = rec(Architecture::ImageGeneration, b);
    EXPECT_EQ(r.method, Method::GroupNorm);
    EXPECT_EQ(r.pytorch, "nn.GroupNorm(32, C)");
    expect_filled(r);
  }
}

TEST(Guide, BatchBelowOneIsAnError) {
  for (int64_t b : {0, -3}) {
    try {
      rec(Architecture::CNN, b);
      FAIL() << "no error for batch " << b;
    } catch (const normkit::Error& e) {
      EXPECT_NE(std::string(e.what()).find("[guide] batch_size=" + std::to_string(b)),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(Guide, NamesRoundTrip) {
  for (auto a : {Architecture::CNN, Architecture::Transformer, Architecture::LlamaLM,
                 Architecture::RNN, Architecture::Online, Architecture::StyleTransfer,
                 Architecture::ImageGeneration})
    EXPECT_EQ(normkit::parse_architecture(normkit::architecture_name(a)), a);
  EXPECT_EQ(normkit::parse_architecture("llama"), Architecture::LlamaLM);
  EXPECT_EQ(normkit::parse_architecture("lm"), Architecture::LlamaLM);
  EXPECT_EQ(normkit::parse_architecture("gan"), Architecture::ImageGeneration);
  EXPECT_EQ(normkit::parse_architecture("diffusion"), Architecture::ImageGeneration);
  EXPECT_EQ(normkit::parse_architecture("style"), Architecture::StyleTransfer);
  EXPECT_EQ(normkit::parse_architecture("CNN"), Architecture::CNN);
  EXPECT_STREQ(normkit::method_name(Method::GroupNorm), "GroupNorm");
  EXPECT_STREQ(normkit::method_name(Method::WeightNorm), "WeightNorm");
}

TEST(Guide, UnknownArchitectureListsAcceptedNames) {
  for (const char* bad : {"mlp", "", "cnn2"}) {
    try {
      normkit::parse_architecture(bad);
      FAIL() << "no error for '" << bad << "'";
    } catch (const normkit::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("[guide] unknown architecture='" + std::string(bad) + "'"),
                std::string::npos) << msg;
      for (const char* name : {"cnn", "transformer", "llama-lm", "rnn", "online",
                               "style-transfer", "image-generation"})
        EXPECT_NE(msg.find(name), std::string::npos) << name << " missing from: " << msg;
    }
  }
}

const normkit::FamilyRow& row(const std::vector<normkit::FamilyRow>& rows, Method m) {
  for (const auto& r : rows)
    if (r.method == m) return r;
  throw std::runtime_error("missing row");
}

TEST(Family, SeedActivationNumbers) {
  const auto rows = normkit::describe_family({32, 256, 14, 14}, 32);
  ASSERT_EQ(rows.size(), 6u);
  struct Want {
    Method m;
    int64_t stats, size;
    const char* reduced;
    const char* pattern;
  };
  const Want want[] = {
      {Method::BatchNorm, 256, 6272, "N,H,W", "[R,K,R]"},
      {Method::LayerNorm, 32, 50176, "C,H,W", "[K,R]"},
      // N and C stay separate blocks inside the plan (the affine varies along C only), but
      // the pattern describes the statistics.
      {Method::InstanceNorm, 8192, 196, "H,W", "[K,R]"},
      {Method::GroupNorm, 1024, 1568, "C/G,H,W", "[K,R]"},
      {Method::RMSNorm, 32, 50176, "C,H,W", "[K,R]"},
      {Method::WeightNorm, 32, 50176, "all but dim 0", "[K,R]"},
  };
  for (const auto& w : want) {
    const auto& r = row(rows, w.m);
    EXPECT_EQ(r.num_stats, w.stats) << normkit::method_name(w.m);
    EXPECT_EQ(r.stat_size, w.size) << normkit::method_name(w.m);
    EXPECT_EQ(r.num_stats * r.stat_size, 32 * 256 * 14 * 14);
    EXPECT_EQ(r.reduced_axes, w.reduced) << normkit::method_name(w.m);
    EXPECT_EQ(r.pattern, w.pattern) << normkit::method_name(w.m);
  }
  EXPECT_EQ(row(rows, Method::BatchNorm).stat_per, "C");
  EXPECT_EQ(row(rows, Method::RMSNorm).statistic, "mean of squares");
  EXPECT_EQ(row(rows, Method::WeightNorm).statistic, "L2 norm");
}

TEST(Family, OtherRanksAndGroups) {
  const auto r3 = normkit::describe_family({8, 64, 100}, 16);  // (N, C, L)
  EXPECT_EQ(row(r3, Method::BatchNorm).reduced_axes, "N,L");
  EXPECT_EQ(row(r3, Method::GroupNorm).num_stats, 8 * 16);
  EXPECT_EQ(row(r3, Method::GroupNorm).stat_size, 4 * 100);
  const auto r2 = normkit::describe_family({8, 64}, 1);  // (N, C): BatchNorm is [R,K]
  EXPECT_EQ(row(r2, Method::BatchNorm).pattern, "[R,K]");
  EXPECT_EQ(row(r2, Method::BatchNorm).stat_size, 8);
  EXPECT_EQ(row(r2, Method::InstanceNorm).stat_size, 1);
  // G = C: GroupNorm averages what InstanceNorm averages.
  const auto rc = normkit::describe_family({2, 6, 5, 5}, 6);
  EXPECT_EQ(row(rc, Method::GroupNorm).num_stats, row(rc, Method::InstanceNorm).num_stats);
  EXPECT_EQ(row(rc, Method::GroupNorm).stat_size, row(rc, Method::InstanceNorm).stat_size);
}

template <class F>
void expect_error(F f, const std::string& needle) {
  try {
    f();
    FAIL() << "no error; expected: " << needle;
  } catch (const normkit::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Family, Errors) {
  expect_error([] { normkit::describe_family({32, 10, 4, 4}, 4); },
               "num_channels=10 is not divisible by num_groups=4");
  expect_error([] { normkit::describe_family({32, 256, 4, 4}, 0); }, "num_groups=0");
  expect_error([] { normkit::describe_family({32}, 1); }, "rank=1");
  expect_error([] { normkit::describe_family({32, 0, 4}, 1); }, "size=0 at axis 1");
  expect_error([] { normkit::describe_family({1 << 30, 1 << 30, 1 << 30}, 1); }, "2^63");
}

// The spellings the guide prints are real constructors.
TEST(Guide, NormkitSpellingsCompile) {
  const int64_t C = 64, d_model = 16, hidden_size = 8;
  normkit::BatchNorm<float> bn(C);
  normkit::GroupNorm<float> gn(32, C);
  normkit::LayerNorm<float> ln({d_model});
  normkit::RMSNorm<float> rms({d_model}, {.eps = 1e-6});
  normkit::InstanceNorm<float> in(C, {.affine = true});
  normkit::LayerNorm<float> rnn_ln({hidden_size});
  std::vector<float> weight(6, 1.f);
  normkit::WeightNorm<float> wn(normkit::TensorView<const float>(weight.data(), {2, 3}));
  EXPECT_EQ(gn.num_groups, 32);
  EXPECT_EQ(in.weight.size(), static_cast<size_t>(C));
  EXPECT_EQ(*rms.options.eps, 1e-6);
  EXPECT_EQ(wn.g.size(), 2u);
}

}  // namespace
