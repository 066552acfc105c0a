// The property suite's generators must shrink to small, readable counterexamples (check/case_generators.cpp).
// RapidCheck shrinks greedily, taking the first shrink that still fails, so these tests descend the same
// way and assert local minimality and the readable shrink targets, never global minimality.
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>

#include "offsim/check/case_generators.hpp"
#include "offsim/check/case_simplifier.hpp"
#include "offsim/check/property_check.hpp"
#include "offsim/policies/published_measurements.hpp"
#include "offsim/sim/bytes.hpp"

namespace offsim::check {
namespace {

// RapidCheck's descent: the first shrink that still fails, until none does.
template <typename T, typename StillFails>
T shrink_greedily(rc::Shrinkable<T> s, StillFails still_fails) {
  for (;;) {
    bool moved = false;
    auto shrinks = s.shrinks();
    while (auto next = shrinks.next()) {
      if (still_fails(next->value())) {
        s = std::move(*next);
        moved = true;
        break;
      }
    }
    if (!moved) return s.value();
  }
}

bool is_boundary(std::uint64_t bytes) {
  for (std::uint64_t b : {std::uint64_t{512}, 1 * MiB, 1 * MiB + 512, 2 * MiB, 10 * MiB, 10 * MiB + 512, 20 * MiB,
                          64 * MiB, 256 * MiB, 1 * GiB}) {
    if (bytes == b) return true;
  }
  return bytes % (2 * MiB) == 0;
}

TEST(BoundaryShrinks, OffersOnlySmallerAllocatorBoundariesAndTwoMiBMultiples) {
  const std::vector<std::uint64_t> c = boundary_shrinks(3 * MiB + 5);
  EXPECT_EQ(c, (std::vector<std::uint64_t>{512, 1 * MiB, 1 * MiB + 512, 2 * MiB}));
  for (std::uint64_t bytes : {std::uint64_t{513}, 5 * MiB + 1, 1536 * MiB, 7 * GiB + 3}) {
    for (std::uint64_t candidate : boundary_shrinks(bytes)) {
      EXPECT_LT(candidate, bytes);
      EXPECT_TRUE(is_boundary(candidate)) << candidate;
    }
  }
  EXPECT_TRUE(boundary_shrinks(512).empty());  // the smallest block: nothing below it
}

TEST(GenBytes, ShrinksToALocallyMinimalAllocatorBoundary) {
  // "Fails" while the size stays at or above 5 MiB: the shrunk size must be a boundary or a 2 MiB multiple
  // from which no offered shrink still fails.
  const auto still_fails = [](std::uint64_t v) { return v >= 5 * MiB; };
  int shrunk = 0;
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    const rc::Shrinkable<std::uint64_t> s = gen_bytes(512, 2 * GiB)(rc::Random(seed), 100);
    if (!still_fails(s.value())) continue;
    const std::uint64_t v = shrink_greedily(s, still_fails);
    ++shrunk;
    EXPECT_TRUE(is_boundary(v)) << "seed " << seed << ": " << v;
    for (std::uint64_t candidate : boundary_shrinks(v)) EXPECT_FALSE(still_fails(candidate)) << v << " -> " << candidate;
    EXPECT_LE(v, 10 * MiB) << "seed " << seed;  // 10 MiB (or the 2 MiB multiple just above 5 MiB) is reachable
  }
  EXPECT_GT(shrunk, 50);
}

class GeneratedCaseShrinking : public ::testing::Test {
 protected:
  void SetUp() override {
    inputs_ = load_generator_inputs(OFFSIM_SOURCE_DIR);
  }
  GeneratorInputs inputs_;
};

TEST_F(GeneratedCaseShrinking, DimensionsThatDoNotMatterShrinkToTheirSimplestValue) {
  // The failure depends on the capacity only: every other dimension must end at its shrink target.
  const auto still_fails = [](const GeneratedCase& c) { return c.capacity < 30 * GiB; };
  int shrunk = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    const rc::Shrinkable<GeneratedCase> s = gen_case(inputs_)(rc::Random(seed), 100);
    if (!still_fails(s.value())) continue;
    const GeneratedCase c = shrink_greedily(s, still_fails);
    ++shrunk;
    EXPECT_EQ(c.calls, 1);
    EXPECT_TRUE(c.prior.empty());
    EXPECT_FALSE(c.prior_stage && c.prior_stage->events > 0) << c;
    EXPECT_EQ(c.context, 0u);
    EXPECT_EQ(c.other_processes, 0u);
    EXPECT_EQ(c.alloc_conf, "");
    EXPECT_EQ(c.decode.height * c.decode.width, 512 * 512) << c;
    EXPECT_LT(c.capacity, 30 * GiB);
  }
  EXPECT_GT(shrunk, 5);
}

