// Decision-log mode: the reader refuses malformed logs naming file, line and field; the checks judge P1-P5
// on logged decisions with T_cold from a published point, a referenced stage trace or a measured peak; the
// committed logs of the seed bug (tests/corpus/decision_logs/) are rejected (pre-fix) and accepted (fixed).
#include "offsim/policies/decision_log.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

using nlohmann::json;

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;
// The published W7900 decode peak at 1248x832 (10.06 GiB on the 2 MiB grid) and the seed facts around it.
constexpr std::uint64_t kPublishedPeak = 10802429952;
constexpr std::uint64_t kFixedEstimate = 5500ull * 1248 * 832 * 2;
const std::string kTrace = "traces/published/qwen-image-vae-decode-rocm-w7900-1248x832.json";

json header() {
  return {{"schema", "offsim-decision/1"},
          {"record", "header"},
          {"policy", {{"id", "invokeai@test"}, {"family", "invokeai"}, {"version", ""},
                      {"free_memory_formula", "driver_free"}, {"p1_slack_bytes", MiB}}},
          {"device", {{"name", "W7900"}, {"total_bytes", 48296775598}, {"backend", "rocm"}, {"measured", false},
                      {"memory_source", "offsim-simulator"}}},
          {"torch", {{"version", "2.9.1+rocm6.4"}, {"hip", "6.4"}}},
          {"alloc_conf", ""}};
}

json key(const char* name = "decode", const char* kind = "vae_decode") {
  return {{"name", name}, {"kind", kind}, {"call", 0}, {"step", 0}};
}

json decision(std::int64_t seq, std::optional<std::uint64_t> estimate, std::optional<std::int64_t> free_memory,
              const char* stop = "satisfied") {
  return {{"schema", "offsim-decision/1"},
          {"record", "decision"},
          {"seq", seq},
          {"stage", key()},
          {"models", {"vae"}},
          {"estimate", {{"bytes", estimate ? json(*estimate) : json(nullptr)}, {"passed", false},
                        {"passed_bytes", nullptr}, {"source", "default"}}},
          {"free_memory", {{"bytes", free_memory ? json(*free_memory) : json(nullptr)}, {"formula", "driver_free"}}},
          {"weights_loaded_bytes", 0},
          {"stop_reason", stop},
          {"evictions", json::array()},
          {"loads", json::array()},
          {"memory", nullptr},
          {"oom", nullptr}};
}

json qwen_decode() {
  return {{"vae", {{"family", "qwen_image"}, {"op", "decode"}, {"height", 832}, {"width", 1248}, {"dtype", "bf16"},
                   {"backend", "rocm"}}}};
}

json memory(std::uint64_t free, std::uint64_t reserved, std::uint64_t allocated, std::uint64_t inactive_split = 0) {
  return {{"free_bytes", free}, {"total_bytes", 48296775598}, {"allocated_bytes", allocated}, {"reserved_bytes", reserved},
          {"max_allocated_bytes", nullptr}, {"max_reserved_bytes", nullptr}, {"inactive_split_bytes", inactive_split}};
}

json stage(std::int64_t seq, std::vector<std::int64_t> decisions, json workload = qwen_decode()) {
  return {{"schema", "offsim-decision/1"},
          {"record", "stage"},
          {"seq", seq},
          {"stage", key()},
          {"workload", std::move(workload)},
          {"working_memory", nullptr},
          {"decisions", decisions},
          {"memory", {{"before", nullptr}, {"after", nullptr}, {"peak_reserved_bytes", nullptr}, {"peak_reset", true}}},
          {"outcome", {{"completed", true}, {"oom", nullptr}, {"handled_ooms", 0}}},
          {"models", nullptr}};
}

json oom_outcome() {
  return {{"completed", false}, {"oom", {{"message", "HIP out of memory. Tried to allocate 5.01 GiB"}, {"requested_bytes", nullptr}}},
          {"handled_ooms", 0}};
}

std::string text(const std::vector<json>& lines) {
  std::string out;
  for (const json& j : lines) out += j.dump() + "\n";
  return out;
}

DecisionLog parse(const std::vector<json>& lines) {
  std::istringstream in(text(lines));
  return parse_decision_log(in, "log.jsonl");
}

DecisionLogReport check(const std::vector<json>& lines) {
  DecisionLogOptions options;
  options.root = kRoot;
  return check_decision_log(parse(lines), options);
}

