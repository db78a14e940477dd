// test_stress.cpp — accuracy under numerical stress (issue 5, item 1): float32 results of
// every op against the float64 oracle run on the same (exactly widened) inputs, at mean
// offsets 1e3/1e4/1e6 over a unit spread, tiny variances, 1e7-element rows and one or two
// elements per statistic. The bar is 1e-5 relative to the output's scale; never loosened.
#include "test_util.hpp"

namespace {
using namespace nk_test;
namespace ref = normkit::reference;

// One stress input: values uniform in [offset - spread, offset + spread].
struct Stress {
  double offset, spread, eps;
};
std::string label(const char* op, const Shape& sh, const Stress& s) {
  return std::string(op) + " " + normkit::shape_str(sh) + " offset=" + std::to_string(s.offset) +
         " spread=" + std::to_string(s.spread) + " eps=" + std::to_string(s.eps);
}
std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// The offsets of the issue with a unit spread, default eps, and the tiny-variance cases:
// var/mean^2 ~ 3e-9 (offset 1, spread 1e-4) and an absolute variance ~ 3e-9, both with eps
// 1e-12 so the variance alone sets the scale (eps 0 would make rows that happen to hold two
// equal values 0/0 = NaN in both results).
const std::vector<Stress> kOffsets = {{1e3, 1.0, 1e-5}, {1e4, 1.0, 1e-5}, {1e6, 1.0, 1e-5}};
const std::vector<Stress> kTinyVar = {{1.0, 1e-4, 1e-12}, {0.0, 1e-4, 1e-12}};
std::vector<Stress> all_cases() {
  auto c = kOffsets;
  c.insert(c.end(), kTinyVar.begin(), kTinyVar.end());
  return c;
}

constexpr double kOut = 1e-5;   // y, rstd, running_var: relative to their scale
constexpr double kMean = 1e-6;  // the mean itself, relative to |mean| (float32 keeps ~6e-8)

// Gradients are held to grad_tol relative to the size of their terms, rstd * |dy * w|: with
// one or two elements per statistic the exact dx is ~0 while its terms are large, so a
// scale taken from dx itself would demand more than float32 can hold.
double term_scale(const std::vector<double>& rstd, const std::vector<float>& dy, const std::vector<float>& w) {
  return max_abs(rstd) * max_abs(dy) * (w.empty() ? 1.0 : max_abs(w));
}

// ---- LayerNorm: rows of 1, 2, 4096 and 1e7 elements ----------------------------------------
void check_layer_norm(const Shape& sh, const Stress& s, bool backward) {
  const int64_t D = sh.back(), M = numel(sh) / D;
  const auto x = random_vec<float>(numel(sh), s.offset, s.spread);
  const auto w = random_vec<float>(D, 1.0, 0.5), b = random_vec<float>(D, 0.0, 0.5);
  std::vector<float> y(x.size()), mean(M), rstd(M);
  normkit::LayerNormArgs<float> a;
  a.normalized_shape = {D}, a.weight = w, a.bias = b, a.eps = s.eps;
  normkit::layer_norm_forward<float>(cview(x, sh), mview(y, sh), a, {mean, rstd});
  const auto xd = widen(x), wd = widen(w), bd = widen(b);
  std::vector<double> yd(x.size()), md(M), rd(M);
  ref::layer_norm_forward<double>(xd.data(), yd.data(), M, D, wd.data(), bd.data(), s.eps, md.data(), rd.data());
  const auto what = label("layer_norm", sh, s);
  expect_close(y, yd, kOut, what + " y");
  expect_close(mean, md, kMean, what + " mean");
  if (D > 1) expect_close(rstd, rd, kOut, what + " rstd");
  if (!backward) return;
  const auto dy = random_vec<float>(numel(sh));
  std::vector<float> dx(x.size()), dw(D), db(D);
  normkit::layer_norm_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, dw, db);
  const auto dyd = widen(dy);
  std::vector<double> dxd(x.size()), dwd(D), dbd(D);
  ref::layer_norm_backward<double>(dyd.data(), xd.data(), dxd.data(), M, D, wd.data(), s.eps, dwd.data(), dbd.data());
  expect_close(dx, dxd, grad_tol<float>(), what + " dx", term_scale(rd, dy, w));
  expect_close(dw, dwd, grad_tol<float>(), what + " dweight");
  expect_close(db, dbd, grad_tol<float>(), what + " dbias");
}

