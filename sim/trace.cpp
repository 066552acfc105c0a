#include "offsim/sim/trace.hpp"

#include <array>

namespace offsim::sim {

namespace {
constexpr std::array<std::string_view, 4> kProvenanceNames = {"gpu-measured", "published", "cpu-recorded",
                                                              "synthetic"};
}

std::string_view to_string(ProvenanceKind kind) { return kProvenanceNames[static_cast<std::size_t>(kind)]; }

std::optional<ProvenanceKind> parse_provenance_kind(std::string_view text) {
  for (std::size_t i = 0; i < kProvenanceNames.size(); ++i) {
    if (kProvenanceNames[i] == text) return static_cast<ProvenanceKind>(i);
  }
  return std::nullopt;
}

}  // namespace offsim::sim
