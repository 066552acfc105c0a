// The simulated device behind the Python module: torch.cuda's answers, typed errors for misuse, models moved
// by tensor, a scenario's start state, stages run as the runner runs them; and policies registered at run time.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "offsim/policies/eval_result.hpp"
#include "offsim/policies/out_of_memory.hpp"
#include "offsim/policies/policy_registry.hpp"
#include "offsim/policies/simulated_device.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "scenario_fixture.hpp"

namespace offsim::policies {
namespace {

using test::T;

sim::DeviceSpec spec(std::uint64_t total) { return sim::DeviceSpec{"d", sim::Platform::kCuda, total}; }

TEST(SimulatedDevice, MallocFreeAndStatsAnswerAsTorchCuda) {
  SimulatedDevice gpu(spec(8 * GiB));
  const std::uint64_t a = gpu.malloc(5 * MiB);
  EXPECT_EQ(gpu.stats().allocated_bytes[sim::kAggregate].current, static_cast<std::int64_t>(5 * MiB));
  EXPECT_EQ(gpu.stats().reserved_bytes[sim::kAggregate].current, static_cast<std::int64_t>(20 * MiB));
  gpu.free(a);
  EXPECT_EQ(gpu.mem_get_info().free, 8 * GiB - 20 * MiB);  // cached until empty_cache()
  gpu.empty_cache();
  EXPECT_EQ(gpu.mem_get_info().free, 8 * GiB);
  EXPECT_EQ(gpu.malloc(0), 0u);
  gpu.free(0);
}

TEST(SimulatedDevice, MisuseThrowsTypedErrorsNamingTheCall) {
  SimulatedDevice gpu(spec(8 * GiB));
  try {
    gpu.malloc(-3);
    FAIL();
  } catch (const InvalidSizeError& e) {
    EXPECT_STREQ(e.what(), "malloc(size=-3): a size cannot be negative");
  }
  EXPECT_THROW(gpu.malloc(std::int64_t{1} << 61), InvalidSizeError);
  const std::uint64_t a = gpu.malloc(MiB);
  gpu.free(a);
  EXPECT_THROW(gpu.free(a), DoubleFreeError);
  EXPECT_THROW(gpu.free(a + 512), AllocatorUsageError);
  // The address is reused by a later block: freeing that one is no double free.
  const std::uint64_t b = gpu.malloc(MiB);
  EXPECT_EQ(a, b);
  EXPECT_NO_THROW(gpu.free(b));
}

TEST(SimulatedDevice, OomThrowsWithPyTorchsMessageAndTheFigures) {
  SimulatedDevice gpu(spec(4 * GiB));
  gpu.malloc(3 * GiB);
  try {
    gpu.malloc(2 * GiB);
    FAIL();
  } catch (const OutOfMemory& e) {
    EXPECT_EQ(e.report().requested, 2 * GiB);
    EXPECT_EQ(e.report().device_free, 1 * GiB);
    EXPECT_EQ(std::string(e.what()).rfind("CUDA out of memory. Tried to allocate 2.00 GiB.", 0), 0u) << e.what();
  }
  EXPECT_EQ(gpu.stats().num_ooms, 1);
}

TEST(SimulatedDevice, OutsideMemoryIsTheDriversAndFailsWithCudasError) {
  SimulatedDevice gpu(spec(4 * GiB));
  gpu.allocate_outside("cuDNN", static_cast<std::int64_t>(GiB));
  EXPECT_EQ(gpu.mem_get_info().free, 3 * GiB);
  EXPECT_EQ(gpu.outside_bytes(), GiB);
  EXPECT_THROW(gpu.allocate_outside("cuDNN", 1), AllocatorUsageError);
  try {
    gpu.allocate_outside("kernels", static_cast<std::int64_t>(4 * GiB));
    FAIL();
  } catch (const OutOfMemory& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA error: out of memory (kernels: 4.00 GiB"), std::string::npos) << e.what();
  }
  gpu.free_outside("cuDNN");
  EXPECT_THROW(gpu.free_outside("cuDNN"), AllocatorUsageError);
}

TEST(SimulatedDevice, SnapshotIsTheSnapshotDocument) {
  SimulatedDevice gpu(spec(4 * GiB), "max_split_size_mb:256");
  gpu.free(gpu.malloc(30 * MiB));
  const nlohmann::json doc = nlohmann::json::parse(gpu.snapshot_json());
  ASSERT_EQ(doc.at("segments").size(), 1u);
  EXPECT_EQ(doc["segments"][0]["total_size"], 30 * MiB);
  EXPECT_EQ(doc.at("device_traces").at(0).size(), 4u);  // segment_alloc, alloc, free_requested, free_completed
  EXPECT_EQ(doc.at("allocator_settings").at("PYTORCH_CUDA_ALLOC_CONF"), "max_split_size_mb:256");
}

Scenario two_model_scenario() {
  nlohmann::json doc = {
      {"device", test::device(12 * GiB)},
      {"models", {{{"id", "big"}, {"manifest", "big.json"}}, {{"id", "small"}, {"manifest", "small.json"}}}},
      {"initially_resident", {"big"}},
      {"stages",
       {{{"name", "run"}, {"kind", "other"}, {"models", {"small"}}, {"working_memory", test::working_memory({3 * GiB})},
         {"first_run_outside_allocator", {{"label", "cuDNN"}, {"bytes", "1GiB"}}}}}}};
  return test::build(doc, {{"big.json", test::manifest("big", "transformer", {T("a", 2 * GiB), T("b", 3 * GiB)})},
                           {"small.json", test::manifest("small", "vae", {T("c", GiB), T("d", GiB), T("e", 512 * MiB)})}});
}

TEST(SimulatedDevice, AScenarioStartsWithItsResidentModelsAndRunsStagesAsTheRunnerDoes) {
  SimulatedDevice gpu(std::make_shared<const Scenario>(two_model_scenario()));
  EXPECT_EQ(gpu.model("big").device_bytes(), 5 * GiB);
  EXPECT_EQ(gpu.model("small").device_bytes(), 0u);
  ModelWeights small = gpu.model("small");
  EXPECT_EQ(small.load_up_to(static_cast<std::int64_t>(GiB + 768 * MiB)), GiB + 512 * MiB);  // skips d, takes e
  EXPECT_FALSE(small.on_device(1));
  EXPECT_EQ(small.unload_at_least(1), GiB);
  const WorkingMemoryOutcome out = gpu.run_stage("run");  // 1 GiB outside the allocator on the first run, then 3 GiB
  EXPECT_EQ(out.peak_growth, 3 * GiB);
  EXPECT_EQ(gpu.outside_bytes(), GiB);
  gpu.run_stage("run");  // the outside memory is taken once
  EXPECT_EQ(gpu.outside_bytes(), GiB);
  // d lands in the 3 GiB block the working memory left cached and splits it: that segment cannot be returned,
  // and 1.5 GiB are left on the device, so the next 3 GiB working memory fails.
  gpu.model("small").load_all();
  EXPECT_THROW(gpu.run_stage("run"), OutOfMemory);
  EXPECT_EQ(gpu.stats().allocated_bytes[sim::kAggregate].current, static_cast<std::int64_t>(7 * GiB + 512 * MiB));
  EXPECT_THROW(gpu.run_stage("nope"), ConfigError);
  EXPECT_THROW(gpu.model("nope"), AllocatorUsageError);
  EXPECT_THROW(gpu.model("small").load_tensor(7), AllocatorUsageError);
}

TEST(SimulatedDevice, AModelThatDoesNotFitKeepsWhatLoadedAndThrows) {
  SimulatedDevice gpu(spec(4 * GiB));
  const Scenario s = two_model_scenario();
  ModelWeights big = gpu.add_model("big", s.model("big").manifest);
  EXPECT_THROW(big.load_all(), OutOfMemory);
  EXPECT_EQ(big.device_bytes(), 2 * GiB);
  EXPECT_THROW(gpu.add_model("big", s.model("big").manifest), AllocatorUsageError);
}

TEST(PolicyRegistry, RegisteredPoliciesRunLikeTranscribedOnes) {
  const Scenario s = two_model_scenario();
  PolicyEntry entry{"registered@test", "a transcribed policy under another id", false,
                    [] { return make_policy("diffusers-model-offload@58eb52c0"); }};
  register_policy(entry);
  EXPECT_THROW(register_policy(entry), ConfigError);
  EXPECT_THROW(register_policy(PolicyEntry{"invokeai@a6724695", "", false, entry.make}), ConfigError);
  EXPECT_EQ(match_policies("registered@test"), std::vector<std::string>{"registered@test"});
  const EvalResult r = evaluate("registered@test", s);
  EXPECT_TRUE(r.run.completed) << r.run.failure;
  EXPECT_TRUE(unregister_policy("registered@test"));
  EXPECT_FALSE(unregister_policy("registered@test"));
  EXPECT_THROW(make_policy("registered@test"), ConfigError);
}

}  // namespace
}  // namespace offsim::policies
