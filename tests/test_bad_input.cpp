// test_bad_input.cpp — every bad input gets a clear normkit::Error and changes nothing
// (issue 5, item 2), zero-size tensors follow PyTorch (empty output, running statistics
// untouched), exact in-place aliasing is allowed, and the opt-in guard that keeps a non-finite
// batch out of the running statistics (item 3). The per-op error files cover the core list.
#include <climits>

#include "test_util.hpp"

namespace {
using namespace nk_test;

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// ---- zero-size dimensions -----------------------------------------------------------------
// An empty batch (N = 0) or an empty spatial extent returns at once: no NaN folded into the
// running statistics (PyTorch writes NaN there for InstanceNorm and for an empty spatial
// extent), backward zeroes the parameter gradients.
TEST(ZeroSize, BatchNormLeavesRunningStatsAndZeroesGrads) {
  for (const Shape& sh : {Shape{0, 3, 4}, Shape{2, 3, 0}, Shape{0, 3}}) {
    std::vector<float> x(1), y = sentinel_vec<float>(1), rm = {0.5f, 1.f, 2.f}, rv = {3.f, 4.f, 5.f};
    const auto rm0 = rm, rv0 = rv;
    std::vector<float> w(3, 1.f), b(3, 0.f), mean = sentinel_vec<float>(3), rstd = sentinel_vec<float>(3);
    normkit::BatchNormArgs<float> a;
    a.weight = w, a.bias = b, a.running_mean = rm, a.running_var = rv, a.training = true;
    bool skipped = true;
    a.update_skipped = &skipped;
    EXPECT_NO_THROW(normkit::batch_norm_forward<float>(cview(x, sh), mview(y, sh), a, {mean, rstd}));
    EXPECT_EQ(rm, rm0) << normkit::shape_str(sh);
    EXPECT_EQ(rv, rv0) << normkit::shape_str(sh);
    EXPECT_FALSE(skipped);
    EXPECT_EQ(y[0], float(kSentinel)) << "an empty output has nothing to write";
    std::vector<float> dx = sentinel_vec<float>(1), dw = sentinel_vec<float>(3), db = sentinel_vec<float>(3);
    normkit::batch_norm_backward<float>(cview(x, sh), cview(x, sh), mview(dx, sh), a, dw, db);
    EXPECT_EQ(dw, std::vector<float>(3, 0.f));
    EXPECT_EQ(db, std::vector<float>(3, 0.f));
    EXPECT_EQ(dx[0], float(kSentinel));
  }
}

TEST(ZeroSize, InstanceNormLeavesRunningStats) {
  for (const Shape& sh : {Shape{0, 2, 5}, Shape{3, 2, 0}}) {
    std::vector<double> x(1), y(1), rm = {0.5, 1.5}, rv = {2.0, 3.0};
    const auto rm0 = rm, rv0 = rv;
    normkit::InstanceNormArgs<double> a;
    a.running_mean = rm, a.running_var = rv;
    EXPECT_NO_THROW(normkit::instance_norm_forward<double>(cview(x, sh), mview(y, sh), a));
    EXPECT_EQ(rm, rm0) << normkit::shape_str(sh);
    EXPECT_EQ(rv, rv0) << normkit::shape_str(sh);
  }
}

TEST(ZeroSize, NullDataIsFineWhenEmpty) {
  const Shape sh = {0, 4, 3};
  normkit::TensorView<const float> x(nullptr, sh);
  normkit::TensorView<float> y(nullptr, sh);
  normkit::GroupNormArgs<float> g;
  g.num_groups = 2;
  EXPECT_NO_THROW(normkit::group_norm_forward<float>(x, y, g));
  normkit::LayerNormArgs<float> l;
  l.normalized_shape = {3};
  EXPECT_NO_THROW(normkit::layer_norm_forward<float>(x, y, l));
  normkit::RMSNormArgs<float> r;
  r.normalized_shape = {4, 3};
  EXPECT_NO_THROW(normkit::rms_norm_forward<float>(x, y, r));
  normkit::NormalizeArgs<float> n;
  n.reduce_axes = {0, 2};
  EXPECT_NO_THROW(normkit::normalize_forward<float>(x, y, n));
  EXPECT_NO_THROW(normkit::normalize_backward<float>(x, x, y, n));
  EXPECT_NO_THROW(normkit::layer_norm_backward<float>(x, x, y, l));
}

TEST(ZeroSize, LayerCountsTheEmptyBatchLikePyTorch) {
  // torch.nn.BatchNorm increments num_batches_tracked before calling F.batch_norm, whatever
  // the batch size; the running statistics stay as they were.
  normkit::BatchNorm<float> bn(3);
  std::vector<float> x(1), y(1);
  bn.forward(cview(x, {0, 3, 2}), mview(y, {0, 3, 2}));
  EXPECT_EQ(bn.num_batches_tracked, 1);
  EXPECT_EQ(bn.running_mean, std::vector<float>(3, 0.f));
  EXPECT_EQ(bn.running_var, std::vector<float>(3, 1.f));
}

// ---- NaN / Inf eps and momentum --------------------------------------------------------------
// Each call gets a bad scalar; the error names it and the outputs stay as they were.
TEST(BadScalars, NonFiniteEpsIsAnErrorForEveryOp) {
  const Shape sh = {2, 4, 3};
  const auto x = random_vec<float>(24);
  for (double eps : {kNaN, kInf, -kInf}) {
    std::vector<float> y = sentinel_vec<float>(24), rm(4, 0.f), rv(4, 1.f);
    Snapshot snap;
    snap.add(&y), snap.add(&rm), snap.add(&rv);
    const auto X = cview(x, sh);
    const auto Y = mview(y, sh);
    expect_error([&] {
      normkit::BatchNormArgs<float> a;
      a.running_mean = rm, a.running_var = rv, a.training = true, a.eps = eps;
      normkit::batch_norm_forward<float>(X, Y, a);
    }, "batch_norm", {"eps="});
    expect_error([&] {
      normkit::InstanceNormArgs<float> a;
      a.running_mean = rm, a.running_var = rv, a.eps = eps;
      normkit::instance_norm_forward<float>(X, Y, a);
    }, "instance_norm", {"eps="});
    expect_error([&] {
      normkit::GroupNormArgs<float> a;
      a.num_groups = 2, a.eps = eps;
      normkit::group_norm_forward<float>(X, Y, a);
    }, "group_norm", {"eps="});
    expect_error([&] {
      normkit::LayerNormArgs<float> a;
      a.normalized_shape = {3}, a.eps = eps;
      normkit::layer_norm_forward<float>(X, Y, a);
    }, "layer_norm", {"eps="});
    expect_error([&] {
      normkit::RMSNormArgs<float> a;
      a.normalized_shape = {3}, a.eps = eps;
      normkit::rms_norm_forward<float>(X, Y, a);
    }, "rms_norm", {"eps="});
    expect_error([&] {
      normkit::NormalizeArgs<float> a;
      a.reduce_axes = {2}, a.eps = eps;
      normkit::normalize_forward<float>(X, Y, a);
    }, "normalize", {"eps="});
    snap.expect_unchanged("non-finite eps");
  }
}

TEST(BadScalars, NonFiniteMomentumIsAnErrorWhenUsed) {
  const Shape sh = {4, 2, 3};
  const auto x = random_vec<double>(24);
  for (double m : {kNaN, kInf, -kInf}) {
    std::vector<double> y = sentinel_vec<double>(24), rm(2, 0.0), rv(2, 1.0);
    Snapshot snap;
    snap.add(&y), snap.add(&rm), snap.add(&rv);
    expect_error([&] {
      normkit::BatchNormArgs<double> a;
      a.running_mean = rm, a.running_var = rv, a.training = true, a.momentum = m;
      normkit::batch_norm_forward<double>(cview(x, sh), mview(y, sh), a);
    }, "batch_norm", {"momentum="});
    expect_error([&] {
      normkit::InstanceNormArgs<double> a;
      a.running_mean = rm, a.running_var = rv, a.momentum = m;
      normkit::instance_norm_forward<double>(cview(x, sh), mview(y, sh), a);
    }, "instance_norm", {"momentum="});
    snap.expect_unchanged("non-finite momentum");
    // Momentum that is not used (eval) is not checked, as in PyTorch.
    normkit::BatchNormArgs<double> eval;
    eval.running_mean = rm, eval.running_var = rv, eval.momentum = m;
    EXPECT_NO_THROW(normkit::batch_norm_forward<double>(cview(x, sh), mview(y, sh), eval));
  }
}

TEST(BadScalars, LayersRejectNonFiniteScalarsAndKeepState) {
  for (double bad : {kNaN, kInf}) {
    expect_error([&] { normkit::BatchNorm<float>(3, {.eps = bad}); }, "batch_norm", {"eps="});
    expect_error([&] { normkit::BatchNorm<float>(3, {.momentum = bad}); }, "batch_norm", {"momentum="});
    // Layers that check at forward(): the error comes there and nothing changes.
    normkit::InstanceNorm<float> in(2, {.momentum = bad, .track_running_stats = true});
    std::vector<float> x = random_vec<float>(12), y = sentinel_vec<float>(12);
    expect_error([&] { in.forward(cview(x, {2, 2, 3}), mview(y, {2, 2, 3})); }, "instance_norm", {"momentum="});
    EXPECT_EQ(in.num_batches_tracked, 0);
    EXPECT_EQ(in.running_mean, std::vector<float>(2, 0.f));
    EXPECT_EQ(in.running_var, std::vector<float>(2, 1.f));
    EXPECT_EQ(y, sentinel_vec<float>(12));
    normkit::LayerNorm<float> ln({3}, {.eps = bad});
    expect_error([&] { ln.forward(cview(x, {4, 3}), mview(y, {4, 3})); }, "layer_norm", {"eps="});
    normkit::GroupNorm<float> gn(1, 2, {.eps = bad});
    expect_error([&] { gn.forward(cview(x, {2, 2, 3}), mview(y, {2, 2, 3})); }, "group_norm", {"eps="});
    normkit::RMSNorm<float> rn({3}, {.eps = bad});
    expect_error([&] { rn.forward(cview(x, {4, 3}), mview(y, {4, 3})); }, "rms_norm", {"eps="});
    EXPECT_EQ(y, sentinel_vec<float>(12));
  }
}

// ---- null pointers -------------------------------------------------------------------------
TEST(NullPointers, OutputsAndGradOutputMustHaveData) {
  const Shape sh = {2, 3, 4};
  const auto x = random_vec<float>(24);
  normkit::TensorView<float> null_out(nullptr, sh);
  normkit::TensorView<const float> null_in(nullptr, sh);
  std::vector<float> dx = sentinel_vec<float>(24);
  normkit::LayerNormArgs<float> l;
  l.normalized_shape = {4};
  expect_error([&] { normkit::layer_norm_forward<float>(cview(x, sh), null_out, l); }, "layer_norm",
               {"output", "null"});
  expect_error([&] { normkit::layer_norm_backward<float>(null_in, cview(x, sh), mview(dx, sh), l); },
               "layer_norm", {"grad_output", "null"});
  normkit::BatchNormArgs<float> b;
  b.training = true;
  expect_error([&] { normkit::batch_norm_forward<float>(cview(x, sh), null_out, b); }, "batch_norm",
               {"output", "null"});
  expect_error([&] { normkit::batch_norm_backward<float>(null_in, cview(x, sh), mview(dx, sh), b); },
               "batch_norm", {"grad_output", "null"});
  normkit::GroupNormArgs<float> g;
  expect_error([&] { normkit::group_norm_forward<float>(cview(x, sh), null_out, g); }, "group_norm",
               {"output", "null"});
  std::vector<float> gw(2, 1.f);
  expect_error([&] { normkit::weight_norm_forward<float>(cview(x, {2, 12}), gw, normkit::TensorView<float>(nullptr, {2, 12}), {}); },
               "weight_norm", {"null"});
  EXPECT_EQ(dx, sentinel_vec<float>(24));
  // dx.data == nullptr is the documented way to ask for the parameter gradients only.
  std::vector<float> dw(4), db(4), w(4, 1.f);
  l.weight = w;
  EXPECT_NO_THROW(normkit::layer_norm_backward<float>(cview(x, sh), cview(x, sh), null_out, l, dw, db));
}

// ---- element counts that overflow int64 -----------------------------------------------------
// A view whose sizes multiply past 2^63 cannot describe memory; it must be refused before
// any arithmetic on it (a wrapped count could read as 0 elements or as a huge loop).
TEST(Overflow, ShapeWhoseElementCountOverflowsIsAnError) {
  std::vector<float> buf(16);
  const Shape huge = {int64_t{1} << 40, int64_t{1} << 40, 4};
  const Strides st = {4, 4, 1};  // small strides: only the element count overflows
  normkit::TensorView<const float> x(buf.data(), huge, st);
  normkit::TensorView<float> y(buf.data(), huge, st);
  normkit::LayerNormArgs<float> l;
  l.normalized_shape = {4};
  expect_error([&] { normkit::layer_norm_forward<float>(x, y, l); }, "layer_norm", {"overflow"});
  normkit::RMSNormArgs<float> r;
  r.normalized_shape = {4};
  expect_error([&] { normkit::rms_norm_forward<float>(x, y, r); }, "rms_norm", {"overflow"});
}

// ---- aliasing ------------------------------------------------------------------------------
// Decided: exact aliasing is allowed (y may be x; dx may be dy or x), and gives the same bits
// as separate buffers. Any other overlap of a written argument with another argument (a view
// shifted by some elements, running_mean and running_var in one buffer, ...) is an Error
// naming both, and nothing is written.
template <class Fwd>
void expect_in_place_forward(const char* what, const Shape& sh, Fwd fwd) {
  const auto x = random_vec<float>(numel(sh), 3.0, 2.0);
  std::vector<float> y(x.size());
  fwd(cview(x, sh), mview(y, sh));
  auto inplace = x;
  fwd(cview(inplace, sh), mview(inplace, sh));
  expect_bitwise(inplace, y, std::string(what) + " in place");
}

TEST(Aliasing, ForwardInPlaceEqualsOutOfPlace) {
  const Shape big = {8, 16, 40, 40};  // large enough for the unfused and threaded paths
  for (const Shape& sh : {Shape{4, 6, 5}, big}) {
    expect_in_place_forward("batch_norm", sh, [](auto x, auto y) {
      normkit::BatchNormArgs<float> a;
      a.training = true;
      normkit::batch_norm_forward<float>(x, y, a);
    });
    expect_in_place_forward("instance_norm", sh, [](auto x, auto y) {
      normkit::instance_norm_forward<float>(x, y, {});
    });
    expect_in_place_forward("group_norm", sh, [](auto x, auto y) {
      normkit::GroupNormArgs<float> a;
      a.num_groups = 2;
      normkit::group_norm_forward<float>(x, y, a);
    });
    expect_in_place_forward("layer_norm", sh, [&](auto x, auto y) {
      normkit::LayerNormArgs<float> a;
      a.normalized_shape = {sh[1], sh[2]};
      if (sh.size() == 4) a.normalized_shape.push_back(sh[3]);
      normkit::layer_norm_forward<float>(x, y, a);
    });
    // With an affine along the rows: rows go through the normalize pass two at a time.
    const int64_t last = sh.back();
    const auto w = random_vec<float>(last, 1.0, 0.5), b = random_vec<float>(last, 0.0, 0.5);
    expect_in_place_forward("layer_norm affine", sh, [&](auto x, auto y) {
      normkit::LayerNormArgs<float> a;
      a.normalized_shape = {last}, a.weight = w, a.bias = b;
      normkit::layer_norm_forward<float>(x, y, a);
    });
    expect_in_place_forward("rms_norm", sh, [&](auto x, auto y) {
      normkit::RMSNormArgs<float> a;
      a.normalized_shape = {sh.back()};
      normkit::rms_norm_forward<float>(x, y, a);
    });
    expect_in_place_forward("rms_norm affine", sh, [&](auto x, auto y) {
      normkit::RMSNormArgs<float> a;
      a.normalized_shape = {last}, a.weight = w;
      normkit::rms_norm_forward<float>(x, y, a);
    });
    expect_in_place_forward("weight_norm", sh, [&](auto x, auto y) {
      const std::vector<float> g(static_cast<size_t>(sh[0]), 2.f);
      normkit::weight_norm_forward<float>(x, g, y, {0});
    });
  }
}

TEST(Aliasing, BackwardInPlaceEqualsOutOfPlace) {
  for (const Shape& sh : {Shape{4, 6, 5}, Shape{8, 16, 40, 40}}) {
    const auto x = random_vec<float>(numel(sh), 1.0, 2.0), dy = random_vec<float>(numel(sh));
    const auto w = random_vec<float>(sh[1], 1.0, 0.5);
    normkit::BatchNormArgs<float> a;
    a.weight = w, a.training = true;
    std::vector<float> dx(x.size()), dw(w.size()), dw2(w.size());
    normkit::batch_norm_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, dw);
    auto on_dy = dy;  // dx == dy
    normkit::batch_norm_backward<float>(cview(on_dy, sh), cview(x, sh), mview(on_dy, sh), a, dw2);
    expect_bitwise(on_dy, dx, "batch_norm dx aliasing dy");
    expect_bitwise(dw2, dw, "batch_norm dweight with dx aliasing dy");
    auto on_x = x;  // dx == x
    normkit::batch_norm_backward<float>(cview(dy, sh), cview(on_x, sh), mview(on_x, sh), a, dw2);
    expect_bitwise(on_x, dx, "batch_norm dx aliasing x");

    normkit::LayerNormArgs<float> l;
    l.normalized_shape = {sh.back()};
    normkit::layer_norm_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), l);
    on_dy = dy;
    normkit::layer_norm_backward<float>(cview(on_dy, sh), cview(x, sh), mview(on_dy, sh), l);
    expect_bitwise(on_dy, dx, "layer_norm dx aliasing dy");
    on_x = x;
    normkit::layer_norm_backward<float>(cview(dy, sh), cview(on_x, sh), mview(on_x, sh), l);
    expect_bitwise(on_x, dx, "layer_norm dx aliasing x");
  }
}

