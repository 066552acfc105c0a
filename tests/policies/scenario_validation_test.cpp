// A scenario is data from users: what is wrong is refused with FILE:LINE:COLUMN and the field, never run as
// something else. Integers that do not fit are refused (no wrap of 4294967808 into 512), unknown keys name
// the nearest known one, nulls, negatives and subnormal numbers are refused, run sizes that cannot be held
// are refused up front, and an inline working memory parses in linear time.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "offsim/policies/scenario.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

namespace fs = std::filesystem;

// A valid scenario, one field per line, so that each test knows the line of the field it breaks.
// Line 1 is "{"; the stage's "height" is on line 17, "steps" on line 13.
constexpr const char* kBase = R"({
  "format": "offsim-scenario/1",
  "name": "validation",
  "device": {
    "name": "test device",
    "platform": "cuda",
    "total": "24GiB"
  },
  "models": [{"id": "vae", "manifest": "vae.json"}],
  "initially_resident": ["vae"],
  "calls": 2,
  "stages": [
    {"name": "decode", "kind": "vae_decode", "models": ["vae"], "steps": 1,
     "workload": {
       "vae": {
         "family": "qwen_image", "op": "decode",
         "height": 512,
         "width": 512, "dtype": "bf16", "backend": "cuda"}},
     "working_memory": {"provenance": {"kind": "synthetic"}, "ops": [["alloc", 1048576], ["free", 0]]}}
  ],
  "policy_settings": {
    "invokeai": {"device_working_mem_gb": 3},
    "diffusers": {"num_blocks_per_group": 1},
    "lightx2v": {"offload_granularity": "model"}
  }
}
)";

class ScenarioValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("offsim-scenario-validation-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "vae.json") << R"({"format": "offsim-model-manifest/1", "name": "vae", "pipeline": "test",
      "component": "vae", "dtype": "bf16", "tensors": [{"name": "w", "bytes": 1048576}], "total_bytes": 1048576})";
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& text) const {
    const fs::path file = dir_ / "scenario.json";
    std::ofstream(file) << text;
    return file;
  }
  Scenario load(const std::string& text) const { return Scenario::load(write(text), dir_); }

  // The base scenario with `from` replaced by `to` (which must occur once).
  static std::string edited(const std::string& from, const std::string& to, std::string text = kBase) {
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    EXPECT_EQ(text.find(from, at + 1), std::string::npos) << from << " occurs twice";
    return text.replace(at, from.size(), to);
  }

  // Loading `text` fails with a ParseError at `line`, whose message holds `what`.
  void expect_refused(const std::string& text, std::size_t line, const std::string& what) const {
    try {
      (void)load(text);
      ADD_FAILURE() << "accepted; expected: " << what;
    } catch (const ParseError& e) {
      const std::string message = e.what();
      EXPECT_EQ(e.offset(), line) << message;
      EXPECT_GT(e.column(), 0u) << message;
      EXPECT_EQ(message.rfind((dir_ / "scenario.json").string() + ":" + std::to_string(line) + ":" +
                                  std::to_string(e.column()) + ": ",
                              0),
                0u)
          << message;
      EXPECT_NE(message.find(what), std::string::npos) << message;
    }
  }

  fs::path dir_;
};

TEST_F(ScenarioValidation, TheBaseScenarioLoads) {
  const Scenario s = load(kBase);
  EXPECT_EQ(s.calls, 2);
  ASSERT_EQ(s.stages.size(), 1u);
  EXPECT_EQ(std::get<VaeWorkload>(*s.stages[0].workload).pixel_height, 512);
}

TEST_F(ScenarioValidation, ErrorsNameLineColumnAndField) {
  expect_refused(edited(R"("height": 512)", R"("height": 0)"), 17,
                 "scenario.stages[0].workload.vae.height: must be an integer from 1 to 65536, got 0");
  // The column is where the field's key starts.
  try {
    (void)load(edited(R"("height": 512)", R"("height": 0)"));
  } catch (const ParseError& e) {
    EXPECT_EQ(e.column(), 10u) << e.what();
  }
}

TEST_F(ScenarioValidation, IntegersThatDoNotFitAreRefusedNotWrapped) {
  // 4294967808 = 2^32 + 512 ran as height 512 through static_cast<int>.
  expect_refused(edited(R"("height": 512)", R"("height": 4294967808)"), 17,
                 "height: must be an integer from 1 to 65536, got 4294967808");
  expect_refused(edited(R"("steps": 1)", R"("steps": 4294967297)"), 13,
                 "scenario.stages[0].steps: must be an integer from 1 to 10000, got 4294967297");
  expect_refused(edited(R"("calls": 2)", R"("calls": 4294967297)"), 11,
                 "scenario.calls: must be an integer from 1 to 10000, got 4294967297");
  expect_refused(edited(R"("width": 512, )", R"("width": 512, "batch": 4294967297, )"), 18,
                 "scenario.stages[0].workload.vae.batch: must be an integer from 1 to 65536, got 4294967297");
  expect_refused(edited(R"("height": 512)", R"("height": 18446744073709551615)"), 17, "got 18446744073709551615");
  expect_refused(edited(R"("steps": 1)", R"("steps": 1.5)"), 13, "must be an integer from 1 to 10000, got a number (1.5)");
}

