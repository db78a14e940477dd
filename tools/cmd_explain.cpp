// cmd_explain.cpp — `normkit explain --shape 32,256,14,14 [--groups 32]`: the family table
// for one activation shape, straight from normkit::describe_family (which builds the plans).
#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>
#include <string>

#include "commands.hpp"
#include "normkit/guide.hpp"
#include "shape_arg.hpp"
#include "table.hpp"

namespace {

struct ExplainOptions {
  std::string shape = "32,256,14,14";
  int64_t groups = 32;
  bool groups_given = false;
};

void run_explain(const ExplainOptions& o) {
  const normkit::Shape shape = parse_shape(o.shape, "explain");
  int64_t groups = o.groups;
  std::string note;
  // Without --groups, a C that 32 does not divide gets its largest divisor below 32.
  if (!o.groups_given && shape.size() >= 2 && shape[1] % groups != 0) {
    while (shape[1] % groups != 0) --groups;
    note = " (32 does not divide C=" + std::to_string(shape[1]) + "; pass --groups to choose)";
  }
  const auto rows = normkit::describe_family(shape, groups);
  std::cout << "activation " << normkit::shape_str(shape) << " = " << normkit::numel(shape)
            << " elements, read as (N, C, *spatial); GroupNorm groups=" << groups << note
            << "\n\n";
  Table t({"method", "reduced axes", "stat per", "statistic", "affine per", "#stats",
           "elems/stat", "plan"});
  t.right_align({5, 6});
  for (const auto& r : rows)
    t.add({normkit::method_name(r.method), r.reduced_axes, r.stat_per, r.statistic, r.affine_per,
           std::to_string(r.num_stats), std::to_string(r.stat_size), r.pattern});
  t.print(std::cout);
  std::cout << "\nplan: the axes after merging neighbours of the same kind, in memory order "
               "(K = kept: one statistic each, R = reduced: averaged over).\n"
               "WeightNorm's row describes a weight tensor of this shape with dim=0.\n";
}

}  // namespace

void add_explain_command(CLI::App& app) {
  auto opts = std::make_shared<ExplainOptions>();
  auto* sub = app.add_subcommand(
      "explain", "What each normalization averages over for an activation shape");
  sub->add_option("--shape", opts->shape, "activation sizes N,C,spatial... (default 32,256,14,14)");
  CLI::Option* groups = sub->add_option("--groups", opts->groups, "GroupNorm's num_groups (default 32)");
  sub->callback([opts, groups] {
    opts->groups_given = groups->count() > 0;
    run_explain(*opts);
  });
}
