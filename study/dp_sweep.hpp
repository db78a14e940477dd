// study/dp_sweep.hpp — the data-parallel study (`mpirun -np P normkit study --dp local|sync`):
// every norm x per-rank batch trained on all ranks at once, one run after another, since the
// ranks of one run already use one core each. Only rank 0 prints and writes files.
#pragma once

#include <string>
#include <vector>

#include "sweep.hpp"

namespace study {

// Runs o.norms x o.batches with `dp` (Local or Sync) over MPI_COMM_WORLD; o.batches are per
// rank, lr = base_lr x (ranks x batch) / base_batch (the global batch), o.jobs is ignored.
// Rank 0 prints the table and, with o.out_dir, writes dp_<mode>.csv and dp_<mode>.md there.
// Throws std::runtime_error on every rank if a run misses o.max_error.
std::vector<RunResult> run_dp_study(const StudyOptions& o, DataParallel dp);

// One row per run: mode,norm,ranks,batch_per_rank,global_batch,epochs,train_images,lr,seed,
// train_loss,test_error,wall_s,images_per_s (mode: single, local or sync).
std::string dp_results_csv(const std::vector<RunResult>& results, int train_images);

}  // namespace study
