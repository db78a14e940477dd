// study/sweep.hpp — the batch-size study: every normalization x every per-step batch size,
// same epochs and seed everywhere, lr scaled linearly with the batch (Wu & He 2018). Runs go
// on a small pool of single-threaded workers because small batches cannot use two cores.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "train.hpp"

namespace study {

struct StudyOptions {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string out_dir;           // empty: write no files
  std::vector<NormKind> norms = {NormKind::Batch, NormKind::Group, NormKind::Layer,
                                 NormKind::Instance, NormKind::None};
  std::vector<int> batches = {32, 16, 8, 4, 2};
  int epochs = 2;
  int train_subset = 30000;      // first N training images (0: all 60000)
  int test_subset = 0;           // first N test images (0: all 10000)
  double base_lr = 0.1;          // lr at base_batch; lr = base_lr * batch / base_batch
  int base_batch = 32;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  int groups = 8;
  uint64_t seed = 1;
  int jobs = 2;                  // runs trained at once, one thread each
  bool plot = true;              // draw batch_size.png with plot.py (needs out_dir)
  std::string plot_script;       // default: the source tree's study/plot.py
  std::string python = "/usr/bin/python3";
  double max_error = 0;          // > 0: fail unless every run's test error is below it
  std::string command_line;      // recorded in results.md
};

// The --quick preset: a small subset, 2 epochs, batch 32 only, every norm, max_error 0.4.
StudyOptions quick_options(StudyOptions base);

// The git commit this program was built from (short hash, "-dirty" if tracked files differed
// from it at build time; "unknown" outside a git checkout), recorded in the results files.
std::string git_commit();

// Runs the sweep, prints the table on stdout, writes results.csv / results.md (and the
// figure) under out_dir. Throws std::runtime_error if a run misses max_error.
std::vector<RunResult> run_study(const StudyOptions& opts);

// The table of test errors, rows = norms, columns = batch sizes (markdown).
std::string results_markdown(const std::vector<RunResult>& results, const StudyOptions& opts);
// One row per run; the last column is git_commit().
std::string results_csv(const std::vector<RunResult>& results, int train_images);

// The options every sweep checks (norms, batches, epochs, lr, groups): normkit::Error, so
// the CLI exits with status 2.
void check_options(const StudyOptions& o);

// One run of a sweep: `batch` images per step (per rank), lr scaled with the global batch
// (Goyal et al.: base_lr at base_batch).
RunConfig run_config(const StudyOptions& o, NormKind norm, int batch, int global_batch);

// Writes `text` to `p`; throws std::runtime_error naming the file if it cannot.
void write_file(const std::filesystem::path& p, const std::string& text);

}  // namespace study
