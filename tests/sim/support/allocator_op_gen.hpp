// RapidCheck generators for allocator workloads. Request sizes are built as boundary * factor + offset
// so that RapidCheck shrinks them toward the sizes where the allocator changes behaviour (512 B block,
// 1 MiB small/large pool limit, 2 MiB small segment, 10 MiB large-segment rule, 20 MiB large segment).
#pragma once

#include <rapidcheck.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "offsim/sim/bytes.hpp"
#include "sim/support/allocator_op.hpp"

namespace offsim::sim::test {

/// Which streams a workload allocates on and records uses on, and whether it changes the fraction.
struct OpMix {
  std::vector<StreamId> alloc_streams = {0};
  std::vector<StreamId> use_streams = {1, 2};
  bool change_fraction = true;
  /// Settings strings applied at runtime (torch._C._accelerator_setAllocatorSettings); none if empty.
  std::vector<std::string> settings_changes = {};
};

inline rc::Gen<std::uint64_t> gen_request_size() {
  namespace gen = rc::gen;
  auto near_boundary = gen::apply(
      [](std::uint64_t boundary, std::uint64_t factor, std::int64_t offset) {
        const std::int64_t bytes = static_cast<std::int64_t>(boundary * factor) + offset;
        return static_cast<std::uint64_t>(bytes < 1 ? 1 : bytes);
      },
      gen::element<std::uint64_t>(512, 1 * MiB, 2 * MiB, 10 * MiB, 20 * MiB),
      gen::inRange<std::uint64_t>(1, 5),
      gen::element<std::int64_t>(0, 1, -1, 512, -512, 4096, -4096, 512 * 1024));
  return gen::weightedOneOf<std::uint64_t>({{4, near_boundary}, {1, gen::inRange<std::uint64_t>(1, 48 * MiB)}});
}

inline rc::Gen<AllocatorOp> gen_op(const OpMix& mix) {
  namespace gen = rc::gen;
  auto alloc_stream = gen::elementOf(mix.alloc_streams);
  auto use_stream = gen::elementOf(mix.use_streams);
  auto target = gen::inRange<std::uint32_t>(0, 64);
  auto malloc_op = gen::apply([](std::uint64_t size, StreamId s) { return AllocatorOp::malloc(size, s); },
                              gen_request_size(), alloc_stream);
  auto free_op = gen::map(target, [](std::uint32_t t) { return AllocatorOp::free(t); });
  auto record_op = gen::apply([](std::uint32_t t, StreamId s) { return AllocatorOp::record_stream(t, s); }, target,
                              use_stream);
  auto complete_op = gen::map(use_stream, [](StreamId s) { return AllocatorOp::mark_stream_complete(s); });
  auto complete_pending_op = gen::map(target, [](std::uint32_t t) { return AllocatorOp::complete_pending_free(t); });
  auto empty_op = gen::just(AllocatorOp::empty_cache());
  auto fraction_op =
      gen::map(gen::element(1.0, 0.5, 0.3, 0.8), [](double f) { return AllocatorOp::set_memory_fraction(f); });
  if (!mix.settings_changes.empty()) {
    auto settings_op = gen::map(gen::elementOf(mix.settings_changes),
                                [](const std::string& text) { return AllocatorOp::update_settings(text); });
    return gen::weightedOneOf<AllocatorOp>({{10, malloc_op},
                                            {7, free_op},
                                            {5, record_op},
                                            {2, complete_op},
                                            {1, complete_pending_op},
                                            {1, empty_op},
                                            {1, fraction_op},
                                            {2, settings_op}});
  }
  if (!mix.change_fraction) {
    return gen::weightedOneOf<AllocatorOp>(
        {{10, malloc_op}, {7, free_op}, {5, record_op}, {2, complete_op}, {1, complete_pending_op}, {1, empty_op}});
  }
  return gen::weightedOneOf<AllocatorOp>(
      {{10, malloc_op}, {7, free_op}, {5, record_op}, {2, complete_op}, {1, complete_pending_op}, {1, empty_op},
       {1, fraction_op}});
}

/// Up to about 200 steps; shrinks by dropping steps.
inline rc::Gen<std::vector<AllocatorOp>> gen_ops(const OpMix& mix) {
  return rc::gen::scale(2.0, rc::gen::container<std::vector<AllocatorOp>>(gen_op(mix)));
}

}  // namespace offsim::sim::test
