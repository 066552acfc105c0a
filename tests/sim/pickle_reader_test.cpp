// The pickle reader against hand-assembled pickles: the opcodes Python's pickler (protocols 2-5) and
// TorchScript's pickler emit for plain data, and rejection of everything else with file + offset.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <string>

#include "offsim/sim/errors.hpp"
#include "offsim/sim/pickle_reader.hpp"
#include "offsim/sim/pickle_writer.hpp"

namespace offsim::sim {
namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

std::string short_str(const std::string& text) { return bytes({0x8c, static_cast<int>(text.size())}) + text; }

PickleValue read(const std::string& data) { return read_pickle_bytes(data, "test.pickle"); }

// Expects a ParseError at `offset` whose message contains `needle`.
void expect_error(const std::string& data, std::uint64_t offset, const std::string& needle) {
  try {
    read(data);
    FAIL() << "expected a ParseError containing \"" << needle << "\"";
  } catch (const ParseError& error) {
    EXPECT_EQ(error.source(), "test.pickle");
    EXPECT_EQ(error.offset(), offset) << error.what();
    EXPECT_NE(std::string(error.what()).find(needle), std::string::npos) << error.what();
  }
}

TEST(PickleReader, ReadsProtocol4DictAsPythonWritesIt) {
  // pickle.dumps({"a": [1, 300, -2, 70000], "b": (None, True, False), "c": 1.5}, protocol=4) without FRAME,
  // assembled by hand: EMPTY_DICT MEMOIZE MARK ... SETITEMS STOP.
  const std::string data = bytes({0x80, 4, '}', 0x94, '('}) + short_str("a") + bytes({0x94, ']', 0x94, '(', 'K', 1, 'M', 0x2c, 0x01,
      'J', 0xfe, 0xff, 0xff, 0xff, 'J', 0x70, 0x11, 0x01, 0x00, 'e'}) + short_str("b") +
      bytes({0x94, 'N', 0x88, 0x89, 0x87, 0x94}) + short_str("c") +
      bytes({0x94, 'G', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 'u', '.'});
  const PickleValue root = read(data);
  ASSERT_EQ(root.kind(), PickleValue::Kind::kDict);
  const auto& list = root.as_dict().find("a")->as_list().items;
  ASSERT_EQ(list.size(), 4U);
  EXPECT_EQ(list[0].as_int(), 1);
  EXPECT_EQ(list[1].as_int(), 300);
  EXPECT_EQ(list[2].as_int(), -2);
  EXPECT_EQ(list[3].as_int(), 70000);
  const auto& tuple = root.as_dict().find("b")->as_tuple().items;
  ASSERT_EQ(tuple.size(), 3U);
  EXPECT_TRUE(tuple[0].is_none());
  EXPECT_TRUE(tuple[1].as_bool());
  EXPECT_FALSE(tuple[2].as_bool());
  EXPECT_DOUBLE_EQ(root.as_dict().find("c")->as_float(), 1.5);
}

TEST(PickleReader, FramesMemoAndSharedObjects) {
  // PROTO 4, FRAME, a list holding the same memoized empty list twice (as snapshot "frames" are shared).
  std::string body = bytes({']', 0x94, '(', ']', 0x94, 'h', 1, 'e', '.'});
  std::string data = bytes({0x80, 4, 0x95}) + bytes({static_cast<int>(body.size()), 0, 0, 0, 0, 0, 0, 0}) + body;
  const PickleValue root = read(data);
  const auto& items = root.as_list().items;
  ASSERT_EQ(items.size(), 2U);
  EXPECT_TRUE(items[0].same_object(items[1]));
}

TEST(PickleReader, Long1BigIntsAndLongAddresses) {
  // LONG1 of 6 bytes (an address as Python writes it), of 8 bytes (TorchScript's int64), of 9 bytes (2^64-1).
  const std::string data = bytes({0x80, 2, ']', '(', 0x8a, 6, 0, 0, 0, 0x5c, 0xc1, 0x7f, 0x8a, 8, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0x8a, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x8a, 0,
                                  'e', '.'});
  const PickleValue root = read(data);
  const auto& items = root.as_list().items;
  ASSERT_EQ(items.size(), 4U);
  EXPECT_EQ(items[0].as_int(), 140468448919552);
  EXPECT_EQ(items[1].as_int(), -1);
  ASSERT_EQ(items[2].kind(), PickleValue::Kind::kBigInt);
  EXPECT_EQ(items[2].as_big_int().to_uint64(), 0xFFFFFFFFFFFFFFFFULL);
  EXPECT_EQ(items[2].as_big_int().to_decimal(), "18446744073709551615");
  EXPECT_EQ(items[3].as_int(), 0);
}

TEST(PickleReader, TorchScriptTaggedContainersUnwrap) {
  // torch/csrc/jit/serialization/pickler.cpp with type tags: GLOBAL restore_type_tag, BINPUT, the dict,
  // BINUNICODE "Dict(str, int)", TUPLE2, REDUCE; BINPUT / LONG_BINPUT memo; BININT for ints.
  std::string global = "ctorch.jit._pickle\nrestore_type_tag\n";
  std::string type = "Dict(str, int)";
  const std::string data = bytes({0x80, 2}) + global + bytes({'q', 0, '}', '(', 'X', 1, 0, 0, 0, 'k', 'q', 1, 'J', 7, 0, 0, 0, 'u',
      'X', static_cast<int>(type.size()), 0, 0, 0}) + type + bytes({'r', 2, 0, 0, 0, 0x86, 'R', 'q', 3, '.'});
  const PickleValue root = read(data);
  ASSERT_EQ(root.kind(), PickleValue::Kind::kDict);
  EXPECT_EQ(root.as_dict().find("k")->as_int(), 7);
}

TEST(PickleReader, RejectsObjectsWithPosition) {
  expect_error(bytes({0x80, 4, 0x8f, '.'}), 2, "EMPTY_SET");
  expect_error(bytes({0x80, 4, 'N', 'Q', '.'}), 3, "persistent id");
  expect_error(bytes({0x80, 4, 'I', '1', '\n', '.'}), 2, "protocol 0 text");
  const std::string global = "cos\nsystem\n";
  expect_error(bytes({0x80, 2}) + global + bytes({0x8c, 2, 'l', 's', 0x85, 'R', '.'}), 18, "os.system");
}

TEST(PickleReader, RejectsTruncationAndTrailingBytes) {
  expect_error(bytes({0x80, 4, ']'}), 3, "unexpected end of file");
  expect_error(bytes({0x80, 4, 0x8c, 10, 'a', 'b'}), 4, "runs past the end");
  expect_error(bytes({0x80, 4, 'N', '.', 'N'}), 4, "follow the pickle's STOP");
  expect_error(bytes({0x80, 4, 0x95, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 'N', '.'}), 2, "FRAME");
}

TEST(PickleReader, ADeclaredLengthIsCheckedBeforeAnythingIsAllocated) {
  // 8 bytes: PROTO 4, LONG4 of 2^31 - 1 bytes, POP. The reader once resized its buffer to the declared
  // length before checking the bytes left: 2.25 GB for an 8-byte file. Nothing may be allocated for it.
  const std::string bomb = bytes({0x80, 4, 0x8b, 0xff, 0xff, 0xff, 0x7f, '0'});
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  expect_error(bomb, 2, "LONG of 2147483647 bytes runs past the end of the file (1 bytes left)");
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  // ru_maxrss is the peak resident size in KiB: zero-filling 2 GiB would raise it by about that much.
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 64 * 1024) << "KiB of peak resident memory added";
}

