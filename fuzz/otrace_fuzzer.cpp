// libFuzzer target: offsim's own trace format (.otrace, docs/trace_format.md). Every record carries a
// CRC-32, so almost every mutation stops at a checksum; the target reads each input twice, as it is and
// with its checksums recomputed, so that the mutations also reach the event decoder and the JSON records.
#include <cstring>
#include <string>

#include "fuzz_target.hpp"
#include "offsim/sim/crc32.hpp"
#include "offsim/sim/trace_file.hpp"

namespace {

std::uint32_t le32(const std::string& b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8U) | static_cast<std::uint8_t>(b[at + static_cast<std::size_t>(i)]);
  return v;
}

void put_le32(std::string& b, std::size_t at, std::uint32_t v) {
  for (std::size_t i = 0; i < 4; ++i) b[at + i] = static_cast<char>((v >> (8 * i)) & 0xFFU);
}

// Recomputes every checksum the layout still lets us find (header, chunks, end record), as the writer
// would have written them; stops at the first record whose lengths do not fit the bytes.
std::string with_checksums(std::string b) {
  if (b.size() < 16 || std::memcmp(b.data(), offsim::sim::kTraceFileMagic, 8) != 0) return b;
  std::size_t at = 16;
  const std::uint32_t header_length = le32(b, 12);
  if (header_length > b.size() || at + header_length + 4 > b.size()) return b;
  put_le32(b, at + header_length,
           offsim::sim::crc32(std::string_view(b).substr(at, header_length), offsim::sim::crc32(std::string_view(b).substr(8, 8))));
  at += header_length + 4;
  while (at < b.size()) {
    const char tag = b[at];
    if (tag == 'C' && at + 9 <= b.size()) {
      const std::uint32_t length = le32(b, at + 5);
      if (length > b.size() || at + 9 + length + 4 > b.size()) return b;
      put_le32(b, at + 9 + length, offsim::sim::crc32(std::string_view(b).substr(at, 9 + length)));
      at += 9 + length + 4;
    } else if (tag == 'E' && at + 13 <= b.size()) {
      const std::uint32_t length = le32(b, at + 9);
      if (length > b.size() || at + 13 + length + 4 > b.size()) return b;
      put_le32(b, at + 13 + length,
               offsim::sim::crc32(std::string_view(b).substr(at + 13, length), offsim::sim::crc32(std::string_view(b).substr(at, 13))));
      at += 13 + length + 4;
    } else {
      return b;
    }
  }
  return b;
}

void read_all(std::string bytes) {
  offsim::sim::TraceReader reader("fuzz.otrace", std::move(bytes));
  offsim::sim::TraceEvent event;
  while (reader.next(event)) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  offsim::fuzz::refuse_or_accept(data, size, [](std::string bytes) { read_all(std::move(bytes)); });
  return offsim::fuzz::refuse_or_accept(data, size, [](std::string bytes) { read_all(with_checksums(std::move(bytes))); });
}
