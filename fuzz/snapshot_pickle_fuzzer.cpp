// libFuzzer target: a PyTorch memory snapshot pickle (torch.cuda.memory._dump_snapshot), read as `offsim
// replay` reads it and then replayed, so that what the reader accepts is also what the simulator can run.
#include "fuzz_target.hpp"
#include "offsim/sim/replay.hpp"
#include "offsim/sim/snapshot_pickle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return offsim::fuzz::refuse_or_accept(data, size, [](std::string bytes) {
    const offsim::sim::Trace trace = offsim::sim::read_snapshot_pickle_bytes(std::move(bytes), "fuzz.pickle");
    (void)offsim::sim::replay(trace, offsim::sim::ReplayOptions{});
  });
}
