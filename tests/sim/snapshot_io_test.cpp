// Snapshot pickle / JSON <-> Trace, and the rewind of the dump-time state to the start of the recorded
// window, on generated traces that are consistent by construction.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "offsim/sim/errors.hpp"
#include "offsim/sim/pickle_reader.hpp"
#include "offsim/sim/pickle_writer.hpp"
#include "offsim/sim/replay.hpp"
#include "offsim/sim/segment_state.hpp"
#include "offsim/sim/snapshot_codec.hpp"
#include "offsim/sim/snapshot_json.hpp"
#include "offsim/sim/snapshot_pickle.hpp"
#include "sim/support/trace_generator.hpp"

namespace offsim::sim {
namespace {

using test::generate_trace;
using test::GeneratedTraceOptions;

TEST(SegmentState, UndoingTheWindowFromTheFinalStateGivesTheInitialState) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const Trace trace = generate_trace(GeneratedTraceOptions{seed, 3000, 700, seed % 2 == 0, 0});
    SegmentState state(trace.final_segments);
    for (std::size_t i = trace.events.size(); i-- > 0;) state.undo(trace.events[i], i, "generated");
    EXPECT_EQ(state.segments(0), trace.initial_segments) << "seed " << seed;
    // And forward again.
    for (std::size_t i = 0; i < trace.events.size(); ++i) state.apply(trace.events[i], i, "generated");
    EXPECT_EQ(state.segments(0), trace.final_segments) << "seed " << seed;
  }
}

// Issue 16 item 2 (the shape of cs336-wedsonlin-512-train.pickle, event 179): a block allocated before the
// recording and freed in it is known by its request only. In a large-pool segment PyTorch leaves a remainder of
// at most 1 MiB with the block (should_split), so where another block is seen starting within 1 MiB of the
// rounded request while this one is live, the block reaches it; a wider gap is a block of its own.
TEST(SegmentState, ARewoundBlockKeepsItsUnsplitRemainder) {
  constexpr std::uint64_t kMiB = 1 << 20;
  const std::uint64_t base = 0x8dc000000;
  SegmentInfo segment;
  segment.address = base;
  segment.total_size = 64 * kMiB;
  segment.blocks = {BlockInfo{base, 64 * kMiB, 0, BlockState::kInactive}};
  auto event = [](TraceAction action, std::uint64_t addr, std::uint64_t size) {
    return TraceEvent{addr, size, 0, 0, action, kTraceFlagNone};
  };
  const std::uint64_t first = base;                   // 40960000 requested: its block ends where the next starts
  const std::uint64_t second = base + 40960000;       // 4 MiB requested, 4.94 MiB gap to the block at 44 MiB
  const std::uint64_t later = base + 44 * kMiB;       // allocated in the window while `second` is live
  const std::vector<TraceEvent> events = {
      event(TraceAction::kAlloc, later, 8 * kMiB),
      event(TraceAction::kFreeRequested, second, 4 * kMiB), event(TraceAction::kFreeCompleted, second, 4 * kMiB),
      event(TraceAction::kFreeRequested, later, 8 * kMiB), event(TraceAction::kFreeCompleted, later, 8 * kMiB),
      event(TraceAction::kFreeRequested, first, 40960000), event(TraceAction::kFreeCompleted, first, 40960000)};
  SegmentState state({segment});
  for (std::size_t i = events.size(); i-- > 0;) state.undo(events[i], i, "t");
  EXPECT_EQ(state.settle_extents(AllocatorConfig{}), 1u);
  const std::vector<SegmentInfo> start = state.segments(0);
  ASSERT_EQ(start.size(), 1u);
  ASSERT_EQ(start[0].blocks.size(), 3u);
  EXPECT_EQ(start[0].blocks[0].size, 40960000u);
  EXPECT_EQ(start[0].blocks[1].address, second);
  EXPECT_EQ(start[0].blocks[1].size, later - second);  // 4 MiB + the 0.94 MiB remainder
  EXPECT_EQ(start[0].blocks[2].state, BlockState::kInactive);
  EXPECT_EQ(start[0].blocks[2].address, later);

  // Without the later block as evidence the gap is 20.94 MiB: a block of its own, so the request is the size.
  const std::vector<TraceEvent> unbounded = {event(TraceAction::kFreeRequested, second, 4 * kMiB),
                                             event(TraceAction::kFreeCompleted, second, 4 * kMiB)};
  SegmentState alone({segment});
  for (std::size_t i = unbounded.size(); i-- > 0;) alone.undo(unbounded[i], i, "t");
  EXPECT_EQ(alone.settle_extents(AllocatorConfig{}), 0u);
  EXPECT_EQ(alone.segments(0)[0].blocks[1].size, 4 * kMiB);
  // Expandable segments split off any remainder: no widening there.
  SegmentState expandable({segment});
  for (std::size_t i = events.size(); i-- > 0;) expandable.undo(events[i], i, "t");
  EXPECT_EQ(expandable.settle_extents(AllocatorConfig::parse("expandable_segments:True")), 0u);
}