TEST(Stress, LayerNormOffsetsAndTinyVariance) {
  for (const auto& s : all_cases())
    for (const Shape& sh : {Shape{64, 1}, Shape{64, 2}, Shape{16, 4096}})
      check_layer_norm(sh, s, true);
}

// ---- BatchNorm (training): two elements per channel up to 5e6 per channel ------------------
void check_batch_norm(const Shape& sh, const Stress& s, bool backward) {
  const auto [N, C, S] = ncs(sh);
  const auto x = random_vec<float>(numel(sh), s.offset, s.spread);
  const auto w = random_vec<float>(C, 1.0, 0.5), b = random_vec<float>(C, 0.0, 0.5);
  std::vector<float> y(x.size()), mean(C), rstd(C), rm(C, 0.f), rv(C, 1.f);
  normkit::BatchNormArgs<float> a;
  a.weight = w, a.bias = b, a.running_mean = rm, a.running_var = rv, a.training = true;
  a.momentum = 1.0, a.eps = s.eps;  // momentum 1: the running statistics are the batch's
  normkit::batch_norm_forward<float>(cview(x, sh), mview(y, sh), a, {mean, rstd});
  const auto xd = widen(x), wd = widen(w), bd = widen(b);
  std::vector<double> yd(x.size()), md(C), rd(C), rmd(C, 0.0), rvd(C, 1.0);
  ref::batch_norm_forward<double>(xd.data(), yd.data(), N, C, S, wd.data(), bd.data(), rmd.data(), rvd.data(),
                                  true, 1.0, s.eps, md.data(), rd.data());
  const auto what = label("batch_norm", sh, s);
  expect_close(y, yd, kOut, what + " y");
  expect_close(mean, md, kMean, what + " mean");
  expect_close(rstd, rd, kOut, what + " rstd");
  expect_close(rm, rmd, kMean, what + " running_mean");
  expect_close(rv, rvd, kOut, what + " running_var", 0.0);
  if (!backward) return;
  const auto dy = random_vec<float>(numel(sh));
  std::vector<float> dx(x.size()), dw(C), db(C);
  normkit::batch_norm_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, dw, db);
  const auto dyd = widen(dy);
  std::vector<double> dxd(x.size()), dwd(C), dbd(C);
  ref::batch_norm_backward<double>(dyd.data(), xd.data(), dxd.data(), N, C, S, wd.data(), nullptr, nullptr,
                                   true, s.eps, dwd.data(), dbd.data());
  expect_close(dx, dxd, grad_tol<float>(), what + " dx", term_scale(rd, dy, w));
  expect_close(dw, dwd, grad_tol<float>(), what + " dweight");
  expect_close(db, dbd, grad_tol<float>(), what + " dbias");
}

TEST(Stress, BatchNormOffsetsAndTinyVariance) {
  for (const auto& s : all_cases())
    for (const Shape& sh : {Shape{2, 3}, Shape{1, 3, 2}, Shape{8, 4, 512}, Shape{64, 8, 7, 7}})
      check_batch_norm(sh, s, true);
}

// ---- InstanceNorm: two spatial elements up to 1e7 per instance ------------------------------
void check_instance_norm(const Shape& sh, const Stress& s) {
  const auto [N, C, S] = ncs(sh);
  const auto x = random_vec<float>(numel(sh), s.offset, s.spread);
  std::vector<float> y(x.size()), mean(N * C), rstd(N * C), rm(C, 0.f), rv(C, 1.f);
  normkit::InstanceNormArgs<float> a;
  a.running_mean = rm, a.running_var = rv, a.momentum = 1.0, a.eps = s.eps;
  normkit::instance_norm_forward<float>(cview(x, sh), mview(y, sh), a, {mean, rstd});
  const auto xd = widen(x);
  std::vector<double> yd(x.size()), md(N * C), rd(N * C), rmd(C, 0.0), rvd(C, 1.0);
  ref::instance_norm_forward<double>(xd.data(), yd.data(), N, C, S, nullptr, nullptr, rmd.data(), rvd.data(),
                                     true, 1.0, s.eps, md.data(), rd.data());
  const auto what = label("instance_norm", sh, s);
  expect_close(y, yd, kOut, what + " y");
  expect_close(mean, md, kMean, what + " mean");
  expect_close(rstd, rd, kOut, what + " rstd");
  expect_close(rv, rvd, kOut, what + " running_var", 0.0);
}

