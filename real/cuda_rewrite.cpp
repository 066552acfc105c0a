#include "offsim/real/cuda_rewrite.hpp"

#include <algorithm>
#include <optional>
#include <sstream>
#include <tuple>

#include "offsim/real/workspace_model.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::real {
namespace {

void append_event(AnnotatedTrace& out, const RecordedEvent& event, std::uint32_t scope, std::uint8_t flags = 0) {
  sim::TraceEvent trace_event;
  trace_event.addr = event.addr;
  trace_event.size = event.size;
  trace_event.stream = 0;
  trace_event.time_us = event.time_us;
  trace_event.flags = flags;
  if (event.is_alloc) {
    trace_event.action = sim::TraceAction::kAlloc;
    out.trace.events.push_back(trace_event);
    out.event_scopes.push_back(scope);
    return;
  }
  // A same-stream free: PyTorch records free_requested and, with no outstanding cross-stream uses,
  // free_completed right after it.
  trace_event.flags = 0;
  trace_event.action = sim::TraceAction::kFreeRequested;
  out.trace.events.push_back(trace_event);
  out.event_scopes.push_back(scope);
  trace_event.action = sim::TraceAction::kFreeCompleted;
  out.trace.events.push_back(trace_event);
  out.event_scopes.push_back(scope);
}

std::uint64_t workspace_bytes(const KernelCall& call, const RewriteOptions& options) {
  switch (call.kind) {
    case KernelKind::kConvolution:
      if (options.conv_workspace != ConvWorkspace::kColumnBuffer) return 0;
      if (!call.convolution) throw Error("CUDA rewrite: convolution scope '" + call.op + "' has no shapes");
      return column_buffer_bytes(*call.convolution);
    case KernelKind::kFusedAttention:
      if (!call.attention) throw Error("CUDA rewrite: attention scope '" + call.op + "' has no shapes");
      return efficient_attention_workspace_bytes(*call.attention);
    case KernelKind::kGemm:
    case KernelKind::kInterpolate:
      return 0;
  }
  return 0;
}

struct Insertion {
  std::uint64_t position;  // emitted before recorded event `position` (events.size() = at the end)
  std::uint32_t scope;
  bool is_free;
  RecordedEvent event;
};

void validate(const Recording& recording) {
  if (recording.scopes.empty()) throw Error("CUDA rewrite: recording has no root scope");
  const std::uint64_t n = recording.events.size();
  for (std::uint64_t i = 0; i < n; ++i) {
    const RecordedEvent& e = recording.events[i];
    if (e.scope >= recording.scopes.size()) throw Error("CUDA rewrite: event " + std::to_string(i) + " has an unknown scope");
    if (e.partner == RecordedEvent::kNever) {
      if (!e.is_alloc) throw Error("CUDA rewrite: free event " + std::to_string(i) + " has no alloc");
      continue;
    }
    if (e.partner >= n || recording.events[e.partner].partner != i ||
        recording.events[e.partner].is_alloc == e.is_alloc) {
      throw Error("CUDA rewrite: event " + std::to_string(i) + " has an inconsistent alloc/free partner");
    }
  }
}

std::string describe(const RewriteStats& stats, const RewriteOptions& options) {
  std::ostringstream out;
  out << "cuda-like rewrite v1 (offsim real/cuda_rewrite.cpp), conv workspace model '"
      << to_string(options.conv_workspace) << "'. "
      << "Rule 1: inside each outermost kernel scope, allocations freed before the scope ends are CPU-kernel "
         "buffers (oneDNN reorders/scratch, bf16 GEMM operand copies, CPU upsample index buffers, chunks of the "
         "CPU fused-attention stand-in) and were dropped with their frees; allocations outliving the scope "
         "(op outputs) were kept. ";
  out << "Rule 2: one workspace allocation per kernel was added after its output and freed at kernel end: ";
  if (options.conv_workspace == ConvWorkspace::kColumnBuffer) {
    out << "convolutions get the im2col/vol2col column buffer C_in/g*prod(k)*prod(out)*es*g bytes (MIOpen "
           "GemmFwdRest; none for 1x1 stride-1 unpadded); ";
  } else {
    out << "convolutions get none (implicit GEMM); ";
  }
  out << "fused attention gets the CUTLASS mem-efficient fp32 output accumulator B*M*H*Kv*4 bytes when "
         "fp16/bf16 and Kv > 128. Not flagged fallible (MIOpen's fallback re-requests the same GEMM "
         "workspace; cuDNN algorithm fallback not modelled). Rule 3: all other allocations kept as recorded. ";
  for (std::size_t k = 0; k < stats.by_kind.size(); ++k) {
    const auto& s = stats.by_kind[k];
    if (s.kernels == 0) continue;
    out << to_string(static_cast<KernelKind>(k)) << ": " << s.kernels << " kernels, dropped " << s.dropped_allocations << " allocations ("
        << format_bytes(s.dropped_bytes) << "), added " << s.added_allocations << " workspaces ("
        << format_bytes(s.added_bytes) << ", largest " << format_bytes(s.largest_added_bytes) << ")";
    if (s.kernels_without_single_output != 0) {
      out << ", WARNING " << s.kernels_without_single_output << " kernels left other than one allocation";
    }
    out << "; ";
  }
  out << "kept " << stats.kept_allocations << " allocations (" << format_bytes(stats.kept_bytes) << ").";
  return out.str();
}

}  // namespace

