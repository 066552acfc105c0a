// What the CPU recorder captured from one libtorch forward pass: every allocation and free in order,
// each attributed to the innermost open scope (a module such as "decoder.up_blocks.3.resnets.0", or a
// kernel such as the "conv3d" call inside it). Kernel scopes carry the shapes the CUDA rewrite needs to
// model that kernel's GPU workspace. Torch-free, so the rewrite is testable without running a model.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace offsim::real {

/// Kernels whose CPU implementation allocates differently from the CUDA one (found by recording them:
/// oneDNN reorders of inputs, weights and blocked outputs in convolutions and bf16 GEMMs; index buffers in
/// CPU nearest upsampling; the chunks of the CPU stand-in for a fused attention kernel).
enum class KernelKind : std::uint8_t {
  kConvolution,
  kGemm,          // linear / matmul / bmm / baddbmm
  kInterpolate,   // nearest upsampling
  kFusedAttention,
};
const char* to_string(KernelKind kind);

struct ConvolutionCall {
  std::int64_t batch = 1;
  std::int64_t in_channels_per_group = 0;  // weight.size(1)
  std::int64_t groups = 1;
  std::vector<std::int64_t> kernel;   // weight's spatial sizes (2 for Conv2d, 3 for Conv3d)
  std::vector<std::int64_t> stride;
  std::vector<std::int64_t> padding;  // the convolution's own padding (not a materialised F.pad)
  std::vector<std::int64_t> output;   // output spatial sizes
  std::uint64_t element_size = 0;     // bytes per element of input/weight

  friend bool operator==(const ConvolutionCall&, const ConvolutionCall&) = default;
};

struct FusedAttentionCall {
  std::int64_t batch_heads = 0;      // B * heads
  std::int64_t queries = 0;          // M
  std::int64_t keys = 0;             // N
  std::int64_t value_head_dim = 0;   // Kv
  std::uint64_t element_size = 0;    // bytes per element of q/k/v and the output
  bool reduced_precision = false;    // fp16 / bf16 (the kernel accumulates in fp32)

  friend bool operator==(const FusedAttentionCall&, const FusedAttentionCall&) = default;
};

struct KernelCall {
  KernelKind kind = KernelKind::kGemm;
  std::string op;  // ATen op, e.g. "conv3d", "linear", "upsample_nearest2d"
  std::optional<ConvolutionCall> convolution;
  std::optional<FusedAttentionCall> attention;

  friend bool operator==(const KernelCall&, const KernelCall&) = default;
};

inline constexpr std::uint32_t kRootScope = 0;

struct ScopeRecord {
  std::uint32_t parent = kRootScope;
  std::string name;                 // module path or op name
  std::optional<KernelCall> kernel; // set for kernel scopes
  std::uint64_t open_event = 0;     // index of the first event recorded after the scope opened
  std::uint64_t close_event = 0;    // index of the first event recorded after the scope closed
};

struct RecordedEvent {
  bool is_alloc = true;
  std::uint64_t size = 0;  // bytes requested (for a free: the size of the freed allocation)
  std::uint64_t addr = 0;
  std::uint32_t scope = kRootScope;  // innermost scope open at the time
  std::int64_t time_us = 0;          // since recording started
  /// For an alloc: index of its free in `events`, or kNever when it outlived the recording.
  /// For a free: index of its alloc.
  std::uint64_t partner = kNever;

  static constexpr std::uint64_t kNever = ~std::uint64_t{0};
};

struct Recording {
  /// scopes[0] is the root ("" name); every other scope's parent precedes it.
  std::vector<ScopeRecord> scopes;
  std::vector<RecordedEvent> events;
  /// Frees of memory allocated before recording started (not in `events`).
  std::uint64_t ignored_foreign_frees = 0;
  /// Allocations of 0 bytes that returned a pointer (the CUDA caching allocator never records those).
  std::uint64_t ignored_zero_byte_allocations = 0;

  /// "decoder.up_blocks.3.resnets.0 > conv3d": the scope's name with its kernel parent chain.
  std::string scope_path(std::uint32_t scope) const;
  /// True when `scope` is `ancestor` or nested inside it.
  bool is_within(std::uint32_t scope, std::uint32_t ancestor) const;
  /// The outermost kernel scope containing `scope`, if any.
  std::optional<std::uint32_t> enclosing_kernel(std::uint32_t scope) const;
  /// First scope with this exact name, if any.
  std::optional<std::uint32_t> find_scope(const std::string& name) const;
};

}  // namespace offsim::real