TEST(Aliasing, PartialOverlapIsRejectedAndNothingWritten) {
  const Shape sh = {4, 3, 5};  // 60 elements; views into one buffer of 70
  std::vector<float> buf = random_vec<float>(130);
  const auto before = buf;
  const auto in = [&](size_t at) { return normkit::TensorView<const float>(buf.data() + at, sh); };
  const auto out = [&](size_t at) { return normkit::TensorView<float>(buf.data() + at, sh); };
  // y shifted against x, both ways
  normkit::LayerNormArgs<float> l;
  l.normalized_shape = {5};
  expect_error([&] { normkit::layer_norm_forward<float>(in(0), out(3), l); }, "layer_norm",
               {"input and output overlap"});
  expect_error([&] { normkit::layer_norm_forward<float>(in(7), out(0), l); }, "layer_norm",
               {"input and output overlap"});
  // dx shifted against dy, and against x
  expect_error([&] { normkit::layer_norm_backward<float>(in(0), in(70), out(1), l); }, "layer_norm",
               {"grad_output and grad_input overlap"});
  expect_error([&] { normkit::layer_norm_backward<float>(in(70), in(0), out(9), l); }, "layer_norm",
               {"input and grad_input overlap"});
  expect_bitwise(buf, before, "the shared buffer");

  // running_mean and running_var in one buffer (shifted by one channel, or the very same)
  const auto x = random_vec<float>(60);
  std::vector<float> y = sentinel_vec<float>(60), stats = {0.f, 1.f, 2.f, 3.f, 4.f, 5.f};
  const auto stats0 = stats;
  normkit::BatchNormArgs<float> a;
  a.training = true;
  a.running_mean = std::span<float>(stats.data(), 3), a.running_var = std::span<float>(stats.data() + 1, 3);
  expect_error([&] { normkit::batch_norm_forward<float>(cview(x, sh), mview(y, sh), a); }, "batch_norm",
               {"running_mean", "running_var", "overlap"});
  a.running_var = a.running_mean;
  expect_error([&] { normkit::batch_norm_forward<float>(cview(x, sh), mview(y, sh), a); }, "batch_norm",
               {"running_mean", "running_var", "overlap"});
  normkit::InstanceNormArgs<float> ia;
  ia.running_mean = std::span<float>(stats.data(), 3), ia.running_var = std::span<float>(stats.data() + 2, 3);
  expect_error([&] { normkit::instance_norm_forward<float>(cview(x, sh), mview(y, sh), ia); }, "instance_norm",
               {"running_mean", "running_var", "overlap"});
  EXPECT_EQ(stats, stats0);
  EXPECT_TRUE(std::all_of(y.begin(), y.end(), [](float v) { return v == float(kSentinel); }));

  // y over the running statistics (eval reads them, the output is written)
  std::vector<float> big = random_vec<float>(64, 1.0, 2.0);
  const auto big0 = big;
  a.training = false;
  a.running_mean = std::span<float>(big.data(), 3), a.running_var = std::span<float>(big.data() + 3, 3);
  expect_error([&] { normkit::batch_norm_forward<float>(cview(x, sh), normkit::TensorView<float>(big.data() + 4, sh), a); },
               "batch_norm", {"output", "running_var", "overlap"});
  expect_bitwise(big, big0, "running statistics under the output");

  // saved mean and rstd sharing a buffer
  std::vector<float> saved = sentinel_vec<float>(8);
  const auto saved0 = saved;
  normkit::LayerNormArgs<float> l2;
  l2.normalized_shape = {3, 5};
  expect_error([&] {
    normkit::layer_norm_forward<float>(cview(x, sh), mview(y, sh), l2,
                                       {std::span<float>(saved.data(), 4), std::span<float>(saved.data() + 2, 4)});
  }, "layer_norm", {"saved mean", "saved rstd", "overlap"});
  expect_bitwise(saved, saved0, "saved statistics");

  // dweight and dbias in one buffer
  const auto dy = random_vec<float>(60);
  std::vector<float> grads = sentinel_vec<float>(5), dx = sentinel_vec<float>(60);
  const auto grads0 = grads;
  normkit::BatchNormArgs<float> b;
  b.training = true;
  expect_error([&] {
    normkit::batch_norm_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), b,
                                        std::span<float>(grads.data(), 3), std::span<float>(grads.data() + 2, 3));
  }, "batch_norm", {"grad_weight", "grad_bias", "overlap"});
  normkit::NormalizeArgs<float> n;
  n.reduce_axes = {0, 2}, n.affine_axes = {1};
  expect_error([&] {
    normkit::normalize_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), n,
                                       std::span<float>(grads.data(), 3), std::span<float>(grads.data(), 3));
  }, "normalize", {"grad_weight", "grad_bias", "overlap"});
  // weight_norm: w shifted against v
  std::vector<float> wbuf = random_vec<float>(70), gw(4, 1.f);
  const auto wbuf0 = wbuf;
  expect_error([&] {
    normkit::weight_norm_forward<float>(normkit::TensorView<const float>(wbuf.data(), sh), gw,
                                        normkit::TensorView<float>(wbuf.data() + 5, sh), {0});
  }, "weight_norm", {"v", "w", "overlap"});
  expect_bitwise(grads, grads0, "parameter gradients");
  expect_bitwise(wbuf, wbuf0, "weight_norm buffer");
  EXPECT_TRUE(std::all_of(dx.begin(), dx.end(), [](float v) { return v == float(kSentinel); }));

  // Disjoint views of one buffer are fine, and exact in place stays allowed.
  std::vector<float> two = random_vec<float>(120);
  EXPECT_NO_THROW(normkit::layer_norm_forward<float>(normkit::TensorView<const float>(two.data(), sh),
                                                     normkit::TensorView<float>(two.data() + 60, sh), l));
  EXPECT_NO_THROW(normkit::layer_norm_forward<float>(normkit::TensorView<const float>(two.data(), sh),
                                                     normkit::TensorView<float>(two.data(), sh), l));
}