TEST_F(ScenarioValidation, UnknownKeysNameTheNearestKnownOne) {
  expect_refused(edited(R"("initially_resident")", R"("initialy_resident")"), 10,
                 "scenario.initialy_resident: unknown key (did you mean \"initially_resident\"?)");
  expect_refused(edited(R"("invokeai": {)", R"("invokeia": {)"), 22,
                 "scenario.policy_settings.invokeia: unknown policy family (did you mean \"invokeai\"?)");
  expect_refused(edited(R"("device_working_mem_gb")", R"("device_working_mem_gbb")"), 22,
                 "scenario.policy_settings.invokeai.device_working_mem_gbb: unknown key (did you mean "
                 "\"device_working_mem_gb\"?)");
  // A key nothing resembles lists the known ones.
  expect_refused(edited(R"("platform": "cuda",)", R"("platform": "cuda", "colour": "red",)"), 6,
                 "scenario.device.colour: unknown key (known: name, platform, total");
  expect_refused(edited(R"(["alloc", 1048576])", R"(["alloc", 1048576, {"falible": true}])"), 19,
                 "scenario.stages[0].working_memory.ops[0][2].falible: unknown key (did you mean \"fallible\"?)");
  expect_refused(edited(R"("offload_granularity": "model")", R"("offload_granularity": "modle")"), 24,
                 "unknown value \"modle\" (did you mean \"model\"?)");
}

TEST_F(ScenarioValidation, NullsNegativesSubnormalsAndAbsurdSizesAreRefused) {
  expect_refused(edited(R"("platform": "cuda")", R"("platform": null)"), 6,
                 "scenario.device.platform: must not be null (leave the key out to use the default)");
  expect_refused(edited(R"("device_working_mem_gb": 3)", R"("device_working_mem_gb": -3)"), 22,
                 "scenario.policy_settings.invokeai.device_working_mem_gb: must be a number from 0 to 1048576, got -3");
  expect_refused(edited(R"("offload_granularity": "model")", R"("offload_granularity": 1e-320)"), 24,
                 "offload_granularity: must be a string, got a number");
  expect_refused(edited(R"("device_working_mem_gb": 3)", R"("device_working_mem_gb": 1e-320)"), 22,
                 "1e-320 is below the smallest normal double");
  expect_refused(edited(R"("num_blocks_per_group": 1)", R"("num_blocks_per_group": 4611686018427387904)"), 23,
                 "num_blocks_per_group: must be an integer from 1 to 1048576, got 4611686018427387904");
  expect_refused(edited(R"("total": "24GiB")", R"("total": "99999999999999999999999")"), 7,
                 "scenario.device.total: byte count: cannot read \"99999999999999999999999\" as a byte size (too large");
  expect_refused(edited(R"("total": "24GiB")", R"("total": 2305843009213693952)"), 7,
                 "scenario.device.total: 2305843009213693952 is above 1 EiB");
  expect_refused(edited(R"(["alloc", 1048576])", R"(["alloc", 4611686018427387904])"), 19,
                 "ops[0][1]: alloc of 4611686018427387904 bytes is 1 EiB or more");
  // Exactly 1 EiB is refused by PyTorch too: read as valid, it stopped the run with the allocator's "Tried
  // to allocate more than 1EB memory", naming neither the file nor the op.
  expect_refused(edited(R"(["alloc", 1048576])", R"(["alloc", 1152921504606846976])"), 19,
                 "ops[0][1]: alloc of 1152921504606846976 bytes is 1 EiB or more, which PyTorch refuses");
  (void)load(edited(R"(["alloc", 1048576])", R"(["alloc", 1152921504606846975])"));  // one byte less: a request
  expect_refused(edited(R"("height": 512,
         "width": 512)",
                        R"("height": 65536,
         "width": 65536, "batch": 8)"),
                 15, "height x width x frames x batch = 34359738368 is above 2^34");
}

