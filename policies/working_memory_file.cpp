#include <fstream>

#include "offsim/policies/scenario.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

std::shared_ptr<const sim::Trace> load_working_memory_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ParseError(path.string(), 0, "cannot open working-memory trace");
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw ParseError(path.string(), e.byte, std::string("not a JSON working-memory file: ") + e.what());
  }
  return working_memory_from_json(doc, path.string());
}

}  // namespace offsim::policies