// The fused and deployment ops check the same way: a partial overlap of a written argument
// with another is an Error naming both, and nothing is written.
TEST(Aliasing, ExtrasRejectPartialOverlapAndWriteNothing) {
  const Shape sh = {2, 4, 3, 5};  // 120 elements, 4 channels in 2 groups
  std::vector<float> buf = random_vec<float>(260);
  const auto before = buf;
  const auto in = [&](size_t at) { return normkit::TensorView<const float>(buf.data() + at, sh); };
  const auto out = [&](size_t at) { return normkit::TensorView<float>(buf.data() + at, sh); };
  const auto other = random_vec<float>(120);
  std::vector<float> y = sentinel_vec<float>(120), dx = sentinel_vec<float>(120);
  normkit::RMSNormArgs<float> r;
  r.normalized_shape = {5};
  expect_error([&] { normkit::add_rms_norm_forward<float>(in(0), cview(other, sh), out(130), out(2), r); },
               "add_rms_norm", {"input and sum overlap"});
  expect_error([&] { normkit::add_rms_norm_backward<float>(in(0), {}, in(130), out(131), r); }, "add_rms_norm_backward",
               {"sum and grad_input overlap"});
  normkit::GroupNormArgs<float> g;
  g.num_groups = 2;
  expect_error([&] { normkit::group_norm_silu_forward<float>(in(0), out(5), g); }, "group_norm_silu",
               {"input and output overlap"});
  expect_error([&] { normkit::group_norm_silu_backward<float>(in(0), in(130), out(129), g); }, "group_norm_silu",
               {"input and grad_input overlap"});
  expect_error([&] { normkit::adain_forward<float>(in(0), cview(other, sh), out(119)); }, "adain",
               {"content and output overlap"});
  expect_error([&] { normkit::adain_backward<float>(cview(other, sh), in(0), in(130), out(1), {}); }, "adain",
               {"content and grad_content overlap"});
  normkit::FrozenBatchNorm<float> f(4);
  expect_error([&] { f.forward(in(0), out(60)); }, "frozen_batch_norm", {"input and output overlap"});
  expect_error([&] { f.backward(in(0), out(1)); }, "frozen_batch_norm", {"grad_output and grad_input overlap"});
  expect_bitwise(buf, before, "the shared buffer");
  // Exactly in place is still allowed.
  std::vector<float> x = random_vec<float>(120);
  EXPECT_NO_THROW(f.forward(cview(x, sh), mview(x, sh)));
}

