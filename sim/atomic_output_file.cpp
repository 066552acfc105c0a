#include "offsim/sim/atomic_output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include "offsim/sim/errors.hpp"

namespace offsim::sim {

AtomicOutputFile::AtomicOutputFile(std::filesystem::path destination) : destination_(std::move(destination)) {
  std::filesystem::path directory = destination_.parent_path();
  if (directory.empty()) directory = ".";
  std::error_code error;
  if (std::filesystem::is_directory(destination_, error)) {
    throw Error(destination_.string() + ": is a directory, expected a file name to write");
  }
  // Same directory as the destination, so that rename() replaces it atomically (same file system).
  std::string pattern = (directory / ("." + destination_.filename().string() + ".tmp.XXXXXX")).string();
  const int descriptor = ::mkstemp(pattern.data());
  if (descriptor < 0) {
    throw Error(destination_.string() + ": cannot create a temporary file in " + directory.string() + ": " +
                std::strerror(errno));
  }
  ::fchmod(descriptor, 0644);  // mkstemp creates 0600; outputs are ordinary readable files
  temporary_ = pattern;
  file_ = ::fdopen(descriptor, "wb");
  if (file_ == nullptr) {
    const int saved = errno;
    ::close(descriptor);
    std::filesystem::remove(temporary_, error);
    throw Error(destination_.string() + ": cannot open the temporary file: " + std::strerror(saved));
  }
}

AtomicOutputFile::~AtomicOutputFile() {
  if (file_ != nullptr) std::fclose(file_);
  if (!committed_) {
    std::error_code ignored;
    std::filesystem::remove(temporary_, ignored);
  }
}

void AtomicOutputFile::fail(const std::string& what) {
  throw Error(destination_.string() + ": " + what + " (temporary file " + temporary_.string() + "): " +
              std::strerror(errno));
}

void AtomicOutputFile::write(std::string_view bytes) {
  if (file_ == nullptr) throw Error(destination_.string() + ": write after commit");
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) fail("write failed");
  bytes_written_ += bytes.size();
}

void AtomicOutputFile::commit() {
  if (file_ == nullptr) throw Error(destination_.string() + ": committed twice");
  if (std::fflush(file_) != 0) fail("flush failed");
  if (::fsync(::fileno(file_)) != 0) fail("fsync failed");
  const int closed = std::fclose(file_);
  file_ = nullptr;
  if (closed != 0) fail("close failed");
  if (std::rename(temporary_.c_str(), destination_.c_str()) != 0) fail("rename over the destination failed");
  committed_ = true;
}

}  // namespace offsim::sim