TEST(Stress, InstanceNormOffsetsAndTinyVariance) {
  for (const auto& s : all_cases())
    for (const Shape& sh : {Shape{4, 3, 2}, Shape{2, 3, 64, 64}}) check_instance_norm(sh, s);
}

// ---- GroupNorm: two elements per group up to 1e7 -------------------------------------------
void check_group_norm(const Shape& sh, int64_t G, const Stress& s) {
  const auto [N, C, S] = ncs(sh);
  const auto x = random_vec<float>(numel(sh), s.offset, s.spread);
  std::vector<float> y(x.size()), mean(N * G), rstd(N * G);
  normkit::GroupNormArgs<float> a;
  a.num_groups = G, a.eps = s.eps;
  normkit::group_norm_forward<float>(cview(x, sh), mview(y, sh), a, {mean, rstd});
  const auto xd = widen(x);
  std::vector<double> yd(x.size()), md(N * G), rd(N * G);
  ref::group_norm_forward<double>(xd.data(), yd.data(), N, C, S, G, nullptr, nullptr, s.eps, md.data(), rd.data());
  const auto what = label("group_norm", sh, s) + " G=" + std::to_string(G);
  expect_close(y, yd, kOut, what + " y");
  expect_close(mean, md, kMean, what + " mean");
  expect_close(rstd, rd, kOut, what + " rstd");
}

TEST(Stress, GroupNormOffsetsAndTinyVariance) {
  for (const auto& s : all_cases()) {
    check_group_norm({4, 4}, 2, s);  // two channels per group, no spatial dims
    check_group_norm({2, 8, 32, 32}, 4, s);
  }
}

// ---- RMSNorm: the offset dominates the mean square; relative accuracy must hold ------------
void check_rms_norm(const Shape& sh, const Stress& s) {
  const int64_t D = sh.back(), M = numel(sh) / D;
  const auto x = random_vec<float>(numel(sh), s.offset, s.spread);
  std::vector<float> y(x.size()), rstd(M);
  normkit::RMSNormArgs<float> a;
  a.normalized_shape = {D}, a.eps = s.eps;
  normkit::rms_norm_forward<float>(cview(x, sh), mview(y, sh), a, {{}, rstd});
  const auto xd = widen(x);
  std::vector<double> yd(x.size()), rd(M);
  ref::rms_norm_forward<double>(xd.data(), yd.data(), M, D, nullptr, false, s.eps, rd.data());
  const auto what = label("rms_norm", sh, s);
  expect_close(y, yd, kOut, what + " y");
  expect_close(rstd, rd, kOut, what + " rstd", 0.0);
}

TEST(Stress, RMSNormOffsets) {
  for (const auto& s : all_cases())
    for (const Shape& sh : {Shape{64, 1}, Shape{64, 2}, Shape{16, 4096}}) check_rms_norm(sh, s);
}

// ---- WeightNorm: slices of 1, 2, 4096 and 1e7 elements -------------------------------------
void check_weight_norm(const Shape& sh, std::optional<int64_t> dim, const Stress& s) {
  const auto v = random_vec<float>(numel(sh), s.offset, s.spread);
  const int64_t G = dim ? sh[static_cast<size_t>(*dim)] : 1;
  const auto g = random_vec<float>(G, 1.0, 0.5);
  std::vector<float> w(v.size()), norms(G);
  normkit::weight_norm_forward<float>(cview(v, sh), g, mview(w, sh), {dim}, norms);
  const auto vd = widen(v), gd = widen(g);
  std::vector<double> wd(v.size()), nd(G);
  ref::weight_norm_forward<double>(vd.data(), gd.data(), wd.data(), sh, dim, nd.data());
  const auto what = label("weight_norm", sh, s);
  expect_close(w, wd, kOut, what + " w");
  expect_close(norms, nd, kOut, what + " norms", 0.0);
}

TEST(Stress, WeightNormOffsets) {
  for (const auto& s : all_cases()) {
    check_weight_norm({64, 1}, 0, s);
    check_weight_norm({64, 2}, 0, s);
    check_weight_norm({16, 4096}, 0, s);
    check_weight_norm({4096, 16}, 1, s);
  }
}