// ---- zero-size backward passes and empty tensors of the other ops -------------------------
TEST(ZeroSize, BackwardOfEveryOpZeroesTheParameterGradients) {
  std::vector<float> x(1), dx = sentinel_vec<float>(1);
  const Shape sh = {0, 4, 3};
  std::vector<float> w(4, 1.f), dw = sentinel_vec<float>(4), db = sentinel_vec<float>(4);
  const std::vector<float> zeros4(4, 0.f);
  normkit::InstanceNormArgs<float> in;
  in.weight = w;
  normkit::instance_norm_backward<float>(cview(x, sh), cview(x, sh), mview(dx, sh), in, dw, db);
  EXPECT_EQ(dw, zeros4);
  EXPECT_EQ(db, zeros4);
  dw = sentinel_vec<float>(4), db = sentinel_vec<float>(4);
  normkit::GroupNormArgs<float> g;
  g.num_groups = 2, g.weight = w;
  std::vector<float> y = sentinel_vec<float>(1);
  EXPECT_NO_THROW(normkit::group_norm_forward<float>(cview(x, sh), mview(y, sh), g));
  normkit::group_norm_backward<float>(cview(x, sh), cview(x, sh), mview(dx, sh), g, dw, db);
  EXPECT_EQ(dw, zeros4);
  EXPECT_EQ(db, zeros4);
  std::vector<float> rw(3, 1.f), drw = sentinel_vec<float>(3);
  normkit::RMSNormArgs<float> r;
  r.normalized_shape = {3}, r.weight = rw;
  normkit::rms_norm_backward<float>(cview(x, sh), cview(x, sh), mview(dx, sh), r, drw);
  EXPECT_EQ(drw, std::vector<float>(3, 0.f));
  // WeightNorm over an empty slice set (dim 0 of size 0) and over empty slices (dim 1 of size 0)
  std::vector<float> dg0;
  normkit::weight_norm_backward<float>(cview(x, sh), cview(x, sh), std::span<const float>{}, mview(dx, sh),
                                       std::span<float>(dg0), {0});
  std::vector<float> g3(3, 2.f), dg3 = sentinel_vec<float>(3);
  const Shape empty_slices = {3, 0};
  normkit::weight_norm_backward<float>(cview(x, empty_slices), cview(x, empty_slices), g3,
                                       mview(dx, empty_slices), dg3, {0});
  EXPECT_EQ(dg3, std::vector<float>(3, 0.f));
  normkit::weight_norm_forward<float>(cview(x, empty_slices), g3, mview(y, empty_slices), {0});
  EXPECT_EQ(dx[0], float(kSentinel));
  EXPECT_EQ(y[0], float(kSentinel));
  // The layer over a zero-size weight: empty v, g and gradients.
  normkit::WeightNorm<float> wn(normkit::TensorView<const float>(nullptr, {0, 3}));
  EXPECT_TRUE(wn.v.empty());
  EXPECT_TRUE(wn.g.empty());
}

