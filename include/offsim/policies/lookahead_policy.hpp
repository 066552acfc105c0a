// A look-ahead yardstick, not a transcription: a model cache that knows the whole future sequence of stages
// (every call of the scenario) and, when it needs room, evicts the resident model whose next use is furthest
// in the future (Belady, "A study of replacement algorithms for a virtual-storage computer", IBM Systems
// Journal 5(2), 1966). Belady's rule is optimal for equal-size pages; with models of different sizes exact
// optimal caching is NP-hard, so this is the furthest-next-use HEURISTIC (ties: the larger model first, then
// the scenario's model order), not an optimum: it can evict a small model used late that frees too little
// and then a large one anyway. Its traffic is compared with traffic_lower_bound.hpp, a proven lower bound.
//
// What it computes per stage (step 1 of a denoise stage; later steps reuse the decision):
//   * E = T_cold of the stage (runner.hpp cold_peak: the working memory's peak reserved growth from an
//     emptied allocator holding the stage's models): an ORACLE estimator, exact by construction; 0 for a
//     stage without working memory (weights only);
//   * F_P = driver free after empty_cache() (cached blocks returned first, so only bytes stranded in weight
//     segments are not counted), compared with E + W_load; models are evicted whole (furthest next use first,
//     never one the stage runs) until F_P >= E + W_load (satisfied) or nothing is left (exhausted);
//   * the stage's models are then loaded whole; a load that fails (segment rounding, fragmentation) evicts
//     the next model by the same rule and retries, and if the placed tensors leave less than E of driver
//     free it evicts further;
//   * evictions re-point to the kept host copy (no device-to-host copy), the least traffic any cache pays.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "offsim/policies/policy.hpp"

namespace offsim::policies {

struct LookaheadProfile {
  std::string id;
  std::string label;
  std::string upstream;
};

std::span<const LookaheadProfile> lookahead_profiles();
std::unique_ptr<Policy> make_lookahead_policy(const LookaheadProfile& profile);

}  // namespace offsim::policies
