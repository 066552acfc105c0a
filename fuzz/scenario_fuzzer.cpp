// libFuzzer target: a scenario file (offsim-scenario/1, docs/scenario_format.md), read as `offsim eval
// --suite` reads it, with manifests and traces resolved against the checkout. A scenario that is accepted
// must print (to_json, what counterexamples are written as) into a document that reads back.
#include "fuzz_target.hpp"
#include "offsim/policies/scenario.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return offsim::fuzz::refuse_or_accept(data, size, [](std::string bytes) {
    using offsim::policies::JsonDocument;
    using offsim::policies::Scenario;
    const Scenario s = Scenario::from_document(JsonDocument::parse(std::move(bytes), "fuzz.json"), OFFSIM_SOURCE_DIR);
    const nlohmann::json printed = s.to_json();
    try {
      (void)Scenario::from_json(printed, "printed", OFFSIM_SOURCE_DIR);
    } catch (const offsim::Error& e) {
      // Not a refusal of the input: offsim wrote something it does not read back.
      throw std::logic_error(std::string("an accepted scenario does not read back from its to_json(): ") + e.what());
    }
  });
}
