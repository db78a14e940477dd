// cmd_study.cpp — `normkit study [--quick]`: the batch-size study on Fashion-MNIST (every
// norm x batch 32..2), writing docs/study/results.{csv,md} and batch_size.png. All the work
// lives in study/sweep.cpp; this file maps options and checks learning in --quick.
#include <CLI/CLI.hpp>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "sweep.hpp"

namespace {

struct StudyCli {
  study::StudyOptions opts;
  bool quick = false, no_plot = false;
  std::vector<std::string> norms;
  std::vector<int> batches;
  std::string out = "docs/study";
  std::vector<CLI::Option*> explicit_opts;  // --epochs, --train-subset, --test-subset, --max-error
};

std::string canonical_command(const StudyCli& c, const study::StudyOptions& o) {
  std::ostringstream s;
  s << "normkit study";
  if (c.quick) s << " --quick";
  s << " --epochs " << o.epochs << " --train-subset " << o.train_subset << " --seed " << o.seed
    << " --jobs " << o.jobs;
  return s.str();
}

void run(StudyCli& c, bool out_given) {
  study::StudyOptions o = c.quick ? study::quick_options(c.opts) : c.opts;
  // Options given explicitly win over the --quick preset.
  if (c.explicit_opts[0]->count()) o.epochs = c.opts.epochs;
  if (c.explicit_opts[1]->count()) o.train_subset = c.opts.train_subset;
  if (c.explicit_opts[2]->count()) o.test_subset = c.opts.test_subset;
  if (c.explicit_opts[3]->count()) o.max_error = c.opts.max_error;
  if (!c.norms.empty()) {
    o.norms.clear();
    for (const std::string& n : c.norms) o.norms.push_back(study::parse_norm(n));
  }
  if (!c.batches.empty()) o.batches = c.batches;
  o.out_dir = (c.quick && !out_given) ? std::string() : c.out;
  o.plot = !c.no_plot;
  o.command_line = canonical_command(c, o);
  study::run_study(o);
}

}  // namespace

void add_study_command(CLI::App& app) {
  auto c = std::make_shared<StudyCli>();
  CLI::App* sub = app.add_subcommand(
      "study",
      "Batch-size study on Fashion-MNIST: BatchNorm, GroupNorm, LayerNorm, InstanceNorm and no "
      "norm at 32, 16, 8, 4, 2 images per step (lr scaled with the batch, as Wu & He 2018); "
      "writes results.csv, results.md and batch_size.png");
  sub->add_flag("--quick", c->quick,
                "CI preset: 6000 training / 2000 test images, 2 epochs, batch 32 only, every "
                "norm; fails unless each test error is below 50%; writes files only with --out");
  CLI::Option* out = sub->add_option("--out", c->out, "directory for the results")->capture_default_str();
  sub->add_option("--data", c->opts.data_dir, "directory holding the Fashion-MNIST .gz files")
      ->capture_default_str();
  c->explicit_opts.push_back(
      sub->add_option("--epochs", c->opts.epochs, "epochs, the same for every run")->capture_default_str());
  c->explicit_opts.push_back(sub->add_option("--train-subset", c->opts.train_subset,
                                             "train on the first N images (0: all 60000)")
                                 ->capture_default_str());
  c->explicit_opts.push_back(
      sub->add_option("--test-subset", c->opts.test_subset, "evaluate on the first N test images (0: all)")
          ->capture_default_str());
  sub->add_option("--norms", c->norms, "subset of bn, gn, ln, in, none")->delimiter(',');
  sub->add_option("--batches", c->batches, "per-step batch sizes (default 32,16,8,4,2)")->delimiter(',');
  sub->add_option("--lr", c->opts.base_lr, "learning rate at batch 32 (scaled linearly)")
      ->capture_default_str();
  sub->add_option("--groups", c->opts.groups, "GroupNorm groups (32 and 64 channels)")->capture_default_str();
  sub->add_option("--seed", c->opts.seed, "seed for initialization and data order")->capture_default_str();
  sub->add_option("--jobs", c->opts.jobs, "runs trained at once, one thread each")->capture_default_str();
  c->explicit_opts.push_back(sub->add_option("--max-error", c->opts.max_error,
                                             "fail unless every run's test error is below this "
                                             "fraction (0: no check; --quick: 0.5)"));
  sub->add_flag("--no-plot", c->no_plot, "do not draw batch_size.png");
  sub->callback([c, out] { run(*c, out->count() > 0); });
}