TEST(BadView, NegativeSizeOrStrideIsAnErrorInEveryOp) {
  std::vector<float> x(24), y = sentinel_vec<float>(24);
  const normkit::TensorView<const float> neg_size(x.data(), {2, -3, 4}, {12, 4, 1});
  const normkit::TensorView<const float> neg_stride(x.data(), {2, 3, 4}, {12, -4, 1});
  const normkit::TensorView<float> out(y.data(), {2, 3, 4});
  for (const auto* v : {&neg_size, &neg_stride}) {
    const std::string needle = v == &neg_size ? "negative size" : "negative stride -4";
    normkit::BatchNormArgs<float> b;
    b.training = true;
    expect_error([&] { normkit::batch_norm_forward<float>(*v, out, b); }, "batch_norm", {"input", needle});
    expect_error([&] { normkit::instance_norm_forward<float>(*v, out, {}); }, "instance_norm", {"input", needle});
    normkit::GroupNormArgs<float> g;
    g.num_groups = 1;
    expect_error([&] { normkit::group_norm_forward<float>(*v, out, g); }, "group_norm", {"input", needle});
    normkit::LayerNormArgs<float> l;
    l.normalized_shape = {4};
    expect_error([&] { normkit::layer_norm_forward<float>(*v, out, l); }, "layer_norm", {"input", needle});
    normkit::RMSNormArgs<float> r;
    r.normalized_shape = {4};
    expect_error([&] { normkit::rms_norm_forward<float>(*v, out, r); }, "rms_norm", {"input", needle});
    normkit::NormalizeArgs<float> n;
    n.reduce_axes = {2};
    expect_error([&] { normkit::normalize_forward<float>(*v, out, n); }, "normalize", {"input", needle});
    const std::vector<float> gw(2, 1.f);
    expect_error([&] { normkit::weight_norm_forward<float>(*v, gw, out, {0}); }, "weight_norm", {"v", needle});
    // as an output too
    const normkit::TensorView<float> bad_out(y.data(), v->shape, v->strides);
    expect_error([&] { normkit::layer_norm_forward<float>(normkit::TensorView<const float>(x.data(), {2, 3, 4}), bad_out, l); },
                 "layer_norm", {"output"});
  }
  EXPECT_TRUE(std::all_of(y.begin(), y.end(), [](float v) { return v == float(kSentinel); }));
}

