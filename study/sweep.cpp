// study/sweep.cpp — schedules the runs (smallest batches first, so the pool's two workers
// finish together), collects results in a fixed order, and writes the study's files. Each
// run depends only on its own config and seed, never on which worker ran it.
#include "sweep.hpp"

#include "normkit/tensor.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <mutex>
#include <thread>

#include "normkit/normkit.hpp"

#ifndef STUDY_PLOT_SCRIPT
#define STUDY_PLOT_SCRIPT "study/plot.py"
#endif

namespace study {

StudyOptions quick_options(StudyOptions o) {
  o.batches = {32};
  o.epochs = 2;
  o.train_subset = 6000;
  o.test_subset = 2000;
  if (o.max_error <= 0) o.max_error = 0.4;  // chance is 0.9; batch 32 reaches 0.20-0.32
  return o;
}

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string today() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M %Z", std::localtime(&t));
  return buf;
}

}  // namespace

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
  if (!out) throw std::runtime_error("[study] file=" + p.string() + " cannot be written");
}

std::string results_csv(const std::vector<RunResult>& results, int train_images) {
  std::ostringstream s;
  s << "norm,batch,epochs,train_images,lr,seed,train_loss,test_error,wall_s,images_per_s,commit\n";
  for (const RunResult& r : results)
    s << norm_name(r.config.norm) << ',' << r.config.batch << ',' << r.config.epochs << ','
      << train_images << ',' << fmt("%.6g", r.config.lr) << ',' << r.config.seed << ','
      << fmt("%.5f", r.train_loss) << ',' << fmt("%.4f", r.test_error) << ','
      << fmt("%.1f", r.wall_s) << ',' << fmt("%.0f", r.images_per_s) << ',' << git_commit() << '\n';
  return s.str();
}

std::string results_markdown(const std::vector<RunResult>& results, const StudyOptions& o) {
  std::ostringstream s;
  s << "| test error (%) |";
  for (int b : o.batches) s << " batch " << b << " |";
  s << "\n|---|";
  for (size_t i = 0; i < o.batches.size(); ++i) s << "---:|";
  s << '\n';
  for (NormKind k : o.norms) {
    s << "| " << norm_name(k) << " |";
    for (int b : o.batches) {
      auto it = std::find_if(results.begin(), results.end(), [&](const RunResult& r) {
        return r.config.norm == k && r.config.batch == b;
      });
      if (it == results.end())
        s << " |";
      else if (it->diverged)
        s << " diverged |";
      else
        s << ' ' << fmt("%.2f", 100.0 * it->test_error) << " |";
    }
    s << '\n';
  }
  return s.str();
}

void check_options(const StudyOptions& o) {
  if (o.norms.empty() || o.batches.empty()) throw normkit::Error("[study] no norms or batches");
  if (o.epochs < 1) throw normkit::Error("[study] epochs=" + std::to_string(o.epochs) + " must be >= 1");
  if (!(o.base_lr > 0) || !std::isfinite(o.base_lr))
    throw normkit::Error("[study] lr=" + std::to_string(o.base_lr) + " must be a finite value > 0");
  if (o.train_subset < 0)
    throw normkit::Error("[study] train_subset=" + std::to_string(o.train_subset) + " must be >= 0 (0: all)");
  if (o.test_subset < 0)
    throw normkit::Error("[study] test_subset=" + std::to_string(o.test_subset) + " must be >= 0 (0: all)");
  if (!(o.max_error >= 0 && o.max_error < 1))
    throw normkit::Error("[study] max_error=" + fmt("%g", o.max_error) + " must lie in [0, 1) (0: no check)");
  if (o.groups < 1 || 32 % o.groups != 0)
    throw normkit::Error("[study] groups=" + std::to_string(o.groups) + " must divide 32 (the channels of the first layer)");
}

RunConfig run_config(const StudyOptions& o, NormKind norm, int batch, int global_batch) {
  RunConfig c;
  c.norm = norm;
  c.batch = batch;
  c.epochs = o.epochs;
  c.lr = o.base_lr * global_batch / o.base_batch;
  c.momentum = o.momentum;
  c.weight_decay = o.weight_decay;
  c.seed = o.seed;
  c.groups = o.groups;
  return c;
}