TEST(SegmentState, RefusesContradictionsNamingTheEntry) {
  SegmentState state;
  const TraceEvent alloc{0x1000, 512, 0, 0, TraceAction::kAlloc, kTraceFlagNone};
  try {
    state.apply(alloc, 7, "t.pickle");
    FAIL();
  } catch (const ParseError& error) {
    EXPECT_EQ(error.offset(), 7U);
    EXPECT_NE(std::string(error.what()).find("trace entry 7 (alloc at 0x1000"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("no segment contains"), std::string::npos) << error.what();
  }
  state.apply(TraceEvent{0x0, 2 << 20, 0, 0, TraceAction::kSegmentAlloc, kTraceFlagNone}, 0, "t");
  state.apply(alloc, 1, "t");
  EXPECT_THROW(state.apply(TraceEvent{0x0, 2 << 20, 0, 0, TraceAction::kSegmentFree, kTraceFlagNone}, 2, "t"), ParseError);
  EXPECT_THROW(state.apply(alloc, 3, "t"), ParseError);
  EXPECT_THROW(state.undo(TraceEvent{0x5000, 512, 0, 0, TraceAction::kAlloc, kTraceFlagNone}, 4, "t"), ParseError);
}

TEST(SegmentState, ExpandableRangesMergeAndSplitLikeTheViewer) {
  SegmentState state;
  const std::uint64_t base = 0x7e0000000000;
  const std::uint64_t page = 20ULL << 20U;
  state.apply(TraceEvent{base, page, 0, 0, TraceAction::kSegmentMap, kTraceFlagNone}, 0, "t");
  state.apply(TraceEvent{base + page, 2 * page, 0, 0, TraceAction::kSegmentMap, kTraceFlagNone}, 1, "t");
  ASSERT_EQ(state.segments(0).size(), 1U);
  EXPECT_EQ(state.segments(0)[0].total_size, 3 * page);
  EXPECT_TRUE(state.segments(0)[0].is_expandable);
  state.apply(TraceEvent{base + page, page, 0, 0, TraceAction::kSegmentUnmap, kTraceFlagNone}, 2, "t");
  const auto split = state.segments(0);
  ASSERT_EQ(split.size(), 2U);
  EXPECT_EQ(split[0].total_size, page);
  EXPECT_EQ(split[1].address, base + 2 * page);
}

TEST(SnapshotPickle, RoundTripReconstructsTheInitialState) {
  const Trace trace = generate_trace(GeneratedTraceOptions{42, 5000, 1500, true, 0});
  const Trace back = read_snapshot_pickle_bytes(snapshot_pickle_bytes(trace), "roundtrip.pickle");
  EXPECT_EQ(back.events, trace.events);
  EXPECT_EQ(back.final_segments, trace.final_segments);
  EXPECT_EQ(back.initial_segments, trace.initial_segments);
  EXPECT_TRUE(back.metadata.reconstructed_initial_state);
  EXPECT_EQ(back.metadata.alloc_conf, trace.metadata.alloc_conf);
  EXPECT_EQ(back.metadata.label, trace.metadata.label);
  EXPECT_EQ(back.metadata.provenance.kind, ProvenanceKind::kSynthetic);  // kept through offsim_metadata
  EXPECT_NE(back.metadata.provenance.notes.find("reconstructed"), std::string::npos);
}

TEST(SnapshotJson, RoundTripThroughFilesOnDisk) {
  const Trace trace = generate_trace(GeneratedTraceOptions{7, 2000, 400, false, 1});
  const auto directory = std::filesystem::temp_directory_path() / "offsim_snapshot_json_test";
  std::filesystem::create_directories(directory);
  const auto path = directory / "trace.json";
  write_snapshot_json(path, trace);
  SnapshotReadOptions options;
  options.device = 1;
  const Trace back = read_snapshot_json(path, options);
  EXPECT_EQ(back.events, trace.events);
  EXPECT_EQ(back.final_segments, trace.final_segments);
  EXPECT_EQ(back.initial_segments, trace.initial_segments);
  // No temporary files are left beside the output.
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(directory)) ++files;
  EXPECT_EQ(files, 1U);
  std::filesystem::remove_all(directory);
}