// ---- non-finite values in the data: they stay in their own statistic ------------------------
TEST(NonFiniteData, ANaNPoisonsOnlyItsOwnStatistic) {
  const Shape sh = {4, 3, 10};
  const auto clean = random_vec<float>(120);
  for (float bad : {float(kNaN), float(kInf)}) {
    auto x = clean;
    x[1 * 10 + 7] = bad;  // n = 0, channel 1
    std::vector<float> y0(120), y1(120);
    normkit::LayerNormArgs<float> l;
    l.normalized_shape = {10};
    normkit::layer_norm_forward<float>(cview(clean, sh), mview(y0, sh), l);
    normkit::layer_norm_forward<float>(cview(x, sh), mview(y1, sh), l);
    std::vector<float> mean(12), rstd(12);
    normkit::layer_norm_forward<float>(cview(x, sh), mview(y1, sh), l, {mean, rstd});
    for (size_t i = 0; i < 120; ++i) {
      if (i / 10 == 1) EXPECT_TRUE(std::isnan(y1[i])) << "row 1 element " << i;
      else EXPECT_EQ(y1[i], y0[i]) << "row " << i / 10 << " changed";
    }
    // The saved statistics say so too (PyTorch's native_layer_norm returns rstd = nan there).
    EXPECT_TRUE(std::isnan(mean[1]));
    EXPECT_TRUE(std::isnan(rstd[1])) << "rstd of the NaN row is " << rstd[1];
    normkit::BatchNormArgs<float> b;
    b.training = true;
    normkit::batch_norm_forward<float>(cview(clean, sh), mview(y0, sh), b);
    normkit::batch_norm_forward<float>(cview(x, sh), mview(y1, sh), b);
    for (size_t i = 0; i < 120; ++i) {
      if ((i / 10) % 3 == 1) EXPECT_TRUE(std::isnan(y1[i])) << "channel 1 element " << i;
      else EXPECT_EQ(y1[i], y0[i]) << "channel " << (i / 10) % 3 << " changed";
    }
  }
}

