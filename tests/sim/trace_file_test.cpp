// offsim's own trace format: round trips, chunking, streaming, corruption reported with a position,
// atomic output.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "offsim/sim/crc32.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/trace_file.hpp"
#include "sim/support/trace_generator.hpp"

namespace offsim::sim {
namespace {

class TraceFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = std::filesystem::temp_directory_path() /
                 ("offsim_trace_file_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(directory_);
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  static std::string slurp(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  std::filesystem::path directory_;
};

TEST(Crc32, MatchesZlib) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926U);  // the standard check value of CRC-32/ISO-HDLC
  EXPECT_EQ(crc32(""), 0U);
  EXPECT_EQ(crc32("56789", crc32("1234")), crc32("123456789"));
}

TEST_F(TraceFileTest, RoundTripKeepsEverything) {
  Trace trace = test::generate_trace(test::GeneratedTraceOptions{11, 200000, 300, true, 0});
  trace.metadata.provenance.citation = "unit test";
  trace.metadata.device_total_bytes = 85899345920ULL;
  trace.events.push_back(TraceEvent{5, 1, 0, -3, TraceAction::kSnapshot, kTraceFlagNone});  // time going back
  const auto path = directory_ / "t.otrace";
  write_trace_file(path, trace);
  const Trace back = read_trace_file(path);
  EXPECT_EQ(back.events, trace.events);
  EXPECT_EQ(back.initial_segments, trace.initial_segments);
  EXPECT_EQ(back.final_segments, trace.final_segments);
  EXPECT_EQ(back.metadata.provenance.citation, "unit test");
  EXPECT_EQ(back.metadata.device_total_bytes, 85899345920ULL);
  EXPECT_EQ(back.metadata.provenance.kind, ProvenanceKind::kSynthetic);
  // Compact: the event records take about 10 bytes per event (a TraceEvent is 40 in memory).
  Trace events_only;
  events_only.events = trace.events;
  write_trace_file(path, events_only);
  EXPECT_LT(std::filesystem::file_size(path), trace.events.size() * 12);
}

TEST_F(TraceFileTest, ReaderStreamsWithoutTheFinalSegmentsUntilTheEnd) {
  const Trace trace = test::generate_trace(test::GeneratedTraceOptions{12, 1000, 100, false, 0});
  const auto path = directory_ / "t.otrace";
  write_trace_file(path, trace);
  TraceReader reader(path);
  EXPECT_EQ(reader.initial_segments(), trace.initial_segments);
  EXPECT_TRUE(reader.final_segments().empty());
  TraceEvent event;
  std::size_t count = 0;
  while (reader.next(event)) {
    EXPECT_EQ(event, trace.events[count]);
    ++count;
  }
  EXPECT_EQ(count, trace.events.size());
  EXPECT_EQ(reader.final_segments(), trace.final_segments);
  EXPECT_FALSE(reader.next(event));
}

TEST_F(TraceFileTest, WriterLeavesNothingWithoutFinish) {
  const auto path = directory_ / "partial.otrace";
  {
    TraceWriter writer(path, TraceMetadata{}, {});
    writer.append(TraceEvent{});
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(directory_));
}

TEST_F(TraceFileTest, CorruptionIsReportedWithTheChunkPosition) {
  const Trace trace = test::generate_trace(test::GeneratedTraceOptions{13, 100000, 0, false, 0});
  const auto path = directory_ / "t.otrace";
  write_trace_file(path, trace);
  std::string data = slurp(path);
  // Flip a byte in the middle of the second chunk's payload.
  const std::size_t header_end = 16 + (static_cast<std::uint8_t>(data[12]) | static_cast<std::uint8_t>(data[13]) << 8U |
                                       static_cast<std::uint8_t>(data[14]) << 16U) + 4;
  const std::uint32_t first_length = static_cast<std::uint8_t>(data[header_end + 5]) |
                                     static_cast<std::uint8_t>(data[header_end + 6]) << 8U |
                                     static_cast<std::uint8_t>(data[header_end + 7]) << 16U;
  const std::size_t second_chunk = header_end + 9 + first_length + 4;
  ASSERT_EQ(data[second_chunk], 'C');
  std::string corrupt = data;
  corrupt[second_chunk + 100] = static_cast<char>(corrupt[second_chunk + 100] ^ 0x10);
  TraceReader reader("corrupt.otrace", corrupt);
  TraceEvent event;
  try {
    while (reader.next(event)) {
    }
    FAIL() << "expected a checksum error";
  } catch (const ParseError& error) {
    EXPECT_EQ(error.offset(), second_chunk);
    EXPECT_NE(std::string(error.what()).find("chunk checksum mismatch (events 65536 to"), std::string::npos) << error.what();
  }
  EXPECT_EQ(reader.events_read(), 65536U);  // everything before the corrupt chunk was delivered

  // Truncation: the end record is missing.
  TraceReader truncated("truncated.otrace", data.substr(0, second_chunk));
  try {
    while (truncated.next(event)) {
    }
    FAIL() << "expected a truncation error";
  } catch (const ParseError& error) {
    EXPECT_EQ(error.offset(), second_chunk);
    EXPECT_NE(std::string(error.what()).find("writer did not finish"), std::string::npos) << error.what();
  }
}

constexpr std::uint64_t kInsideJson = ~std::uint64_t{0};

TEST_F(TraceFileTest, HeaderProblemsAreNamed) {
  // offset 0 here means "somewhere inside the header JSON" (the offset of the value that is wrong).
  const auto expect = [](const std::string& data, std::uint64_t offset, const std::string& needle) {
    try {
      TraceReader reader("h.otrace", data);
      FAIL() << "expected a ParseError";
    } catch (const ParseError& error) {
      if (offset == kInsideJson) {
        EXPECT_GT(error.offset(), 16U) << error.what();
        EXPECT_LT(error.offset(), data.size()) << error.what();
      } else {
        EXPECT_EQ(error.offset(), offset) << error.what();
      }
      EXPECT_NE(std::string(error.what()).find(needle), std::string::npos) << error.what();
    }
  };
  expect("{\"segments\": []}", 0, "not an offsim trace");
  std::string header(kTraceFileMagic, 8);
  expect(header + std::string("\x02\0\0\0\0\0\0\0", 8), 8, "newer than this offsim reads");
  expect(header + std::string("\x01\0\0\0\xff\0\0\0", 8), 12, "runs past the end");
  const std::string json = R"({"metadata": {"provenance": {"kind": "invented"}}, "initial_segments": []})";
  std::string fields("\x01\0\0\0", 4);
  fields += static_cast<char>(json.size());
  fields += std::string(3, '\0');
  std::string file = header + fields + json;
  const std::uint32_t crc = crc32(json, crc32(fields));
  for (int i = 0; i < 4; ++i) file.push_back(static_cast<char>((crc >> (8 * i)) & 0xFFU));
  expect(file, kInsideJson, "metadata.provenance.kind: unknown provenance \"invented\"");
}

TEST_F(TraceFileTest, AnAllocOfOneExbibyteIsRefusedNamingTheEvent) {
  // PyTorch refuses such a request before recording it; a replay stopped on "Tried to allocate more than
  // 1EB memory" without naming the file or the event.
  const std::filesystem::path path = directory_ / "huge.otrace";
  {
    TraceWriter writer(path, TraceMetadata{}, {});
    TraceEvent small;
    small.action = TraceAction::kAlloc;
    small.addr = 4096;
    small.size = 512;
    writer.append(small);
    TraceEvent huge = small;
    huge.addr = 8192;
    huge.size = std::uint64_t{1} << 60;
    writer.append(huge);
    writer.finish();
  }
  TraceReader reader(path);
  TraceEvent event;
  ASSERT_TRUE(reader.next(event));
  try {
    (void)reader.next(event);
    FAIL() << "expected a ParseError";
  } catch (const ParseError& error) {
    EXPECT_EQ(error.source(), path.string());
    EXPECT_NE(std::string(error.what()).find("event 1: an alloc of 1152921504606846976 bytes is 1 EiB or more"),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace offsim::sim