TEST_F(ScenarioValidation, AManifestTensorOfOneExbibyteIsRefusedWhenRead) {
  // A tensor is one allocator request: 1 EiB passed the reader (only sums above 1 EiB were refused) and
  // stopped the run at the load with the allocator's "Tried to allocate more than 1EB memory", naming no file.
  std::ofstream(dir_ / "vae.json") << R"({"format": "offsim-model-manifest/1", "name": "vae", "pipeline": "test",
    "component": "vae", "dtype": "bf16", "tensors": [{"name": "w", "bytes": 1152921504606846976}],
    "total_bytes": 1152921504606846976})";
  try {
    (void)load(kBase);
    ADD_FAILURE() << "a manifest with a 1 EiB tensor was accepted";
  } catch (const ParseError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("vae.json"), std::string::npos) << message;
    EXPECT_NE(message.find("tensors[0].bytes: a tensor of 1 EiB or more (w)"), std::string::npos) << message;
  }
}

TEST_F(ScenarioValidation, RunSizesTheRunCannotHoldAreRefusedUpFront) {
  // steps: 1e9 and calls: 1e6 ended in std::bad_alloc after seconds at 2+ GB.
  const auto start = std::chrono::steady_clock::now();
  expect_refused(edited(R"("steps": 1)", R"("steps": 1000000000)"), 13, "must be an integer from 1 to 10000");
  expect_refused(edited(R"("calls": 2)", R"("calls": 1000000)"), 11, "must be an integer from 1 to 10000");
  // Each within its own bound, together beyond what one run holds.
  expect_refused(edited(R"("calls": 2)", R"("calls": 200)", edited(R"("steps": 1)", R"("steps": 100)")), 11,
                 "scenario.calls: calls x the stages' steps = 20000 stage steps in one run, more than the 10000");
  // Within both, but the working memory replays too many events: 100 calls x 100 steps x 750 events.
  std::string ops = "[";
  for (int i = 0; i < 250; ++i) ops += "[\"alloc\", 512], [\"free\", " + std::to_string(i) + "]" + (i < 249 ? ", " : "");
  ops += "]";
  expect_refused(edited(R"([["alloc", 1048576], ["free", 0]])", ops,
                        edited(R"("calls": 2)", R"("calls": 100)", edited(R"("steps": 1)", R"("steps": 100)"))),
                 11, "scenario.calls: the working memory replays 7500000 allocator events in one run");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5)) << "refused up front, not after running";
}

TEST_F(ScenarioValidation, NumbersBeyondADoubleAndSyntaxErrorsNameTheirPosition) {
  // nlohmann raises out_of_range.406 for 1e999, which ended as "internal error: [json.exception...]".
  expect_refused(edited(R"("calls": 2)", R"("calls": 1e999)"), 11, "not valid JSON: number overflow parsing '1e999'");
  expect_refused(edited(R"("calls": 2,)", R"("calls": 2,,)"), 11, "not valid JSON: syntax error");
  expect_refused(edited(R"("calls": 2,)", R"("calls": 2, "calls": 3,)"), 11, "duplicate key \"calls\"");
  std::string deep(100, '[');
  expect_refused(edited(R"("calls": 2,)", "\"facts\": " + deep + ","), 11, "nests deeper than 64 levels");
}

TEST_F(ScenarioValidation, InlineWorkingMemoryParsesInLinearTime) {
  // 100k allocs then 100k frees: a free that searched every earlier event for its alloc's size made this
  // take 14-44 s; a lookup by alloc index takes well under a second.
  constexpr std::size_t kAllocs = 100000;
  std::string ops = "[";
  for (std::size_t i = 0; i < kAllocs; ++i) ops += "[\"alloc\", 512],";
  for (std::size_t i = 0; i < kAllocs; ++i) ops += "[\"free\", " + std::to_string(i) + "]" + (i + 1 < kAllocs ? "," : "");
  ops += "]";
  const std::string text = edited(R"([["alloc", 1048576], ["free", 0]])", ops);
  const auto start = std::chrono::steady_clock::now();
  const Scenario s = load(text);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(s.stages[0].working_memory->trace->events.size(), 3 * kAllocs);
  EXPECT_EQ(s.stages[0].working_memory->trace->events.back().size, 512u) << "a free carries its alloc's size";
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

TEST_F(ScenarioValidation, GeneratedScenariosNameFieldsInTheirPrintedForm) {
  // A document built in memory has no text: positions refer to dump(2), how counterexamples are written.
  nlohmann::json doc = nlohmann::json::parse(kBase);
  doc["stages"][0]["steps"] = 0;
  try {
    (void)Scenario::from_json(doc, "generated", dir_);
    FAIL() << "accepted steps 0";
  } catch (const ParseError& e) {
    const std::string printed = doc.dump(2);
    const std::size_t offset = printed.find("\"steps\"");
    const std::size_t line = 1 + static_cast<std::size_t>(std::count(printed.begin(), printed.begin() + offset, '\n'));
    EXPECT_EQ(e.offset(), line) << e.what();
    EXPECT_NE(std::string(e.what()).find("generated:" + std::to_string(line) + ":"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace offsim::policies