// ---- the guard against poisoned running statistics (issue 5, item 3) ------------------------
template <class T>
class GuardTest : public ::testing::Test {};
TYPED_TEST_SUITE(GuardTest, FloatTypes);

TYPED_TEST(GuardTest, BatchNormFunctional) {
  using T = TypeParam;
  const Shape sh = {4, 3, 5};
  const auto clean = random_vec<T>(60, 2.0, 1.0);
  auto poisoned = clean;
  poisoned[7] = std::numeric_limits<T>::quiet_NaN();
  for (bool guard : {false, true}) {
    std::vector<T> y(60), rm = {0.1, 0.2, 0.3}, rv = {1.1, 1.2, 1.3};
    const auto rm0 = rm, rv0 = rv;
    bool skipped = !guard;  // must be overwritten
    normkit::BatchNormArgs<T> a;
    a.running_mean = rm, a.running_var = rv, a.training = true;
    a.skip_nonfinite_update = guard, a.update_skipped = &skipped;
    normkit::batch_norm_forward<T>(cview(poisoned, sh), mview(y, sh), a);
    EXPECT_EQ(skipped, guard);
    if (guard) {
      EXPECT_EQ(rm, rm0);
      EXPECT_EQ(rv, rv0);
    } else {
      EXPECT_TRUE(std::isnan(rm[1])) << "off by default: PyTorch folds the NaN in";
      EXPECT_TRUE(std::isnan(rv[1])) << "a NaN in the batch makes its variance NaN, as in PyTorch";
      EXPECT_NE(rm[0], rm0[0]) << "other channels still update";
    }
    EXPECT_TRUE(std::isnan(y[7])) << "y is written with the batch statistics either way";
    // A clean batch: the guard changes nothing, bit for bit.
    std::vector<T> rmg = rm0, rvg = rv0, rmp = rm0, rvp = rv0, yg(60), yp(60);
    a.running_mean = rmg, a.running_var = rvg;
    normkit::batch_norm_forward<T>(cview(clean, sh), mview(yg, sh), a);
    EXPECT_FALSE(skipped);
    normkit::BatchNormArgs<T> plain;
    plain.running_mean = rmp, plain.running_var = rvp, plain.training = true;
    normkit::batch_norm_forward<T>(cview(clean, sh), mview(yp, sh), plain);
    expect_bitwise(rmg, rmp, "guarded running_mean"), expect_bitwise(rvg, rvp, "guarded running_var");
    expect_bitwise(yg, yp, "guarded y");
  }
}

