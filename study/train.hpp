// study/train.hpp — one training run of the study: a network with one normalization, one
// batch size, a fixed seed; SGD with momentum, cosine learning-rate decay, then the test
// error with the layers in eval mode (BatchNorm uses its running statistics, as deployed).
// The same loop trains data-parallel over MPI ranks (RunConfig::dp, data_parallel.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data_parallel.hpp"
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
  // Local/Sync: every rank of MPI_COMM_WORLD runs train_run with the same config; `batch` is
  // per rank, the global batch is ranks x batch (lr is not rescaled here).
  DataParallel dp = DataParallel::Off;
};

struct RunResult {
  RunConfig config;
  double train_loss = 0;   // mean training loss over the last epoch
  double test_error = 1;   // fraction of test images misclassified
  double wall_s = 0;       // training + evaluation
  double images_per_s = 0; // training throughput
  bool diverged = false;   // the loss became NaN/inf; the run stopped early
  int ranks = 1;           // processes that trained it (data-parallel runs)
};

// Trains on `data.train` and evaluates on `data.test`, on the calling thread only: BLAS is
// set single-threaded once per process and OpenMP single-threaded for this thread, so a
// pool of runs uses one core each. `progress` may be null. `state`, if not null, receives the
// trained model: every parameter, then every running statistic, flattened in layer order.
//
// Data-parallel (cfg.dp != Off; a collective: every rank calls it with the same config and
// data): each global batch of ranks x batch images is the single-process batch of that size
// (same permutation from the seed), rank r taking images [r*batch, (r+1)*batch) of it; the
// gradients are averaged over the ranks (data_parallel.hpp), so with Sync the update is the
// single-process update at the global batch, up to rounding. With Local, every rank then
// takes rank 0's running statistics (PyTorch DDP's broadcast_buffers). The run ends by
// checking that every rank holds bitwise the same model (throws otherwise); each rank
// evaluates a slice of the test set and the counts are summed, so every rank returns the
// same result.
RunResult train_run(const FashionMnist& data, const RunConfig& cfg, Progress* progress = nullptr,
                    int slot = 0, std::vector<float>* state = nullptr);

}  // namespace study
