// Turning a CPU recording into offsim traces.
//
// `to_cpu_trace` is the recording as it happened (provenance cpu-recorded, no rewrite).
// `rewrite_cuda_like` rewrites it per kernel into what the same forward pass allocates through the CUDA
// caching allocator, and says in the returned notes exactly what it did:
//   1. Inside every outermost kernel scope (convolution, GEMM, nearest interpolate, fused attention) an
//      allocation that is also freed before the scope closes is a buffer of the CPU kernel (oneDNN
//      reorders of input, weight and blocked output; bf16 GEMM operand copies and scratchpads; CPU upsample
//      index buffers; the chunks of the CPU stand-in for a fused attention kernel): dropped with its free.
//      Allocations that outlive the scope are the op's outputs: kept.
//   2. The chosen GPU kernel's workspace is added as one allocation right after the op's output (the order
//      PyTorch's miopen/cudnn convolution and the mem-efficient attention allocate in), freed when the op
//      ends: the column buffer under ConvWorkspace::kColumnBuffer, the mem-efficient attention's fp32
//      output accumulator for fused attention (workspace_model.hpp).
//   3. Everything outside kernel scopes is kept as recorded: those are ATen ops whose CPU and CUDA
//      implementations allocate the same tensors (elementwise ops, casts, pads, cat, clone, norms).
// Workspace allocations are not flagged fallible: PyTorch's MIOpen `chooseSolution` catches a workspace OOM
// and retries with the default (GEMM) solution, which asks for the same column buffer again, so the
// failure reaches the caller (as in InvokeAI PR 9305); the mem-efficient accumulator is a plain at::empty.
// cuDNN's own algorithm fallback (fallible workspaces) is not modelled: its workspace sizes are not
// computable without cuDNN, and the implicit model already asks for none.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "offsim/real/recording.hpp"
#include "offsim/real/switches.hpp"
#include "offsim/sim/trace.hpp"

namespace offsim::real {

/// A trace plus, for each of its events, the recording scope it belongs to (for reports and the JSON
/// sidecar; offsim's trace format has no place for names).
struct AnnotatedTrace {
  sim::Trace trace;
  std::vector<std::uint32_t> event_scopes;  // same length as trace.events
};

struct RewriteOptions {
  ConvWorkspace conv_workspace = ConvWorkspace::kImplicitGemm;
};

struct RewriteStats {
  struct PerKind {
    std::uint64_t kernels = 0;              // outermost kernel scopes of this kind
    std::uint64_t dropped_allocations = 0;  // CPU-kernel-internal allocations removed
    std::uint64_t dropped_bytes = 0;
    std::uint64_t added_allocations = 0;    // modelled GPU workspaces inserted
    std::uint64_t added_bytes = 0;
    std::uint64_t largest_added_bytes = 0;
    /// Kernels that did not leave exactly one allocation behind (their output). Rule 1 takes whatever
    /// outlives a kernel scope for the op's output; a CPU kernel that cached a buffer beyond the call would
    /// show up here. 0 on every VAE recorded so far (tests/real check it).
    std::uint64_t kernels_without_single_output = 0;
  };
  std::array<PerKind, 4> by_kind{};  // indexed by KernelKind
  std::uint64_t kept_allocations = 0;
  std::uint64_t kept_bytes = 0;

  const PerKind& of(KernelKind kind) const { return by_kind[static_cast<std::size_t>(kind)]; }
};

struct RewrittenTrace {
  AnnotatedTrace annotated;
  RewriteStats stats;
  /// Human-readable statement of the rewrite applied (also appended to the trace's provenance notes).
  std::string notes;
};

/// The recording one-to-one: each alloc becomes kAlloc, each free kFreeRequested + kFreeCompleted on
/// stream 0. `metadata` is copied in unchanged.
AnnotatedTrace to_cpu_trace(const Recording& recording, const sim::TraceMetadata& metadata);

/// The per-kernel CUDA-like rewrite described above. Synthetic workspace addresses start at 2^60, above
/// any CPU address, so they never collide with recorded ones.
RewrittenTrace rewrite_cuda_like(const Recording& recording, const RewriteOptions& options,
                                 const sim::TraceMetadata& metadata);

inline constexpr std::uint64_t kSyntheticAddressBase = std::uint64_t{1} << 60;

}  // namespace offsim::real
