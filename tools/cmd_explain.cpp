// cmd_explain.cpp — `normkit explain --shape 32,256,14,14 [--groups 32]`: the family table
// for one activation shape, straight from normkit::describe_family (which builds the plans).
#include <CLI/CLI.hpp>

#include <algorithm>
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

// The GroupNorm paper's Figure 2 in text: one cell per (n, c) (each cell stands for the
// H x W values), '#' marking the cells that share the statistic of sample 0, channel 0.
void print_figure(std::ostream& out, const normkit::Shape& shape, int64_t groups) {
  const int64_t N = shape[0], C = shape[1], n_shown = std::min<int64_t>(N, 6),
                c_shown = std::min<int64_t>(C, 8);
  const int64_t per_group = C / groups;
  struct Panel {
    const char* name;
    bool (*shared)(int64_t n, int64_t c, int64_t per_group);
  };
  const Panel panels[] = {
      {"BatchNorm", [](int64_t, int64_t c, int64_t) { return c == 0; }},
      {"LayerNorm", [](int64_t n, int64_t, int64_t) { return n == 0; }},
      {"InstanceNorm", [](int64_t n, int64_t c, int64_t) { return n == 0 && c == 0; }},
      {"GroupNorm", [](int64_t n, int64_t c, int64_t g) { return n == 0 && c / g == 0; }},
  };
  out << "\n'#': the values that share one statistic (sample 0, channel 0); each cell is the H x W\n"
      << "values of one (n, c)" << (N > n_shown || C > c_shown ? "; the first 6 samples and 8 channels shown" : "")
      << ".\n\n";
  const size_t width = size_t(3 * n_shown + 4);
  for (const Panel& p : panels) {
    const std::string name = p.name;
    out << "  " << name << std::string(width > name.size() ? width - name.size() : 1, ' ');
  }
  out << "\n";
  for (int64_t c = 0; c < c_shown; ++c) {
    for (const Panel& p : panels) {
      out << "  ";
      for (int64_t n = 0; n < n_shown; ++n) out << (p.shared(n, c, per_group) ? " # " : " . ");
      out << "    ";
    }
    out << (c == 0 ? " C" : "") << "\n";
  }
  for (size_t i = 0; i < 4; ++i) out << "  " << "N ->" << std::string(width - 4, ' ');
  out << "\n";
}

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
  std::cout << "\nplan: the axes after merging neighbours of the same kind, in axis order "
               "(K = kept: one statistic each, R = reduced: averaged over).\n"
               "WeightNorm's row describes a weight tensor of this shape with dim=0.\n";
  print_figure(std::cout, shape, groups);
}

}  // namespace

void add_explain_command(CLI::App& app) {
  auto opts = std::make_shared<ExplainOptions>();
  auto* sub = app.add_subcommand(
      "explain", "What each normalization averages over for an activation shape");
  sub->add_option("--shape", opts->shape, "activation sizes N,C,spatial... (default 32,256,14,14)");
  CLI::Option* groups = sub->add_option_function<std::string>(
      "--groups", [opts](const std::string& s) { opts->groups = parse_int_arg(s, "explain", "--groups"); },
      "GroupNorm's num_groups (default 32)")
      ->type_name("INT");
  sub->callback([opts, groups] {
    opts->groups_given = groups->count() > 0;
    run_explain(*opts);
  });
}
