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
  void finish();

 private:
  std::string what_;
  std::size_t total_;
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace offsim::cli
