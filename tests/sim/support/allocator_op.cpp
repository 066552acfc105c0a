#include "sim/support/allocator_op.hpp"

#include <sstream>

namespace offsim::sim::test {

namespace {
std::string hex(std::uint64_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}
}  // namespace

std::string to_string(const AllocatorOp& op) {
  std::ostringstream os;
  switch (op.kind) {
    case AllocatorOp::Kind::kMalloc: os << "malloc(" << op.size << ", s" << op.stream << ")"; break;
    case AllocatorOp::Kind::kFree: os << "free(live[" << op.target << "])"; break;
    case AllocatorOp::Kind::kRecordStream: os << "record_stream(live[" << op.target << "], s" << op.stream << ")"; break;
    case AllocatorOp::Kind::kMarkStreamComplete: os << "mark_stream_complete(s" << op.stream << ")"; break;
    case AllocatorOp::Kind::kEmptyCache: os << "empty_cache()"; break;
    case AllocatorOp::Kind::kSetMemoryFraction: os << "set_memory_fraction(" << op.fraction << ")"; break;
    case AllocatorOp::Kind::kCompletePendingFree: os << "complete_pending_free(pending[" << op.target << "])"; break;
    case AllocatorOp::Kind::kUpdateSettings: os << "update_settings(\"" << op.settings << "\")"; break;
  }
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const AllocatorOp& op) { return os << to_string(op); }

std::string OpOutcome::describe(const AllocatorOp& op) const {
  std::string text = to_string(op);
  if (skipped) return text + " -> skipped (nothing to act on)";
  if (op.kind == AllocatorOp::Kind::kMalloc) return text + (ptr ? " -> " + hex(*ptr) : " -> OOM");
  if (ptr) return text + " on " + hex(*ptr);
  return text;
}

}  // namespace offsim::sim::test
