// Decision-log mode (DESIGN.md section 2, "Two ways to check a policy", way 2): the real Python policy
// runs in its own project's tests and logs each cache decision as JSON lines through python/offsim_decisions
// (schema offsim-decision/1, docs/decision_log.md); this reads such a log, validates every field, and checks
// P1-P5 on what it records, with T from traces instead of from a transcription run on the simulator.
//
//   P1  stop = satisfied  =>  F_P >= E + W_load - the slack the log's header declares
//   P2  E >= T_cold, T_cold from (first that exists): a published measurement point matching the stage's
//       workload; the stage trace the log references, replayed from an emptied simulated allocator; the
//       log's own peak reserved growth of the stage when a real GPU ran it (header device.measured)
//   P3  no stage ended in an unhandled OOM; a failure is diagnosed with the categories of properties.cpp
//   P4  models a stage line reports offloaded hold 0 device bytes (the capacity half needs reruns: n/a)
//   P5  E <= k T_cold (k = 1.5): reported, never failed
// Properties the log cannot decide are n/a with the reason. Torch-free: only the JSON is read.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <optional>
#include <string>
#include <vector>

#include "offsim/policies/estimator.hpp"
#include "offsim/policies/policy.hpp"
#include "offsim/policies/properties.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/sim/trace.hpp"

namespace offsim::policies {

inline constexpr const char* kDecisionLogSchema = "offsim-decision/1";

/// Device memory figures as torch.cuda reports them (bytes); any may be absent.
struct LoggedMemory {
  std::optional<std::uint64_t> free;             // mem_get_info()[0]
  std::optional<std::uint64_t> total;            // mem_get_info()[1]
  std::optional<std::uint64_t> allocated;        // memory_allocated()
  std::optional<std::uint64_t> reserved;         // memory_reserved()
  std::optional<std::uint64_t> max_allocated;    // max_memory_allocated()
  std::optional<std::uint64_t> max_reserved;     // max_memory_reserved()
  std::optional<std::uint64_t> inactive_split;   // free bytes in split segments (stranded)
};

struct LoggedStageKey {
  std::string name;
  StageKind kind = StageKind::kOther;
  int call = 0;
  int step = 0;
};

struct LoggedOom {
  std::string message;
  std::optional<std::uint64_t> requested;
};

struct LoggedTransfer {
  std::string model;
  std::uint64_t bytes = 0;
};

struct LoggedDecision {
  std::size_t line = 0;  // 1-based line of the log
  std::int64_t seq = 0;
  std::optional<LoggedStageKey> stage;  // none: made outside any logged stage
  std::vector<std::string> models;
  std::optional<std::uint64_t> estimate;         // E
  bool estimate_passed = false;                  // the call site passed an estimate
  std::optional<std::uint64_t> estimate_passed_bytes;
  std::string estimate_source;
  std::optional<std::int64_t> free_memory;       // F_P, before subtracting E
  std::string free_memory_formula;
  std::uint64_t weights_loaded = 0;              // W_load
  StopReason stop = StopReason::kNotApplicable;
  std::vector<LoggedTransfer> evictions;
  std::optional<std::vector<LoggedTransfer>> loads;  // none: not itemized
  std::optional<LoggedMemory> memory;            // at the stop
  std::optional<LoggedOom> oom;                  // a weight load failed inside the decision
};

struct LoggedModel {
  std::string model;
  std::uint64_t device_bytes = 0;
  bool offloaded = false;
  bool resident_by_design = false;
};

struct LoggedStage {
  std::size_t line = 0;
  std::int64_t seq = 0;
  LoggedStageKey stage;
  std::optional<Workload> workload;
  std::string workload_text;               // describe(workload), for messages
  std::optional<std::string> working_memory;  // stage trace path as logged
  std::vector<std::int64_t> decisions;     // seq of the decisions made for this stage step
  std::optional<LoggedMemory> before;
  std::optional<LoggedMemory> after;
  std::optional<std::uint64_t> peak_reserved;  // max_memory_reserved at the end (peak reset at the start)
  bool peak_reset = false;
  bool completed = true;
  std::optional<LoggedOom> oom;  // unhandled
  std::uint64_t handled_ooms = 0;
  std::optional<std::vector<LoggedModel>> models;  // residency the policy reports after the stage
};

struct DecisionLogHeader {
  std::string policy_id;
  std::string policy_family;
  std::string policy_version;
  std::string free_memory_formula;  // empty: schedule-based policy, P1 n/a
  std::uint64_t p1_slack = 0;
  std::string device_name;
  std::optional<std::uint64_t> device_total;
  std::optional<Backend> backend;
  bool measured = false;       // figures come from a real GPU
  std::string memory_source;   // "torch.cuda", "offsim-simulator", "none"
  std::string torch_version;
  std::string alloc_conf;
};

struct DecisionLog {
  std::string file;
  DecisionLogHeader header;
  std::vector<LoggedDecision> decisions;
  std::vector<LoggedStage> stages;
};

/// Reads and validates a log. Malformed input throws ParseError(file, line, "field \"x.y\": what"):
/// the offset of the error is the 1-based line number.
DecisionLog read_decision_log(const std::filesystem::path& path);
DecisionLog parse_decision_log(std::istream& in, const std::string& source);

struct DecisionLogOptions {
  /// offsim checkout: traces/published/ and the stage traces a log references resolve against it.
  std::filesystem::path root;
  double p5_factor = 1.5;
};

/// Where a stage's T_cold came from.
struct StageTruePeak {
  std::size_t line = 0;  // the stage line
  std::string stage;     // "decode (call 1, step 1)"
  std::optional<std::uint64_t> t_cold;
  std::optional<std::uint64_t> t_warm;  // the log's own peak reserved growth, when it has one
  sim::ProvenanceKind provenance = sim::ProvenanceKind::kSynthetic;
  std::string origin;  // "published measurement", "stage trace", "logged peak", "" (none)
  std::string label;   // "published: <citation>", as every other offsim verdict shows T
  std::string why_none;  // when t_cold is absent
};

struct DecisionLogProperty {
  std::string id;  // "P1".."P5"
  Verdict verdict = Verdict::kNotApplicable;
  std::size_t checked = 0;
  std::size_t violations = 0;
  std::string detail;              // first violation, or "n/a: why"
  std::vector<std::size_t> lines;  // log lines that violate it
};

struct DecisionLogReport {
  std::string file;
  DecisionLogHeader header;
  std::size_t decisions = 0;
  std::size_t stages = 0;
  std::array<DecisionLogProperty, 5> results;
  std::vector<StageTruePeak> true_peaks;
  std::string diagnosis;  // P3 diagnosis of the first unhandled OOM
  /// No property was checked on anything: e.g. a log holding only its header line, which is what a test
  /// leaves when the hook patched nothing. A gate must not pass on it.
  bool checked_nothing() const;
  /// A property FAILs, or nothing was checked.
  bool failed() const;
};

/// Checks P1-P5 on a log. Throws ParseError (naming the log line) when a referenced stage trace or the
/// header's allocator settings cannot be used.
DecisionLogReport check_decision_log(const DecisionLog& log, const DecisionLogOptions& options);
DecisionLogReport check_decision_log(const std::filesystem::path& path, const DecisionLogOptions& options);

/// The report as the CLI prints it: one line per property, the T used per stage with its provenance.
std::string format_report(const DecisionLogReport& report);

}  // namespace offsim::policies
