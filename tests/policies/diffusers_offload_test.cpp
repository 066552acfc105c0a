// diffusers model / sequential / group offloading on hand-checked scenarios. Tensors are >= 10 MiB and
// multiples of 2 MiB (one segment each, no rounding), except where a test says otherwise.
#include <gtest/gtest.h>

#include <filesystem>

#include "offsim/policies/diffusers_offload.hpp"
#include "offsim/policies/eval_result.hpp"
#include "offsim/policies/policy_registry.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "policies/scenario_fixture.hpp"

namespace offsim::policies {
namespace {

using test::T;

constexpr std::uint64_t M = MiB;
constexpr char kModel[] = "diffusers-model-offload@58eb52c0";
constexpr char kSequential[] = "diffusers-sequential-offload@58eb52c0";
constexpr char kGroup[] = "diffusers-group-offload@58eb52c0";

RunRecord run(const std::string& id, const Scenario& s) {
  auto policy = make_policy(id);
  return run_policy(*policy, s);
}

std::vector<T> tensors(const std::string& prefix, int n, std::uint64_t bytes) {
  std::vector<T> out;
  for (int i = 0; i < n; ++i) out.push_back({prefix + std::to_string(i) + ".weight", bytes});
  return out;
}

// Text encoder (256 MiB) then transformer (512 MiB), chained text_encoder -> transformer.
Scenario chain(std::uint64_t capacity, const std::string& accelerate, int steps = 1,
               nlohmann::json denoise_memory = nullptr) {
  nlohmann::json denoise = {{"name", "denoise"}, {"kind", "denoise"}, {"models", {"tf"}}, {"steps", steps}};
  if (!denoise_memory.is_null()) denoise["working_memory"] = denoise_memory;
  return test::build(
      {{"device", test::device(capacity)},
       {"models", {{{"id", "te"}, {"manifest", "te.json"}}, {{"id", "tf"}, {"manifest", "tf.json"}}}},
       {"stages", {{{"name", "encode"}, {"kind", "text_encode"}, {"models", {"te"}}}, denoise}},
       {"policy_settings", {{"diffusers", {{"model_cpu_offload_seq", {"te", "tf"}}, {"accelerate", accelerate}}}}}},
      {{"te.json", test::manifest("te", "text_encoder", tensors("l", 2, 128 * M))},
       {"tf.json", test::manifest("tf", "transformer", tensors("b", 4, 128 * M))}});
}

// accelerate before #1315 (v0.17-v0.18) moved the transformer to the device before offloading the text
// encoder: 256 + 512 MiB at once. From v0.19 the previous model leaves first.
TEST(DiffusersModelOffload, OldAccelerateLoadsTheNextModelBeforeOffloadingThePrevious) {
  const RunRecord old_order = run(kModel, chain(700 * M, "0.18"));
  EXPECT_FALSE(old_order.completed);
  ASSERT_EQ(old_order.stages.size(), 2u);
  EXPECT_TRUE(old_order.stages[1].decision.load_oom.has_value());
  for (const char* version : {"0.19", "0.34.2", "1.10"}) {
    SCOPED_TRACE(version);
    const RunRecord r = run(kModel, chain(700 * M, version));
    ASSERT_TRUE(r.completed) << r.failure;
    EXPECT_EQ(r.peak_reserved, 512 * M);  // the transformer reuses the text encoder's freed blocks
    ASSERT_EQ(r.stages[1].decision.evictions.size(), 1u);
    EXPECT_EQ(r.stages[1].decision.evictions[0].model, "te");
    EXPECT_EQ(r.stages[1].decision.evictions[0].bytes, 256 * M);
  }
  EXPECT_EQ(run(kModel, chain(GiB, "0.18")).peak_reserved, 768 * M);  // the transient peak of both
  EXPECT_THROW(run(kModel, chain(GiB, "0.16")), ConfigError);      // enable_model_cpu_offload needs 0.17
}

// From accelerate v0.34 (#2994) to v1.9 every pre_forward of a chained model calls clear_device_cache(),
// also on steps where nothing was offloaded; v1.10 (#3695) skips it when the previous model is on the CPU.
TEST(DiffusersModelOffload, CacheIsEmptiedOnEveryForwardFromAccelerate034Until110) {
  const nlohmann::json activations = test::working_memory({64 * M});
  const RunRecord clears = run(kModel, chain(2 * GiB, "0.34", 3, activations));
  const RunRecord keeps = run(kModel, chain(2 * GiB, "1.10", 3, activations));
  const RunRecord no_clear = run(kModel, chain(2 * GiB, "0.19", 3, activations));
  for (std::size_t step = 2; step < 4; ++step) {  // records: encode, denoise x 3
    EXPECT_EQ(clears.stages[step].reserved_before, clears.stages[step].allocated_before);
    EXPECT_EQ(keeps.stages[step].reserved_before - keeps.stages[step].allocated_before, 64 * M);
    EXPECT_EQ(no_clear.stages[step].reserved_before - no_clear.stages[step].allocated_before, 64 * M);
  }
}

// The VAE's pre-forward offloads the transformer; the VAE itself stays until maybe_free_model_hooks()
// moves everything back (and empties the cache) at the end of the call. A component outside the sequence
// (a ControlNet) stays from its first use to the end of the call; an excluded one stays always, with a
// round trip per call through enable_model_cpu_offload's pipe.to("cpu").
TEST(DiffusersModelOffload, LastModelAndModelsOutsideTheChainStayUntilTheCallEnds) {
  const Scenario s = test::build(
      {{"device", test::device(4 * GiB)},
       {"models",
        {{{"id", "te"}, {"manifest", "te.json"}},
         {{"id", "tf"}, {"manifest", "tf.json"}},
         {{"id", "cn"}, {"manifest", "cn.json"}},
         {{"id", "vae"}, {"manifest", "vae.json"}},
         {{"id", "safety"}, {"manifest", "safety.json"}}}},
       {"calls", 2},
       {"stages",
        {{{"name", "encode"}, {"kind", "text_encode"}, {"models", {"te"}}},
         {{"name", "denoise"}, {"kind", "denoise"}, {"models", {"tf", "cn"}}},
         {{"name", "decode"}, {"kind", "vae_decode"}, {"models", {"vae"}}}}},
       {"policy_settings",
        {{"diffusers", {{"model_cpu_offload_seq", {"te", "tf", "vae"}}, {"exclude_from_cpu_offload", {"safety"}}}}}}},
      {{"te.json", test::manifest("te", "text_encoder", tensors("l", 2, 128 * M))},
       {"tf.json", test::manifest("tf", "transformer", tensors("b", 4, 128 * M))},
       {"cn.json", test::manifest("cn", "controlnet", tensors("c", 1, 64 * M))},
       {"vae.json", test::manifest("vae", "vae", {{"decoder.conv.weight", 32 * M}})},
       {"safety.json", test::manifest("safety", "safety_checker", {{"s.weight", 16 * M}})}});
  const RunRecord r = run(kModel, s);
  ASSERT_TRUE(r.completed) << r.failure;
  const StageRecord& decode = r.stages[2];
  ASSERT_EQ(decode.decision.evictions.size(), 1u);
  EXPECT_EQ(decode.decision.evictions[0].model, "tf");
  EXPECT_EQ(decode.allocated_before, (32 + 64 + 16) * M);  // vae + controlnet + excluded safety checker
  for (const CallRecord& c : r.calls) {
    EXPECT_EQ(c.allocated_after, 16 * M);  // only the excluded component
    EXPECT_EQ(c.reserved_after, 16 * M);   // the cache was emptied
    EXPECT_TRUE(c.claimed_offloaded_but_resident.empty());
  }
  // begin + two end-of-call round trips for the excluded component, plus every model once per call.
  EXPECT_EQ(r.bytes_to_device, 3 * 16 * M + 2 * (256 + 512 + 64 + 32) * M);
}

// Sequential offload: each module's tensors are on the device only during its forward, with the direct
// tensors of its enclosing modules ("" holds pos_embed, "blk.1" holds scale) still there.
Scenario nested(const std::string& policy_family_settings_key, nlohmann::json settings, int steps = 2) {
  return test::build(
      {{"device", test::device(2 * GiB)},
       {"models", {{{"id", "tf"}, {"manifest", "tf.json"}}}},
       {"stages", {{{"name", "denoise"}, {"kind", "denoise"}, {"models", {"tf"}}, {"steps", steps}}}},
       {"policy_settings", {{policy_family_settings_key, settings}}}},
      {{"tf.json", test::manifest("tf", "transformer",
                                  {{"pos_embed", 16 * M},
                                   {"blk.0.a.weight", 64 * M},
                                   {"blk.0.b.weight", 80 * M},
                                   {"blk.1.scale", 10 * M},
                                   {"blk.1.a.weight", 96 * M}})}});
}

TEST(DiffusersSequentialOffload, HoldsOneModuleAndItsAncestorsAndMovesEveryModuleEachStep) {
  const RunRecord r = run(kSequential, nested("diffusers", nlohmann::json::object()));
  ASSERT_TRUE(r.completed) << r.failure;
  ASSERT_EQ(r.stages.size(), 2u);
  for (const StageRecord& step : r.stages) {
    EXPECT_EQ(step.allocated_before, (96 + 10 + 16) * M);  // blk.1.a + blk.1 + root
    EXPECT_EQ(step.decision.weights_loaded, 266 * M);      // every module, every step
    EXPECT_EQ(step.bytes_to_host, 0u);                     // post_forward sets tensors to meta
    EXPECT_FALSE(step.decision.estimate.has_value());
    EXPECT_EQ(step.decision.stop, StopReason::kNotApplicable);
  }
  EXPECT_EQ(r.calls.at(0).allocated_after, 0u);
}

// Block-level groups: "blocks" (a direct ModuleList) in groups, "enc.layers" (nested) and "embed" in the
// unmatched group held for the whole forward.
Scenario blocks(nlohmann::json settings, int steps = 2) {
  return test::build(
      {{"device", test::device(2 * GiB)},
       {"models", {{{"id", "tf"}, {"manifest", "tf.json"}}}},
       {"stages", {{{"name", "denoise"}, {"kind", "denoise"}, {"models", {"tf"}}, {"steps", steps}}}},
       {"policy_settings", {{"diffusers", settings}}}},
      {{"tf.json", test::manifest("tf", "transformer",
                                  {{"embed.weight", 16 * M},
                                   {"blocks.0.w", 64 * M, "blocks", 0},
                                   {"blocks.1.w", 96 * M, "blocks", 1},
                                   {"blocks.2.w", 64 * M, "blocks", 2},
                                   {"blocks.3.w", 32 * M, "blocks", 3},
                                   {"enc.layers.0.w", 8 * M, "enc.layers", 0},
                                   {"enc.layers.1.w", 8 * M, "enc.layers", 1}},
                                  {{"blocks", 4}, {"enc.layers", 2}})}});
}

TEST(DiffusersGroupOffload, BlockLevelHoldsTheUnmatchedGroupAndOneGroup) {
  const RunRecord one = run(kGroup, blocks({{"num_blocks_per_group", 1}}));
  ASSERT_TRUE(one.completed) << one.failure;
  for (const StageRecord& step : one.stages) {
    EXPECT_EQ(step.allocated_before, (32 + 96) * M);
    EXPECT_EQ(step.decision.weights_loaded, 288 * M);
    EXPECT_EQ(step.bytes_to_host, 288 * M);  // without streams offload_() is module.to(cpu)
  }
  const RunRecord two = run(kGroup, blocks({{"num_blocks_per_group", 2}}));
  for (const StageRecord& step : two.stages) EXPECT_EQ(step.allocated_before, (32 + 64 + 96) * M);
}

TEST(DiffusersGroupOffload, StreamsPrefetchTheNextGroupAfterTheFirstForward) {
  // use_stream forces num_blocks_per_group = 1; the first forward records the order without prefetching.
  const RunRecord r = run(kGroup, blocks({{"num_blocks_per_group", 2}, {"use_stream", true}}, 3));
  ASSERT_TRUE(r.completed) << r.failure;
  EXPECT_EQ(r.stages[0].allocated_before, (32 + 96) * M);
  EXPECT_EQ(r.stages[1].allocated_before, (32 + 64 + 96) * M);  // current + prefetched next
  EXPECT_EQ(r.stages[2].allocated_before, (32 + 64 + 96) * M);
  for (const StageRecord& step : r.stages) EXPECT_EQ(step.bytes_to_host, 32 * M);  // only the unmatched group
  // record_stream: an offloaded group's blocks are not reusable until compute passes them (one group more).
  const RunRecord rs =
      run(kGroup, blocks({{"num_blocks_per_group", 1}, {"use_stream", true}, {"record_stream", true}}));
  EXPECT_EQ(rs.stages[1].allocated_before, (32 + 64 + 96 + 64) * M);
}

TEST(DiffusersGroupOffload, RejectsWhatApplyGroupOffloadingRejects) {
  EXPECT_THROW(run(kGroup, blocks({{"num_blocks_per_group", 1}, {"record_stream", true}})), ConfigError);
  EXPECT_THROW(run(kGroup, blocks(nlohmann::json::object())), ConfigError);  // block_level needs the count
}

TEST(DiffusersGroupOffload, LeafLevelHoldsOneLeafOrTwoWithStreams) {
  const RunRecord plain = run(kGroup, nested("diffusers", {{"offload_type", "leaf_level"}}));
  ASSERT_TRUE(plain.completed) << plain.failure;
  EXPECT_EQ(plain.stages[0].allocated_before, (96 + 10 + 16) * M);
  EXPECT_EQ(plain.stages[0].bytes_to_host, 266 * M);
  const RunRecord streamed = run(kGroup, nested("diffusers", {{"offload_type", "leaf_level"}, {"use_stream", true}}));
  EXPECT_EQ(streamed.stages[0].allocated_before, (96 + 10 + 16) * M);
  EXPECT_EQ(streamed.stages[1].allocated_before, (16 + 64 + 80) * M);  // blk.0.a + prefetched blk.0.b + root
  EXPECT_EQ(streamed.stages[1].bytes_to_host, 0u);                      // pinned copies: pointer swaps
}

// AutoencoderKL._decode runs post_quant_conv and the decoder only: the encoder's weights never move.
TEST(DiffusersOffload, VaeDecodeMovesOnlyTheDecoder) {
  const Scenario s = test::build(
      {{"device", test::device(GiB)},
       {"models", {{{"id", "vae"}, {"manifest", "vae.json"}}}},
       {"stages", {{{"name", "decode"}, {"kind", "vae_decode"}, {"models", {"vae"}}}}},
       {"policy_settings", {{"diffusers", {{"num_blocks_per_group", 1}}}}}},
      {{"vae.json", test::manifest("vae", "vae",
                                   {{"encoder.conv.weight", 64 * M},
                                    {"quant_conv.weight", 16 * M},
                                    {"post_quant_conv.weight", 16 * M},
                                    {"decoder.conv.weight", 96 * M},
                                    {"decoder.up.weight", 32 * M}})}});
  const RunRecord seq = run(kSequential, s);
  ASSERT_TRUE(seq.completed) << seq.failure;
  EXPECT_EQ(seq.stages[0].decision.weights_loaded, (16 + 96 + 32) * M);
  EXPECT_EQ(seq.stages[0].allocated_before, 96 * M);
  const RunRecord group = run(kGroup, s);
  EXPECT_EQ(group.stages[0].allocated_before, (96 + 32) * M);  // the decoder as one block module
  const RunRecord model = run(kModel, s);
  EXPECT_EQ(model.stages[0].decision.weights_loaded, 224 * M);  // module.to(device): the whole VAE
}

// The accelerate #1315 mechanism on real FLUX.1-dev weights (scenarios/corpus): before v0.19 the
// transformer (22.17 GiB) is loaded while T5 (8.87 GiB) is still on a 31.35 GiB card.
TEST(DiffusersModelOffload, CorpusAccelerate1315HookOrderOomsOnFlux1Dev) {
  const std::filesystem::path root = OFFSIM_SOURCE_DIR;
  Scenario s = Scenario::load(root / "scenarios/corpus/accelerate-1315-hook-order-flux1-dev-5090.json", root);
  const RunRecord old_order = run(kModel, s);
  EXPECT_FALSE(old_order.completed);
  ASSERT_FALSE(old_order.stages.empty());
  EXPECT_EQ(old_order.stages.back().stage, "denoise");
  EXPECT_TRUE(old_order.stages.back().decision.load_oom.has_value());
  s.policy_settings["diffusers"]["accelerate"] = "0.19";
  const RunRecord fixed = run(kModel, s);
  EXPECT_TRUE(fixed.completed) << fixed.failure;
}

}  // namespace
}  // namespace offsim::policies
