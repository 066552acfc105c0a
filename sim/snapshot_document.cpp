#include "offsim/sim/snapshot_document.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "offsim/sim/errors.hpp"
#include "offsim/sim/segment_state.hpp"

namespace offsim::sim {

namespace {

using Kind = PickleValue::Kind;

std::string join_devices(const std::vector<int>& devices) {
  std::string text;
  for (int device : devices) text += (text.empty() ? "" : ", ") + std::to_string(device);
  return text.empty() ? "none" : text;
}

void append_note(std::string& notes, const std::string& note) {
  if (notes.find(note) != std::string::npos) return;  // a trace read back from a snapshot offsim wrote
  if (!notes.empty()) notes += "; ";
  notes += note;
}

// The frames of a trace entry as PyTorch writes them: a list of {"filename", "line", "name"} dicts (shared
// between entries through the pickle memo). Anything else has no frames to match.
const std::vector<PickleValue>* frames_of(const PickleDict& entry) {
  const PickleValue* frames = entry.find("frames");
  if (frames == nullptr || frames->kind() != Kind::kList) return nullptr;
  const std::vector<PickleValue>& items = frames->as_list().items;
  return items.empty() ? nullptr : &items;
}

bool frame_matches(const std::vector<PickleValue>& frames, const std::vector<std::string>& patterns) {
  for (const PickleValue& frame : frames) {
    if (frame.kind() != Kind::kDict) continue;
    for (const char* key : {"name", "filename"}) {
      const PickleValue* text = frame.as_dict().find(key);
      if (text == nullptr || text->kind() != Kind::kStr) continue;
      for (const std::string& pattern : patterns) {
        if (text->as_str().find(pattern) != std::string::npos) return true;
      }
    }
  }
  return false;
}

// Whether the entries make sense on their own, from an empty allocator: every block freed was allocated
// in them, every segment freed was allocated in them. That is what a snapshot looks like whose history
// recording was switched off (`_record_memory_history(enabled=None)`) before the dump: its segments are
// the later state, its entries a complete earlier window (transformer_nuggets' test/data/mini_snapshot).
bool consistent_from_empty(const std::vector<TraceEvent>& events) {
  std::set<std::uint64_t> live_blocks;
  std::set<std::uint64_t> pending_frees;
  std::set<std::uint64_t> segments;
  for (const TraceEvent& e : events) {
    switch (e.action) {
      case TraceAction::kAlloc:
        if (!live_blocks.insert(e.addr).second) return false;
        break;
      case TraceAction::kFreeRequested:
        if (live_blocks.count(e.addr) == 0 || !pending_frees.insert(e.addr).second) return false;
        break;
      case TraceAction::kFreeCompleted:
        if (live_blocks.erase(e.addr) == 0) return false;
        pending_frees.erase(e.addr);
        break;
      case TraceAction::kSegmentAlloc:
        if (!segments.insert(e.addr).second) return false;
        break;
      case TraceAction::kSegmentFree:
        if (segments.erase(e.addr) == 0) return false;
        break;
      case TraceAction::kSegmentMap:  // expandable pages: any range may be mapped and unmapped in pieces
      case TraceAction::kSegmentUnmap:
      case TraceAction::kOom:
      case TraceAction::kSnapshot:
        break;
    }
  }
  return true;
}

// The recorded settings decide the rounding and split rules of the rewound blocks; settings offsim cannot
// parse leave PyTorch's defaults (the replay itself reports the parse error).
AllocatorConfig rewind_config(const std::string& alloc_conf) {
  try {
    return AllocatorConfig::parse(alloc_conf);
  } catch (const Error&) {
    return AllocatorConfig{};
  }
}

// torch/csrc/cuda/Module.cpp, _memory_snapshot: allocator_settings holds the settings string PyTorch last parsed
// (PYTORCH_CUDA_ALLOC_CONF, or torch.cuda.memory._set_allocator_settings) and the values it set: max_split_size
// in bytes (SIZE_MAX, written as -1, when unset), garbage_collection_threshold, expandable_segments,
// roundup_power2_divisions. Where the string is empty (a snapshot written by a tool that fills only the values),
// the values say the same thing; each is read only when it differs from PyTorch's default.
std::string alloc_conf_from_fields(const PickleDict& settings, const DecodePlace& place) {
  std::string conf;
  auto add = [&conf](const std::string& option) { conf += (conf.empty() ? "" : ",") + option; };
  if (const PickleValue* split = settings.find("max_split_size"); split != nullptr && split->kind() == Kind::kInt) {
    const std::int64_t bytes = split->as_int();
    if (bytes > 0 && bytes < (std::int64_t{1} << 50)) {
      if (bytes % std::int64_t{1 << 20} != 0) place.at("max_split_size").fail("expected whole MiB, found " + std::to_string(bytes));
      add("max_split_size_mb:" + std::to_string(bytes >> 20));
    }
  }
  if (const PickleValue* gc = settings.find("garbage_collection_threshold"); gc != nullptr && gc->kind() == Kind::kFloat) {
    if (gc->as_float() > 0.0 && gc->as_float() < 1.0) {
      std::ostringstream text;
      text << gc->as_float();
      add("garbage_collection_threshold:" + text.str());
    }
  }
  if (const PickleValue* expandable = settings.find("expandable_segments");
      expandable != nullptr && expandable->kind() == Kind::kBool && expandable->as_bool()) {
    add("expandable_segments:True");
  }
  return conf;
}

std::string join_quoted(const std::vector<std::string>& texts) {
  std::string joined;
  for (const std::string& text : texts) joined += (joined.empty() ? "\"" : ", \"") + text + "\"";
  return joined;
}

}  // namespace

SnapshotDecoder::SnapshotDecoder(std::string source, SnapshotReadOptions options)
    : source_(std::move(source)), options_(std::move(options)) {
  for (const std::string& pattern : options_.fallible_frames) {
    if (pattern.empty()) throw ConfigError("--fallible-frame: an empty text would match every frame");
  }
}

bool SnapshotDecoder::take(const PickleList& list, const PickleValue& item, std::uint64_t item_offset) {
  if (item.kind() == Kind::kReleased) {
    throw ParseError(source_, item_offset,
                     "a list item refers to a trace entry that was already read (shared trace entries are not "
                     "supported; expected each entry to be its own dict)");
  }
  if (item.kind() != Kind::kDict || item.as_dict().find("action") == nullptr) return false;
  DeviceEntries& entries = entries_by_list_[&list];
  const DecodePlace traces{source_, item_offset, nullptr, "device_traces[?]", std::nullopt};
  const DecodePlace place = traces.at(list.info.streamed_items);
  std::optional<TraceEvent> event = decode_trace_entry(item, place, notes_);
  if (!event) return true;
  if (event->action == TraceAction::kAlloc && !options_.fallible_frames.empty()) {
    if (const std::vector<PickleValue>* frames = frames_of(item.as_dict())) {
      ++entries.allocs_with_frames;
      if (frame_matches(*frames, options_.fallible_frames) && (event->flags & kTraceFlagFallible) == 0) {
        event->flags |= kTraceFlagFallible;
        ++entries.flagged_by_frames;
      }
    }
  }
  entries.events.push_back(*event);
  if ((entries.events.size() & 0xffff) == 0 && options_.progress) options_.progress(item_offset);
  return true;
}

Trace SnapshotDecoder::finish(const PickleValue& root) { return std::move(finish_devices(root, options_.device).front()); }

std::vector<Trace> SnapshotDecoder::finish_devices(const PickleValue& root, std::optional<int> only) {
  const DecodePlace top{source_, 0, nullptr, {}, std::nullopt};
  // torch.cuda.memory_snapshot() returns the segment list alone (what _snapshot() holds under "segments"),
  // and users pickle that: a state-only snapshot with no trace entries and no settings.
  const bool segment_list_only = root.kind() == Kind::kList || root.kind() == Kind::kTuple;
  static const PickleDict kNoDocument;
  const PickleDict& document = segment_list_only ? kNoDocument : require_dict(root, top);

  // What every device's trace shares: provenance, settings, notes about the file.
  TraceMetadata common;
  if (const PickleValue* offsim = document.find("offsim_metadata")) {
    common = decode_metadata(*offsim, top.at("offsim_metadata", offsim));
  } else {
    // A snapshot PyTorch wrote: allocator events recorded on a real GPU.
    common.provenance.kind = ProvenanceKind::kGpuMeasured;
  }
  if (common.provenance.source.empty()) common.provenance.source = source_;

  // Segments of every device (checked), by device.
  std::vector<int> devices_with_data;
  std::map<int, std::vector<SegmentInfo>> segments_by_device;
  const PickleValue& segments_value = segment_list_only ? root : require_key(document, "segments", top);
  const DecodePlace segments_place = segment_list_only ? top : top.at("segments", &segments_value);
  if (segment_list_only) {
    append_note(common.provenance.notes,
                "a plain list of segments (torch.cuda.memory_snapshot()): the state at dump time, with no trace "
                "entries and no allocator settings (PyTorch's defaults are assumed)");
  }
  const auto& segments = require_list(segments_value, segments_place);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    SegmentInfo segment = decode_segment(segments[i], segments_place.at(std::uint64_t{i}, &segments[i]), notes_);
    devices_with_data.push_back(segment.device);
    segments_by_device[segment.device].push_back(std::move(segment));
  }