TEST(SnapshotPickle, DeviceSelectionNamesTheDevicesWithData) {
  const Trace trace = generate_trace(GeneratedTraceOptions{3, 200, 0, false, 2});
  const std::string data = snapshot_pickle_bytes(trace);
  SnapshotReadOptions options;
  options.device = 0;
  try {
    read_snapshot_pickle_bytes(data, "two.pickle", options);
    FAIL();
  } catch (const ParseError& error) {
    EXPECT_NE(std::string(error.what()).find("devices with data: 2"), std::string::npos) << error.what();
  }
  options.device = 2;
  EXPECT_EQ(read_snapshot_pickle_bytes(data, "two.pickle", options).events.size(), trace.events.size());
}

// A snapshot as PyTorch 2.0 wrote it: blocks without address/requested_size but with history, a legacy
// "free" action, no time_us, no segment_type / segment_pool_id / is_expandable.
std::string legacy_snapshot() {
  StringByteSink sink;
  PickleWriter w(sink);
  w.begin_dict();
  w.write_str("segments");
  w.begin_list();
  w.begin_dict();
  for (auto [key, value] : {std::pair{"device", 0ULL}, {"address", 0x7f0000000000ULL}, {"total_size", 2ULL << 20U},
                            {"allocated_size", 1024ULL}, {"active_size", 1024ULL}, {"stream", 0ULL}}) {
    w.write_str(key);
    w.write_uint(value);
  }
  w.write_str("blocks");
  w.begin_list();
  w.begin_dict();
  w.write_str("size");
  w.write_uint(1024);
  w.write_str("state");
  w.write_str("active_allocated");
  w.write_str("history");
  w.begin_list();
  w.begin_dict();
  w.write_str("addr");
  w.write_uint(0x7f0000000000ULL);
  w.write_str("real_size");
  w.write_uint(1000);
  w.end_dict();
  w.end_list();
  w.end_dict();
  w.begin_dict();
  w.write_str("size");
  w.write_uint((2ULL << 20U) - 1024);
  w.write_str("state");
  w.write_str("inactive");
  w.end_dict();
  w.end_list();
  w.end_dict();
  w.end_list();
  w.write_str("device_traces");
  w.begin_list();
  w.begin_list();
  for (auto [action, addr, size] : {std::tuple{"alloc", 0x7f0000000400ULL, 600ULL}, {"free", 0x7f0000000400ULL, 600ULL}}) {
    w.begin_dict();
    w.write_str("action");
    w.write_str(action);
    w.write_str("addr");
    w.write_uint(addr);
    w.write_str("size");
    w.write_uint(size);
    w.write_str("stream");
    w.write_int(0);
    w.end_dict();
  }
  w.end_list();
  w.end_list();
  w.end_dict();
  w.finish();
  return sink.take();
}

