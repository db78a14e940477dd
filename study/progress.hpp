// study/progress.hpp — one progress bar per concurrently running training run, on stderr.
// On a terminal the bars are redrawn in place (ANSI cursor moves, at most 5 times a
// second); in a log file each run prints a plain line every 20 seconds instead.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

namespace study {

struct ProgressState {
  std::string label;         // "BatchNorm b=32"
  int epoch = 0, epochs = 0; // 1-based epoch
  int step = 0, steps = 0;   // step within the epoch
  double fraction = 0;       // of the whole run
  double loss = 0;           // running mean over the epoch so far
  double images_per_s = 0;
  double eta_s = 0;
};

class Progress {
 public:
  explicit Progress(int slots);
  void update(int slot, const ProgressState& s, bool force = false);
  // A permanent line (a run finished, a warning), printed above the bars.
  void message(const std::string& line);
  // Clears the bars of finished slots.
  void done(int slot);

 private:
  using Clock = std::chrono::steady_clock;
  std::mutex mu_;
  bool tty_;
  std::vector<std::string> lines_;
  std::vector<Clock::time_point> last_print_;
  Clock::time_point last_draw_;
  int drawn_ = 0;
  void redraw();  // mu_ held
};

std::string format_duration(double seconds);  // "1:05", "1:02:03"

}  // namespace study
