// Where writers put their bytes: a file being written atomically (atomic_output_file.hpp) or a string
// (tests, in-memory conversion). Writers buffer themselves and call write() with large pieces.
#pragma once

#include <string>
#include <string_view>

namespace offsim::sim {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(std::string_view bytes) = 0;
};

class StringByteSink : public ByteSink {
 public:
  void write(std::string_view bytes) override { data_.append(bytes); }
  const std::string& data() const { return data_; }
  std::string take() { return std::move(data_); }

 private:
  std::string data_;
};

}  // namespace offsim::sim