// ---- the generic normalize over non-adjacent axes (plan [R,K,R]) ---------------------------
TEST(Stress, NormalizeOffsetsAndTinyVariance) {
  for (const auto& s : all_cases())
    for (const Shape& sh : {Shape{2, 3, 1}, Shape{16, 5, 300}}) {
      const auto x = random_vec<float>(numel(sh), s.offset, s.spread);
      std::vector<float> y(x.size()), mean(sh[1]), rstd(sh[1]);
      normkit::NormalizeArgs<float> a;
      a.reduce_axes = {0, 2}, a.eps = s.eps;
      normkit::normalize_forward<float>(cview(x, sh), mview(y, sh), a, {mean, rstd});
      const auto xd = widen(x);
      std::vector<double> yd(x.size()), md(sh[1]), rd(sh[1]);
      ref::normalize_forward<double>(xd.data(), yd.data(), sh, {true, false, true}, {false, false, false},
                                     normkit::Statistic::Variance, nullptr, nullptr, s.eps, md.data(), rd.data());
      const auto what = label("normalize", sh, s);
      expect_close(y, yd, kOut, what + " y");
      expect_close(mean, md, kMean, what + " mean");
      expect_close(rstd, rd, kOut, what + " rstd");
    }
}

// ---- 1e7 elements in one statistic, every op ------------------------------------------------
// The oracle is a plain two-pass in double over the widened input (the reference's general
// loops are too slow at this size); the unit data are drawn once and shifted per offset.
TEST(Stress, OneStatisticOf1e7ElementsEveryOp) {
  constexpr int64_t n = 10'000'000;
  static const auto unit = random_vec<double>(n);
  for (const auto& s : kOffsets) {
    std::vector<float> x(n), y(n);
    for (int64_t i = 0; i < n; ++i) x[i] = float(s.offset + unit[i]);
    double sum = 0, ss = 0, sq = 0;
    for (float v : x) sum += v;
    const double mean = sum / n;
    for (float v : x) ss += (v - mean) * (v - mean), sq += double(v) * v;
    const double rstd = 1 / std::sqrt(ss / n + s.eps), rms = 1 / std::sqrt(sq / n + s.eps);
    // y against the oracle y = (x - shift) * scale, without building a 1e7 double vector.
    auto check = [&](const std::string& what, double shift, double scale) {
      double worst = 0, big = 1e-3;
      for (int64_t i = 0; i < n; ++i) {
        const double want = (double(x[i]) - shift) * scale;
        big = std::max(big, std::abs(want));
        worst = std::max(worst, std::abs(double(y[i]) - want));
      }
      EXPECT_LE(worst, kOut * big) << what << " offset=" << s.offset << " (scale " << big << ")";
      std::fill(y.begin(), y.end(), 0.f);
    };
    auto close = [&](double got, double want, double rel, const std::string& what) {
      EXPECT_LE(std::abs(got - want), rel * std::abs(want)) << what << " offset=" << s.offset;
    };
    std::vector<float> m(1), r(1), rm(1, 0.f), rv(1, 1.f);
    normkit::LayerNormArgs<float> ln;
    ln.normalized_shape = {n}, ln.eps = s.eps;
    normkit::layer_norm_forward<float>(cview(x, {1, n}), mview(y, {1, n}), ln, {m, r});
    check("layer_norm", mean, rstd);
    close(m[0], mean, kMean, "layer_norm mean"), close(r[0], rstd, kOut, "layer_norm rstd");
    normkit::BatchNormArgs<float> bn;
    bn.running_mean = rm, bn.running_var = rv, bn.training = true, bn.momentum = 1.0, bn.eps = s.eps;
    normkit::batch_norm_forward<float>(cview(x, {10, 1, n / 10}), mview(y, {10, 1, n / 10}), bn);
    check("batch_norm", mean, rstd);
    close(rm[0], mean, kMean, "running_mean"), close(rv[0], ss / (n - 1), kOut, "running_var");
    normkit::InstanceNormArgs<float> in;
    in.eps = s.eps;
    normkit::instance_norm_forward<float>(cview(x, {1, 1, n}), mview(y, {1, 1, n}), in);
    check("instance_norm", mean, rstd);
    normkit::GroupNormArgs<float> gn;
    gn.num_groups = 1, gn.eps = s.eps;
    normkit::group_norm_forward<float>(cview(x, {1, 4, n / 4}), mview(y, {1, 4, n / 4}), gn);
    check("group_norm", mean, rstd);
    normkit::NormalizeArgs<float> nm;
    nm.reduce_axes = {0, 1, 2}, nm.eps = s.eps;
    normkit::normalize_forward<float>(cview(x, {100, 10, n / 1000}), mview(y, {100, 10, n / 1000}), nm);
    check("normalize", mean, rstd);
    normkit::RMSNormArgs<float> rn;
    rn.normalized_shape = {n}, rn.eps = s.eps;
    normkit::rms_norm_forward<float>(cview(x, {1, n}), mview(y, {1, n}), rn);
    check("rms_norm", 0.0, rms);
    const std::vector<float> g = {2.f};
    normkit::weight_norm_forward<float>(cview(x, {n}), g, mview(y, {n}), {std::nullopt}, m);
    check("weight_norm", 0.0, 2.0 / std::sqrt(sq));
    close(m[0], std::sqrt(sq), kOut, "weight_norm norm");
  }
}

