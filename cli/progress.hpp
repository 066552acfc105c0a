// A one-line progress display (done/total, rate, ETA) on a terminal; silent when stderr is not a TTY
// or when quiet. Updates at most ten times a second.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace offsim::cli {

class Progress {
 public:
  Progress(std::string what, std::size_t total, bool quiet);
  ~Progress();
  void update(std::size_t done);
  /// The same, with a new estimate of the total (work whose size is known only as it goes).
  void update(std::size_t done, std::size_t total) {
    total_ = total;
    update(done);
  }
  /// The same, naming what runs now (a module, an entry): shown after the ETA, cut to fit a line.
  void update(std::size_t done, std::size_t total, const std::string& detail) {
    detail_ = detail;
    update(done, total);
  }
  void finish();

 private:
  std::string what_;
  std::string detail_;
  std::size_t total_;
  int width_ = 0;  // characters of the line shown, to clear it
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace offsim::cli
