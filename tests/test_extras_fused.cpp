// test_extras_fused.cpp — the fused extras against their unfused composition on the oracle:
// add_rms_norm / add_layer_norm (sum exact, y, dx = d residual, dweight, dbias) and
// group_norm_silu (y, dx, dweight, dbias); finite differences, strided and channels-last
// views, several row/group blocks, in-place use, thread-count determinism, argument errors.
#include <cmath>
#include <limits>

#include "test_util.hpp"

namespace {
using namespace nk_test;
using normkit::GroupNormArgs;
using normkit::LayerNormArgs;
using normkit::RMSNormArgs;
using normkit::TensorView;

template <class T>
class ExtrasFusedTest : public ::testing::Test {};
TYPED_TEST_SUITE(ExtrasFusedTest, FloatTypes);

// ---- add_rms_norm / add_layer_norm ------------------------------------------------------

struct AddCase {
  Shape shape, normalized;
  Strides strides;  // empty: contiguous
};
// Small rows; rows spread over several blocks (and threads); a doubled-stride view; a view
// whose leading dims cannot be merged (transposed), which runs as one block.
const std::vector<AddCase> kAddCases = {
    {{3, 5, 7}, {7}, {}},          {{2, 3, 4, 5}, {4, 5}, {}}, {{300, 257}, {257}, {}},
    {{64, 1000}, {1000}, {}},      {{4, 9}, {4, 9}, {}},       {{3, 5, 7}, {7}, {70, 14, 2}},
    {{5, 3, 7}, {7}, {7, 35, 1}},
};

template <class T>
struct AddData {
  Shape shape;
  Strides st;
  int64_t M, D;
  std::vector<T> x, r, w, b, dy, ds;  // contiguous logical values
  explicit AddData(const AddCase& c) : shape(c.shape) {
    st = c.strides.empty() ? normkit::contiguous_strides(shape) : c.strides;
    D = numel(c.normalized);
    M = numel(shape) / D;
    x = random_vec<T>(numel(shape), 0.3, 1.0);
    r = random_vec<T>(numel(shape), -0.2, 1.0);
    w = random_vec<T>(D, 1.0, 0.5);
    b = random_vec<T>(D, 0.0, 0.5);
    dy = random_vec<T>(numel(shape));
    ds = random_vec<T>(numel(shape));
  }
  std::vector<T> sum() const {
    std::vector<T> s(x.size());
    for (size_t i = 0; i < s.size(); ++i) s[i] = x[i] + r[i];
    return s;
  }
  std::vector<T> put(const std::vector<T>& v) const { return scatter(v, shape, st); }
  TensorView<const T> cv(const std::vector<T>& buf) const { return cview(buf, shape, st); }
  TensorView<T> mv(std::vector<T>& buf) const { return mview(buf, shape, st); }
};

template <class T>
void check_add_norm(const AddCase& c, bool layer, bool weight, bool bias) {
  SCOPED_TRACE(std::string(layer ? "add_layer_norm " : "add_rms_norm ") + normkit::shape_str(c.shape) +
               (c.strides.empty() ? "" : " strided") + (weight ? " w" : "") + (bias ? " b" : ""));
  AddData<T> d(c);
  const auto sum_ref = d.sum();
  const double eps = 1e-5;
  std::vector<T> y_ref(sum_ref.size()), dx_ref(sum_ref.size()), dw_ref(size_t(d.D)), db_ref(size_t(d.D));
  const T* w = weight ? d.w.data() : nullptr;
  if (layer) {
    normkit::reference::layer_norm_forward(sum_ref.data(), y_ref.data(), d.M, d.D, w,
                                           bias ? d.b.data() : nullptr, eps);
    normkit::reference::layer_norm_backward(d.dy.data(), sum_ref.data(), dx_ref.data(), d.M, d.D, w,
                                            eps, dw_ref.data(), db_ref.data());
  } else {
    normkit::reference::rms_norm_forward(sum_ref.data(), y_ref.data(), d.M, d.D, w, false, eps);
    normkit::reference::rms_norm_backward(d.dy.data(), sum_ref.data(), dx_ref.data(), d.M, d.D, w,
                                          false, eps, dw_ref.data());
  }
  for (size_t i = 0; i < dx_ref.size(); ++i) dx_ref[i] += d.ds[i];

  auto xb = d.put(d.x), rb = d.put(d.r), yb = d.put(std::vector<T>(d.x.size(), T(0)));
  auto sb = yb, dyb = d.put(d.dy), dsb = d.put(d.ds), dxb = yb;
  std::vector<T> dw = sentinel_vec<T>(d.D), db = sentinel_vec<T>(d.D);
  std::vector<T> mean = sentinel_vec<T>(d.M), rstd = sentinel_vec<T>(d.M);
  if (layer) {
    LayerNormArgs<T> a{c.normalized, cspan(d.w, weight), cspan(d.b, bias), eps};
    normkit::add_layer_norm_forward<T>(d.cv(xb), d.cv(rb), d.mv(yb), d.mv(sb), a, {mean, rstd});
    normkit::add_layer_norm_backward<T>(d.cv(dyb), d.cv(dsb), d.cv(sb), d.mv(dxb), a,
                                        mspan(dw, weight), mspan(db, bias));
  } else {
    RMSNormArgs<T> a{c.normalized, cspan(d.w, weight), eps, false};
    normkit::add_rms_norm_forward<T>(d.cv(xb), d.cv(rb), d.mv(yb), d.mv(sb), a, {mean, rstd});
    normkit::add_rms_norm_backward<T>(d.cv(dyb), d.cv(dsb), d.cv(sb), d.mv(dxb), a, mspan(dw, weight));
  }
  expect_bitwise(gather(sb, d.shape, d.st), sum_ref, "sum = x + residual");
  expect_close(gather(yb, d.shape, d.st), y_ref, tol<T>(), "y");
  expect_close(gather(dxb, d.shape, d.st), dx_ref, grad_tol<T>(), "dx");
  if (weight) expect_close(dw, dw_ref, grad_tol<T>(), "dweight");
  if (bias) expect_close(db, db_ref, grad_tol<T>(), "dbias");
  expect_gaps_untouched(yb, d.shape, d.st, "y");
  expect_gaps_untouched(dxb, d.shape, d.st, "dx");
  // saved statistics: the row's rstd (and mean) of the sum
  std::vector<T> rstd_ref(size_t(d.M)), mean_ref(size_t(d.M), T(0)), unused(sum_ref.size());
  if (layer)
    normkit::reference::layer_norm_forward(sum_ref.data(), unused.data(), d.M, d.D, (const T*)nullptr,
                                           (const T*)nullptr, eps, mean_ref.data(), rstd_ref.data());
  else
    normkit::reference::rms_norm_forward(sum_ref.data(), unused.data(), d.M, d.D, (const T*)nullptr,
                                         false, eps, rstd_ref.data());
  expect_close(rstd, rstd_ref, tol<T>(), "saved rstd");
  expect_close(mean, mean_ref, tol<T>(), "saved mean");
}

TYPED_TEST(ExtrasFusedTest, AddNormMatchesComposition) {
  for (const auto& c : kAddCases)
    for (bool layer : {false, true}) {
      check_add_norm<TypeParam>(c, layer, true, layer);
      check_add_norm<TypeParam>(c, layer, false, false);
    }
}

TYPED_TEST(ExtrasFusedTest, AddRmsNormGemmaAndDefaultEps) {
  using T = TypeParam;
  AddData<T> d({{6, 33}, {33}, {}});
  const auto s = d.sum();
  std::vector<T> y_ref(s.size()), y(s.size()), sum(s.size());
  normkit::reference::rms_norm_forward(s.data(), y_ref.data(), d.M, d.D, d.w.data(), true,
                                       double(std::numeric_limits<T>::epsilon()));
  RMSNormArgs<T> a{{33}, d.w, std::nullopt, true};
  normkit::add_rms_norm_forward<T>(d.cv(d.x), d.cv(d.r), d.mv(y), d.mv(sum), a);
  expect_close(y, y_ref, tol<T>(), "y (1 + w, eps unset)");
}

TYPED_TEST(ExtrasFusedTest, AddNormInPlaceLikeVllm) {
  // vLLM's fused_add_rms_norm(input, residual): input <- y, residual <- input + residual.
  using T = TypeParam;
  AddData<T> d({{40, 129}, {129}, {}});
  std::vector<T> y(d.x.size()), sum(d.x.size());
  RMSNormArgs<T> a{{129}, d.w, 1e-6, false};
  normkit::add_rms_norm_forward<T>(d.cv(d.x), d.cv(d.r), d.mv(y), d.mv(sum), a);
  auto x = d.x, r = d.r;
  normkit::add_rms_norm_forward<T>(d.cv(x), d.cv(r), d.mv(x), d.mv(r), a);
  expect_bitwise(x, y, "y written over x");
  expect_bitwise(r, sum, "sum written over residual");
}

TEST(ExtrasFused, AddNormGradientsByFiniteDifferences) {
  for (bool layer : {false, true}) {
    SCOPED_TRACE(layer ? "add_layer_norm" : "add_rms_norm");
    AddData<double> d({{3, 2, 6}, {2, 6}, {}});
    const Shape& sh = d.shape;
    const auto gy = random_vec<double>(d.x.size()), gs = random_vec<double>(d.x.size());
    LayerNormArgs<double> la{{2, 6}, d.w, d.b, 1e-5};
    RMSNormArgs<double> ra{{2, 6}, d.w, 1e-5, false};
    auto loss = [&]() {  // <gy, y> + <gs, sum>
      std::vector<double> y(d.x.size()), s(d.x.size());
      if (layer)
        normkit::add_layer_norm_forward<double>(cview(d.x, sh), cview(d.r, sh), mview(y, sh), mview(s, sh), la);
      else
        normkit::add_rms_norm_forward<double>(cview(d.x, sh), cview(d.r, sh), mview(y, sh), mview(s, sh), ra);
      return dot(y, gy) + dot(s, gs);
    };
    const auto sum = d.sum();
    std::vector<double> dx(d.x.size()), dw(d.w.size()), db(d.b.size());
    if (layer)
      normkit::add_layer_norm_backward<double>(cview(gy, sh), cview(gs, sh), cview(sum, sh),
                                               mview(dx, sh), la, dw, db);
    else
      normkit::add_rms_norm_backward<double>(cview(gy, sh), cview(gs, sh), cview(sum, sh), mview(dx, sh),
                                             ra, dw);
    expect_close(dx, numeric_grad(loss, d.x.data(), int64_t(d.x.size())), kFdTol, "dx (by x)");
    expect_close(dx, numeric_grad(loss, d.r.data(), int64_t(d.r.size())), kFdTol, "dx (by residual)");
    expect_close(dw, numeric_grad(loss, d.w.data(), int64_t(d.w.size())), kFdTol, "dweight");
    if (layer) expect_close(db, numeric_grad(loss, d.b.data(), int64_t(d.b.size())), kFdTol, "dbias");
  }
}

TEST(ExtrasFused, AddNormWithoutGradSumAndDeterministicAcrossThreads) {
  AddData<float> d({{200, 300}, {300}, {}});
  const auto sum = d.sum();
  LayerNormArgs<float> a{{300}, d.w, d.b, 1e-5};
  std::vector<std::vector<float>> outs;
  const int saved = normkit::get_num_threads();
  for (int t : {1, 2, 3}) {
    normkit::set_num_threads(t);
    std::vector<float> y(sum.size()), s(sum.size()), dx(sum.size()), dw(300), db(300);
    normkit::add_layer_norm_forward<float>(d.cv(d.x), d.cv(d.r), d.mv(y), d.mv(s), a);
    normkit::add_layer_norm_backward<float>(d.cv(d.dy), {}, d.cv(sum), d.mv(dx), a, dw, db);
    for (auto* v : {&y, &dx, &dw, &db}) outs.push_back(*v);
  }
  normkit::set_num_threads(saved);
  for (size_t i = 4; i < outs.size(); ++i) expect_bitwise(outs[i], outs[i % 4], "thread count changed a bit");
  std::vector<float> dx_ref(sum.size());
  normkit::reference::layer_norm_backward(d.dy.data(), sum.data(), dx_ref.data(), d.M, d.D, d.w.data(),
                                          1e-5, (float*)nullptr, (float*)nullptr);
  expect_close(outs[1], dx_ref, grad_tol<float>(), "dx with no grad_sum");
}

TEST(ExtrasFused, AddNormErrors) {
  std::vector<float> x(24, 1.f), r(24, 1.f), y(24), s(24), r_small(12);
  const Shape sh{4, 6};
  RMSNormArgs<float> a{{6}, {}, 1e-5, false};
  Snapshot snap;
  snap.add(&y);
  snap.add(&s);
  expect_error([&] { normkit::add_rms_norm_forward<float>(cview(x, sh), cview(r_small, {2, 6}), mview(y, sh), mview(s, sh), a); },
               "add_rms_norm", {"residual has shape 2x6", "expected 4x6"});
  expect_error([&] { normkit::add_rms_norm_forward<float>(cview(x, sh), cview(r, sh), mview(y, sh), mview(y, sh), a); },
               "add_rms_norm", {"distinct"});
  LayerNormArgs<float> la{{5}, {}, {}, 1e-5};
  expect_error([&] { normkit::add_layer_norm_forward<float>(cview(x, sh), cview(r, sh), mview(y, sh), mview(s, sh), la); },
               "add_layer_norm", {"normalized_shape=5"});
  std::vector<float> w3(3);
  RMSNormArgs<float> bad_w{{6}, w3, 1e-5, false};
  expect_error([&] { normkit::add_rms_norm_forward<float>(cview(x, sh), cview(r, sh), mview(y, sh), mview(s, sh), bad_w); },
               "add_rms_norm", {"weight has 3 elements", "expected 6"});
  snap.expect_unchanged("failed add_norm calls");
  std::vector<float> dx(24);
  expect_error([&] { normkit::add_rms_norm_backward<float>(cview(x, sh), cview(r_small, {2, 6}), cview(s, sh), mview(dx, sh), a); },
               "add_rms_norm_backward", {"grad_sum has shape 2x6"});
}

// ---- group_norm_silu ----------------------------------------------------------------------

struct GnCase {
  Shape shape;
  int64_t G;
  bool channels_last;
};
// Small groups; several groups per block; several blocks per sample; channels-last.
const std::vector<GnCase> kGnCases = {{{2, 6, 5, 3}, 3, false}, {{3, 4, 7}, 2, false},
                                      {{4, 32, 16, 16}, 8, false}, {{2, 64, 24, 24}, 32, false},
                                      {{2, 12, 5, 7}, 4, true}, {{2, 8}, 2, false}};

double silu(double z) { return z / (1 + std::exp(-z)); }

template <class T>
void check_gn_silu(const GnCase& c, bool affine) {
  SCOPED_TRACE("group_norm_silu " + normkit::shape_str(c.shape) + " G=" + std::to_string(c.G) +
               (c.channels_last ? " channels-last" : "") + (affine ? " affine" : ""));
  const auto [N, C, S] = ncs(c.shape);
  const int64_t n = numel(c.shape);
  const auto x = random_vec<T>(n, 0.2, 1.5), dy = random_vec<T>(n);
  const auto w = random_vec<T>(C, 1.0, 0.5), b = random_vec<T>(C, 0.0, 0.5);
  const T* wp = affine ? w.data() : nullptr;
  const T* bp = affine ? b.data() : nullptr;
  // reference: z = group_norm(x); y = silu(z); dz = dy * silu'(z); GroupNorm backward of dz
  std::vector<T> z(static_cast<size_t>(n)), y_ref(static_cast<size_t>(n)), dz(static_cast<size_t>(n)), dx_ref(static_cast<size_t>(n)), dw_ref(static_cast<size_t>(C)),
      db_ref(static_cast<size_t>(C));
  normkit::reference::group_norm_forward(x.data(), z.data(), N, C, S, c.G, wp, bp, 1e-5);
  for (int64_t i = 0; i < n; ++i) {
    const double zi = z[static_cast<size_t>(i)], s = 1 / (1 + std::exp(-zi));
    y_ref[static_cast<size_t>(i)] = T(silu(zi));
    dz[static_cast<size_t>(i)] = T(double(dy[static_cast<size_t>(i)]) * s * (1 + zi * (1 - s)));
  }
  normkit::reference::group_norm_backward(dz.data(), x.data(), dx_ref.data(), N, C, S, c.G, wp, 1e-5,
                                          dw_ref.data(), db_ref.data());

  const Strides st = c.channels_last ? channels_last_strides(c.shape) : normkit::contiguous_strides(c.shape);
  auto xb = scatter(x, c.shape, st), dyb = scatter(dy, c.shape, st);
  auto yb = scatter(std::vector<T>(static_cast<size_t>(n)), c.shape, st), dxb = yb;
  std::vector<T> dw = sentinel_vec<T>(C), db = sentinel_vec<T>(C);
  GroupNormArgs<T> a{c.G, cspan(w, affine), cspan(b, affine), 1e-5};
  normkit::group_norm_silu_forward<T>(cview(xb, c.shape, st), mview(yb, c.shape, st), a);
  normkit::group_norm_silu_backward<T>(cview(dyb, c.shape, st), cview(xb, c.shape, st),
                                       mview(dxb, c.shape, st), a, mspan(dw, affine), mspan(db, affine));
  expect_close(gather(yb, c.shape, st), y_ref, tol<T>() * 4, "y");
  expect_close(gather(dxb, c.shape, st), dx_ref, grad_tol<T>() * 4, "dx");
  if (affine) {
    expect_close(dw, dw_ref, grad_tol<T>() * 4, "dweight");
    expect_close(db, db_ref, grad_tol<T>() * 4, "dbias");
  }
  expect_gaps_untouched(yb, c.shape, st, "y");
}

TYPED_TEST(ExtrasFusedTest, GroupNormSiluMatchesComposition) {
  for (const auto& c : kGnCases)
    for (bool affine : {true, false}) check_gn_silu<TypeParam>(c, affine);
}

TEST(ExtrasFused, GroupNormSiluGradientsByFiniteDifferences) {
  const Shape sh{2, 4, 3, 2};
  auto x = random_vec<double>(numel(sh), 0.1, 1.0), w = random_vec<double>(4, 1.0, 0.5),
       b = random_vec<double>(4, 0.0, 0.5);
  const auto gy = random_vec<double>(numel(sh));
  GroupNormArgs<double> a{2, w, b, 1e-5};
  auto loss = [&]() {
    std::vector<double> y(x.size());
    normkit::group_norm_silu_forward<double>(cview(x, sh), mview(y, sh), a);
    return dot(y, gy);
  };
  std::vector<double> dx(x.size()), dw(4), db(4);
  normkit::group_norm_silu_backward<double>(cview(gy, sh), cview(x, sh), mview(dx, sh), a, dw, db);
  expect_close(dx, numeric_grad(loss, x.data(), int64_t(x.size())), kFdTol, "dx");
  expect_close(dw, numeric_grad(loss, w.data(), 4), kFdTol, "dweight");
  expect_close(db, numeric_grad(loss, b.data(), 4), kFdTol, "dbias");
  // dx skipped: the parameter gradients alone are the same
  std::vector<double> dw2(4), db2(4);
  normkit::group_norm_silu_backward<double>(cview(gy, sh), cview(x, sh), {}, a, dw2, db2);
  expect_bitwise(dw2, dw, "dweight without dx");
  expect_bitwise(db2, db, "dbias without dx");
}

TEST(ExtrasFused, GroupNormSiluDeterministicAndErrors) {
  const Shape sh{3, 32, 20, 20};
  const auto x = random_vec<float>(numel(sh)), dy = random_vec<float>(numel(sh));
  const auto w = random_vec<float>(32, 1.0, 0.5), b = random_vec<float>(32);
  GroupNormArgs<float> a{8, w, b, 1e-5};
  std::vector<std::vector<float>> outs;
  const int saved = normkit::get_num_threads();
  for (int t : {1, 2}) {
    normkit::set_num_threads(t);
    std::vector<float> y(x.size()), dx(x.size()), dw(32), db(32);
    normkit::group_norm_silu_forward<float>(cview(x, sh), mview(y, sh), a);
    normkit::group_norm_silu_backward<float>(cview(dy, sh), cview(x, sh), mview(dx, sh), a, dw, db);
    for (auto* v : {&y, &dx, &dw, &db}) outs.push_back(*v);
  }
  normkit::set_num_threads(saved);
  for (size_t i = 0; i < 4; ++i) expect_bitwise(outs[i + 4], outs[i], "thread count changed a bit");

  std::vector<float> y(60);
  GroupNormArgs<float> bad{4, {}, {}, 1e-5};
  expect_error([&] { normkit::group_norm_silu_forward<float>(cview(y, {2, 10, 3}), mview(y, {2, 10, 3}), bad); },
               "group_norm_silu", {"num_channels=10", "num_groups=4"});
  GroupNormArgs<float> one{6, {}, {}, 1e-5};
  expect_error([&] { normkit::group_norm_silu_forward<float>(cview(y, {10, 6}), mview(y, {10, 6}), one); },
               "group_norm_silu", {"more than 1 value per group"});
}

}  // namespace