// ---- channels-last (strided) BatchNorm at offset 1e4: the column path of the engine --------
TEST(Stress, BatchNormChannelsLastOffset) {
  const Shape sh = {16, 8, 9, 9};
  const Stress s = kOffsets[1];
  const Strides st = channels_last_strides(sh);
  const auto x = random_vec<float>(numel(sh), s.offset, s.spread);
  const auto xs = scatter(x, sh, st);
  auto ys = sentinel_vec<float>(static_cast<int64_t>(xs.size()));
  normkit::BatchNormArgs<float> a;
  a.training = true, a.eps = s.eps;
  normkit::batch_norm_forward<float>(cview(xs, sh, st), mview(ys, sh, st), a);
  const auto [N, C, S] = ncs(sh);
  const auto xd = widen(x);
  std::vector<double> yd(x.size());
  ref::batch_norm_forward<double>(xd.data(), yd.data(), N, C, S, nullptr, nullptr, nullptr, nullptr, true, 0.1,
                                  s.eps);
  expect_close(gather(ys, sh, st), yd, kOut, label("batch_norm NHWC", sh, s) + " y");
}

// ---- rows that begin far from their mean ------------------------------------------------
// A row's one-pass sums are taken around the mean of its first 16 elements; where that lies
// more than 4 standard deviations from the row's mean, the row is summed again around the
// first pass's mean (engine.cpp, shift_too_far). InstanceNorm and LayerNorm over rows of 1031
// elements, every third row starting with 16 values near 1e4 among values near 0 (about 8
// standard deviations off), the rest plain, in the same blocks of rows; then one row with a
// NaN and one with an Inf: those rows give NaN (as PyTorch), the others keep their bits.
TEST(Stress, RowsThatBeginFarFromTheirMean) {
  const int64_t N = 2, C = 37, S = 1031, M = N * C;
  const Shape sh = {N, C, S}, rows = {M, S};
  auto x = random_vec<float>(M * S, 0.0, 1.0);
  for (int64_t r = 0; r < M; r += 3)
    for (int64_t i = 0; i < 16; ++i) x[size_t(r * S + i)] += 1e4f;
  const auto w = random_vec<float>(S, 1.0, 0.5), b = random_vec<float>(S, 0.0, 0.5);
  const double eps = 1e-5;
  auto run = [&](const std::vector<float>& in, std::vector<float>& yi, std::vector<float>& mi, std::vector<float>& yl,
                 std::vector<float>& ml) {
    yi.assign(in.size(), 0.f), mi.assign(size_t(M), 0.f), yl.assign(in.size(), 0.f), ml.assign(size_t(M), 0.f);
    std::vector<float> ri(static_cast<size_t>(M)), rl(static_cast<size_t>(M));
    normkit::instance_norm_forward<float>(cview(in, sh), mview(yi, sh), normkit::InstanceNormArgs<float>{}, {mi, ri});
    normkit::LayerNormArgs<float> a;
    a.normalized_shape = {S}, a.weight = w, a.bias = b, a.eps = eps;
    normkit::layer_norm_forward<float>(cview(in, rows), mview(yl, rows), a, {ml, rl});
  };
  std::vector<float> yi, mi, yl, ml;
  run(x, yi, mi, yl, ml);
  const auto xd = widen(x), wd = widen(w), bd = widen(b);
  std::vector<double> yid(x.size()), mid(static_cast<size_t>(M)), yld(x.size()), mld(static_cast<size_t>(M));
  ref::instance_norm_forward<double>(xd.data(), yid.data(), N, C, S, nullptr, nullptr, nullptr, nullptr, true, 0.1,
                                     eps, mid.data());
  ref::layer_norm_forward<double>(xd.data(), yld.data(), M, S, wd.data(), bd.data(), eps, mld.data());
  expect_close(yi, yid, kOut, "instance_norm y");
  expect_close(mi, mid, kMean, "instance_norm mean");
  expect_close(yl, yld, kOut, "layer_norm y");
  expect_close(ml, mld, kMean, "layer_norm mean");

  const int saved = normkit::get_num_threads();  // the same bits on 3 threads
  normkit::set_num_threads(3);
  std::vector<float> yi3, mi3, yl3, ml3;
  run(x, yi3, mi3, yl3, ml3);
  normkit::set_num_threads(saved);
  expect_bitwise(yi3, yi, "instance_norm y, 3 threads"), expect_bitwise(yl3, yl, "layer_norm y, 3 threads");

  auto bad = x;
  const int64_t nan_row = 5, inf_row = 9;  // one far row (9), one plain
  bad[size_t(nan_row * S + 100)] = NAN, bad[size_t(inf_row * S + 3)] = INFINITY;
  std::vector<float> yib, mib, ylb, mlb;
  run(bad, yib, mib, ylb, mlb);
  for (int64_t r = 0; r < M; ++r) {
    const auto at = [&](const std::vector<float>& v) {
      return std::vector<float>(v.begin() + r * S, v.begin() + (r + 1) * S);
    };
    if (r == nan_row || r == inf_row) {
      EXPECT_TRUE(std::isnan(mib[size_t(r)]) && std::isnan(mlb[size_t(r)])) << "row " << r << " mean";
      for (int64_t i = 0; i < S; ++i)
        ASSERT_TRUE(std::isnan(yib[size_t(r * S + i)]) && std::isnan(ylb[size_t(r * S + i)])) << "row " << r << " y";
    } else {
      expect_bitwise(at(yib), at(yi), "instance_norm row " + std::to_string(r) + " beside NaN rows");
      expect_bitwise(at(ylb), at(yl), "layer_norm row " + std::to_string(r) + " beside NaN rows");
    }
  }
}