std::vector<RunResult> run_study(const StudyOptions& o) {
  // Bad options are usage errors (normkit::Error: the CLI exits with status 2).
  check_options(o);
  for (int b : o.batches)
    if (b < 2) throw normkit::Error("[study] batch=" + std::to_string(b) + " must be >= 2 (BatchNorm)");
  if (o.jobs < 1) throw normkit::Error("[study] jobs=" + std::to_string(o.jobs) + " must be >= 1");

  const FashionMnist data = load_fashion_mnist(o.data_dir, o.train_subset, o.test_subset);
  std::vector<RunConfig> jobs;
  for (NormKind k : o.norms)
    for (int b : o.batches) {
      jobs.push_back(run_config(o, k, b, b));
    }
  // Smallest batches (the slowest runs) first, so the last runs to start are short ones.
  std::vector<size_t> order(jobs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return jobs[a].batch < jobs[b].batch; });

  std::fprintf(stderr,
               "[study] %zu runs, %d epochs on %d training images, %d test images, %d at a time\n",
               jobs.size(), o.epochs, data.train.count, data.test.count, o.jobs);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<RunResult> results(jobs.size());
  std::atomic<size_t> next{0};
  std::atomic<int> finished{0};
  std::exception_ptr failure;
  std::mutex failure_mu;
  Progress progress(std::min<int>(o.jobs, static_cast<int>(jobs.size())));
  auto worker = [&](int slot) {
    for (size_t i; (i = next.fetch_add(1)) < order.size();) {
      try {
        const RunResult r = train_run(data, jobs[order[i]], &progress, slot);
        results[order[i]] = r;
        const int n = ++finished;
        progress.message("[study] " + std::to_string(n) + "/" + std::to_string(jobs.size()) + " " +
                         norm_name(r.config.norm) + " b=" + std::to_string(r.config.batch) +
                         ": test error " + (r.diverged ? "diverged" : fmt("%.2f%%", 100 * r.test_error)) +
                         ", train loss " + fmt("%.4f", r.train_loss) + ", " +
                         format_duration(r.wall_s) + " (" + fmt("%.0f", r.images_per_s) + " img/s)");
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mu);
        if (!failure) failure = std::current_exception();
        next = order.size();
      }
    }
    progress.done(slot);
  };
  std::vector<std::thread> pool;
  for (int w = 0; w < std::min<int>(o.jobs, static_cast<int>(jobs.size())); ++w) pool.emplace_back(worker, w);
  for (std::thread& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const std::string table = results_markdown(results, o);
  std::cout << table << "\nwall time " << format_duration(total_s) << " for " << jobs.size()
            << " runs\n";
  if (!o.out_dir.empty()) {
    namespace fs = std::filesystem;
    const fs::path dir(o.out_dir);
    fs::create_directories(dir);
    write_file(dir / "results.csv", results_csv(results, data.train.count));
    std::ostringstream md;
    md << table << "\nTest error (%) on " << data.test.count
       << " Fashion-MNIST test images after " << o.epochs << " epochs on the first "
       << data.train.count << " training images; lr = " << o.base_lr << " x batch / "
       << o.base_batch << " (cosine decay), momentum " << o.momentum << ", weight decay "
       << o.weight_decay << ", GroupNorm " << o.groups << " groups, seed " << o.seed << ".\n"
       << "Produced by `" << o.command_line << "` (commit " << git_commit() << ") on " << today()
       << ", " << cpu_model() << ", " << o.jobs << " runs at a time, one thread each; sweep wall time "
       << format_duration(total_s) << ".\n";
    write_file(dir / "results.md", md.str());
    std::cout << "wrote " << (dir / "results.csv").string() << " and " << (dir / "results.md").string() << "\n";
    if (o.plot) {
      const std::string script = o.plot_script.empty() ? STUDY_PLOT_SCRIPT : o.plot_script;
      const std::string cmd = "'" + o.python + "' '" + script + "' '" + (dir / "results.csv").string() +
                              "' '" + (dir / "batch_size.png").string() + "'";
      if (std::system(cmd.c_str()) != 0)
        throw std::runtime_error("[study] plot command failed: " + cmd);
      std::cout << "wrote " << (dir / "batch_size.png").string() << "\n";
    }
  }
  if (o.max_error > 0) {
    std::string bad;
    for (const RunResult& r : results)
      if (r.diverged || !(r.test_error < o.max_error))
        bad.append(" ").append(norm_name(r.config.norm)).append(" b=")
            .append(std::to_string(r.config.batch)).append(" error=")
            .append(r.diverged ? std::string("diverged") : fmt("%.4f", r.test_error));
    if (!bad.empty())
      throw std::runtime_error("[study] learning check failed (test error must be < " +
                               fmt("%.2f", o.max_error) + "):" + bad);
    std::cout << "learning check passed: every run's test error < " << fmt("%.2f", o.max_error) << "\n";
  }
  return results;
}

}  // namespace study