const DecisionLogProperty& property(const DecisionLogReport& r, const char* id) {
  for (const DecisionLogProperty& p : r.results) {
    if (p.id == id) return p;
  }
  throw std::runtime_error("no property");
}

// Expects a ParseError at `line` whose message names `field` (and contains `what`).
void expect_error(const std::string& input, std::size_t line, const std::string& field, const std::string& what = "") {
  std::istringstream in(input);
  try {
    (void)parse_decision_log(in, "log.jsonl");
    ADD_FAILURE() << "accepted: " << input;
  } catch (const ParseError& e) {
    EXPECT_EQ(e.source(), "log.jsonl");
    EXPECT_EQ(e.offset(), line) << e.what();
    const std::string message = e.what();
    // FILE:LINE: for the whole log, FILE:LINE:COLUMN: for a field of a line.
    const std::string at = "log.jsonl:" + std::to_string(line) + ":";
    EXPECT_EQ(message.rfind(at + (e.column() > 0 ? std::to_string(e.column()) + ": " : " "), 0), 0u) << message;
    if (!field.empty()) {
      EXPECT_NE(message.find("field \"" + field + "\""), std::string::npos) << message;
    }
    if (!what.empty()) {
      EXPECT_NE(message.find(what), std::string::npos) << message;
    }
  }
}

// ---------------------------------------------------------------- reader

TEST(DecisionLogReader, ReadsEveryRecord) {
  json d = decision(0, 3 * GiB, 8 * static_cast<std::int64_t>(GiB));
  d["evictions"] = json::array({{{"model", "transformer"}, {"bytes", 7 * GiB}}});
  d["loads"] = json::array({{{"model", "vae"}, {"bytes", 100}}});
  d["weights_loaded_bytes"] = 100;
  json s = stage(1, {0});
  s["memory"]["before"] = memory(20 * GiB, 10 * GiB, 9 * GiB, 4096);
  s["memory"]["peak_reserved_bytes"] = 12 * GiB;
  s["models"] = json::array({{{"model", "transformer"}, {"device_bytes", 0}, {"offloaded", true}}});
  const DecisionLog log = parse({header(), d, s});
  EXPECT_EQ(log.header.policy_id, "invokeai@test");
  EXPECT_EQ(log.header.p1_slack, MiB);
  EXPECT_EQ(log.header.backend, Backend::rocm);
  ASSERT_EQ(log.decisions.size(), 1u);
  const LoggedDecision& ld = log.decisions[0];
  EXPECT_EQ(ld.line, 2u);
  EXPECT_EQ(ld.estimate, 3 * GiB);
  EXPECT_FALSE(ld.estimate_passed);
  EXPECT_EQ(ld.free_memory, 8 * static_cast<std::int64_t>(GiB));
  EXPECT_EQ(ld.stop, StopReason::kSatisfied);
  ASSERT_EQ(ld.evictions.size(), 1u);
  EXPECT_EQ(ld.evictions[0].bytes, 7 * GiB);
  ASSERT_EQ(log.stages.size(), 1u);
  const LoggedStage& ls = log.stages[0];
  EXPECT_EQ(ls.line, 3u);
  EXPECT_EQ(ls.stage.kind, StageKind::kVaeDecode);
  ASSERT_TRUE(ls.workload.has_value());
  EXPECT_EQ(std::get<VaeWorkload>(*ls.workload).pixel_width, 1248);
  EXPECT_EQ(ls.before->inactive_split, 4096u);
  EXPECT_EQ(ls.peak_reserved, 12 * GiB);
  ASSERT_TRUE(ls.models.has_value());
  EXPECT_TRUE((*ls.models)[0].offloaded);
}

TEST(DecisionLogReader, BlankLinesAreSkippedAndLineNumbersCountThem) {
  const std::string input = header().dump() + "\n\n" + decision(0, 3 * GiB, std::nullopt).dump() + "\n";
  std::istringstream in(input);
  const DecisionLog log = parse_decision_log(in, "log.jsonl");
  ASSERT_EQ(log.decisions.size(), 1u);
  EXPECT_EQ(log.decisions[0].line, 3u);
}

TEST(DecisionLogReader, RefusesWhatIsNotALog) {
  expect_error("", 0, "", "no header line");
  expect_error("{\"schema\": \"offsim-decision/1\", \"record\": \"header\"\n", 1, "", "not valid JSON");
  expect_error(text({decision(0, 1, 1)}), 1, "record", "first line must be the header");
  json other = header();
  other["schema"] = "offsim-decision/2";
  expect_error(text({other}), 1, "schema", "not supported");
  expect_error(text({header(), header()}), 2, "record", "a second header");
  json unknown = decision(0, 1, 1);
  unknown["record"] = "event";
  expect_error(text({header(), unknown}), 2, "record");
}

