// The CUDA-like rewrite on hand-built recordings, and the workspace formulas on the numbers they must give.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "offsim/real/cuda_rewrite.hpp"
#include "offsim/real/trace_stats.hpp"
#include "offsim/real/workspace_model.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::real {
namespace {

// Builds a Recording event by event with scopes, the way the recorder would.
class Builder {
 public:
  Builder() { r_.scopes.push_back(ScopeRecord{}); }
  std::uint32_t open(const std::string& name, std::optional<KernelCall> kernel = std::nullopt) {
    ScopeRecord s;
    s.parent = stack_.empty() ? kRootScope : stack_.back();
    s.name = name;
    s.kernel = std::move(kernel);
    s.open_event = r_.events.size();
    r_.scopes.push_back(s);
    stack_.push_back(static_cast<std::uint32_t>(r_.scopes.size() - 1));
    return stack_.back();
  }
  void close() {
    r_.scopes[stack_.back()].close_event = r_.events.size();
    stack_.pop_back();
  }
  void alloc(std::uint64_t addr, std::uint64_t size) {
    RecordedEvent e;
    e.size = size;
    e.addr = addr;
    e.scope = stack_.empty() ? kRootScope : stack_.back();
    live_[addr] = r_.events.size();
    r_.events.push_back(e);
  }
  void free(std::uint64_t addr) {
    const std::uint64_t a = live_.at(addr);
    RecordedEvent e = r_.events[a];
    e.is_alloc = false;
    e.scope = stack_.empty() ? kRootScope : stack_.back();
    e.partner = a;
    r_.events[a].partner = r_.events.size();
    r_.events.push_back(e);
    live_.erase(addr);
  }
  Recording finish() {
    r_.scopes[0].close_event = r_.events.size();
    return r_;
  }