TEST(PickleReader, RejectsBadMemoAndStack) {
  expect_error(bytes({0x80, 4, 'h', 3, '.'}), 2, "memo index 3 was never stored");
  expect_error(bytes({0x80, 4, 'N', 'r', 0xff, 0xff, 0xff, 0x7f, '.'}), 3, "larger than the bytes read");
  expect_error(bytes({0x80, 4, 'a', '.'}), 2, "stack underflow");
  expect_error(bytes({0x80, 4, '}', '(', 'N', 'u', '.'}), 5, "odd number");
  expect_error(bytes({0x80, 4, 'N', 'N', '.'}), 4, "exactly one value");
  expect_error(bytes({0x80, 6, 'N', '.'}), 0, "protocol 6");
}

TEST(PickleReader, RejectsCyclesAndMutationOfSealedContainers) {
  // a = []; a.append(a)
  expect_error(bytes({0x80, 4, ']', 0x94, 'h', 0, 'a', '.'}), 6, "inside itself");
  // inner list placed in outer, then fetched from the memo and appended to: refused.
  expect_error(bytes({0x80, 4, ']', ']', 0x94, 'a', 'h', 0, 'N', 'a', '.'}), 9, "already inside another container");
}

TEST(PickleReader, BoundsNestingDepth) {
  std::string data = bytes({0x80, 4});
  for (int i = 0; i < 200; ++i) data.push_back(']');
  for (int i = 0; i < 199; ++i) data.push_back('a');
  data.push_back('.');
  try {
    read(data);
    FAIL() << "expected a depth error";
  } catch (const ParseError& error) {
    EXPECT_NE(std::string(error.what()).find("nest"), std::string::npos) << error.what();
  }
  PickleReadLimits generous;
  generous.max_depth = 1000;
  EXPECT_NO_THROW(read_pickle_bytes(data, "deep.pickle", nullptr, generous));
}

TEST(PickleReader, RejectsInvalidUtf8) { expect_error(bytes({0x80, 4, 0x8c, 2, 0xc3, 0x28, '.'}), 4, "UTF-8"); }

TEST(PickleReader, MagicDetection) {
  EXPECT_TRUE(looks_like_pickle(bytes({0x80, 4, '}'})));
  EXPECT_TRUE(looks_like_pickle(bytes({0x80, 2})));
  EXPECT_FALSE(looks_like_pickle(bytes({0x80, 6})));
  EXPECT_FALSE(looks_like_pickle("{\"segments\": []}"));
}

