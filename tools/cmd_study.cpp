// cmd_study.cpp — `normkit study [--quick]`: the batch-size study on Fashion-MNIST (every
// norm x batch 32..2), writing docs/study/results.{csv,md} and batch_size.png. All the work
// lives in study/sweep.cpp; this file maps options and checks learning in --quick.
// `mpirun -np P normkit study --dp local|sync` (or --sync-bn) trains data-parallel instead
// (study/dp_sweep.cpp); without MPI in the build those options fail with how to enable it.
#include <CLI/CLI.hpp>

#include <climits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "dp_sweep.hpp"
#include "shape_arg.hpp"
#include "sweep.hpp"

namespace {

struct StudyCli {
  study::StudyOptions opts;
  bool quick = false, no_plot = false, sync_bn = false;
  std::string dp = "off";
  std::vector<std::string> norms;
  std::vector<int> batches;
  std::string out = "docs/study";
  std::vector<CLI::Option*> explicit_opts;  // --epochs, --train-subset, --test-subset, --max-error
};

std::string canonical_command(const StudyCli& c, const study::StudyOptions& o) {
  std::ostringstream s;
  s << "normkit study";
  if (c.dp != "off") s << " --dp " << c.dp;
  if (c.quick) s << " --quick";
  s << " --epochs " << o.epochs << " --train-subset " << o.train_subset << " --seed " << o.seed
    << (c.dp == "off" ? " --jobs " + std::to_string(o.jobs) : std::string());
  if (c.dp != "off") {
    s << " --test-subset " << o.test_subset << " --norms";
    if (c.norms.empty()) s << " bn";
    for (size_t i = 0; i < c.norms.size(); ++i) s << (i ? "," : " ") << c.norms[i];
    s << " --batches";
    for (size_t i = 0; i < o.batches.size(); ++i) s << (i ? "," : " ") << o.batches[i];
  }
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
  if (c.sync_bn) c.dp = "sync";
  const study::DataParallel dp = study::parse_data_parallel(c.dp);
  // Data-parallel runs write files only when --out is given (never over results.*).
  o.out_dir = ((c.quick || dp != study::DataParallel::Off) && !out_given) ? std::string() : c.out;
  o.plot = !c.no_plot;
  if (dp != study::DataParallel::Off && c.norms.empty()) o.norms = {study::NormKind::Batch};
  o.command_line = canonical_command(c, o);
  if (dp == study::DataParallel::Off)
    study::run_study(o);
  else
    study::run_dp_study(o, dp);
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
                "norm; fails unless each test error is below 40%; writes files only with --out");
  CLI::Option* out = sub->add_option("--out", c->out, "directory for the results")->capture_default_str();
  sub->add_option("--data", c->opts.data_dir, "directory holding the Fashion-MNIST .gz files")
      ->capture_default_str();
  c->explicit_opts.push_back(
      sub->add_option("--epochs", c->opts.epochs, "epochs, the same for every run")->capture_default_str());
  // Integers and reals through the strict parser (CLI11 would clamp 99999999999999999999).
  auto int_option = [&](const char* name, int* target, const char* help) {
    return sub
        ->add_option_function<std::string>(
            name, [name, target](const std::string& s) { *target = int(parse_int_arg(s, "study", name, INT_MIN, INT_MAX)); },
            help)
        ->default_str(std::to_string(*target))
        ->type_name("INT");
  };
  c->explicit_opts.push_back(
      int_option("--train-subset", &c->opts.train_subset, "train on the first N images (0: all 60000)"));
  c->explicit_opts.push_back(
      int_option("--test-subset", &c->opts.test_subset, "evaluate on the first N test images (0: all)"));
  sub->add_option("--norms", c->norms, "subset of bn, gn, ln, in, none")->delimiter(',');
  sub->add_option("--batches", c->batches, "per-step batch sizes (default 32,16,8,4,2)")->delimiter(',');
  sub->add_option("--lr", c->opts.base_lr, "learning rate at batch 32 (scaled linearly)")
      ->capture_default_str();
  sub->add_option("--groups", c->opts.groups, "GroupNorm groups (32 and 64 channels)")->capture_default_str();
  sub->add_option("--seed", c->opts.seed, "seed for initialization and data order")->capture_default_str();
  sub->add_option("--jobs", c->opts.jobs, "runs trained at once, one thread each")->capture_default_str();
  c->explicit_opts.push_back(sub->add_option_function<std::string>(
      "--max-error",
      [c](const std::string& s) { c->opts.max_error = parse_real_arg(s, "study", "--max-error"); },
      "fail unless every run's test error is below this fraction in [0, 1) (0: no check; --quick: 0.4)")
                                 ->type_name("FLOAT"));
  sub->add_flag("--no-plot", c->no_plot, "do not draw batch_size.png");
  sub->add_option("--dp", c->dp,
                  "data-parallel over the ranks of `mpirun -np P`: local (gradients averaged, "
                  "BatchNorm on each rank's slice) or sync (SyncBatchNorm: statistics over the global "
                  "batch); --batches are then per rank, lr scales with the global batch, runs go "
                  "one at a time, norms default to bn, files are written only with --out "
                  "(dp_local|dp_sync.{csv,md}); 1 rank (no mpirun) is single-process training. "
                  "Needs a build with MPI")
      ->check(CLI::IsMember({"off", "local", "sync"}))
      ->capture_default_str();
  sub->add_flag("--sync-bn", c->sync_bn, "the same as --dp sync");
  sub->callback([c, out] { run(*c, out->count() > 0); });
}