TEST(DecisionLogReader, NamesTheHeaderFieldThatIsWrong) {
  json h = header();
  h["policy"].erase("free_memory_formula");
  expect_error(text({h}), 1, "policy.free_memory_formula", "missing");
  h = header();
  h["device"]["memory_source"] = "guess";
  expect_error(text({h}), 1, "device.memory_source");
  h = header();
  h["device"]["measured"] = true;  // a simulator's figures are not a GPU measurement
  expect_error(text({h}), 1, "device.measured");
  h = header();
  h["device"]["backend"] = "tpu";
  expect_error(text({h}), 1, "device.backend");
  h = header();
  h["alloc_conf"] = "max_split_size_mb:banana";
  expect_error(text({h}), 1, "alloc_conf");
  h = header();
  h["policy"]["p1_slack_bytes"] = -1;
  expect_error(text({h}), 1, "policy.p1_slack_bytes", ">= 0");
}

TEST(DecisionLogReader, NamesTheDecisionFieldThatIsWrong) {
  json d = decision(0, 3 * GiB, 1);
  d["estimate"]["bytes"] = "3GiB";
  expect_error(text({header(), d}), 2, "estimate.bytes", "integer number of bytes");
  d = decision(0, 3 * GiB, 1);
  d["estimate"]["bytes"] = 3.5;
  expect_error(text({header(), d}), 2, "estimate.bytes");
  d = decision(0, 3 * GiB, 1);
  d["weights_loaded_bytes"] = -4;
  expect_error(text({header(), d}), 2, "weights_loaded_bytes", ">= 0");
  d = decision(0, 3 * GiB, 1);
  d["weights_loaded_bytes"] = std::uint64_t{1} << 61;
  expect_error(text({header(), d}), 2, "weights_loaded_bytes", "1 EiB");
  d = decision(0, 3 * GiB, 1, "done");
  expect_error(text({header(), d}), 2, "stop_reason");
  d = decision(0, 3 * GiB, 1);
  d["loads"] = json::array({{{"model", "vae"}, {"bytes", 10}}});
  expect_error(text({header(), d}), 2, "weights_loaded_bytes", "not the sum of loads");
  d = decision(0, 3 * GiB, 1);
  d["evictions"] = json::array({{{"model", "te"}}});
  expect_error(text({header(), d}), 2, "evictions[0].bytes", "missing");
  d = decision(0, 3 * GiB, 1);
  d["stage"]["kind"] = "decoder";
  expect_error(text({header(), d}), 2, "stage.kind");
  d = decision(0, 3 * GiB, 1);
  d["estimate"]["passed_bytes"] = 5;
  expect_error(text({header(), d}), 2, "estimate.passed", "passed_bytes holds a value");
  d = decision(0, 3 * GiB, 1);
  d.erase("free_memory");
  expect_error(text({header(), d}), 2, "free_memory", "missing");
}

TEST(DecisionLogReader, NamesTheStageFieldThatIsWrong) {
  const json d = decision(0, 3 * GiB, 1);
  json s = stage(1, {0});
  s["workload"]["vae"]["family"] = "sd99";
  expect_error(text({header(), d, s}), 3, "workload.vae.family");
  s = stage(1, {0});
  s["workload"]["vae"]["width"] = 1250;  // not a whole latent
  expect_error(text({header(), d, s}), 3, "workload.vae");
  s = stage(1, {7});
  expect_error(text({header(), d, s}), 3, "decisions[0]", "no earlier line");
  s = stage(1, {0});
  s["memory"]["before"] = memory(20 * GiB, 10 * GiB, 9 * GiB);
  s["memory"]["peak_reserved_bytes"] = 9 * GiB;
  expect_error(text({header(), d, s}), 3, "memory.peak_reserved_bytes", "below");
  s = stage(1, {0});
  s["memory"]["before"] = memory(20 * GiB, 9 * GiB, 10 * GiB);
  expect_error(text({header(), d, s}), 3, "memory.before.allocated_bytes", "above reserved");
  s = stage(1, {0});
  s["outcome"]["oom"] = oom_outcome()["oom"];
  expect_error(text({header(), d, s}), 3, "outcome.oom", "completed is true");
  s = stage(1, {0});
  s["stage"]["step"] = 1;
  expect_error(text({header(), d, s}), 3, "decisions[0]", "was made for stage \"decode\" (call 1, step 1)");
  json s2 = stage(2, {0});
  expect_error(text({header(), d, stage(1, {0}), s2}), 4, "decisions[0]", "belongs to another stage line");
  s = stage(0, {});
  expect_error(text({header(), d, s}), 3, "seq", "does not follow");
  s = stage(1, {0});
  s["workload"]["vae"].erase("backend");
  json h = header();
  h["device"]["backend"] = nullptr;
  expect_error(text({h, d, s}), 3, "workload.vae.backend", "header names no device backend");
}