TEST(SnapshotPickle, ReadsPyTorch20EraSnapshots) {
  const Trace trace = read_snapshot_pickle_bytes(legacy_snapshot(), "legacy.pickle");
  ASSERT_EQ(trace.final_segments.size(), 1U);
  const SegmentInfo& segment = trace.final_segments[0];
  EXPECT_TRUE(segment.is_small);
  EXPECT_EQ(segment.blocks[0].requested_size, 1000U);
  EXPECT_EQ(segment.blocks[1].address, 0x7f0000000400U);
  ASSERT_EQ(trace.events.size(), 2U);
  EXPECT_EQ(trace.events[1].action, TraceAction::kFreeCompleted);
  EXPECT_EQ(trace.metadata.provenance.kind, ProvenanceKind::kGpuMeasured);
  EXPECT_NE(trace.metadata.provenance.notes.find("legacy \"free\""), std::string::npos);
  EXPECT_NE(trace.metadata.provenance.notes.find("without time_us"), std::string::npos);
  EXPECT_NE(trace.metadata.provenance.notes.find("history"), std::string::npos);
}

// A 1 GiB weight loaded, then diffusers' tiled-decode retry allocating 3 GiB: the stacks tell them apart.
std::string tiled_decode_snapshot_json(bool with_frames) {
  const std::string load = with_frames ? R"([{"filename": "/app/pipeline.py", "line": 40, "name": "load_weights"}])" : "[]";
  const std::string tiled =
      with_frames ? R"([{"filename": "/venv/diffusers/models/autoencoders/autoencoder_kl.py", "line": 290, "name": "tiled_decode"},
                        {"filename": "/app/pipeline.py", "line": 52, "name": "decode"}])"
                  : "[]";
  const auto entry = [](const char* action, const char* addr, const char* size, const std::string& frames) {
    return std::string(R"({"action": ")") + action + R"(", "addr": )" + addr + R"(, "size": )" + size +
           R"(, "stream": 0, "time_us": 1, "frames": )" + frames + "}";
  };
  const char* weight = "139637976727552";  // 0x7f0000000000
  const char* tile = "139706696204288";    // 0x7f1000000000
  return R"({"segments": [{"device": 0, "address": 139637976727552, "total_size": 1073741824, "segment_type": "large",
               "blocks": [{"address": 139637976727552, "size": 1073741824, "requested_size": 1073741824,
                           "state": "active_allocated"}]},
              {"device": 0, "address": 139706696204288, "total_size": 3221225472, "segment_type": "large",
               "blocks": [{"address": 139706696204288, "size": 3221225472, "requested_size": 3221225472,
                           "state": "inactive"}]}],
  "device_traces": [[)" +
         entry("segment_alloc", weight, "1073741824", load) + ", " + entry("alloc", weight, "1073741824", load) + ", " +
         entry("segment_alloc", tile, "3221225472", tiled) + ", " + entry("alloc", tile, "3221225472", tiled) + ", " +
         entry("free_requested", tile, "3221225472", tiled) + ", " + entry("free_completed", tile, "3221225472", tiled) +
         "]]}";
}

std::vector<bool> fallible_allocs(const Trace& trace) {
  std::vector<bool> flags;
  for (const TraceEvent& e : trace.events) {
    if (e.action == TraceAction::kAlloc) flags.push_back((e.flags & kTraceFlagFallible) != 0);
  }
  return flags;
}

TEST(SnapshotFallibleFrames, FlagOnlyTheAllocationsWhoseStackMatches) {
  const std::string json = tiled_decode_snapshot_json(true);
  EXPECT_EQ(fallible_allocs(read_snapshot_json_bytes(json, "tiled.json")), (std::vector<bool>{false, false}));

  SnapshotReadOptions by_function;
  by_function.fallible_frames = {"tiled_decode"};
  const Trace flagged = read_snapshot_json_bytes(json, "tiled.json", by_function);
  EXPECT_EQ(fallible_allocs(flagged), (std::vector<bool>{false, true}));
  EXPECT_NE(flagged.metadata.provenance.notes.find("1 of 2 allocations with stack frames flagged fallible"),
            std::string::npos)
      << flagged.metadata.provenance.notes;

  SnapshotReadOptions by_file;
  by_file.fallible_frames = {"no_such_function", "autoencoder_kl.py"};
  EXPECT_EQ(fallible_allocs(read_snapshot_json_bytes(json, "tiled.json", by_file)), (std::vector<bool>{false, true}));

  SnapshotReadOptions empty_text;
  empty_text.fallible_frames = {""};
  EXPECT_THROW(read_snapshot_json_bytes(json, "tiled.json", empty_text), ConfigError);

  // The same document as a pickle: the reader takes entries as it goes, frames stay readable.
  const Trace from_pickle = read_snapshot_pickle_bytes(snapshot_pickle_bytes(flagged), "tiled.pickle");
  EXPECT_EQ(fallible_allocs(from_pickle), (std::vector<bool>{false, true}));  // kept as offsim_flags
}

