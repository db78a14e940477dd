// study/train.hpp — one training run of the study: a network with one normalization, one
// batch size, a fixed seed; SGD with momentum, cosine learning-rate decay, then the test
// error with the layers in eval mode (BatchNorm uses its running statistics, as deployed).
#pragma once

#include <cstdint>
#include <string>

#include "idx.hpp"
#include "net.hpp"
#include "progress.hpp"

namespace study {

struct RunConfig {
  NormKind norm = NormKind::None;
  int batch = 32;
  int epochs = 1;
  double lr = 0.1;             // peak learning rate of this run (already scaled by batch)
  double momentum = 0.9;
  double weight_decay = 5e-4;  // conv and linear weights only
  uint64_t seed = 1;           // initialization and data order
  int groups = 8;              // GroupNorm
  int eval_batch = 50;         // eval results do not depend on it; small keeps buffers in cache
};

struct RunResult {
  RunConfig config;
  double train_loss = 0;   // mean training loss over the last epoch
  double test_error = 1;   // fraction of test images misclassified
  double wall_s = 0;       // training + evaluation
  double images_per_s = 0; // training throughput
  bool diverged = false;   // the loss became NaN/inf; the run stopped early
};

// Trains on `data.train` and evaluates on `data.test`, on the calling thread only: BLAS is
// set single-threaded once per process and OpenMP single-threaded for this thread, so a
// pool of runs uses one core each. `progress` may be null.
RunResult train_run(const FashionMnist& data, const RunConfig& cfg, Progress* progress = nullptr,
                    int slot = 0);

}  // namespace study
