// Fuzzed readers: every trace reader, given a damaged file (truncated, bytes flipped, bytes inserted,
// values of the wrong type, random opcodes), either reads it or throws offsim::ParseError naming the
// file and a position inside it. Never another exception, never a crash or a hang (these also run
// under ASan/UBSan in CI).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <typeinfo>
#include <vector>

#include "offsim/sim/errors.hpp"
#include "offsim/sim/pickle_reader.hpp"
#include "offsim/sim/snapshot_json.hpp"
#include "offsim/sim/snapshot_pickle.hpp"
#include "offsim/sim/trace_file.hpp"
#include "sim/support/trace_generator.hpp"

namespace offsim::sim {
namespace {

enum class Format { kPickle, kJson, kTrace };

const std::string& valid_file(Format format) {
  static const Trace trace = test::generate_trace(test::GeneratedTraceOptions{99, 60, 30, true, 0});
  static const std::string pickle = snapshot_pickle_bytes(trace);
  static const std::string json = snapshot_json_bytes(trace);
  static const std::string otrace = [] {
    const auto path = std::filesystem::temp_directory_path() / "offsim_trace_io_property.otrace";
    write_trace_file(path, trace);
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::filesystem::remove(path);
    return bytes;
  }();
  switch (format) {
    case Format::kPickle: return pickle;
    case Format::kJson: return json;
    case Format::kTrace: return otrace;
  }
  return pickle;
}

void read_with(Format format, const std::string& bytes) {
  switch (format) {
    case Format::kPickle: read_snapshot_pickle_bytes(bytes, "fuzz.input"); return;
    case Format::kJson: read_snapshot_json_bytes(bytes, "fuzz.input"); return;
    case Format::kTrace: {
      TraceReader reader("fuzz.input", bytes);
      TraceEvent event;
      while (reader.next(event)) {
      }
      return;
    }
  }
}

/// Reads `bytes`; success and a well-formed ParseError both pass, anything else fails the property.
void read_or_parse_error(Format format, const std::string& bytes) {
  try {
    read_with(format, bytes);
  } catch (const ParseError& error) {
    RC_ASSERT(error.source() == "fuzz.input");
    // Rewinding reports the trace entry's index as the position; readers report byte offsets.
    RC_ASSERT(error.offset() <= bytes.size());
    RC_ASSERT(std::string(error.what()).rfind("fuzz.input:" + std::to_string(error.offset()) + ": ", 0) == 0);
  } catch (const std::exception& error) {
    RC_FAIL(std::string("not a ParseError: ") + typeid(error).name() + ": " + error.what());
  }
}

rc::Gen<Format> any_format() { return rc::gen::element(Format::kPickle, Format::kJson, Format::kTrace); }

RC_GTEST_PROP(TraceReaderFuzz, ValidFilesRead, ()) {
  const Format format = *any_format();
  read_with(format, valid_file(format));  // throws, and so fails, if the generator's files are not readable
}

RC_GTEST_PROP(TraceReaderFuzz, TruncatedFiles, ()) {
  const Format format = *any_format();
  const std::string& file = valid_file(format);
  const auto length = *rc::gen::inRange<std::size_t>(0, file.size());
  read_or_parse_error(format, file.substr(0, length));
}

RC_GTEST_PROP(TraceReaderFuzz, FlippedBytes, ()) {
  const Format format = *any_format();
  std::string file = valid_file(format);
  const auto flips = *rc::gen::inRange<int>(1, 9);
  for (int i = 0; i < flips; ++i) {
    const auto at = *rc::gen::inRange<std::size_t>(0, file.size());
    const auto mask = *rc::gen::inRange<int>(1, 256);
    file[at] = static_cast<char>(static_cast<unsigned char>(file[at]) ^ static_cast<unsigned>(mask));
  }
  read_or_parse_error(format, file);
}

RC_GTEST_PROP(TraceReaderFuzz, InsertedAndDeletedBytes, ()) {
  const Format format = *any_format();
  std::string file = valid_file(format);
  const auto at = *rc::gen::inRange<std::size_t>(0, file.size());
  if (*rc::gen::arbitrary<bool>()) {
    const auto inserted = *rc::gen::container<std::string>(*rc::gen::inRange<std::size_t>(1, 16), rc::gen::arbitrary<char>());
    file.insert(at, inserted);
  } else {
    file.erase(at, *rc::gen::inRange<std::size_t>(1, 16));
  }
  read_or_parse_error(format, file);
}

// Replaces one value of the JSON document with a value of another type.
RC_GTEST_PROP(TraceReaderFuzz, WrongTypesInSnapshots, ()) {
  nlohmann::json document = nlohmann::json::parse(valid_file(Format::kJson));
  std::vector<nlohmann::json*> values;
  std::vector<nlohmann::json*> pending{&document};
  while (!pending.empty()) {
    nlohmann::json* value = pending.back();
    pending.pop_back();
    values.push_back(value);
    if (value->is_structured()) {
      for (auto& child : *value) pending.push_back(&child);
    }
  }
  nlohmann::json* target = values[*rc::gen::inRange<std::size_t>(0, values.size())];
  const auto replacement = *rc::gen::inRange<int>(0, 8);
  switch (replacement) {
    case 0: *target = nullptr; break;
    case 1: *target = "text"; break;
    case 2: *target = -1; break;
    case 3: *target = 1.5; break;
    case 4: *target = true; break;
    case 5: *target = nlohmann::json::array({1, 2}); break;
    case 6: *target = nlohmann::json::object({{"action", "alloc"}}); break;
    default: *target = 18446744073709551615ULL; break;
  }
  const std::string text = document.dump();
  read_or_parse_error(Format::kJson, text);
}

RC_GTEST_PROP(TraceReaderFuzz, RandomPickleOpcodes, ()) {
  // Plausible opcodes (and arguments) after PROTO 4, so that the machine gets deep before failing.
  static const std::string kOpcodes = "(.012N]})aeslutdqrhjKMJG\x80\x85\x86\x87\x88\x89\x8a\x8c\x94\x95";
  std::string data("\x80\x04", 2);
  const auto length = *rc::gen::inRange<std::size_t>(1, 200);
  for (std::size_t i = 0; i < length; ++i) {
    if (*rc::gen::inRange<int>(0, 4) == 0) {
      data.push_back(*rc::gen::arbitrary<char>());
    } else {
      data.push_back(kOpcodes[*rc::gen::inRange<std::size_t>(0, kOpcodes.size())]);
    }
  }
  try {
    read_pickle_bytes(data, "fuzz.input");
  } catch (const ParseError& error) {
    RC_ASSERT(error.offset() <= data.size());
  } catch (const std::exception& error) {
    RC_FAIL(std::string("not a ParseError: ") + error.what());
  }
}

}  // namespace
}  // namespace offsim::sim
