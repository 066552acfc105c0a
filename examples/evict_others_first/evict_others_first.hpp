// A cache policy written outside offsim, to evaluate and gate it like offsim's own (README, "Evaluate your
// own policy"). Before each stage it empties PyTorch's cache and evicts the models the stage does not use,
// least recently used first, only until the driver's free memory covers what the stage still has to load
// plus a fixed working-memory reserve; then it loads the stage's models whole.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "offsim/policies/policy.hpp"

namespace example {

class EvictOthersFirst final : public offsim::policies::Policy {
 public:
  /// `reserve`: the working memory it keeps free for every stage (E), whatever the stage computes.
  explicit EvictOthersFirst(std::uint64_t reserve = std::uint64_t{3} << 30);

  const offsim::policies::PolicyInfo& info() const override { return info_; }
  /// Models a scenario starts with on the device count as used before any stage.
  void begin_run(offsim::policies::RunContext& context) override;
  offsim::policies::StageDecision prepare(offsim::policies::RunContext& context,
                                          const offsim::policies::StageStep& step) override;
  void finish(offsim::policies::RunContext& context, const offsim::policies::StageStep& step) override;
  /// P4: every model holding no device bytes is offloaded; the rest stay on purpose (a lazy cache).
  offsim::policies::ResidencyClaim residency(const offsim::policies::RunContext& context) const override;

 private:
  offsim::policies::PolicyInfo info_;
  std::uint64_t reserve_;
  std::vector<std::string> recently_used_;  // least recently used first
};

}  // namespace example
