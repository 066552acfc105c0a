// CudaBackend against the simulator on a real GPU: the same requests must leave the real c10 allocator and
// the simulated one with the same allocated and reserved bytes, and a real policy must decide the same
// way on both. This is the simulator's fidelity on the machine it models. Skipped, with the reason,
// without a CUDA libtorch or a GPU.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <torch/cuda.h>
#include <torch/version.h>

#include "offsim/policies/policy.hpp"
#include "offsim/policies/policy_registry.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/policies/sim_backend.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/version_profile.hpp"

#if OFFSIM_HAVE_TORCH_CUDA
#include "offsim/real/cuda_backend.hpp"
#endif

namespace offsim::real {
namespace {

#if OFFSIM_HAVE_TORCH_CUDA

// The simulator profile of the libtorch this test runs on ("2.11.0+cu130" -> 2.11).
const sim::VersionProfile& running_profile() { return sim::VersionProfile::for_torch_version(TORCH_VERSION); }

class CudaBackendGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "torch::cuda::is_available() is false: no CUDA device here";
    backend_ = std::make_unique<CudaBackend>(0);
    backend_->empty_cache();
    const policies::MemoryStats s = backend_->stats();
    if (s.allocated != 0 || s.reserved != 0) {
      GTEST_SKIP() << "the process already holds device memory (" << s.allocated << " allocated, " << s.reserved
                   << " reserved): run this test in its own process (ctest does)";
    }
    // The simulated device answers mem_get_info as this one does now: what the context and other processes
    // use is outside the allocator.
    const policies::MemInfo info = backend_->mem_get_info();
    device_.name = backend_->name();
    device_.total_bytes = info.total;
    device_.other_process_bytes = info.total - info.free;
    const char* conf = std::getenv("PYTORCH_CUDA_ALLOC_CONF");
    conf_ = conf != nullptr ? conf : "";
    std::cout << "device: " << device_.name << ", PYTORCH_CUDA_ALLOC_CONF=\"" << conf_ << "\", simulator profile "
              << running_profile().name << "\n";
  }

  std::unique_ptr<policies::SimBackend> simulator() const {
    return std::make_unique<policies::SimBackend>(device_, sim::AllocatorConfig::parse(conf_, running_profile()),
                                                  running_profile());
  }

  std::unique_ptr<CudaBackend> backend_;
  sim::DeviceSpec device_;
  std::string conf_;
};

TEST_F(CudaBackendGpu, SameRequestsLeaveTheSameAllocatedAndReservedBytes) {
  auto sim = simulator();
  // Both pools, the 1 MiB / 10 MiB boundaries, a segment-sized request and an oversize one.
  const std::vector<std::uint64_t> sizes = {512,     1000,         MiB - 1,  MiB,     MiB + 1,  3 * MiB,
                                            10 * MiB, 10 * MiB + 1, 25 * MiB, 200 * MiB, 700 * MiB};
  std::vector<std::uint64_t> real_ptrs, sim_ptrs;
  const auto expect_same = [&](const std::string& after) {
    const policies::MemoryStats r = backend_->stats(), s = sim->stats();
    EXPECT_EQ(r.allocated, s.allocated) << "allocated after " << after;
    EXPECT_EQ(r.reserved, s.reserved) << "reserved after " << after;
  };
  for (std::uint64_t size : sizes) {
    real_ptrs.push_back(backend_->allocate(size).value());
    sim_ptrs.push_back(sim->allocate(size).value());
    expect_same("malloc(" + std::to_string(size) + ")");
  }
  for (std::size_t i = 0; i < sizes.size(); i += 2) {
    backend_->free(real_ptrs[i]);
    sim->free(sim_ptrs[i]);
    expect_same("free of the " + std::to_string(sizes[i]) + "-byte block");
  }
  for (std::uint64_t size : {5 * MiB, 300 * KiB, 15 * MiB, 600 * MiB}) {
    ASSERT_TRUE(backend_->allocate(size).has_value());
    ASSERT_TRUE(sim->allocate(size).has_value());
    expect_same("malloc(" + std::to_string(size) + ") into freed blocks");
  }
  backend_->empty_cache();
  sim->empty_cache();
  expect_same("empty_cache()");
}

TEST_F(CudaBackendGpu, AnOversizedRequestIsAnOomReportNotAnException) {
  const std::uint64_t too_big = backend_->mem_get_info().total + GiB;
  EXPECT_FALSE(backend_->allocate(too_big).has_value());
  EXPECT_EQ(backend_->last_oom().requested, too_big);
  EXPECT_NE(backend_->last_oom().message.find("out of memory"), std::string::npos) << backend_->last_oom().message;
  EXPECT_GE(backend_->stats().num_ooms, 1u);
  EXPECT_THROW(backend_->free(12345), AllocatorUsageError);
}

// A real policy's decisions over the real allocator: InvokeAI's cache on the SDXL scenario, every stage of
// one call (weights only; working memory is the simulator's business), against the same on the simulator.
TEST_F(CudaBackendGpu, InvokeAiDecidesTheSameOnTheGpuAndTheSimulator) {
  const policies::Scenario scenario = policies::Scenario::load(
      std::string(OFFSIM_SOURCE_DIR) + "/scenarios/default/sdxl-1024-rtx4090-2-calls.json", OFFSIM_SOURCE_DIR);
  auto sim = simulator();
  auto real_policy = policies::make_policy("invokeai@a6724695");
  auto sim_policy = policies::make_policy("invokeai@a6724695");
  policies::RunContext real_context(scenario, *backend_);
  policies::RunContext sim_context(scenario, *sim);
  real_policy->begin_run(real_context);
  sim_policy->begin_run(sim_context);
  for (const policies::Stage& stage : scenario.stages) {
    const policies::StageStep where{&stage, 0, 0};
    const policies::StageDecision real_decision = real_policy->prepare(real_context, where);
    const policies::StageDecision sim_decision = sim_policy->prepare(sim_context, where);
    EXPECT_EQ(real_decision.evictions.size(), sim_decision.evictions.size()) << "stage " << stage.name;
    EXPECT_EQ(real_decision.load_oom.has_value(), sim_decision.load_oom.has_value()) << "stage " << stage.name;
    EXPECT_EQ(backend_->stats().reserved, sim->stats().reserved) << "reserved after loading for " << stage.name;
    real_policy->finish(real_context, where);
    sim_policy->finish(sim_context, where);
  }
}

#else

TEST(CudaBackendGpu, NeedsACudaLibtorch) {
  GTEST_SKIP() << "offsim_real was built without CudaBackend: this libtorch has no libc10_cuda (Debian's is "
                  "CPU-only); configure with the GPU machine's libtorch (real/gpu/README.md)";
}

#endif

}  // namespace
}  // namespace offsim::real