TEST_F(GeneratedCaseShrinking, TheSeedBugShrinksToALocallyMinimalReadableCase) {
  // InvokeAI before PR #9305 on its own property, shrunk as offsim check does it (RapidCheck's descent,
  // then simplify()): the case still fails, and no one-step simplification of it does.
  inputs_.scope.pipelines = {"qwen-image-edit-2511-q8", "qwen-image-bf16"};
  OutcomeCache cache(inputs_.root);
  const auto still_fails = [&](const GeneratedCase& c) {
    const CaseOutcome& o = cache.get("invokeai@fda7c42b", c, false);
    return o.feasible && o.report.results[2].verdict == policies::Verdict::kFail;
  };
  int shrunk = 0;
  for (std::uint64_t seed = 1; seed <= 60 && shrunk < 3; ++seed) {
    rc::Shrinkable<GeneratedCase> s = gen_case(inputs_)(rc::Random(seed), 100);
    if (!still_fails(s.value())) continue;
    const GeneratedCase c = simplify(shrink_greedily(s, still_fails), inputs_, still_fails);
    ++shrunk;
    EXPECT_TRUE(still_fails(c));
    for (const GeneratedCase& simpler : simplifications(c, inputs_)) EXPECT_FALSE(still_fails(simpler)) << simpler;
    // The bug needs no history, no second call and no allocator setting: all of them must be gone.
    EXPECT_EQ(c.calls, 1) << c;
    EXPECT_TRUE(c.prior.empty()) << c;
    EXPECT_FALSE(c.prior_stage) << c;
    EXPECT_EQ(c.alloc_conf, "") << c;
  }
  EXPECT_EQ(shrunk, 3) << "the generator drew too few failing cases of a bug every large decode shows";
}

TEST_F(GeneratedCaseShrinking, SimplificationsOnlyMoveCapacitiesToRounderValues) {
  GeneratedCase c = gen_case(inputs_)(rc::Random(7), 100).value();
  c.capacity = 23 * GiB + 123456789;  // neither a card's figure nor round
  bool whole = false, known = false;
  for (const GeneratedCase& s : simplifications(c, inputs_)) {
    whole = whole || s.capacity % GiB == 0;
    for (const KnownCapacity& k : known_capacities()) known = known || s.capacity == k.bytes;
  }
  EXPECT_TRUE(whole);
  EXPECT_TRUE(known);
  c.capacity = known_capacities()[0].bytes;  // already the roundest class: no capacity move offered
  for (const GeneratedCase& s : simplifications(c, inputs_)) EXPECT_EQ(s.capacity, c.capacity);
}