TEST(SnapshotFallibleFrames, WithoutRecordedStacksTheNotesSaySoInsteadOfMatchingNothingSilently) {
  SnapshotReadOptions options;
  options.fallible_frames = {"tiled_decode"};
  const Trace trace = read_snapshot_json_bytes(tiled_decode_snapshot_json(false), "nostacks.json", options);
  EXPECT_EQ(fallible_allocs(trace), (std::vector<bool>{false, false}));
  EXPECT_NE(trace.metadata.provenance.notes.find("matched nothing: no alloc entry has stack frames"), std::string::npos)
      << trace.metadata.provenance.notes;
}

TEST(SnapshotFallibleFrames, ReplayOnASmallerDeviceCountsTheFlaggedFailureAsHandled) {
  const std::string json = tiled_decode_snapshot_json(true);
  ReplayOptions options;
  options.capacity = 2ULL << 30U;  // room for the weight, not for the 3 GiB tile buffer
  const ReplayResult unflagged = replay(read_snapshot_json_bytes(json, "tiled.json"), options);
  EXPECT_EQ(unflagged.unhandled_ooms, 1U);
  EXPECT_FALSE(unflagged.completed);

  SnapshotReadOptions read;
  read.fallible_frames = {"tiled_decode"};
  const ReplayResult flagged = replay(read_snapshot_json_bytes(json, "tiled.json", read), options);
  EXPECT_TRUE(flagged.completed);
  EXPECT_EQ(flagged.unhandled_ooms, 0U);
  ASSERT_EQ(flagged.ooms.size(), 1U);
  EXPECT_TRUE(flagged.ooms[0].handled);
  EXPECT_EQ(flagged.ooms[0].size, 3ULL << 30U);
}

TEST(SnapshotPickle, AnAddressBeyond64BitsIsNamedAsSuch) {
  // A pickle LONG1 of 2^70: positive, too wide for an address (it was once reported as negative).
  PickleBigInt two_to_the_70;
  two_to_the_70.twos_complement = {0, 0, 0, 0, 0, 0, 0, 0, 0x40};
  const PickleValue entry = PickleValue::new_dict();
  entry.as_dict().entries.emplace_back(PickleValue::str("action"), PickleValue::str("alloc"));
  entry.as_dict().entries.emplace_back(PickleValue::str("addr"), PickleValue::big_integer(two_to_the_70));
  entry.as_dict().entries.emplace_back(PickleValue::str("size"), PickleValue::integer(512));
  const std::string source = "wide.pickle";
  const DecodePlace place{source, 40, nullptr, "device_traces[0]", std::nullopt};
  SnapshotDecodeNotes notes;
  try {
    decode_trace_entry(entry, place.at(std::uint64_t{0}), notes);
    FAIL() << "expected a ParseError";
  } catch (const ParseError& error) {
    EXPECT_NE(std::string(error.what()).find("addr: expected an int below 2^64, found 1180591620717411303424"),
              std::string::npos)
        << error.what();
  }
}

TEST(SnapshotPickle, MalformedDocumentsNameThePath) {
  auto expect = [](const std::string& json, const std::string& needle) {
    try {
      read_snapshot_json_bytes(json, "bad.json");
      FAIL() << "expected a ParseError for " << json;
    } catch (const ParseError& error) {
      EXPECT_NE(std::string(error.what()).find(needle), std::string::npos) << error.what();
    }
  };
  expect(R"({"device_traces": []})", "missing key \"segments\"");
  expect(R"({"segments": [{"device": 0, "address": 0, "total_size": 1024, "blocks": []}]})", "blocks cover 0 bytes");
  expect(R"({"segments": [], "device_traces": [[{"action": "alloc", "addr": -4, "size": 1}]]})",
         "device_traces[?][0].addr: expected an int >= 0, found a negative int");
  expect(R"({"segments": [], "device_traces": [[{"action": "malloc", "addr": 4, "size": 1}]]})", "unknown action");
  expect(R"({"segments": [], "device_traces": [[{"action": "segment_alloc", "addr": 1048576, "size": 2097152},
                                                    {"action": "free_completed", "addr": 4096, "size": 1}]]})",
         "trace entry 1 (free_completed at 0x1000, 1 bytes): no segment contains this address");
  expect(R"({"segments": [], "device_traces": [[1]]})", "expected a trace entry dict");
  expect(R"({"segments": [)", "invalid JSON");
}