TEST(DecisionLogReader, RefusesUnknownKeysNamingTheNearestKnownOne) {
  // A misspelt optional key was ignored: "oomm" hid a failed weight load from P3.
  json d = decision(0, 3 * GiB, 1);
  d["oomm"] = {{"message", "CUDA out of memory"}, {"requested_bytes", nullptr}};
  expect_error(text({header(), d}), 2, "oomm", "unknown key (did you mean \"oom\"?)");
  json s = stage(1, {0});
  s["outcome"]["handled_oom"] = 1;
  expect_error(text({header(), decision(0, 3 * GiB, 1), s}), 3, "outcome.handled_oom",
               "unknown key (did you mean \"handled_ooms\"?)");
  json h = header();
  h["device"]["totl_bytes"] = 1;
  expect_error(text({h}), 1, "device.totl_bytes", "did you mean \"total_bytes\"");
  // Free-form objects stay free-form.
  h = header();
  h["source"] = {{"generator", "from_eval"}, {"anything", {1, 2}}};
  h["shim"] = {{"name", "offsim_decisions"}, {"version", "1.0.0"}, {"extra", true}};
  EXPECT_NO_THROW((void)parse({h}));
}

TEST(DecisionLogReader, ADeviceOfZeroBytesIsRefused) {
  // total_bytes 0 was read as a device of 0 bytes and the log judged against it (exit 1, not 2).
  json h = header();
  h["device"]["total_bytes"] = 0;
  expect_error(text({h}), 1, "device.total_bytes", "must be > 0");
  h["device"]["total_bytes"] = nullptr;  // unknown: allowed
  EXPECT_NO_THROW((void)parse({h}));
  json s = stage(1, {0});
  s["memory"]["before"] = memory(20 * GiB, 10 * GiB, 9 * GiB);
  s["memory"]["before"]["total_bytes"] = 0;
  expect_error(text({header(), decision(0, 3 * GiB, 1), s}), 3, "memory.before.total_bytes", "must be > 0");
}

TEST(DecisionLogReader, NamesTheLineAndColumnOfNumbersItCannotHold) {
  // 1e999 ended in "internal error: [json.exception.out_of_range.406]".
  const std::string line2 = R"({"schema": "offsim-decision/1", "record": "decision", "seq": 1e999})";
  expect_error(header().dump() + "\n" + line2 + "\n", 2, "", "not valid JSON: number overflow parsing '1e999'");
  std::istringstream in(header().dump() + "\n" + line2 + "\n");
  try {
    (void)parse_decision_log(in, "log.jsonl");
  } catch (const ParseError& e) {
    EXPECT_GT(e.column(), line2.find("1e999")) << e.what();  // at the number (1-based column)
    EXPECT_LE(e.column(), line2.find("1e999") + 6) << e.what();
  }
  json d = decision(4294967297, 3 * GiB, 1);
  d["stage"]["call"] = 4294967297;  // 2^32 + 1 would wrap to call 1 in an int
  expect_error(text({header(), d}), 2, "stage.call", "must be an integer from 0 to 9999, got 4294967297");
  const std::string duplicate = R"({"schema": "offsim-decision/1", "record": "decision", "seq": 1, "seq": 2})";
  expect_error(header().dump() + "\n" + duplicate + "\n", 2, "", "duplicate key \"seq\"");
  json s = stage(1, {0});
  s["workload"]["vae"]["height"] = 4294967808;  // 2^32 + 512
  expect_error(text({header(), decision(0, 3 * GiB, 1), s}), 3, "workload.vae.height",
               "must be an integer from 1 to 65536, got 4294967808");
}

TEST(DecisionLogReader, ReadsAFileAndNamesIt) {
  EXPECT_THROW((void)read_decision_log(kRoot / "no-such-log.jsonl"), ParseError);
}

