// libFuzzer target: a memory snapshot in its JSON form (as memory_viz and `offsim convert` write it), read
// and replayed as `offsim replay` does.
#include "fuzz_target.hpp"
#include "offsim/sim/replay.hpp"
#include "offsim/sim/snapshot_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return offsim::fuzz::refuse_or_accept(data, size, [](std::string bytes) {
    const offsim::sim::Trace trace = offsim::sim::read_snapshot_json_bytes(std::move(bytes), "fuzz.json");
    (void)offsim::sim::replay(trace, offsim::sim::ReplayOptions{});
  });
}