// Streaming: a sink that takes every int above 10 out of lists.
class TakeLargeInts : public PickleItemSink {
 public:
  bool take(const PickleList& /*list*/, const PickleValue& item, std::uint64_t /*offset*/) override {
    if (item.kind() != PickleValue::Kind::kInt || item.as_int() <= 10) return false;
    sum += item.as_int();
    ++taken;
    return true;
  }
  std::int64_t sum = 0;
  int taken = 0;
};

TEST(PickleReader, SinkTakesItemsFromBatchedAndSingleRegionLists) {
  // Python batches 1000 items per APPENDS; TorchScript writes one MARK ... APPENDS for a whole list, which
  // the reader streams early. Both must give the same result.
  for (const bool one_region : {false, true}) {
    std::string data = bytes({0x80, 4, ']', '('});
    std::int64_t expected = 0;
    for (int i = 0; i < 20000; ++i) {
      const int value = i % 100;
      data += bytes({'K', value});
      if (value > 10) expected += value;
      if (!one_region && i % 1000 == 999) data += bytes({'e', '('});
    }
    data += bytes({'e', '.'});
    TakeLargeInts sink;
    const PickleValue root = read_pickle_bytes(data, "stream.pickle", &sink);
    EXPECT_EQ(sink.sum, expected);
    EXPECT_EQ(root.as_list().items.size() + static_cast<std::size_t>(sink.taken), 20000U);
    EXPECT_EQ(root.as_list().info.streamed_items, static_cast<std::uint64_t>(sink.taken));
    for (const auto& item : root.as_list().items) EXPECT_LE(item.as_int(), 10);
  }
}

TEST(PickleReader, EarlyStreamedRegionMustEndInAppends) {
  std::string data = bytes({0x80, 4, ']', '('});
  for (int i = 0; i < 5000; ++i) data += bytes({'K', 50});
  data += bytes({'t', '.'});  // TUPLE instead of APPENDS
  TakeLargeInts sink;
  try {
    read_pickle_bytes(data, "stream.pickle", &sink);
    FAIL() << "expected a ParseError";
  } catch (const ParseError& error) {
    EXPECT_NE(std::string(error.what()).find("expected APPENDS"), std::string::npos) << error.what();
  }
}

TEST(PickleWriter, RoundTripsEveryKind) {
  StringByteSink sink;
  PickleWriter writer(sink);
  writer.begin_dict();
  writer.write_str("ints");
  writer.begin_list();
  for (std::int64_t v : {0LL, 255LL, 256LL, 65535LL, 65536LL, -1LL, -129LL, 2147483647LL, -2147483648LL, 2147483648LL,
                         140468448919552LL, -140468448919552LL, 9223372036854775807LL, -9223372036854775807LL - 1}) {
    writer.write_int(v);
  }
  writer.write_uint(18446744073709551615ULL);
  writer.end_list();
  writer.write_str("many");
  writer.begin_list();
  for (int i = 0; i < 2500; ++i) writer.write_str(i % 2 == 0 ? "alloc" : "free_completed");
  writer.end_list();
  writer.write_str("tuple");
  writer.begin_tuple();
  writer.write_float(-0.25);
  writer.write_bool(true);
  writer.write_none();
  writer.write_bytes("\x01\x02");
  writer.end_tuple();
  writer.write_str(std::string(300, 'x'));
  writer.write_str("unicode \xc3\xa9\xe2\x82\xac");
  writer.end_dict();
  writer.finish();

  const PickleValue root = read_pickle_bytes(sink.data(), "written.pickle");
  const auto& ints = root.as_dict().find("ints")->as_list().items;
  ASSERT_EQ(ints.size(), 15U);
  EXPECT_EQ(ints[9].as_int(), 2147483648LL);
  EXPECT_EQ(ints[10].as_int(), 140468448919552LL);
  EXPECT_EQ(ints[11].as_int(), -140468448919552LL);
  EXPECT_EQ(ints[13].as_int(), -9223372036854775807LL - 1);
  EXPECT_EQ(ints[14].as_big_int().to_uint64(), 18446744073709551615ULL);
  const auto& many = root.as_dict().find("many")->as_list().items;
  ASSERT_EQ(many.size(), 2500U);
  EXPECT_EQ(many[2499].as_str(), "free_completed");
  const auto& tuple = root.as_dict().find("tuple")->as_tuple().items;
  ASSERT_EQ(tuple.size(), 4U);
  EXPECT_DOUBLE_EQ(tuple[0].as_float(), -0.25);
  EXPECT_EQ(tuple[3].as_bytes(), "\x01\x02");
  EXPECT_EQ(root.as_dict().find(std::string(300, 'x'))->as_str(), "unicode \xc3\xa9\xe2\x82\xac");
  // Repeated strings are memoized: 2500 strings cost far less than 2500 * 6 bytes.
  EXPECT_LT(sink.data().size(), 2500U * 4U);
}

}  // namespace
}  // namespace offsim::sim