 private:
  Recording r_;
  std::vector<std::uint32_t> stack_;
  std::map<std::uint64_t, std::uint64_t> live_;
};

KernelCall conv3x3(std::int64_t channels, std::int64_t h, std::int64_t w, std::uint64_t es) {
  KernelCall call;
  call.kind = KernelKind::kConvolution;
  call.op = "conv2d";
  call.convolution = ConvolutionCall{1, channels, 1, {3, 3}, {1, 1}, {1, 1}, {h, w}, es};
  return call;
}

std::vector<std::pair<sim::TraceAction, std::uint64_t>> actions(const sim::Trace& t) {
  std::vector<std::pair<sim::TraceAction, std::uint64_t>> out;
  for (const auto& e : t.events) out.emplace_back(e.action, e.size);
  return out;
}

TEST(ColumnBuffer, IsTheInvokeAiSeedRequest) {
  // InvokeAI PR 9305: the decode died allocating 5.01 GiB = 96*27*1248*832*2 bytes, the column buffer of the
  // last 3x3x3 Conv3d (input padded to 3 frames, output 1 x 832 x 1248) in fp16.
  const ConvolutionCall call{1, 96, 1, {3, 3, 3}, {1, 1, 1}, {0, 0, 0}, {1, 832, 1248}, 2};
  EXPECT_EQ(column_buffer_bytes(call), 5'382'733'824u);
  EXPECT_EQ(column_buffer_bytes(call), 96ull * 27 * 1248 * 832 * 2);
}

TEST(ColumnBuffer, PointwiseUnitStrideUnpaddedNeedsNone) {
  EXPECT_EQ(column_buffer_bytes({1, 512, 1, {1, 1}, {1, 1}, {0, 0}, {64, 64}, 2}), 0u);
  EXPECT_EQ(column_buffer_bytes({1, 16, 1, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {1, 8, 8}, 4}), 0u);
  // A strided or padded 1x1 is not GemmFwd1x1_0_1's case.
  EXPECT_EQ(column_buffer_bytes({1, 8, 1, {1, 1}, {2, 2}, {0, 0}, {4, 4}, 4}), 8u * 16 * 4);
  // Downsample2D: 3x3 stride 2 on the padded (H+1)x(W+1) input.
  EXPECT_EQ(column_buffer_bytes({1, 128, 1, {3, 3}, {2, 2}, {0, 0}, {256, 256}, 2}), 128u * 9 * 256 * 256 * 2);
  EXPECT_EQ(column_buffer_bytes({1, 8, 4, {3, 3}, {1, 1}, {1, 1}, {5, 7}, 4}), 8u * 9 * 35 * 4 * 4);
}

TEST(EfficientAttentionWorkspace, Fp32AccumulatorOnlyForHalfAndLargeHeads) {
  // SD/FLUX mid block at 1024^2: N = 128*128 tokens, d = 512.
  EXPECT_EQ(efficient_attention_workspace_bytes({1, 16384, 16384, 512, 2, true}), 16384u * 512 * 4);
  EXPECT_EQ(efficient_attention_workspace_bytes({1, 16384, 16384, 512, 4, false}), 0u);
  EXPECT_EQ(efficient_attention_workspace_bytes({1, 16384, 16384, 128, 2, true}), 0u);
  EXPECT_EQ(efficient_attention_workspace_bytes({1, 100, 100, 384, 2, true}), 100u * 384 * 4);
}

TEST(CudaRewrite, DropsKernelInternalBuffersKeepsOutputsAddsWorkspace) {
  Builder b;
  b.open("block");
  b.alloc(0x100, 1000);  // input, made outside any kernel
  b.open("conv2d", conv3x3(8, 4, 5, 4));
  b.alloc(0x200, 1000);  // oneDNN reorder of the input
  b.alloc(0x300, 640);   // the output
  b.alloc(0x400, 640);   // blocked output
  b.free(0x200);
  b.free(0x400);
  b.close();
  b.free(0x100);
  b.close();
  const Recording r = b.finish();

  const RewrittenTrace implicit = rewrite_cuda_like(r, {ConvWorkspace::kImplicitGemm}, {});
  using A = sim::TraceAction;
  EXPECT_EQ(actions(implicit.annotated.trace),
            (std::vector<std::pair<A, std::uint64_t>>{{A::kAlloc, 1000}, {A::kAlloc, 640},
                                                      {A::kFreeRequested, 1000}, {A::kFreeCompleted, 1000}}));
  EXPECT_EQ(implicit.stats.of(KernelKind::kConvolution).dropped_allocations, 2u);
  EXPECT_EQ(implicit.stats.of(KernelKind::kConvolution).dropped_bytes, 1640u);
  EXPECT_EQ(implicit.stats.of(KernelKind::kConvolution).added_allocations, 0u);

  const RewrittenTrace column = rewrite_cuda_like(r, {ConvWorkspace::kColumnBuffer}, {});
  const std::uint64_t ws = 8u * 9 * 20 * 4;
  EXPECT_EQ(actions(column.annotated.trace),
            (std::vector<std::pair<A, std::uint64_t>>{{A::kAlloc, 1000}, {A::kAlloc, 640}, {A::kAlloc, ws},
                                                      {A::kFreeRequested, ws}, {A::kFreeCompleted, ws},
                                                      {A::kFreeRequested, 1000}, {A::kFreeCompleted, 1000}}));
  EXPECT_GE(column.annotated.trace.events[2].addr, kSyntheticAddressBase);
  EXPECT_EQ(column.annotated.trace.events[2].flags, sim::kTraceFlagNone);
  EXPECT_EQ(column.stats.of(KernelKind::kConvolution).added_bytes, ws);
  EXPECT_EQ(live_bytes(column.annotated.trace).peak, live_bytes(implicit.annotated.trace).peak + ws);
  EXPECT_NE(column.notes.find("column buffer"), std::string::npos);
  EXPECT_NE(column.annotated.trace.metadata.provenance.notes.find("cuda-like rewrite"), std::string::npos);
  // Every event carries its scope: the workspace belongs to the kernel.
  ASSERT_EQ(column.annotated.event_scopes.size(), column.annotated.trace.events.size());
  EXPECT_EQ(r.scopes[column.annotated.event_scopes[2]].name, "conv2d");
}

TEST(CudaRewrite, WorkspaceOfAKernelWithoutOutputsStartsWithIt) {
  Builder b;
  b.open("conv2d", conv3x3(2, 2, 2, 2));
  b.close();
  b.alloc(0x10, 8);
  const RewrittenTrace out = rewrite_cuda_like(b.finish(), {ConvWorkspace::kColumnBuffer}, {});
  using A = sim::TraceAction;
  const std::uint64_t ws = 2u * 9 * 4 * 2;
  EXPECT_EQ(actions(out.annotated.trace),
            (std::vector<std::pair<A, std::uint64_t>>{{A::kAlloc, ws}, {A::kFreeRequested, ws},
                                                      {A::kFreeCompleted, ws}, {A::kAlloc, 8}}));
}

TEST(CudaRewrite, NestedKernelScopesBelongToTheOutermost) {
  Builder b;
  KernelCall attention;
  attention.kind = KernelKind::kFusedAttention;
  attention.op = "efficient_attention";
  attention.attention = FusedAttentionCall{1, 10, 10, 384, 2, true};
  b.open("efficient_attention", attention);
  b.alloc(0x1, 7680);  // output (10 x 384 bf16)
  b.open("matmul", KernelCall{KernelKind::kGemm, "matmul", std::nullopt, std::nullopt});
  b.alloc(0x2, 400);   // a chunk's scores
  b.close();
  b.free(0x2);
  b.close();
  const RewrittenTrace out = rewrite_cuda_like(b.finish(), {}, {});
  EXPECT_EQ(out.stats.of(KernelKind::kFusedAttention).kernels, 1u);
  EXPECT_EQ(out.stats.of(KernelKind::kGemm).kernels, 0u);
  EXPECT_EQ(out.stats.of(KernelKind::kFusedAttention).dropped_bytes, 400u);
  EXPECT_EQ(out.stats.of(KernelKind::kFusedAttention).added_bytes, 10u * 384 * 4);
  using A = sim::TraceAction;
  EXPECT_EQ(actions(out.annotated.trace),
            (std::vector<std::pair<A, std::uint64_t>>{{A::kAlloc, 7680}, {A::kAlloc, 15360},
                                                      {A::kFreeRequested, 15360}, {A::kFreeCompleted, 15360}}));
}

TEST(CudaRewrite, CpuTraceIsTheRecordingOneToOne) {
  Builder b;
  b.open("conv2d", conv3x3(2, 2, 2, 2));
  b.alloc(0x1, 5);
  b.free(0x1);
  b.close();
  const AnnotatedTrace cpu = to_cpu_trace(b.finish(), {});
  using A = sim::TraceAction;
  EXPECT_EQ(actions(cpu.trace), (std::vector<std::pair<A, std::uint64_t>>{
                                    {A::kAlloc, 5}, {A::kFreeRequested, 5}, {A::kFreeCompleted, 5}}));
}

TEST(CudaRewrite, RejectsInconsistentRecordings) {
  Recording r;
  r.scopes.push_back(ScopeRecord{});
  RecordedEvent free;
  free.is_alloc = false;
  free.size = 4;
  r.events.push_back(free);
  EXPECT_THROW(rewrite_cuda_like(r, {}, {}), Error);
}

}  // namespace
}  // namespace offsim::real