// ---- large statistics out of cache: the pipelined forward ---------------------------------
// Outputs of 16 MiB and more whose statistics span several reduction chunks normalize each
// statistic in the same loop as the next one's statistics pass (engine.cpp,
// forward_pipelined). GroupNorm and InstanceNorm on 2x12x181x1013 (17.6 MB), one statistic
// with 16 values near 1e4 at the start of each of its chunks (so each is summed again around
// its mean): against the float64 oracle, and the same bits on 1, 2 and 3 threads (each
// thread's first statistic alone, the others fused with their neighbour).
TEST(Stress, LargeStatisticsOutOfCache) {
  const int64_t N = 2, C = 12, H = 181, W = 1013, S = H * W, G = 3;
  const Shape sh = {N, C, H, W};
  auto x = random_vec<float>(numel(sh), 0.5, 1.0);
  const int64_t group = C / G * S, chunk = 32768;  // the second group of image 0
  for (int64_t d = 0; d < group; d += chunk)
    for (int64_t i = 0; i < 16 && d + i < group; ++i) x[size_t(group + d + i)] += 1e4f;
  const auto w = random_vec<float>(C, 1.0, 0.5), b = random_vec<float>(C, 0.0, 0.5);
  auto run = [&](int threads, std::vector<float>& yg, std::vector<float>& mg, std::vector<float>& yi,
                 std::vector<float>& mi) {
    const int saved = normkit::get_num_threads();
    normkit::set_num_threads(threads);
    yg.assign(x.size(), 0.f), mg.assign(size_t(N * G), 0.f), yi.assign(x.size(), 0.f), mi.assign(size_t(N * C), 0.f);
    std::vector<float> rg(static_cast<size_t>(N * G)), ri(static_cast<size_t>(N * C));
    normkit::GroupNormArgs<float> a;
    a.num_groups = G, a.weight = w, a.bias = b;
    normkit::group_norm_forward<float>(cview(x, sh), mview(yg, sh), a, {mg, rg});
    normkit::InstanceNormArgs<float> ia;
    ia.weight = w, ia.bias = b;
    normkit::instance_norm_forward<float>(cview(x, sh), mview(yi, sh), ia, {mi, ri});
    normkit::set_num_threads(saved);
  };
  std::vector<float> yg, mg, yi, mi;
  run(2, yg, mg, yi, mi);
  const auto xd = widen(x), wd = widen(w), bd = widen(b);
  std::vector<double> ygd(x.size()), mgd(static_cast<size_t>(N * G)), yid(x.size()), mid(static_cast<size_t>(N * C));
  ref::group_norm_forward<double>(xd.data(), ygd.data(), N, C, S, G, wd.data(), bd.data(), 1e-5, mgd.data());
  ref::instance_norm_forward<double>(xd.data(), yid.data(), N, C, S, wd.data(), bd.data(), nullptr, nullptr, true,
                                     0.1, 1e-5, mid.data());
  expect_close(yg, ygd, kOut, "group_norm y");
  expect_close(mg, mgd, kMean, "group_norm mean");
  expect_close(yi, yid, kOut, "instance_norm y");
  expect_close(mi, mid, kMean, "instance_norm mean");
  for (int t : {1, 3}) {
    std::vector<float> yg2, mg2, yi2, mi2;
    run(t, yg2, mg2, yi2, mi2);
    const std::string on = " on " + std::to_string(t) + " threads";
    expect_bitwise(yg2, yg, "group_norm y" + on), expect_bitwise(mg2, mg, "group_norm mean" + on);
    expect_bitwise(yi2, yi, "instance_norm y" + on), expect_bitwise(mi2, mi, "instance_norm mean" + on);
  }
}

