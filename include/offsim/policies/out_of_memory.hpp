// An allocation failure raised as an exception, for callers that cannot return "no memory": the simulated
// device a Python cache runs against (torch.cuda.OutOfMemoryError there). Its text is PyTorch's message.
#pragma once

#include <cstdint>
#include <string>

#include "offsim/policies/memory_backend.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

class OutOfMemory : public Error {
 public:
  explicit OutOfMemory(OomReport report) : Error(report.message), report_(std::move(report)) {}
  const OomReport& report() const noexcept { return report_; }

 private:
  OomReport report_;
};

/// The failure of memory the driver hands out outside PyTorch's allocator (kernel modules, cuDNN/cuBLAS
/// handles and workspaces): CUDA's own "out of memory" error, not the allocator's message.
OomReport outside_allocator_oom(const std::string& label, std::uint64_t bytes, const MemoryBackend& backend);

}  // namespace offsim::policies