// ---------------------------------------------------------------- checks

TEST(DecisionLogCheck, P1FailsWhenTheCacheLoadsMoreThanItsOwnFreeFigureAllowsBeyondTheSlack) {
  json d = decision(0, 3 * GiB, 4 * static_cast<std::int64_t>(GiB));
  d["loads"] = json::array({{{"model", "vae"}, {"bytes", GiB + 2 * MiB}}});
  d["weights_loaded_bytes"] = GiB + 2 * MiB;
  const DecisionLogReport r = check({header(), d});
  EXPECT_EQ(property(r, "P1").verdict, Verdict::kFail);
  EXPECT_NE(property(r, "P1").detail.find("line 2:"), std::string::npos) << property(r, "P1").detail;
  // Within the declared 1 MiB slack: holds.
  d["loads"][0]["bytes"] = GiB + MiB;
  d["weights_loaded_bytes"] = GiB + MiB;
  const DecisionLogReport within = check({header(), d});
  EXPECT_EQ(property(within, "P1").verdict, Verdict::kPass) << "F_P = E + W_load - slack exactly holds";
  // One byte beyond the slack fails; one byte under it holds.
  d["loads"][0]["bytes"] = GiB + MiB + 1;
  d["weights_loaded_bytes"] = GiB + MiB + 1;
  EXPECT_EQ(property(check({header(), d}), "P1").verdict, Verdict::kFail);
  d["loads"][0]["bytes"] = GiB + MiB - 1;
  d["weights_loaded_bytes"] = GiB + MiB - 1;
  EXPECT_EQ(property(check({header(), d}), "P1").verdict, Verdict::kPass);
  d["loads"][0]["bytes"] = GiB + MiB;
  d["weights_loaded_bytes"] = GiB + MiB;
  // Exhausted decisions make no claim.
  d["stop_reason"] = "exhausted";
  d["loads"][0]["bytes"] = 5 * GiB;
  d["weights_loaded_bytes"] = 5 * GiB;
  const DecisionLogReport exhausted = check({header(), d});
  const DecisionLogProperty& p1 = property(exhausted, "P1");
  EXPECT_EQ(p1.verdict, Verdict::kNotApplicable);
  EXPECT_EQ(p1.detail.rfind("n/a: ", 0), 0u) << p1.detail;
}

TEST(DecisionLogCheck, P1IsNotApplicableToScheduleBasedPolicies) {
  json h = header();
  h["policy"]["free_memory_formula"] = "";
  json d = decision(0, std::nullopt, std::nullopt, "not_applicable");
  d["free_memory"]["formula"] = "";
  const DecisionLogReport r = check({h, d});
  const DecisionLogProperty& p1 = property(r, "P1");
  EXPECT_EQ(p1.verdict, Verdict::kNotApplicable);
  EXPECT_NE(p1.detail.find("schedule-based"), std::string::npos) << p1.detail;
}

TEST(DecisionLogCheck, P2UsesAMatchingPublishedPointFirst) {
  json s = stage(1, {0});
  s["working_memory"] = kTrace;  // also present; the published point comes first
  const DecisionLogReport r = check({header(), decision(0, 3 * GiB, 8 * static_cast<std::int64_t>(GiB)), s});
  ASSERT_EQ(r.true_peaks.size(), 1u);
  const StageTruePeak& t = r.true_peaks[0];
  EXPECT_EQ(t.t_cold, kPublishedPeak);
  EXPECT_EQ(t.provenance, sim::ProvenanceKind::kPublishedMeasurement);
  EXPECT_EQ(t.origin, "published measurement");
  EXPECT_EQ(t.label.rfind("published: invoke-ai/InvokeAI commit a6724695a5", 0), 0u) << t.label;
  const DecisionLogProperty& p2 = property(r, "P2");
  EXPECT_EQ(p2.verdict, Verdict::kFail);
  EXPECT_NE(p2.detail.find("E = 3.00 GiB (default) < T_cold = 10.06 GiB [published:"), std::string::npos) << p2.detail;
  EXPECT_TRUE(r.failed());
}

