// cmd_bench.cpp — `normkit bench [ARGS...]`: runs normkit-bench, the side-by-side benchmark
// (normkit vs PyTorch vs oneDNN vs the memory floor), found next to this program. It is a
// separate binary because it links libtorch and oneDNN, which the library never needs.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "commands.hpp"
#include "normkit/normkit.hpp"

void add_bench_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Run normkit-bench: normkit vs PyTorch vs oneDNN vs the memory floor "
                                          "(arguments are passed on; try `normkit bench --help`)");
  cmd->allow_extras();
  cmd->prefix_command();
  cmd->callback([cmd] {
    namespace fs = std::filesystem;
    const fs::path self = fs::read_symlink("/proc/self/exe");
    const fs::path bench = self.parent_path() / "normkit-bench";
    if (!fs::exists(bench))
      throw normkit::Error("[bench] " + bench.string() +
                           " not found: build it with -DNORMKIT_BUILD_BENCH=ON (needs libtorch-dev and libdnnl-dev)");
    std::vector<std::string> args{bench.string()};
    for (const auto& a : cmd->remaining()) args.push_back(a);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    throw normkit::Error("[bench] could not run " + bench.string());
  });
}