// In cache the pipelined forward takes every float32 GroupNorm on NCHW. With a gap after each
// channel its runs do not follow each other, and the statistic-at-a-time path takes them: the same shifts, the same per-run sums, so the same
// bits. Odd sizes (vector tails), groups whose first 16 values lie far from their mean (summed
// again around it), a group of one channel, and 1, 2 and 3 threads (each thread's last
// statistic normalized alone).
TEST(Stress, PipelinedInCacheGivesTheBitsOfTheStatisticAtATime) {
  struct Case {
    int64_t N, C, H, W, G;
  };
  for (const Case c : {Case{3, 12, 7, 9, 4}, Case{2, 8, 13, 13, 8}, Case{5, 6, 1, 3, 2}, Case{2, 64, 33, 31, 8}}) {
    const Shape sh = {c.N, c.C, c.H, c.W};
    const int64_t S = c.H * c.W, gap = 5, CS = S + gap;
    auto x = random_vec<float>(numel(sh), 0.5, 1.0);
    for (int64_t q = 0; q < c.N * c.G; q += 3)  // every third group starts far from its mean
      for (int64_t i = 0; i < 16 && i < c.C / c.G * S; ++i) x[size_t(q * (c.C / c.G) * S + i)] += 1e3f;
    std::vector<float> xg(size_t(c.N * c.C * CS), 7.f);  // x with `gap` elements after each channel
    for (int64_t nc = 0; nc < c.N * c.C; ++nc)
      std::copy_n(x.begin() + nc * S, S, xg.begin() + nc * CS);
    const Strides gapped = {c.C * CS, CS, c.W, 1};
    const auto w = random_vec<float>(c.C, 1.0, 0.5), b = random_vec<float>(c.C, 0.0, 0.5);
    normkit::GroupNormArgs<float> a;
    a.num_groups = c.G, a.weight = w, a.bias = b;
    const std::string name = "group_norm " + std::to_string(c.N) + "x" + std::to_string(c.C) + "x" +
                             std::to_string(c.H) + "x" + std::to_string(c.W) + " G=" + std::to_string(c.G);
    const int saved = normkit::get_num_threads();
    for (int t : {1, 2, 3}) {
      normkit::set_num_threads(t);
      std::vector<float> y(x.size()), yg(xg.size(), -1.f), m(size_t(c.N * c.G)), r(m.size()), mg(m.size()),
          rg(m.size());
      normkit::group_norm_forward<float>(cview(x, sh), mview(y, sh), a, {m, r});
      normkit::group_norm_forward<float>(cview(xg, sh, gapped), mview(yg, sh, gapped), a, {mg, rg});
      std::vector<float> ygc(x.size());
      for (int64_t nc = 0; nc < c.N * c.C; ++nc)
        std::copy_n(yg.begin() + nc * CS, S, ygc.begin() + nc * S);
      const std::string on = name + " on " + std::to_string(t) + " threads";
      expect_bitwise(y, ygc, on + " y"), expect_bitwise(m, mg, on + " mean"), expect_bitwise(r, rg, on + " rstd");
    }
    normkit::set_num_threads(saved);
  }
}

}  // namespace