TEST(DecisionLogCheck, P2FallsBackToTheReferencedStageTraceReplayedCold) {
  json s = stage(1, {0}, nullptr);  // no workload: no published point can match
  s["working_memory"] = kTrace;
  const DecisionLogReport r = check({header(), decision(0, kFixedEstimate, 20 * static_cast<std::int64_t>(GiB)), s});
  const StageTruePeak& t = r.true_peaks[0];
  EXPECT_EQ(t.t_cold, kPublishedPeak);  // the trace reproduces the published peak exactly
  EXPECT_EQ(t.provenance, sim::ProvenanceKind::kPublishedMeasurement);
  EXPECT_EQ(t.origin.rfind("stage trace " + kTrace, 0), 0u) << t.origin;
  EXPECT_NE(t.origin.find("torch 2.9 profile)"), std::string::npos) << t.origin;
  EXPECT_EQ(property(r, "P2").verdict, Verdict::kPass);
  EXPECT_EQ(property(r, "P5").verdict, Verdict::kPass);
}

TEST(DecisionLogCheck, TheLoggedTorchVersionPicksTheNewestAllocatorProfileNotNewerThanIt) {
  json s = stage(1, {0}, nullptr);
  s["working_memory"] = kTrace;
  json h = header();
  h["torch"]["version"] = "2.10.0+cu128";
  DecisionLogReport r = check({h, decision(0, kFixedEstimate, 1), s});
  EXPECT_NE(r.true_peaks[0].origin.find("torch 2.9 profile; torch 2.10.0+cu128 runs the allocator of profile 2.9)"),
            std::string::npos)
      << r.true_peaks[0].origin;
  h["torch"] = nullptr;
  r = check({h, decision(0, kFixedEstimate, 1), s});
  EXPECT_NE(r.true_peaks[0].origin.find("version not logged"), std::string::npos) << r.true_peaks[0].origin;
}

TEST(DecisionLogCheck, AMissingStageTraceNamesTheLogLine) {
  json s = stage(1, {0}, nullptr);
  s["working_memory"] = "traces/published/no-such-trace.json";
  const DecisionLog log = parse({header(), decision(0, 1, 1), s});
  DecisionLogOptions options;
  options.root = kRoot;
  try {
    (void)check_decision_log(log, options);
    ADD_FAILURE() << "accepted";
  } catch (const ParseError& e) {
    EXPECT_EQ(e.offset(), 3u);
    EXPECT_NE(std::string(e.what()).find("field \"working_memory\""), std::string::npos) << e.what();
  }
}

TEST(DecisionLogCheck, P2UsesTheLoggedPeakOnlyFromAMeasuredLog) {
  json h = header();
  h["device"]["measured"] = true;
  h["device"]["memory_source"] = "torch.cuda";
  json s = stage(1, {0}, {{"vae", {{"family", "sdxl"}, {"op", "decode"}, {"height", 1024}, {"width", 1024}, {"dtype", "fp16"}}}});
  s["memory"]["before"] = memory(20 * GiB, 10 * GiB, 9 * GiB);
  s["memory"]["peak_reserved_bytes"] = 14 * GiB;
  const DecisionLogReport measured = check({h, decision(0, 3 * GiB, 20 * static_cast<std::int64_t>(GiB)), s});
  const StageTruePeak& t = measured.true_peaks[0];
  EXPECT_EQ(t.t_cold, 4 * GiB);
  EXPECT_EQ(t.t_warm, 4 * GiB);
  EXPECT_EQ(t.provenance, sim::ProvenanceKind::kGpuMeasured);
  EXPECT_EQ(t.label.rfind("gpu-measured: log.jsonl line 3 on W7900", 0), 0u) << t.label;
  EXPECT_NE(t.origin.find("warm: 1024.00 MiB cached"), std::string::npos) << t.origin;
  EXPECT_EQ(property(measured, "P2").verdict, Verdict::kFail);

  // The same figures from the simulator are no measurement: nothing to judge E against.
  const DecisionLogReport simulated = check({header(), decision(0, 3 * GiB, 20 * static_cast<std::int64_t>(GiB)), s});
  EXPECT_FALSE(simulated.true_peaks[0].t_cold.has_value());
  EXPECT_NE(simulated.true_peaks[0].why_none.find("not measured on a GPU"), std::string::npos);
  const DecisionLogProperty& p2 = property(simulated, "P2");
  EXPECT_EQ(p2.verdict, Verdict::kNotApplicable);
  EXPECT_EQ(p2.detail.rfind("n/a: no stage with a logged estimate has a T_cold", 0), 0u) << p2.detail;
}