  std::map<int, DeviceEntries*> entries_by_device;
  if (const PickleValue* traces_value = document.find("device_traces")) {
    const DecodePlace traces_place = top.at("device_traces", traces_value);
    const auto& traces = require_list(*traces_value, traces_place);
    for (std::size_t d = 0; d < traces.size(); ++d) {
      const DecodePlace device_place = traces_place.at(std::uint64_t{d}, &traces[d]);
      if (traces[d].kind() != Kind::kList) device_place.fail("expected a list of trace entries, found " + std::string(traces[d].type_name()));
      const PickleList& list = traces[d].as_list();
      if (!list.items.empty()) {
        // Items the decoder did not take are not trace entries.
        const PickleValue& stray = list.items.front();
        device_place.at(std::uint64_t{0}, &stray).fail("expected a trace entry dict with an \"action\" key, found " +
                                            std::string(stray.type_name()));
      }
      if (list.info.streamed_items > 0) devices_with_data.push_back(static_cast<int>(d));
      if (auto found = entries_by_list_.find(&list); found != entries_by_list_.end()) {
        entries_by_device[static_cast<int>(d)] = &found->second;
      }
    }
  }
  std::sort(devices_with_data.begin(), devices_with_data.end());
  devices_with_data.erase(std::unique(devices_with_data.begin(), devices_with_data.end()), devices_with_data.end());
  if (only && !devices_with_data.empty() && !std::binary_search(devices_with_data.begin(), devices_with_data.end(), *only)) {
    throw ParseError(source_, 0,
                     "no trace entries or segments for device " + std::to_string(*only) +
                         " (devices with data: " + join_devices(devices_with_data) + "; choose one with --device)");
  }

