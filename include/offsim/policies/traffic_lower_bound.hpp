// A lower bound on the weight bytes any policy must move host -> device to run a scenario, the yardstick
// next to the look-ahead policy (exact minimum traffic with variable-size models is NP-hard, so offsim
// computes a bound instead of the optimum). It rests on two facts that hold for every policy, cache or
// schedule, full load or streaming: every byte of a model's weights is on the device at some moment of each
// stage that runs the model, and at any moment the device holds at most its capacity.
//
//   compulsory  = sum over models used by any stage of (model bytes - bytes on the device at the start):
//                 each byte not resident at the start crosses at least once before its first use.
//   reload(t)   = for one stage occurrence t (call c, stage s): live(t) = models NOT used by s that are used
//                 (or resident) before t and used again after t; room(t) = capacity - need(t), where
//                 capacity = device total - context - other processes and need(t) = max(peak allocated bytes
//                 of s's working memory, largest single tensor of s's models) (the least s can hold, whatever
//                 the policy streams). At most room(t) bytes of live(t) can stay through t; the rest
//                 (bytes(live(t)) - room(t), if positive) were on the device before t and are needed after it,
//                 so they cross again after t: transfers distinct from the compulsory ones, which happen
//                 before a byte's first use.
//   bound       = compulsory + max over t of reload(t)  (one t only: reloads counted at two points could be
//                 the same transfer).
//
// Peak allocated bytes are the raw sizes of the working memory's live allocations (no allocator rounding),
// so need(t) never over-states what a stage holds. The bound counts tensor bytes, as ResidentModel's
// bytes_to_device does; a policy that streams weights without counting them as traffic can appear below it.
#pragma once

#include <cstdint>
#include <string>

#include "offsim/policies/scenario.hpp"

namespace offsim::policies {

struct TrafficLowerBound {
  std::uint64_t compulsory = 0;
  std::uint64_t reload = 0;  // max over stage occurrences
  std::string reload_at;     // "call 2, stage \"decode\"" for the occurrence that gives `reload`, or empty
  std::uint64_t total() const { return compulsory + reload; }
};

/// The bound for `calls` calls of the scenario (its own number when calls <= 0).
TrafficLowerBound traffic_lower_bound(const Scenario& scenario, int calls = 0);

/// Peak of the sum of live allocation sizes in a working-memory trace.
std::uint64_t peak_allocated_bytes(const sim::Trace& trace);

}  // namespace offsim::policies