TEST_F(GeneratedCaseShrinking, PriorHistoriesComeFromRecordedStagesToo) {
  // Some prior histories are prefixes of real recorded stages (traces/cpu), and they become scenario ops
  // that replay that prefix: as many allocs as the prefix has, each freed at most once.
  ASSERT_FALSE(inputs_.recorded_stages.empty()) << "traces/cpu/index.tsv lists no traces";
  int recorded = 0;
  for (std::uint64_t seed = 1; seed <= 60; ++seed) {
    const GeneratedCase c = gen_case(inputs_)(rc::Random(seed), 100).value();
    if (!c.prior_stage || c.prior_stage->events == 0) continue;
    ++recorded;
    std::size_t allocs = 0;
    for (std::size_t e = 0; e < c.prior_stage->events; ++e) {
      allocs += c.prior_stage->trace->events[e].action == sim::TraceAction::kAlloc ? 1 : 0;
    }
    const policies::Scenario s = to_scenario(c, inputs_.root);
    ASSERT_TRUE(s.prior_history.has_value()) << c;
    std::size_t scenario_allocs = 0;
    for (const sim::TraceEvent& e : s.prior_history->trace->events) {
      scenario_allocs += e.action == sim::TraceAction::kAlloc ? 1 : 0;
    }
    EXPECT_EQ(scenario_allocs, allocs + c.prior.size()) << c;
  }
  EXPECT_GT(recorded, 5);
}

TEST_F(GeneratedCaseShrinking, SimplificationsStayInsideTheSearchScope) {
  // A search scoped to expandable segments must not shrink its counterexample to the default allocator.
  inputs_.scope.alloc_confs = {"expandable_segments:True"};
  GeneratedCase c = gen_case(inputs_)(rc::Random(3), 100).value();
  ASSERT_EQ(c.alloc_conf, "expandable_segments:True");
  for (const GeneratedCase& s : simplifications(c, inputs_)) EXPECT_EQ(s.alloc_conf, "expandable_segments:True");
}

TEST_F(GeneratedCaseShrinking, OptInPipelinesAreDrawnOnlyWhenAScopeNamesThem) {
  // The SD pipelines (corpus entry B5) must not change the draws of a search that does not name them.
  const auto& templates = pipeline_templates();
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    const GeneratedCase c = gen_case(inputs_)(rc::Random(seed), 100).value();
    EXPECT_FALSE(templates[c.pipeline].opt_in) << c;
  }
  inputs_.scope.pipelines = {"sdxl"};
  bool fp16 = false, fp32 = false;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    const GeneratedCase c = gen_case(inputs_)(rc::Random(seed), 100).value();
    ASSERT_EQ(templates[c.pipeline].name, "sdxl");
    const policies::Scenario s = to_scenario(c, inputs_.root);
    // SDXL's two text encoders run in one stage; the decode is one of PR #7674's points, in its dtype.
    ASSERT_EQ(s.stages.front().models, (std::vector<std::string>{"text_encoder", "text_encoder_2"}));
    ASSERT_EQ(s.models.size(), 4u);
    const auto& w = std::get<policies::VaeWorkload>(*s.stages.back().workload);
    EXPECT_EQ(w.family, policies::VaeFamily::sdxl);
    EXPECT_EQ(w.pixel_height * w.pixel_width, 1024 * 1024);
    (w.dtype == policies::DType::fp32 ? fp32 : fp16) = true;
    EXPECT_TRUE(w.dtype == policies::DType::fp32 || w.dtype == policies::DType::fp16) << c;
  }
  EXPECT_TRUE(fp16 && fp32);
}

// A class that a property requires must come up in a default-sized search for any seed, or a user who
// changes the seed gets "not exercised" instead of a verdict (near-boundary once hit 31 of 100 seeds).
TEST_F(GeneratedCaseShrinking, EveryRequiredClassComesUpForEverySeed) {
  OutcomeCache cache(OFFSIM_SOURCE_DIR);
  for (const char* policy : {"invokeai@a6724695", "diffusers-group-offload@58eb52c0"}) {
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
      PropertyCheckOptions options;
      options.seed = seed;
      options.cases = 60;
      options.shrink = false;
      const PropertyCheckResult r = check_property(policy, PropertyId::kP3, options, cache, inputs_);
      EXPECT_TRUE(r.missing_classes.empty()) << policy << " seed " << seed << ": no case of class "
                                             << (r.missing_classes.empty() ? "" : r.missing_classes.front());
    }
  }
}

}  // namespace
}  // namespace offsim::check