  if (const PickleValue* settings_value = document.find("allocator_settings")) {
    const DecodePlace settings_place = top.at("allocator_settings", settings_value);
    const PickleDict& settings = require_dict(*settings_value, settings_place);
    // CUDA builds write PYTORCH_CUDA_ALLOC_CONF; XPU and newer builds PYTORCH_ALLOC_CONF.
    for (const char* key : {"PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF", "PYTORCH_HIP_ALLOC_CONF"}) {
      if (const PickleValue* conf = settings.find(key); conf != nullptr && !conf->is_none()) {
        if (conf->kind() != Kind::kStr) settings_place.at(key).fail("expected a str, found " + std::string(conf->type_name()));
        common.alloc_conf = conf->as_str();
        break;
      }
    }
    if (common.alloc_conf.empty()) {
      common.alloc_conf = alloc_conf_from_fields(settings, settings_place);
      if (!common.alloc_conf.empty()) {
        append_note(common.provenance.notes, "allocator settings \"" + common.alloc_conf +
                                                 "\" taken from allocator_settings' fields (the settings string is empty)");
      }
    }
    if (const PickleValue* entries = settings.find("trace_alloc_max_entries"); entries != nullptr && entries->kind() == Kind::kInt) {
      append_note(common.provenance.notes, "ring buffer size (trace_alloc_max_entries) " + std::to_string(entries->as_int()));
    }
    if (const PickleValue* overflow = settings.find("trace_alloc_overflowed"); overflow != nullptr && overflow->kind() == Kind::kBool) {
      append_note(common.provenance.notes, overflow->as_bool() ? "ring buffer overflowed: earlier entries were dropped"
                                                               : "ring buffer did not overflow");
    }
  }

