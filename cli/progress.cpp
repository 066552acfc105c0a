#include "progress.hpp"

#include <algorithm>
#include <cstdio>
#include <unistd.h>

namespace offsim::cli {

Progress::Progress(std::string what, std::size_t total, bool quiet)
    : what_(std::move(what)),
      total_(total),
      enabled_(!quiet && isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

Progress::~Progress() { finish(); }

void Progress::update(std::size_t done) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  // Nothing is shown for work that finishes within a second.
  if (now - start_ < std::chrono::seconds(1) || (shown_ && now - last_ < std::chrono::milliseconds(100))) return;
  last_ = now;
  shown_ = true;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  const double eta = rate > 0 && total_ > done ? static_cast<double>(total_ - done) / rate : 0;
  // 100 columns at most: the detail is cut from the left, where a dotted module path is least telling.
  constexpr std::size_t kDetailWidth = 40;
  const std::string detail =
      detail_.size() > kDetailWidth ? "..." + detail_.substr(detail_.size() - kDetailWidth + 3) : detail_;
  const int width = std::fprintf(stderr, "\r%s: %zu/%zu  %.1f/s  ETA %.0fs  %s", what_.c_str(), done, total_, rate,
                                 eta, detail.c_str());
  // Blank what a longer earlier line left behind.
  if (width < width_) std::fprintf(stderr, "%*s", width_ - width, "");
  width_ = std::max(width_, width);
  std::fflush(stderr);
}

void Progress::finish() {
  if (enabled_ && shown_) {
    std::fprintf(stderr, "\r%*s\r", std::max(width_, 70), "");
    std::fflush(stderr);
    shown_ = false;
  }
}

}  // namespace offsim::cli
