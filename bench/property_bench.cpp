// Property-suite throughput (issue 7's performance targets):
//   BM_PropertyCase:   generated cases per second per policy and property, each case a fresh generation,
//                      a full simulated run (allocator replay, since fragmentation decides P3) and the
//                      property check; P4 adds its minimum-capacity search (a bisection of whole runs).
//                      P1, P2, P3 and P5 are judged on the same run, so they cost the same.
//   BM_CacheSequences: stateful command sequences (rc::state, check/cache_state_machine.hpp) per second;
//                      the target is >= 10,000 per minute per core, i.e. items_per_second >= 167.
// items_per_second counts cases or sequences per CPU second of this process.
#include <benchmark/benchmark.h>
#include <rapidcheck.h>
#include <rapidcheck/detail/TestListenerAdapter.h>

#include <string>

#include "offsim/check/cache_state_machine.hpp"
#include "offsim/check/case_generators.hpp"
#include "offsim/check/property_check.hpp"
#include "offsim/sim/bytes.hpp"

namespace {

using namespace offsim;
using namespace offsim::check;

const GeneratorInputs& inputs() {
  static const GeneratorInputs loaded = load_generator_inputs(OFFSIM_SOURCE_DIR);
  return loaded;
}

void BM_PropertyCase(benchmark::State& state, const std::string& policy, PropertyId property) {
  std::uint64_t seed = 1;
  for (auto _ : state) {
    OutcomeCache cache(inputs().root);  // fresh: nothing memoised across cases
    const GeneratedCase c = gen_case(inputs())(rc::Random(seed++), 100).value();
    const CaseOutcome& o = cache.get(policy, c, property == PropertyId::kP4);
    benchmark::DoNotOptimize(o.report.results[static_cast<std::size_t>(property)].verdict);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_CacheSequences(benchmark::State& state, const std::string& policy, bool locks_hold,
                       std::uint64_t working_memory) {
  constexpr int kSequences = 100;  // per RapidCheck run, as the tests run them
  rc::detail::TestParams params;
  params.maxSuccess = kSequences;
  params.maxSize = 100;
  rc::detail::TestMetadata metadata;
  metadata.id = "bench " + policy;
  rc::detail::TestListenerAdapter listener;
  std::uint64_t seed = 1;
  for (auto _ : state) {
    params.seed = seed++;
    const auto result = rc::detail::checkProperty(
        rc::detail::toProperty([&] { check_cache_sequence(policy, locks_hold, working_memory); }), metadata, params,
        listener);
    if (!result.template is<rc::detail::SuccessResult>()) state.SkipWithError("a cache sequence failed its invariants");
  }
  state.SetItemsProcessed(state.iterations() * kSequences);
}

}  // namespace

BENCHMARK_CAPTURE(BM_PropertyCase, invokeai_P1, std::string("invokeai@8e71a8a5"), PropertyId::kP1)
    ->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_PropertyCase, invokeai_P2, std::string("invokeai@8e71a8a5"), PropertyId::kP2)
    ->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_PropertyCase, invokeai_P3, std::string("invokeai@8e71a8a5"), PropertyId::kP3)
    ->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_PropertyCase, invokeai_P4, std::string("invokeai@8e71a8a5"), PropertyId::kP4)
    ->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_PropertyCase, invokeai_P5, std::string("invokeai@8e71a8a5"), PropertyId::kP5)
    ->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_PropertyCase, lightx2v_P3, std::string("lightx2v@c177fd82"), PropertyId::kP3)
    ->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_PropertyCase, lightx2v_P4, std::string("lightx2v@c177fd82"), PropertyId::kP4)
    ->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_PropertyCase, comfyui_P3, std::string("comfyui@a125cd84"), PropertyId::kP3)
    ->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_CacheSequences, invokeai, std::string("invokeai@8e71a8a5"), true, 3 * offsim::GiB)
    ->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_CacheSequences, comfyui, std::string("comfyui@a125cd84"), false,
                  1219 * offsim::MiB + 205 * offsim::MiB)
    ->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