  if (notes_.legacy_free_entries > 0) {
    append_note(common.provenance.notes, std::to_string(notes_.legacy_free_entries) +
                                             " legacy \"free\" entries (PyTorch 2.0) read as free_completed");
  }
  if (notes_.annotate_entries > 0) {
    append_note(common.provenance.notes, std::to_string(notes_.annotate_entries) + " annotate entries skipped");
  }
  if (notes_.entries_without_time > 0) {
    append_note(common.provenance.notes,
                std::to_string(notes_.entries_without_time) + " entries without time_us (time 0)");
  }
  if (notes_.entries_without_stream > 0) {
    append_note(common.provenance.notes,
                std::to_string(notes_.entries_without_stream) + " entries without stream (default stream 0)");
  }
  if (notes_.blocks_from_history > 0) {
    append_note(common.provenance.notes, std::to_string(notes_.blocks_from_history) +
                                             " blocks without requested_size (2.0-era; taken from history or size)");
  }

  std::vector<int> wanted;
  if (only) wanted = {*only};
  else if (devices_with_data.empty()) wanted = {0};
  else wanted = devices_with_data;
  std::vector<Trace> result;
  for (int device : wanted) {
    Trace& trace = result.emplace_back();
    trace.metadata = common;
    trace.metadata.device = device;
    trace.final_segments = std::move(segments_by_device[device]);
    sort_and_check_disjoint(trace.final_segments, segments_place);
    DeviceEntries* entries = entries_by_device.count(device) != 0 ? entries_by_device[device] : nullptr;
    if (entries != nullptr) trace.events = std::move(entries->events);
    note_fallible_frames(trace.metadata, entries);
    rewind(trace);
  }
  return result;
}

void SnapshotDecoder::note_fallible_frames(TraceMetadata& metadata, const DeviceEntries* entries) const {
  if (options_.fallible_frames.empty()) return;
  const std::uint64_t with_frames = entries != nullptr ? entries->allocs_with_frames : 0;
  const std::uint64_t flagged = entries != nullptr ? entries->flagged_by_frames : 0;
  const std::string patterns = join_quoted(options_.fallible_frames);
  append_note(metadata.provenance.notes,
              with_frames == 0
                  ? "fallible frames " + patterns + " matched nothing: no alloc entry has stack frames (record with "
                    "torch.cuda.memory._record_memory_history(stacks=\"python\" or \"all\"))"
                  : std::to_string(flagged) + " of " + std::to_string(with_frames) +
                        " allocations with stack frames flagged fallible (a frame matched " + patterns + ")");
}

