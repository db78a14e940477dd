// main.cpp — the `normkit` program: a CLI11 app with one subcommand per cmd_<name>.cpp.
// With no arguments it runs `tour`. Every usage error (unknown subcommand, bad option value,
// malformed shape) prints a message and exits with status 2.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "commands.hpp"
#include "normkit/normkit.hpp"

int main(int argc, char** argv) {
  CLI::App app{"normkit " NORMKIT_VERSION
               " - the normalization family on one reduction engine.\n"
               "With no arguments, runs `normkit tour`."};
  app.require_subcommand(0, 1);  // none: `tour` (see below)
  add_tour_command(app);
  add_guide_command(app);
  add_explain_command(app);
  add_study_command(app);
  add_adain_command(app);
  add_bench_command(app);

  try {
    if (argc <= 1)
      app.parse("tour", false);
    else
      app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const normkit::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
