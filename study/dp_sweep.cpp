// study/dp_sweep.cpp — schedules the data-parallel runs (sequentially: every rank takes part
// in every run) and writes their results from rank 0. The training itself is train_run's.
#include "dp_sweep.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "normkit/tensor.hpp"

namespace study {

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string mode_of(const RunResult& r) {
  return r.config.dp == DataParallel::Off ? "single" : data_parallel_name(r.config.dp);
}

std::string label_of(const RunResult& r) {
  const bool sync = r.config.dp == DataParallel::Sync && r.config.norm == NormKind::Batch;
  return (sync ? "Sync" : "") + norm_name(r.config.norm) + ", " + std::to_string(r.ranks) + " x batch " +
         std::to_string(r.config.batch) + " (" + mode_of(r) + ")";
}

}  // namespace

std::string dp_results_csv(const std::vector<RunResult>& results, int train_images) {
  std::ostringstream s;
  s << "mode,norm,ranks,batch_per_rank,global_batch,epochs,train_images,lr,seed,train_loss,test_error,"
       "wall_s,images_per_s\n";
  for (const RunResult& r : results)
    s << mode_of(r) << ',' << norm_name(r.config.norm) << ',' << r.ranks << ',' << r.config.batch << ','
      << r.ranks * r.config.batch << ',' << r.config.epochs << ',' << train_images << ','
      << fmt("%.6g", r.config.lr) << ',' << r.config.seed << ',' << fmt("%.5f", r.train_loss) << ','
      << fmt("%.4f", r.test_error) << ',' << fmt("%.1f", r.wall_s) << ',' << fmt("%.0f", r.images_per_s)
      << '\n';
  return s.str();
}

std::vector<RunResult> run_dp_study(const StudyOptions& o, DataParallel dp) {
  if (dp == DataParallel::Off) throw normkit::Error("[study] run_dp_study needs --dp local or sync");
  mpi_start();
  const int ranks = world_size(), rank = world_rank();
  // Usage errors are the same on every rank, so every rank throws them.
  check_options(o);
  for (int b : o.batches)
    if (b < 1 || (ranks * b < 2))
      throw normkit::Error("[study] batch=" + std::to_string(b) + " per rank gives a global batch of " +
                           std::to_string(ranks * b) + "; BatchNorm needs >= 2");

  const FashionMnist data = load_fashion_mnist(o.data_dir, o.train_subset, o.test_subset);
  for (int b : o.batches)
    if (data.train.count < ranks * b)
      throw normkit::Error("[study] " + std::to_string(data.train.count) + " training images are fewer "
                           "than one global batch of " + std::to_string(ranks * b));
  if (rank == 0)
    std::fprintf(stderr, "[study] data-parallel (%s) on %d ranks: %zu runs, %d epochs on %d training images, "
                 "%d test images\n", data_parallel_name(dp).c_str(), ranks, o.norms.size() * o.batches.size(),
                 o.epochs, data.train.count, data.test.count);
  const auto t0 = std::chrono::steady_clock::now();
  Progress progress(1);
  std::vector<RunResult> results;
  for (NormKind k : o.norms)
    for (int b : o.batches) {
      RunConfig c = run_config(o, k, b, ranks * b);
      c.dp = dp;
      const RunResult r = train_run(data, c, rank == 0 ? &progress : nullptr, 0);
      if (rank == 0)
        progress.message("[study] " + label_of(r) + ": test error " +
                         (r.diverged ? "diverged" : fmt("%.2f%%", 100 * r.test_error)) + ", train loss " +
                         fmt("%.4f", r.train_loss) + ", " + format_duration(r.wall_s) + " (" +
                         fmt("%.0f", r.images_per_s) + " img/s)");
      results.push_back(r);
    }
  if (rank == 0) progress.done(0);
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (rank == 0) {
    std::ostringstream table;
    table << "| run | global batch | lr | test error (%) | train loss |\n|---|---:|---:|---:|---:|\n";
    for (const RunResult& r : results)
      table << "| " << label_of(r) << " | " << r.ranks * r.config.batch << " | " << fmt("%.6g", r.config.lr)
            << " | " << (r.diverged ? std::string("diverged") : fmt("%.2f", 100 * r.test_error)) << " | "
            << fmt("%.4f", r.train_loss) << " |\n";
    std::cout << table.str() << "\nwall time " << format_duration(total_s) << " for " << results.size()
              << " runs on " << ranks << " ranks\n";
    if (!o.out_dir.empty()) {
      namespace fs = std::filesystem;
      const fs::path dir(o.out_dir);
      fs::create_directories(dir);
      const std::string base = "dp_" + data_parallel_name(dp);
      write_file(dir / (base + ".csv"), dp_results_csv(results, data.train.count));
      std::time_t t = std::time(nullptr);
      char when[64];
      std::strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
      std::ostringstream md;
      md << table.str() << "\nTest error (%) on " << data.test.count << " Fashion-MNIST test images after "
         << o.epochs << " epochs on the first " << data.train.count << " training images, " << ranks
         << " ranks; lr = " << o.base_lr << " x global batch / " << o.base_batch << " (cosine decay), seed "
         << o.seed << ".\nProduced by `" << o.command_line << "` (commit " << git_commit() << ") on "
         << when << "; wall time " << format_duration(total_s) << ".\n";
      write_file(dir / (base + ".md"), md.str());
      std::cout << "wrote " << (dir / (base + ".csv")).string() << " and " << (dir / (base + ".md")).string()
                << "\n";
    }
  }
  if (o.max_error > 0) {  // every rank has the same results, so every rank decides the same
    for (const RunResult& r : results)
      if (r.diverged || !(r.test_error < o.max_error))
        throw std::runtime_error("[study] learning check failed: " + label_of(r) + " test error " +
                                 (r.diverged ? std::string("diverged") : fmt("%.4f", r.test_error)) +
                                 " is not below " + fmt("%.2f", o.max_error));
    if (rank == 0)
      std::cout << "learning check passed: every run's test error < " << fmt("%.2f", o.max_error) << "\n";
  }
  return results;
}

}  // namespace study
