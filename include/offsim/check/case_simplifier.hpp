// A second, deterministic shrinking pass over a failing generated case.
//
// RapidCheck shrinks an `exec` generator left to right and never revisits a pick once a later one has
// shrunk, so its counterexamples can keep an allocator setting, a prior history or a second call that
// the failure no longer needs. This pass offers, for every dimension, the simpler values a person would
// try by hand, and applies the first that still fails until none does: the result is locally minimal
// under simplifications(), which is what the property suite promises (never global minimality).
#pragma once

#include <functional>
#include <vector>

#include "offsim/check/case_generators.hpp"
#include "offsim/check/generated_case.hpp"

namespace offsim::check {

/// One-step simplifications of `c`, simplest first: one call, no prior history (or half of it), the
/// default allocator, no context or other processes, the first torch version and LightX2V granularity,
/// the fewest denoise steps, a smaller published decode of the same grid, a rounder capacity.
std::vector<GeneratedCase> simplifications(const GeneratedCase& c, const GeneratorInputs& inputs);

/// Applies the first simplification that still fails, until none does.
GeneratedCase simplify(GeneratedCase c, const GeneratorInputs& inputs,
                       const std::function<bool(const GeneratedCase&)>& still_fails);

}  // namespace offsim::check