TYPED_TEST(GuardTest, InstanceNormFunctionalInfinity) {
  using T = TypeParam;
  const Shape sh = {2, 2, 6};
  auto x = random_vec<T>(24);
  x[20] = std::numeric_limits<T>::infinity();  // instance (1, 1): mean inf, variance nan
  std::vector<T> y(24), rm(2, T(0)), rv(2, T(1));
  bool skipped = false;
  normkit::InstanceNormArgs<T> a;
  a.running_mean = rm, a.running_var = rv, a.skip_nonfinite_update = true, a.update_skipped = &skipped;
  normkit::instance_norm_forward<T>(cview(x, sh), mview(y, sh), a);
  EXPECT_TRUE(skipped);
  EXPECT_EQ(rm, std::vector<T>(2, T(0)));
  EXPECT_EQ(rv, std::vector<T>(2, T(1)));
}

TEST(Guard, OverflowingVarianceIsNonFinite) {
  // Finite inputs whose variance overflows float's range still count: statistics are double,
  // but the running variance stored as float would be inf.
  const Shape sh = {2, 1, 2};
  const std::vector<float> x = {-3e38f, 3e38f, -3e38f, 3e38f};
  std::vector<float> y(4), rm(1, 0.f), rv(1, 1.f);
  bool skipped = false;
  normkit::BatchNormArgs<float> a;
  a.running_mean = rm, a.running_var = rv, a.training = true, a.momentum = 1.0;
  a.skip_nonfinite_update = true, a.update_skipped = &skipped;
  normkit::batch_norm_forward<float>(cview(x, sh), mview(y, sh), a);
  EXPECT_TRUE(skipped);
  EXPECT_EQ(rv[0], 1.f) << "an inf running_var was stored despite the guard";
}

TEST(Guard, LayersCountSkippedBatches) {
  const Shape sh = {4, 2, 3};
  const auto clean = random_vec<float>(24);
  auto bad = clean;
  bad[3] = NAN;
  std::vector<float> y(24);
  normkit::BatchNorm<float> bn(2, {.momentum = std::nullopt, .skip_nonfinite_update = true});
  bn.forward(cview(clean, sh), mview(y, sh));
  const auto rm1 = bn.running_mean, rv1 = bn.running_var;
  bn.forward(cview(bad, sh), mview(y, sh));
  EXPECT_TRUE(bn.last_update_skipped);
  EXPECT_EQ(bn.skipped_updates, 1);
  EXPECT_EQ(bn.num_batches_tracked, 1) << "a skipped batch does not count in the cumulative average";
  EXPECT_EQ(bn.running_mean, rm1);
  EXPECT_EQ(bn.running_var, rv1);
  bn.forward(cview(clean, sh), mview(y, sh));
  EXPECT_FALSE(bn.last_update_skipped);
  EXPECT_EQ(bn.skipped_updates, 1);
  EXPECT_EQ(bn.num_batches_tracked, 2);
  // Same two clean batches without the bad one in between: identical state.
  normkit::BatchNorm<float> ref(2, {.momentum = std::nullopt});
  ref.forward(cview(clean, sh), mview(y, sh));
  ref.forward(cview(clean, sh), mview(y, sh));
  EXPECT_EQ(bn.running_mean, ref.running_mean);
  EXPECT_EQ(bn.running_var, ref.running_var);
  // Eval never updates, so never skips.
  bn.eval();
  bn.forward(cview(bad, sh), mview(y, sh));
  EXPECT_FALSE(bn.last_update_skipped);
  EXPECT_EQ(bn.skipped_updates, 1);

  normkit::InstanceNorm<float> in(2, {.track_running_stats = true, .skip_nonfinite_update = true});
  in.forward(cview(bad, sh), mview(y, sh));
  EXPECT_TRUE(in.last_update_skipped);
  EXPECT_EQ(in.skipped_updates, 1);
  EXPECT_EQ(in.num_batches_tracked, 0);
  EXPECT_EQ(in.running_mean, std::vector<float>(2, 0.f));
  // Off by default: the layer folds the NaN in, as torch.nn does.
  normkit::BatchNorm<float> plain(2);
  plain.forward(cview(bad, sh), mview(y, sh));
  EXPECT_FALSE(plain.last_update_skipped);
  EXPECT_TRUE(std::isnan(plain.running_mean[1]));
}

}  // namespace