TEST(SnapshotPickle, TimesAndSizesOutOfRangeAreNamedAsSuch) {
  auto expect = [](const std::string& json, const std::string& needle) {
    try {
      read_snapshot_json_bytes(json, "bad.json");
      FAIL() << "expected a ParseError for " << json;
    } catch (const ParseError& error) {
      EXPECT_NE(std::string(error.what()).find(needle), std::string::npos) << error.what();
    }
  };
  // 2^63 is a big int: "expected an int, found int" said nothing.
  expect(R"({"segments": [], "device_traces": [[{"action": "alloc", "addr": 4096, "size": 512, "time_us": 9223372036854775808}]]})",
         "time_us: expected microseconds in int64's range (below 2^63), found 9223372036854775808");
  // PyTorch refuses such a request before recording it; the replay stopped on it naming no file or entry.
  expect(R"({"segments": [], "device_traces": [[{"action": "alloc", "addr": 4096, "size": 2305843009213693952}]]})",
         "device_traces[?][0].size: an alloc of 2305843009213693952 bytes is 1 EiB or more");
}

TEST(SnapshotPickle, TracesWithoutSegmentInformationAreNotRewound) {
  // A CPU-recorded trace has allocations but no segments: its starting state is unknown, not empty.
  Trace trace;
  trace.events.push_back(TraceEvent{0x1000, 4096, 0, 1, TraceAction::kFreeCompleted, kTraceFlagNone});
  trace.events.push_back(TraceEvent{0x2000, 512, 0, 2, TraceAction::kAlloc, kTraceFlagNone});
  const Trace back = read_snapshot_pickle_bytes(snapshot_pickle_bytes(trace), "cpu.pickle");
  EXPECT_EQ(back.events, trace.events);
  EXPECT_FALSE(back.metadata.reconstructed_initial_state);
  EXPECT_NE(back.metadata.provenance.notes.find("initial state not reconstructed"), std::string::npos);
  // With segment information, a contradiction is an error that says how to read the file anyway.
  trace.events.push_back(TraceEvent{0x7f0000000000, 2 << 20, 0, 3, TraceAction::kSegmentAlloc, kTraceFlagNone});
  try {
    read_snapshot_pickle_bytes(snapshot_pickle_bytes(trace), "cpu.pickle");
    FAIL();
  } catch (const ParseError& error) {
    EXPECT_EQ(error.offset(), 2U);  // undone first: a segment_alloc of a segment the (empty) final state lacks
    EXPECT_NE(std::string(error.what()).find("--no-rewind"), std::string::npos) << error.what();
  }
  SnapshotReadOptions no_rewind;
  no_rewind.reconstruct_initial_state = false;
  EXPECT_EQ(read_snapshot_pickle_bytes(snapshot_pickle_bytes(trace), "cpu.pickle", no_rewind).events, trace.events);
}

TEST(SnapshotPickle, OomEntriesUseDeviceFree) {
  Trace trace;
  trace.events.push_back(TraceEvent{123456, 1 << 30, 0, 5, TraceAction::kOom, kTraceFlagNone});
  const std::string data = snapshot_pickle_bytes(trace);
  const PickleValue root = read_pickle_bytes(data, "oom.pickle");
  const auto& entry = root.as_dict().find("device_traces")->as_list().items[0].as_list().items[0].as_dict();
  EXPECT_EQ(entry.find("device_free")->as_int(), 123456);
  EXPECT_EQ(entry.find("addr"), nullptr);
  EXPECT_EQ(read_snapshot_pickle_bytes(data, "oom.pickle").events, trace.events);
}

}  // namespace
}  // namespace offsim::sim
