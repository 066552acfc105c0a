#include <fstream>

#include "offsim/policies/scenario.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/trace_formats.hpp"

namespace offsim::policies {

std::shared_ptr<const sim::Trace> load_working_memory_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ParseError(path.string(), 0, "cannot open working-memory trace");
  // A recorded trace (snapshot pickle, .otrace) is read as such; JSON is either a snapshot or the inline
  // working-memory form ({"ops": ...}).
  const sim::TraceFormat format = sim::detect_trace_format(path);
  if (format != sim::TraceFormat::kSnapshotJson) return std::make_shared<const sim::Trace>(sim::read_trace(path));
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw ParseError(path.string(), e.byte, std::string("not a JSON working-memory file: ") + e.what());
  }
  if (doc.is_object() && doc.contains("ops")) return working_memory_from_json(doc, path.string());
  return std::make_shared<const sim::Trace>(sim::read_trace(path));
}

}  // namespace offsim::policies
