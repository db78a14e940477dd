// cmd_tour.cpp — `normkit tour` (the default): every method run through the functional API on
// the 32x256x14x14 example activation, the family table filled with measured numbers, then the
// decision guide. Sized to finish in well under 10 s on 2 cores (a few reps, one warm-up).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "commands.hpp"
#include "normkit/normkit.hpp"
#include "table.hpp"

namespace {

using normkit::Shape;
using normkit::TensorView;
using CView = TensorView<const float>;
using MView = TensorView<float>;

struct TourOptions {
  int reps = 5;
  int threads = 0;  // 0: the library's default
};

// Mean, std (biased) and rms of each statistic's group of elements; group_of(i) maps a
// contiguous element index to its statistic.
struct Moments {
  std::vector<double> mean, std, rms;
};
Moments moments(const std::vector<float>& v, int64_t num_stats,
                const std::function<int64_t(int64_t)>& group_of) {
  std::vector<double> s1(num_stats), s2(num_stats), cnt(num_stats);
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    const int64_t g = group_of(i);
    s1[g] += v[i];
    s2[g] += double(v[i]) * v[i];
    cnt[g] += 1;
  }
  Moments m;
  for (int64_t g = 0; g < num_stats; ++g) {
    const double mean = s1[g] / cnt[g], ms = s2[g] / cnt[g];
    m.mean.push_back(mean);
    m.std.push_back(std::sqrt(std::max(0.0, ms - mean * mean)));
    m.rms.push_back(std::sqrt(ms));
  }
  return m;
}
double max_abs(const std::vector<double>& v) {
  double r = 0;
  for (double x : v) r = std::max(r, std::abs(x));
  return r;
}
double average(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / double(v.size());
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Median wall time of `reps` calls after one warm-up, in milliseconds. A pass slower than
// 100 ms gets at most 3 timed calls, so the whole tour stays well under 10 s.
double median_ms(int reps, const std::function<void()>& f) {
  const auto w0 = Clock::now();
  f();
  if (ms_since(w0) > 100) reps = std::min(reps, 3);
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    t.push_back(ms_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::vector<float> normal(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

struct Result {
  normkit::Method method;
  Moments in, out;
  std::string pinned;  // the quantity the method fixes, measured
  double fwd_ms = 0, bwd_ms = 0;
};

void run_tour(const TourOptions& o) {
  if (o.reps < 1) throw normkit::Error("[tour] reps=" + std::to_string(o.reps) + " must be >= 1");
  if (o.threads < 0)
    throw normkit::Error("[tour] threads=" + std::to_string(o.threads) + " must be >= 0");
  if (o.threads > 0) normkit::set_num_threads(o.threads);
  const auto start = Clock::now();
  const int64_t N = 32, C = 256, H = 14, W = 14, G = 32, HW = H * W;
  const Shape shape{N, C, H, W};
  const Shape wshape{C, C, 3, 3};  // the 3x3 conv producing these 256 channels
  const int64_t n = normkit::numel(shape), wn = normkit::numel(wshape);

  // x[n,c,:,:] = offset_c + scale_c * gain_n * z: per-channel and per-example statistics
  // that differ, so each method's choice of axes shows in its input column.
  std::mt19937 rng(20240607);
  std::vector<float> x = normal(n, rng), dy = normal(n, rng);
  std::uniform_real_distribution<float> off(-3.f, 3.f), scale(0.5f, 4.f), gain(0.5f, 2.f);
  std::vector<float> offset(C), chscale(C), exgain(N);
  for (auto& v : offset) v = off(rng);
  for (auto& v : chscale) v = scale(rng);
  for (auto& v : exgain) v = gain(rng);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = i / (C * HW), c = (i / HW) % C;
    x[i] = offset[c] + chscale[c] * exgain[b] * x[i];
  }
  std::vector<float> y(n), dx(n);
  std::vector<float> ones(C * HW, 1.f), zeros(C * HW, 0.f), dw(C * HW), db(C * HW);
  std::vector<float> rmean(C, 0.f), rvar(C, 1.f);
  const CView xv(x.data(), shape), dyv(dy.data(), shape);
  const MView yv(y.data(), shape), dxv(dx.data(), shape);
  // Parameters: per channel ([C]) or per normalized element ([C*H*W]); spans of exact size.
  using CSpan = std::span<const float>;
  using MSpan = std::span<float>;
  const CSpan w_c(ones.data(), C), b_c(zeros.data(), C), w_chw(ones), b_chw(zeros);
  const MSpan dw_c(dw.data(), C), db_c(db.data(), C), dw_chw(dw), db_chw(db);

  std::vector<Result> results;
  auto measure = [&](normkit::Method m, int64_t stats, std::function<int64_t(int64_t)> group_of,
                     const std::function<void()>& fwd, const std::function<void()>& bwd) {
    Result r{m, moments(x, stats, group_of), {}, {}, median_ms(o.reps, fwd), median_ms(o.reps, bwd)};
    fwd();
    r.out = moments(y, stats, group_of);
    const bool rms = m == normkit::Method::RMSNorm;
    r.pinned = (rms ? "rms=" : "std=") + fixed(average(rms ? r.out.rms : r.out.std), 4);
    results.push_back(std::move(r));
  };

  normkit::BatchNormArgs<float> bn{.weight = w_c, .bias = b_c, .running_mean = rmean,
                                    .running_var = rvar, .training = true};
  measure(normkit::Method::BatchNorm, C, [&](int64_t i) { return (i / HW) % C; },
          [&] { normkit::batch_norm_forward<float>(xv, yv, bn); },
          [&] { normkit::batch_norm_backward<float>(dyv, xv, dxv, bn, dw_c, db_c); });

  normkit::LayerNormArgs<float> ln{.normalized_shape = {C, H, W}, .weight = w_chw, .bias = b_chw};
  measure(normkit::Method::LayerNorm, N, [&](int64_t i) { return i / (C * HW); },
          [&] { normkit::layer_norm_forward<float>(xv, yv, ln); },
          [&] { normkit::layer_norm_backward<float>(dyv, xv, dxv, ln, dw_chw, db_chw); });

  normkit::InstanceNormArgs<float> in;  // use_input_stats, no running statistics
  in.weight = w_c;
  in.bias = b_c;
  measure(normkit::Method::InstanceNorm, N * C, [&](int64_t i) { return i / HW; },
          [&] { normkit::instance_norm_forward<float>(xv, yv, in); },
          [&] { normkit::instance_norm_backward<float>(dyv, xv, dxv, in, dw_c, db_c); });

  normkit::GroupNormArgs<float> gn{.num_groups = G, .weight = w_c, .bias = b_c};
  measure(normkit::Method::GroupNorm, N * G, [&](int64_t i) { return i / (C / G * HW); },
          [&] { normkit::group_norm_forward<float>(xv, yv, gn); },
          [&] { normkit::group_norm_backward<float>(dyv, xv, dxv, gn, dw_c, db_c); });

  normkit::RMSNormArgs<float> rn;  // eps unset: float32 machine epsilon
  rn.normalized_shape = {C, H, W};
  rn.weight = w_chw;
  measure(normkit::Method::RMSNorm, N, [&](int64_t i) { return i / (C * HW); },
          [&] { normkit::rms_norm_forward<float>(xv, yv, rn); },
          [&] { normkit::rms_norm_backward<float>(dyv, xv, dxv, rn, dw_chw); });

  // WeightNorm acts on weights, not activations: a 256x256x3x3 conv weight, dim=0, with
  // g drawn per output channel so that ||w_o|| = g_o is visible.
  std::vector<float> v = normal(wn, rng), wgrad = normal(wn, rng), w(wn), dv(wn), g(C), dg(C);
  for (auto& gi : g) gi = gain(rng);
  const Shape& ws = wshape;
  const CView vv(v.data(), ws), dwv(wgrad.data(), ws);
  const MView wv(w.data(), ws), dvv(dv.data(), ws);
  const normkit::WeightNormArgs<float> wa{};
  const int64_t per = wn / C;
  Result r{normkit::Method::WeightNorm, moments(v, C, [&](int64_t i) { return i / per; }), {}, {},
           median_ms(o.reps, [&] { normkit::weight_norm_forward<float>(vv, CSpan(g), wv, wa); }),
           median_ms(o.reps, [&] {
             normkit::weight_norm_backward<float>(dwv, vv, CSpan(g), dvv, MSpan(dg), wa);
           })};
  normkit::weight_norm_forward<float>(vv, CSpan(g), wv, wa);
  r.out = moments(w, C, [&](int64_t i) { return i / per; });
  std::vector<double> ratio;
  for (int64_t c = 0; c < C; ++c) ratio.push_back(r.out.rms[c] * std::sqrt(double(per)) / g[c]);
  r.pinned = "|w|/g=" + fixed(average(ratio), 4);
  results.push_back(std::move(r));

  // ---- print ----
  const auto rows = normkit::describe_family(shape, G);
  const auto wrow = normkit::describe_family(wshape, G).back();
  std::cout << "normkit tour: activation x = " << normkit::shape_str(shape)
            << " (NCHW float32, " << fixed(n * 4 / 1e6, 1) << " MB), x = offset_c + scale_c*gain_n*z, "
            << "threads=" << normkit::get_num_threads() << "\n"
            << "WeightNorm runs on a " << normkit::shape_str(wshape)
            << " conv weight (dim=0), since it normalizes weights, not activations.\n"
            << "Each method: weight=1, bias=0 (WeightNorm: g per output channel); times are the "
            << "median of " << o.reps << " runs (3 if a run takes > 100 ms) after a warm-up.\n\n";
  Table t({"method", "reduced", "#stats", "elems/stat", "plan", "in max|mean|", "in std",
           "out max|mean|", "out std", "pinned", "fwd ms", "bwd ms"});
  t.right_align({2, 3, 5, 6, 7, 8, 10, 11});
  for (size_t k = 0; k < results.size(); ++k) {
    const Result& res = results[k];
    const normkit::FamilyRow& fr = res.method == normkit::Method::WeightNorm ? wrow : rows[k];
    t.add({normkit::method_name(res.method), fr.reduced_axes, std::to_string(fr.num_stats),
           std::to_string(fr.stat_size), fr.pattern, fixed(max_abs(res.in.mean), 3),
           fixed(average(res.in.std), 3), sci(max_abs(res.out.mean), 1),
           fixed(average(res.out.std), 4), res.pinned, fixed(res.fwd_ms, 2), fixed(res.bwd_ms, 2)});
  }
  t.print(std::cout);
  std::cout << "\nin/out: the mean and std of each statistic's elements, before and after; "
               "max |mean| over statistics, std averaged over them.\n"
               "RMSNorm pins the root mean square, not the mean: its output keeps a mean. "
               "WeightNorm pins each slice's L2 norm to g.\n\n"
               "Decision guide (details: normkit guide --arch <name> --batch <n>):\n\n";
  print_guide_table(std::cout);
  std::cout << "\ntour finished in " << fixed(ms_since(start) / 1000, 1) << " s\n";
}

}  // namespace

void add_tour_command(CLI::App& app) {
  auto opts = std::make_shared<TourOptions>();
  auto* sub = app.add_subcommand(
      "tour", "Run every method on a 32x256x14x14 activation and show the guide (default)");
  sub->add_option("--reps", opts->reps, "timed repetitions per pass (default 5)");
  sub->add_option("--threads", opts->threads, "engine threads (default: the library's)");
  sub->callback([opts] { run_tour(*opts); });
}