void SnapshotDecoder::rewind(Trace& trace) const {
  TraceMetadata& metadata = trace.metadata;
  metadata.reconstructed_initial_state = false;
  const bool has_segment_information =
      !trace.final_segments.empty() || std::any_of(trace.events.begin(), trace.events.end(), [](const TraceEvent& e) {
        return e.action == TraceAction::kSegmentAlloc || e.action == TraceAction::kSegmentFree ||
               e.action == TraceAction::kSegmentMap || e.action == TraceAction::kSegmentUnmap;
      });
  if (!options_.reconstruct_initial_state) return;
  if (!has_segment_information) {
    // Nothing to rewind from (e.g. a CPU-recorded trace written as a snapshot): the starting state is
    // unknown, which is not the same as empty.
    append_note(metadata.provenance.notes, "no segments and no segment events: initial state not reconstructed");
    return;
  }
  SegmentState state(trace.final_segments);
  for (std::size_t i = trace.events.size(); i-- > 0;) {
    try {
      state.undo(trace.events[i], i, source_);
    } catch (const ParseError& error) {
      // The dump-time segments are not where these entries lead. If the entries stand on their own from an
      // empty allocator, the recording stopped before the dump: replay them from empty, and say so.
      if (consistent_from_empty(trace.events)) {
        append_note(metadata.provenance.notes,
                    "the trace entries do not lead to the dump-time segments (entry " +
                        std::to_string(error.offset()) +
                        " cannot be undone from them: history recording was stopped before the snapshot was "
                        "taken), but they stand on their own: replayed from an empty allocator, as --no-rewind "
                        "does");
        return;
      }
      const std::string prefix = error.source() + ":" + std::to_string(error.offset()) + ": ";
      const std::string what = error.what();
      throw ParseError(source_, error.offset(),
                       (what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what) +
                           " (device " + std::to_string(metadata.device) +
                           "; rewinding the dump-time segments through the trace entries, last to first; the entries "
                           "do not lead to the recorded segments. `offsim convert --no-rewind` reads the file "
                           "without reconstructing the starting state)");
    }
  }
  const std::size_t widened = state.settle_extents(rewind_config(metadata.alloc_conf));
  trace.initial_segments = state.segments(metadata.device);
  // A state-only snapshot: nothing was undone, the start state is the dump-time state as recorded.
  if (trace.events.empty()) return;
  metadata.reconstructed_initial_state = true;
  append_note(metadata.provenance.notes,
              "initial state reconstructed by undoing " + std::to_string(trace.events.size()) +
                  " trace entries from the dump-time segments (as PyTorch's memory_viz does); blocks freed "
                  "in the window but not allocated in it are sized by the allocator's rounding and split rules (" +
                  std::to_string(widened) + " kept an unsplit remainder of at most 1 MiB)");
}

Trace read_snapshot_document(ByteReader& input, PlainValueParser parse, const SnapshotReadOptions& options) {
  SnapshotDecoder decoder(input.source(), options);
  const PickleValue root = parse(input, &decoder, PickleReadLimits{});
  return decoder.finish(root);
}

std::vector<Trace> read_snapshot_document_devices(ByteReader& input, PlainValueParser parse,
                                                  const SnapshotReadOptions& options) {
  SnapshotDecoder decoder(input.source(), options);
  const PickleValue root = parse(input, &decoder, PickleReadLimits{});
  return decoder.finish_devices(root, std::nullopt);
}

void write_snapshot_document(StructuredWriter& writer, TraceEventSource& source) {
  const TraceMetadata& metadata = source.metadata();
  if (metadata.device < 0) throw Error("cannot write a snapshot for device " + std::to_string(metadata.device));
  writer.begin_dict();
  writer.write_str("device_traces");
  writer.begin_list();
  for (int d = 0; d < metadata.device; ++d) {
    writer.begin_list();
    writer.end_list();
  }
  writer.begin_list();
  TraceEvent event;
  while (source.next(event)) encode_trace_entry(writer, event);
  writer.end_list();
  writer.end_list();
  writer.write_str("segments");
  encode_segments(writer, source.final_segments());
  writer.write_str("allocator_settings");
  writer.begin_dict();
  writer.write_str("PYTORCH_CUDA_ALLOC_CONF");
  writer.write_str(metadata.alloc_conf);
  writer.end_dict();
  writer.write_str("offsim_metadata");
  encode_metadata(writer, metadata);
  writer.end_dict();
  writer.finish();
}

std::string describe_trace(const Trace& trace) {
  std::array<std::uint64_t, kTraceActionCount> counts{};
  for (const TraceEvent& event : trace.events) ++counts[static_cast<std::size_t>(event.action)];
  std::ostringstream out;
  out << trace.events.size() << " events on device " << trace.metadata.device << " (";
  bool first = true;
  for (int i = 0; i < kTraceActionCount; ++i) {
    if (counts[static_cast<std::size_t>(i)] == 0) continue;
    out << (first ? "" : ", ") << to_string(static_cast<TraceAction>(i)) << " " << counts[static_cast<std::size_t>(i)];
    first = false;
  }
  out << "); " << trace.final_segments.size() << " segments at the end, " << trace.initial_segments.size()
      << " at the start";
  if (trace.metadata.reconstructed_initial_state) out << " (reconstructed by rewinding the recorded events)";
  return out.str();
}

}  // namespace offsim::sim
