// study/progress.cpp — formats the bars and keeps concurrent runs from interleaving their
// output: every write happens under one mutex.
#include "progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace study {

std::string format_duration(double seconds) {
  long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

static std::string render(const ProgressState& s) {
  constexpr int width = 20;
  const int filled = static_cast<int>(std::lround(std::min(1.0, s.fraction) * width));
  std::string bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-16s %s epoch %d/%d step %d/%d loss %.4f %5.0f img/s left %s",
                s.label.c_str(), bar.c_str(), s.epoch, s.epochs, s.step, s.steps, s.loss,
                s.images_per_s, format_duration(s.eta_s).c_str());
  return buf;
}

Progress::Progress(int slots)
    : tty_(isatty(STDERR_FILENO) != 0), lines_(slots), last_print_(slots) {}

void Progress::redraw() {
  if (drawn_ > 0) std::fprintf(stderr, "\x1b[%dF", drawn_);
  drawn_ = 0;
  for (const std::string& l : lines_) {
    std::fprintf(stderr, "\x1b[2K%s\n", l.c_str());
    ++drawn_;
  }
  std::fflush(stderr);
  last_draw_ = Clock::now();
}

void Progress::update(int slot, const ProgressState& s, bool force) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = Clock::now();
  lines_[slot] = render(s);
  if (tty_) {
    if (force || now - last_draw_ > std::chrono::milliseconds(200)) redraw();
  } else if (force || now - last_print_[slot] > std::chrono::seconds(20)) {
    std::fprintf(stderr, "%s\n", lines_[slot].c_str());
    std::fflush(stderr);
    last_print_[slot] = now;
  }
}

void Progress::message(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (tty_) {
    if (drawn_ > 0) std::fprintf(stderr, "\x1b[%dF", drawn_);
    std::fprintf(stderr, "\x1b[2K%s\n", line.c_str());
    drawn_ = 0;
    redraw();
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  }
}

void Progress::done(int slot) {
  std::lock_guard<std::mutex> lock(mu_);
  lines_[slot].clear();
  if (tty_) redraw();
}

}  // namespace study
