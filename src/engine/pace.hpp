// pace.hpp — how a parallel region's threads split its items (statistics, blocks of rows):
// each thread one contiguous share, sized by how fast that thread went through its share in
// the last regions of the same kind (a call site). Which thread computes an item never
// changes the item's bits (every item's work is its own), so only the time depends on the
// split. The even split waited on the slower thread: on the 2-core Zen 5 VM one of the two
// threads ran 15-35% slower than the other for minutes at a time, whichever half of the data
// it had (per-thread busy times inside the region, 2026-11-29). Shares stay contiguous and
// move slowly, so each thread keeps walking the same lines from call to call; handing out
// chunks dynamically (threads taking the others' leftovers) measured 2-6% slower whenever the
// threads ran even (likely: the taken chunks' lines sit in the other core's caches).
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace normkit::engine {

class Pace {
 public:
  static constexpr int kMaxThreads = 8;  // regions with more threads split evenly

  // cut[0] = 0 <= cut[1] <= ... <= cut[nt] = total: thread t takes [cut[t], cut[t + 1]),
  // in proportion to the threads' weights.
  void split(int64_t total, int nt, int64_t* cut) const {
    double w[kMaxThreads], sum = 0;
    for (int t = 0; t < nt; ++t) sum += w[t] = weight_[t].load(std::memory_order_relaxed);
    double acc = 0;
    cut[0] = 0;
    for (int t = 0; t < nt; ++t) {
      acc += w[t];
      cut[t + 1] = t + 1 == nt ? total : std::clamp<int64_t>(int64_t(double(total) * (acc / sum)), cut[t], total);
    }
  }

  // After a region split by `cut`: thread t was done seconds[t] after the region began. Each
  // weight moves a quarter of the way to its thread's speed (items per second) over the mean
  // speed, within [1/2, 2]. Nothing is learned from a region with an empty share.
  void learn(int nt, const int64_t* cut, const double* seconds) {
    double speed[kMaxThreads], mean = 0;
    for (int t = 0; t < nt; ++t) {
      if (cut[t + 1] <= cut[t] || !(seconds[t] > 0)) return;
      mean += speed[t] = double(cut[t + 1] - cut[t]) / seconds[t];
    }
    mean /= nt;
    for (int t = 0; t < nt; ++t) {
      const double w = weight_[t].load(std::memory_order_relaxed);
      weight_[t].store(0.75 * w + 0.25 * std::clamp(speed[t] / mean, 0.5, 2.0), std::memory_order_relaxed);
    }
  }

  double weight(int t) const { return weight_[t].load(std::memory_order_relaxed); }

 private:
  // Relaxed: callers on several host threads at once may interleave their updates; any
  // weights in [1/2, 2] give a valid split.
  std::atomic<double> weight_[kMaxThreads] = {1, 1, 1, 1, 1, 1, 1, 1};
};

// Calls share(q0, q1) once per thread of a region of `threads` over `total` items, with that
// thread's contiguous share: split by `pace` (which then learns the threads' times) when the
// region gets the threads it asked for and they are few enough, else evenly. One thread:
// share(0, total), no region.
template <class Share>
void for_each_share(int threads, int64_t total, Pace& pace, Share&& share) {
  if (threads <= 1) return share(int64_t{0}, total);
  const bool paced = threads <= Pace::kMaxThreads;
  int64_t cut[Pace::kMaxThreads + 1];
  double seconds[Pace::kMaxThreads] = {};
  if (paced) pace.split(total, threads, cut);
  int team = threads;
  const double start = omp_get_wtime();  // a thread's time counts its start too
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), got = omp_get_num_threads();
    if (t == 0) team = got;
    if (paced && got == threads) {
      share(cut[t], cut[t + 1]);
      seconds[t] = omp_get_wtime() - start;
    } else {
      share(total * t / got, total * (t + 1) / got);
    }
  }
  if (paced && team == threads) pace.learn(threads, cut, seconds);
}

}  // namespace normkit::engine
