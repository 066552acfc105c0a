// The tracking CPU allocator sees every allocation and free of a libtorch forward pass, in order, with the
// scope that made it.
#include <gtest/gtest.h>

#include <map>

#include <torch/torch.h>

#include "offsim/real/cuda_rewrite.hpp"
#include "offsim/real/trace_stats.hpp"
#include "offsim/real/vae_module.hpp"
#include "offsim/sim/errors.hpp"
#include "real/test_support.hpp"

namespace offsim::real {
namespace {

using testing::record;

TEST(AllocationRecorder, SeesOneTensorAllocatedAndFreed) {
  std::uintptr_t address = 0;
  const Recording r = record([&] {
    torch::Tensor t = torch::empty({1000}, torch::kFloat);
    address = reinterpret_cast<std::uintptr_t>(t.data_ptr());
  });
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_TRUE(r.events[0].is_alloc);
  EXPECT_EQ(r.events[0].size, 4000u);
  EXPECT_EQ(r.events[0].addr, address);
  EXPECT_FALSE(r.events[1].is_alloc);
  EXPECT_EQ(r.events[1].size, 4000u);
  EXPECT_EQ(r.events[1].addr, address);
  EXPECT_EQ(r.events[0].partner, 1u);
  EXPECT_EQ(r.events[1].partner, 0u);
}

TEST(AllocationRecorder, IgnoresFreesOfTensorsFromBeforeTheRecording) {
  AllocationRecorder::instance();  // install the tracker first, so `before` carries its deleter
  torch::Tensor before = torch::ones({256});
  const Recording r = record([&] { before = torch::Tensor(); });
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(r.ignored_foreign_frees, 1u);
}

TEST(AllocationRecorder, AttributesAllocationsToTheInnermostScope) {
  const Recording r = record([] {
    ModuleScope outer("outer");
    torch::Tensor a = torch::empty({10});
    {
      ModuleScope inner("outer.inner");
      KernelScope kernel(KernelKind::kGemm, "matmul");
      torch::Tensor b = torch::empty({20});
    }
    torch::Tensor c = torch::empty({30});
  });
  ASSERT_EQ(r.scopes.size(), 4u);  // root, outer, outer.inner, matmul
  std::map<std::uint64_t, std::string> scope_of_size;
  for (const RecordedEvent& e : r.events) {
    if (e.is_alloc) scope_of_size[e.size] = r.scope_path(e.scope);
  }
  EXPECT_EQ(scope_of_size[40], "outer");
  EXPECT_EQ(scope_of_size[80], "outer.inner > matmul");
  EXPECT_EQ(scope_of_size[120], "outer");
  const auto kernel = r.enclosing_kernel(*r.find_scope("matmul"));
  ASSERT_TRUE(kernel.has_value());
  EXPECT_EQ(r.scopes[*kernel].kernel->kind, KernelKind::kGemm);
  EXPECT_FALSE(r.enclosing_kernel(*r.find_scope("outer.inner")).has_value());
}

TEST(AllocationRecorder, RefusesNestedRecordings) {
  AllocationRecorder& recorder = AllocationRecorder::instance();
  recorder.start();
  EXPECT_THROW(recorder.start(), Error);
  (void)recorder.stop();
  EXPECT_THROW((void)recorder.stop(), Error);
}

// A whole decode: every free matches an earlier alloc of the same size and address, and what is still
// allocated at the end is exactly the returned image.
TEST(AllocationRecorder, DecodeAllocationsAndFreesBalance) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  for (VaeModel model : {VaeModel::kSd15, VaeModel::kQwenImage}) {
    SCOPED_TRACE(std::string(to_string(model)));
    const auto vae = make_vae(model, {});
    vae->to(torch::kBFloat16);
    const std::vector<std::int64_t> latent = vae->latent_shape(32, 40);
    const torch::Tensor z = torch::randn(latent).to(torch::kBFloat16);
    torch::Tensor image;
    const Recording r = record([&] { image = vae->decode(z); });
    ASSERT_GT(r.events.size(), 100u);
    std::map<std::uint64_t, std::uint64_t> live;  // addr -> size
    for (std::size_t i = 0; i < r.events.size(); ++i) {
      const RecordedEvent& e = r.events[i];
      if (e.is_alloc) {
        ASSERT_EQ(live.count(e.addr), 0u) << "address allocated twice at event " << i;
        live[e.addr] = e.size;
      } else {
        ASSERT_EQ(live.count(e.addr), 1u) << "free without alloc at event " << i;
        ASSERT_EQ(live[e.addr], e.size);
        ASSERT_LT(e.partner, i);
        live.erase(e.addr);
      }
    }
    ASSERT_EQ(live.size(), 1u);
    EXPECT_EQ(live.begin()->first, reinterpret_cast<std::uintptr_t>(image.data_ptr()));
    EXPECT_EQ(live.begin()->second, static_cast<std::uint64_t>(image.nbytes()));
    // Rule 1 of the CUDA rewrite: every CPU kernel leaves exactly its output behind.
    const RewrittenTrace rewritten = rewrite_cuda_like(r, {}, {});
    for (const auto& per : rewritten.stats.by_kind) EXPECT_EQ(per.kernels_without_single_output, 0u);
    EXPECT_GT(rewritten.stats.of(KernelKind::kConvolution).kernels, 30u);
    const LiveBytes stats = live_bytes(to_cpu_trace(r, {}).trace);
    EXPECT_EQ(stats.total_allocated - stats.total_freed, static_cast<std::uint64_t>(image.nbytes()));
    EXPECT_EQ(stats.at_end, static_cast<std::uint64_t>(image.nbytes()));
  }
}

}  // namespace
}  // namespace offsim::real
