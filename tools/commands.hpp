// commands.hpp — one function per `normkit` subcommand; main.cpp calls each once.
// Each subcommand lives in its own cmd_<name>.cpp so new ones (bench, study) are one file
// plus one line in main.cpp. Commands throw normkit::Error for bad values; main maps it to exit 2.
#pragma once

#include <iosfwd>

namespace CLI {
class App;
}

void add_tour_command(CLI::App& app);     // cmd_tour.cpp: the default with no arguments
void add_guide_command(CLI::App& app);    // cmd_guide.cpp
void add_explain_command(CLI::App& app);  // cmd_explain.cpp
void add_study_command(CLI::App& app);    // cmd_study.cpp (study/): the batch-size study
void add_adain_command(CLI::App& app);    // cmd_adain.cpp: colour transfer with AdaIN on PNGs
void add_bench_command(CLI::App& app);    // cmd_bench.cpp: runs normkit-bench next to this program

// The decision guide as a table of situations (shared by `tour` and `guide`).
void print_guide_table(std::ostream& out);
