// cmd_guide.cpp — `normkit guide --arch A --batch B [--variable-length]`: one recommendation
// with its reason and its PyTorch and normkit spellings; with no --arch, the whole guide.
// All the knowledge lives in normkit::recommend (src/guide.cpp); this file only prints it.
#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "commands.hpp"
#include "normkit/guide.hpp"
#include "shape_arg.hpp"
#include "table.hpp"

namespace {

struct GuideOptions {
  std::string arch;
  int64_t batch = 32;
  bool variable_length = false;
};

struct GuideRow {
  const char* situation;
  normkit::Situation s;
};

std::string short_name(const normkit::Recommendation& r) {
  return std::string(normkit::method_name(r.method)) +
         (r.method == normkit::Method::GroupNorm ? "(32)" : "");
}

void run_guide(const GuideOptions& o) {
  if (o.batch < 1)  // checked here too: without --arch the value would otherwise be ignored
    throw normkit::Error("[guide] batch_size=" + std::to_string(o.batch) + " must be >= 1");
  if (o.arch.empty()) {
    print_guide_table(std::cout);
    return;
  }
  normkit::Situation s;
  s.architecture = normkit::parse_architecture(o.arch);
  s.batch_size = o.batch;
  s.variable_length = o.variable_length;
  const auto r = normkit::recommend(s);
  std::cout << "situation:    " << normkit::architecture_name(s.architecture) << ", batch "
            << s.batch_size << (s.variable_length ? ", variable length" : "") << "\n"
            << "use:          " << short_name(r) << "\n"
            << "settings:     " << r.settings << "\n"
            << "why:          " << r.reason << "\n"
            << "PyTorch:      " << r.pytorch << "\n"
            << "normkit:      " << r.normkit << "\n";
  if (!r.alternative.empty()) std::cout << "alternative:  " << r.alternative << "\n";
}

}  // namespace

void print_guide_table(std::ostream& out) {
  using normkit::Architecture;
  const GuideRow rows[] = {
      {"CNN, batch >= 16", {Architecture::CNN, 32, false}},
      {"CNN, batch 8-15", {Architecture::CNN, 12, false}},
      {"CNN, batch < 8", {Architecture::CNN, 4, false}},
      {"Transformer", {Architecture::Transformer, 32, false}},
      {"LLaMA-style LM", {Architecture::LlamaLM, 32, false}},
      {"Style transfer", {Architecture::StyleTransfer, 4, false}},
      {"RNN / online learning", {Architecture::RNN, 32, false}},
      {"Variable length, batch 1", {Architecture::CNN, 1, true}},
      {"Image generation (diffusion, GAN)", {Architecture::ImageGeneration, 8, false}},
  };
  Table t({"situation", "use", "PyTorch", "why"});
  for (const auto& row : rows) {
    const auto r = normkit::recommend(row.s);
    t.add({row.situation, short_name(r), r.pytorch, r.reason});
  }
  t.print(out);
}

void add_guide_command(CLI::App& app) {
  auto opts = std::make_shared<GuideOptions>();
  auto* sub = app.add_subcommand(
      "guide", "Which normalization to use for a situation, why, and how to spell it");
  sub->add_option("--arch", opts->arch,
                  "cnn, transformer, llama-lm, rnn, online, style-transfer, image-generation "
                  "(aliases: llama, lm, style, gan, diffusion); omit for the whole guide")
      ->check(CLI::Validator(
          [](std::string& name) -> std::string {
            try {
              normkit::parse_architecture(name);
              return {};
            } catch (const normkit::Error& e) {
              return e.what();
            }
          },
          "ARCH"));
  sub->add_option_function<std::string>(
      "--batch", [opts](const std::string& s) { opts->batch = parse_int_arg(s, "guide", "--batch"); },
      "examples per device per step (default 32)")
      ->type_name("INT");
  sub->add_flag("--variable-length", opts->variable_length, "sequences of varying length");
  sub->callback([opts] { run_guide(*opts); });
}