TEST(DecisionLogCheck, P2IsJudgedOnlyInsideANamedEstimatorsDomain) {
  json d = decision(0, 3 * GiB, 20 * static_cast<std::int64_t>(GiB));
  d["estimate"]["source"] = "invokeai/qwen-image@a6724695 (as passed)";
  json s = stage(1, {0});
  s["working_memory"] = kTrace;
  s["workload"]["vae"]["height"] = 2560;  // above the 2048 the merged constants were verified on
  s["workload"]["vae"]["width"] = 2560;
  const DecisionLogReport r = check({header(), d, s});
  const DecisionLogProperty& p2 = property(r, "P2");
  EXPECT_EQ(p2.verdict, Verdict::kNotApplicable);
  EXPECT_NE(p2.detail.find("outside the estimator's stated domain"), std::string::npos) << p2.detail;
}

TEST(DecisionLogCheck, P5ReportsAnOverEstimateWithoutFailing) {
  const DecisionLogReport r = check({header(), decision(0, 20 * GiB, 40 * static_cast<std::int64_t>(GiB)), stage(1, {0})});
  EXPECT_EQ(property(r, "P5").verdict, Verdict::kReported);
  EXPECT_EQ(property(r, "P2").verdict, Verdict::kPass);
  EXPECT_FALSE(r.failed());
}

TEST(DecisionLogCheck, P3DiagnosesAnEstimatorFault) {
  json s = stage(1, {0});
  s["outcome"] = oom_outcome();
  const DecisionLogReport r = check({header(), decision(0, 3 * GiB, 8 * static_cast<std::int64_t>(GiB)), s});
  const DecisionLogProperty& p3 = property(r, "P3");
  EXPECT_EQ(p3.verdict, Verdict::kFail);
  EXPECT_EQ(p3.lines, std::vector<std::size_t>{3});
  EXPECT_EQ(r.diagnosis.rfind("estimator fault: E = 3.00 GiB < T_cold = 10.06 GiB [published:", 0), 0u) << r.diagnosis;
}

TEST(DecisionLogCheck, P3DiagnosesAFailedWeightLoad) {
  json d = decision(0, kFixedEstimate, 20 * static_cast<std::int64_t>(GiB));
  d["oom"] = {{"message", "out of memory loading"}, {"requested_bytes", 64 * MiB}};
  json s = stage(1, {0});
  s["outcome"] = oom_outcome();
  EXPECT_EQ(check({header(), d, s}).diagnosis, "weights: loading the stage's models failed");
  // Without a stage line (the test ended in the load) the decision alone fails P3.
  const DecisionLogReport alone = check({header(), d});
  EXPECT_EQ(property(alone, "P3").verdict, Verdict::kFail);
  EXPECT_EQ(property(alone, "P3").lines, std::vector<std::size_t>{2});
}

TEST(DecisionLogCheck, P3DiagnosesAnAccountingFault) {
  // E covers T_cold, but F_P = 20 GiB while the driver had 8 GiB free and 1 GiB of the 2 GiB cache was
  // stranded in split segments: the policy counted bytes it could not get.
  json s = stage(1, {0});
  s["outcome"] = oom_outcome();
  s["memory"]["before"] = memory(8 * GiB, 12 * GiB, 10 * GiB, GiB);
  const DecisionLogReport r = check({header(), decision(0, kFixedEstimate, 20 * static_cast<std::int64_t>(GiB)), s});
  EXPECT_EQ(r.diagnosis,
            "accounting fault: F_P = 20.00 GiB > driver free 8.00 GiB + releasable cache 1024.00 MiB (the policy counts "
            "bytes it cannot obtain: 1024.00 MiB stranded in split segments, the rest held by tensors outside the "
            "cache)");
}

TEST(DecisionLogCheck, P3DiagnosesFragmentationAndTheRest) {
  json s = stage(1, {0});
  s["outcome"] = oom_outcome();
  s["memory"]["before"] = memory(30 * GiB, 12 * GiB, 10 * GiB, GiB);
  s["memory"]["peak_reserved_bytes"] = 12 * GiB + kPublishedPeak + GiB;
  DecisionLogReport r = check({header(), decision(0, kFixedEstimate, 20 * static_cast<std::int64_t>(GiB)), s});
  EXPECT_EQ(r.diagnosis.rfind("fragmentation fault: T_warm = 11.06 GiB > T_cold = 10.06 GiB; 1024.00 MiB stranded", 0), 0u)
      << r.diagnosis;
  s["memory"]["peak_reserved_bytes"] = 12 * GiB + GiB;
  r = check({header(), decision(0, kFixedEstimate, 20 * static_cast<std::int64_t>(GiB)), s});
  EXPECT_EQ(r.diagnosis.rfind("the device lacks memory the policy did not account for", 0), 0u) << r.diagnosis;
}

