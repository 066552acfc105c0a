// RapidCheck generators for the property suite. Everything shrinks towards something a person can read:
// resolutions towards 512x512, sizes towards the allocator's boundaries (512 B, 1 MiB, 2 MiB multiples,
// 10 MiB, 20 MiB), capacities towards the capacities drivers really report, one call, an empty prior
// history, the default allocator config. Shrinking is greedy: a counterexample is locally minimal only.
#pragma once

#include <rapidcheck.h>

#include <cstdint>
#include <vector>

#include "offsim/check/generated_case.hpp"
#include "offsim/policies/published_measurements.hpp"

namespace offsim::check {

/// Capacities drivers report for real cards, with where each was seen (shrink targets).
struct KnownCapacity {
  std::uint64_t bytes;
  const char* card;
  const char* source;
};
const std::vector<KnownCapacity>& known_capacities();

/// One of `elements`, uniformly; shrinks towards the first. (RapidCheck's elementOf, element and
/// weightedElement do not shrink at all, so a counterexample would keep whatever was drawn.)
template <typename T>
rc::Gen<T> gen_choice(std::vector<T> elements) {
  const std::size_t n = elements.size();  // before the move below: argument order is unspecified
  return rc::gen::map(rc::gen::inRange<std::size_t>(0, n),
                      [elements = std::move(elements)](std::size_t i) { return elements[i]; });
}

/// One of the second members, drawn with the first members as weights; shrinks towards the first pair.
template <typename T>
rc::Gen<T> gen_weighted_choice(std::vector<std::pair<std::size_t, T>> pairs) {
  return rc::Gen<T>([pairs = std::move(pairs)](const rc::Random& random, int /*size*/) {
    std::uint64_t total = 0;
    for (const auto& p : pairs) total += p.first;
    std::uint64_t x = rc::Random(random).next() % total;
    std::size_t i = 0;
    while (x >= pairs[i].first) x -= pairs[i++].first;
    return rc::shrinkable::map(
        rc::shrinkable::shrinkRecur(i, [](std::size_t v) { return rc::shrink::towards<std::size_t>(v, 0); }),
        [pairs](std::size_t k) { return pairs[k].second; });
  });
}

/// Candidate smaller values for `bytes`: allocator boundaries and 2 MiB multiples below it.
std::vector<std::uint64_t> boundary_shrinks(std::uint64_t bytes);

/// A byte count in [lo, hi] that shrinks towards allocator boundaries.
rc::Gen<std::uint64_t> gen_bytes(std::uint64_t lo, std::uint64_t hi);
/// A device total: a real card's reported capacity, or any 0.01 GiB step in [8, 96] GiB.
rc::Gen<std::uint64_t> gen_capacity();
/// What the generator may draw from. An empty list means everything.
struct GeneratorScope {
  std::vector<std::string> pipelines;    // pipeline_templates() names; empty = every template not opt_in
  std::vector<std::string> alloc_confs;  // allocator settings strings
  std::vector<std::string> torch_versions;  // version profiles ("2.9", "2.11")
  bool prior_history = true;             // generate fragmented start states
};

struct GeneratorInputs {
  std::vector<policies::PublishedPoint> points;  // decode/encode working memory: published only
  std::vector<PriorStage> recorded_stages;       // traces/cpu stage traces for prior histories (events = all)
  std::filesystem::path root;                    // for the manifests' sizes
  GeneratorScope scope;
};

/// Points and recorded stage traces under `root` (traces/published, traces/cpu/index.tsv).
GeneratorInputs load_generator_inputs(const std::filesystem::path& root);

/// A whole generated case. One case in three gets a device within a few percent of what its largest
/// stage needs on its own (weights + measured peak + context), so that cases near the boundary where
/// policies must decide well are common, not a matter of luck.
rc::Gen<GeneratedCase> gen_case(const GeneratorInputs& inputs);

/// The PYTORCH_CUDA_ALLOC_CONF strings gen_case draws from ("" is the default allocator).
const std::vector<std::string>& generated_alloc_confs();
/// The PyTorch version profiles gen_case draws from (2.9: ROCm ignores expandable segments; 2.11: not).
const std::vector<std::string>& generated_torch_versions();

}  // namespace offsim::check