AnnotatedTrace to_cpu_trace(const Recording& recording, const sim::TraceMetadata& metadata) {
  validate(recording);
  AnnotatedTrace out;
  out.trace.metadata = metadata;
  out.trace.events.reserve(recording.events.size() * 2);
  for (const RecordedEvent& event : recording.events) append_event(out, event, event.scope);
  return out;
}

RewrittenTrace rewrite_cuda_like(const Recording& recording, const RewriteOptions& options,
                                 const sim::TraceMetadata& metadata) {
  validate(recording);
  const std::uint64_t n = recording.events.size();
  RewrittenTrace result;
  RewriteStats& stats = result.stats;

  // Rule 1: classify every event by its outermost kernel scope.
  std::vector<std::optional<std::uint32_t>> kernel_of(n);
  std::vector<char> drop(n, 0);
  for (std::uint64_t i = 0; i < n; ++i) {
    const RecordedEvent& e = recording.events[i];
    kernel_of[i] = recording.enclosing_kernel(e.scope);
    if (!e.is_alloc || !kernel_of[i]) continue;
    const ScopeRecord& kernel = recording.scopes[*kernel_of[i]];
    if (e.partner != RecordedEvent::kNever && e.partner < kernel.close_event) {
      drop[i] = 1;
      drop[e.partner] = 1;
      auto& per = stats.by_kind[static_cast<std::size_t>(kernel.kernel->kind)];
      ++per.dropped_allocations;
      per.dropped_bytes += e.size;
    }
  }

  // Rule 2: one workspace per outermost kernel scope.
  std::vector<Insertion> insertions;
  std::uint64_t next_address = kSyntheticAddressBase;
  for (std::uint32_t id = 1; id < recording.scopes.size(); ++id) {
    const ScopeRecord& scope = recording.scopes[id];
    if (!scope.kernel || recording.enclosing_kernel(id) != id) continue;
    auto& per = stats.by_kind[static_cast<std::size_t>(scope.kernel->kind)];
    ++per.kernels;
    if (scope.close_event < scope.open_event || scope.close_event > n) {
      throw Error("CUDA rewrite: kernel scope '" + recording.scope_path(id) + "' has an invalid event range");
    }
    std::uint64_t outputs = 0;
    for (std::uint64_t i = scope.open_event; i < scope.close_event; ++i) {
      if (recording.events[i].is_alloc && !drop[i] && kernel_of[i] == id) ++outputs;
    }
    if (outputs != 1) ++per.kernels_without_single_output;
    const std::uint64_t bytes = workspace_bytes(*scope.kernel, options);
    if (bytes == 0) continue;
    // After the op's first kept allocation (its output), else where the kernel started.
    std::uint64_t position = scope.open_event;
    for (std::uint64_t i = scope.open_event; i < scope.close_event; ++i) {
      if (recording.events[i].is_alloc && !drop[i] && kernel_of[i] == id) {
        position = i + 1;
        break;
      }
    }
    RecordedEvent alloc;
    alloc.is_alloc = true;
    alloc.size = bytes;
    alloc.addr = next_address;
    next_address += (bytes + 0xFFF) & ~std::uint64_t{0xFFF};
    const std::uint64_t time_at = std::min(position, n == 0 ? 0 : n - 1);
    alloc.time_us = n == 0 ? 0 : recording.events[time_at].time_us;
    RecordedEvent free = alloc;
    free.is_alloc = false;
    const std::uint64_t free_time_at = scope.close_event == 0 ? 0 : std::min(scope.close_event - 1, n == 0 ? 0 : n - 1);
    free.time_us = n == 0 ? 0 : std::max(alloc.time_us, recording.events[free_time_at].time_us);
    insertions.push_back({position, id, false, alloc});
    insertions.push_back({scope.close_event, id, true, free});
    ++per.added_allocations;
    per.added_bytes += bytes;
    per.largest_added_bytes = std::max(per.largest_added_bytes, bytes);
  }
  std::stable_sort(insertions.begin(), insertions.end(), [](const Insertion& a, const Insertion& b) {
    return std::tie(a.position, a.scope, a.is_free) < std::tie(b.position, b.scope, b.is_free);
  });

  // Merge.
  AnnotatedTrace& out = result.annotated;
  out.trace.metadata = metadata;
  out.trace.events.reserve(n * 2 + insertions.size() * 2);
  std::size_t next = 0;
  for (std::uint64_t i = 0; i <= n; ++i) {
    while (next < insertions.size() && insertions[next].position == i) {
      append_event(out, insertions[next].event, insertions[next].scope);
      ++next;
    }
    if (i == n) break;
    if (drop[i]) continue;
    const RecordedEvent& e = recording.events[i];
    if (e.is_alloc) {
      ++stats.kept_allocations;
      stats.kept_bytes += e.size;
    }
    append_event(out, e, e.scope);
  }

  result.notes = describe(stats, options);
  std::string& notes = out.trace.metadata.provenance.notes;
  notes += notes.empty() ? "" : " ";
  notes += result.notes;
  return result;
}

}  // namespace offsim::real