TEST(DecisionLogCheck, P4FailsForAModelReportedOffloadedThatHoldsBytes) {
  json s = stage(1, {0});
  s["models"] = json::array({{{"model", "transformer"}, {"device_bytes", 32 * MiB}, {"offloaded", true}},
                             {{"model", "vae"}, {"device_bytes", 200 * MiB}, {"offloaded", false}, {"resident_by_design", true}}});
  const DecisionLogReport r = check({header(), decision(0, kFixedEstimate, 30 * static_cast<std::int64_t>(GiB)), s});
  const DecisionLogProperty& p4 = property(r, "P4");
  EXPECT_EQ(p4.verdict, Verdict::kFail);
  EXPECT_EQ(p4.violations, 1u);
  EXPECT_NE(p4.detail.find("\"transformer\" is reported offloaded but holds 32.00 MiB"), std::string::npos) << p4.detail;
  s["models"][0]["device_bytes"] = 0;
  const DecisionLogReport fixed = check({header(), decision(0, kFixedEstimate, 30 * static_cast<std::int64_t>(GiB)), s});
  const DecisionLogProperty& ok = property(fixed, "P4");
  EXPECT_EQ(ok.verdict, Verdict::kPass);
  EXPECT_NE(ok.detail.find("capacity half"), std::string::npos) << ok.detail;
}

TEST(DecisionLogCheck, PropertiesALogCannotDecideSayWhy) {
  const DecisionLogReport r = check({header()});
  for (const DecisionLogProperty& p : r.results) {
    EXPECT_EQ(p.verdict, Verdict::kNotApplicable) << p.id;
    EXPECT_EQ(p.detail.rfind("n/a: ", 0), 0u) << p.id << ": " << p.detail;
  }
}

// A log holding only its header line is what a test leaves when the hook patched nothing: a gate that
// passed on it would pass having checked nothing.
TEST(DecisionLogCheck, AHeaderOnlyLogFailsBecauseNothingWasChecked) {
  const DecisionLogReport r = check({header()});
  EXPECT_TRUE(r.checked_nothing());
  EXPECT_TRUE(r.failed());
  EXPECT_NE(format_report(r).find("decisions: FAILED: nothing was checked (0 decisions logged"), std::string::npos)
      << format_report(r);
  // One decision that P1 judges is enough to have checked something.
  const DecisionLogReport one = check({header(), decision(0, 3 * GiB, 4 * static_cast<std::int64_t>(GiB))});
  EXPECT_FALSE(one.checked_nothing()) << format_report(one);
  EXPECT_FALSE(one.failed()) << format_report(one);
}

// ---------------------------------------------------------------- committed logs of the seed bug

DecisionLogReport check_committed(const char* file) {
  DecisionLogOptions options;
  options.root = kRoot;
  return check_decision_log(kRoot / "tests/corpus/decision_logs" / file, options);
}

TEST(DecisionLogSeed, PreFixLogIsRejectedAsAnEstimatorFault) {
  const DecisionLogReport r = check_committed("invokeai-9305-fda7c42b-w7900-rocm.jsonl");
  EXPECT_TRUE(r.failed());
  EXPECT_EQ(property(r, "P2").verdict, Verdict::kFail);
  EXPECT_EQ(property(r, "P3").verdict, Verdict::kFail);
  EXPECT_EQ(r.diagnosis.rfind("estimator fault: E = 3.00 GiB < T_cold = 10.06 GiB [published:", 0), 0u) << r.diagnosis;
  ASSERT_EQ(r.true_peaks.size(), 1u);
  EXPECT_EQ(r.true_peaks[0].t_cold, kPublishedPeak);
}

TEST(DecisionLogSeed, FixedLogIsAccepted) {
  const DecisionLogReport r = check_committed("invokeai-9305-a6724695-w7900-rocm.jsonl");
  EXPECT_FALSE(r.failed()) << format_report(r);
  EXPECT_EQ(property(r, "P1").verdict, Verdict::kPass);
  EXPECT_EQ(property(r, "P2").verdict, Verdict::kPass);
  EXPECT_EQ(property(r, "P3").verdict, Verdict::kPass);
}

}  // namespace
}  // namespace offsim::policies
