#include <fstream>
#include <iterator>

#include "offsim/policies/scenario.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/trace_formats.hpp"

namespace offsim::policies {

std::shared_ptr<const sim::Trace> load_working_memory_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ParseError(path.string(), 0, "cannot open working-memory trace");
  // A recorded trace (snapshot pickle, .otrace) is read as such; JSON is either a snapshot or the inline
  // working-memory form ({"ops": ...}).
  const sim::TraceFormat format = sim::detect_trace_format(path);
  if (format != sim::TraceFormat::kSnapshotJson) return std::make_shared<const sim::Trace>(sim::read_trace(path));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const JsonDocument doc = JsonDocument::parse(std::move(text), path.string());
  if (doc.root().is_object() && doc.root().contains("ops")) return working_memory_from_document(doc);
  return std::make_shared<const sim::Trace>(sim::read_trace(path));
}

}  // namespace offsim::policies
