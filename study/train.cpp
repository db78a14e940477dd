// study/train.cpp — the training loop. Every batch size sees the same images in the same
// order (one permutation per epoch from the seed; the last partial batch is dropped), so
// runs differ only in how the images are grouped into steps. Data-parallel runs split each
// step's images over the ranks and average the gradients before the update.
#include "train.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <numeric>

#include "sgd.hpp"

extern "C" void openblas_set_num_threads(int);  // OpenBLAS; not in every cblas.h

namespace study {

namespace {

// Every parameter, then every running statistic, in layer order.
std::vector<float> flatten_state(Net<float>& net) {
  std::vector<float> out;
  for (const ParamRef<float>& p : net.params()) out.insert(out.end(), p.value, p.value + p.size);
  for (const std::vector<float>* b : net.buffers()) out.insert(out.end(), b->begin(), b->end());
  return out;
}

}  // namespace

RunResult train_run(const FashionMnist& data, const RunConfig& cfg, Progress* progress, int slot,
                    std::vector<float>* state) {
  static std::once_flag blas_once;
  std::call_once(blas_once, [] { openblas_set_num_threads(1); });
  omp_set_num_threads(1);
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const Dataset& tr = data.train;
  const int pixels = tr.height * tr.width;
  const bool dp = cfg.dp != DataParallel::Off;
  const int ranks = dp ? world_size() : 1, rank = dp ? world_rank() : 0;
  const int global_batch = ranks * cfg.batch;

  NetConfig nc;
  nc.norm = cfg.norm;
  nc.in_h = tr.height;
  nc.in_w = tr.width;
  nc.groups = cfg.groups;
  nc.sync_bn = cfg.dp == DataParallel::Sync;
  Net<float> net(nc);
  Rng init_rng(cfg.seed);
  net.init(init_rng);
  Sgd<float> sgd(net.params(), cfg.momentum, cfg.weight_decay);
  Rng data_rng(cfg.seed * 0x9E3779B97F4A7C15ull + 1);

  const int steps = tr.count / global_batch;
  const int64_t total_steps = static_cast<int64_t>(steps) * cfg.epochs;
  std::vector<int> order(tr.count);
  std::vector<float> xb(static_cast<size_t>(cfg.batch) * pixels), dlogits(static_cast<size_t>(cfg.batch) * nc.classes);
  std::vector<uint8_t> yb(cfg.batch);

  RunResult res;
  res.config = cfg;
  res.ranks = ranks;
  ProgressState ps;
  ps.label = norm_name(cfg.norm) + " b=" + std::to_string(cfg.batch);
  if (dp) ps.label = (nc.sync_bn ? "Sync" : "") + norm_name(cfg.norm) + " " + std::to_string(ranks) + "x" +
                     std::to_string(cfg.batch);
  ps.epochs = cfg.epochs;
  ps.steps = steps;
  int64_t t = 0;
  double epoch_loss = 0;
  for (int e = 0; e < cfg.epochs && !res.diverged; ++e) {
    std::iota(order.begin(), order.end(), 0);
    data_rng.shuffle(order);
    net.train(true);
    epoch_loss = 0;
    for (int s = 0; s < steps; ++s, ++t) {
      for (int b = 0; b < cfg.batch; ++b) {
        const int idx = order[static_cast<size_t>(s) * global_batch + static_cast<size_t>(rank) * cfg.batch + b];
        std::copy_n(tr.images.data() + static_cast<size_t>(idx) * pixels, pixels, xb.data() + static_cast<size_t>(b) * pixels);
        yb[b] = tr.labels[idx];
      }
      const float* logits = net.forward(xb.data(), cfg.batch);
      double loss = softmax_xent(logits, yb.data(), cfg.batch, nc.classes, dlogits.data(), nullptr);
      if (dp) loss = sum_over_ranks(loss) / ranks;  // the global batch's mean; all ranks agree
      if (!std::isfinite(loss)) {
        res.diverged = true;
        break;
      }
      epoch_loss += loss;
      net.zero_grad();
      net.backward(xb.data(), dlogits.data(), cfg.batch);
      if (dp) average_gradients(net.params());
      // cosine decay from the peak lr to 0 over the whole run, stepped per iteration
      const double lr = cfg.lr * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(t) / total_steps));
      sgd.step(lr);
      if (progress && ((s + 1) % 8 == 0 || s + 1 == steps)) {
        const double el = std::chrono::duration<double>(Clock::now() - t0).count();
        ps.epoch = e + 1;
        ps.step = s + 1;
        ps.loss = epoch_loss / (s + 1);
        ps.fraction = static_cast<double>(t + 1) / total_steps;
        ps.images_per_s = static_cast<double>(t + 1) * global_batch / el;
        ps.eta_s = el / ps.fraction - el;
        progress->update(slot, ps, s + 1 == steps);
      }
    }
  }
  const double train_s = std::chrono::duration<double>(Clock::now() - t0).count();
  res.train_loss = res.diverged ? NAN : epoch_loss / steps;
  res.images_per_s = static_cast<double>(t) * global_batch / train_s;
  if (cfg.dp == DataParallel::Local) {  // rank 0's running statistics everywhere (DDP's choice)
    for (std::vector<float>* b : net.buffers()) broadcast_from_rank0(*b);
  }
  if (dp || state) {
    std::vector<float> st = flatten_state(net);
    if (dp) check_same_on_all_ranks(st, "the trained parameters and running statistics");
    if (state) *state = std::move(st);
  }

  // Evaluation in eval mode; the result does not depend on eval_batch for any of the norms.
  net.train(false);
  const Dataset& te = data.test;
  // Data-parallel: rank r evaluates its contiguous share [lo, hi) of the test set.
  const int lo = static_cast<int>(static_cast<int64_t>(te.count) * rank / ranks);
  const int hi = static_cast<int>(static_cast<int64_t>(te.count) * (rank + 1) / ranks);
  int correct = 0;
  for (int i = lo; i < hi && !res.diverged; i += cfg.eval_batch) {
    const int n = std::min(cfg.eval_batch, hi - i);
    const float* logits = net.forward(te.images.data() + static_cast<size_t>(i) * pixels, n);
    correct += count_correct(logits, te.labels.data() + i, n, nc.classes);
  }
  if (dp) correct = static_cast<int>(sum_over_ranks(correct));
  res.test_error = 1.0 - static_cast<double>(correct) / te.count;
  res.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return res;
}

}  // namespace study
