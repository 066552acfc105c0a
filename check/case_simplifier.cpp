#include "offsim/check/case_simplifier.hpp"

#include <algorithm>
#include <cmath>

#include "offsim/sim/bytes.hpp"

namespace offsim::check {

namespace {

// A capacity rounded down and up to `step`, when that differs from it.
void round_capacity(const GeneratedCase& c, std::uint64_t step, std::vector<GeneratedCase>& out) {
  for (std::uint64_t rounded : {c.capacity / step * step, (c.capacity + step - 1) / step * step}) {
    if (rounded == 0 || rounded == c.capacity) continue;
    GeneratedCase s = c;
    s.capacity = rounded;
    out.push_back(std::move(s));
  }
}

// 0: a capacity a real card reports; 1: whole GiB; 2: tenth of a GiB; 3: anything else.
int capacity_rank(std::uint64_t capacity) {
  for (const KnownCapacity& k : known_capacities()) {
    if (k.bytes == capacity) return 0;
  }
  if (capacity % GiB == 0) return 1;
  if (capacity % (GiB / 10) == 0) return 2;
  return 3;
}

}  // namespace

std::vector<GeneratedCase> simplifications(const GeneratedCase& c, const GeneratorInputs& inputs) {
  std::vector<GeneratedCase> out;
  const auto with = [&](auto&& change) {
    GeneratedCase s = c;
    change(s);
    out.push_back(std::move(s));
  };
  if (c.calls > 1) with([](GeneratedCase& s) { s.calls = 1; });
  if (c.prior_stage || !c.prior.empty()) {
    with([](GeneratedCase& s) {
      s.prior_stage.reset();
      s.prior.clear();
    });
  }
  if (c.prior_stage) {
    // A cut at event 0 runs nothing, but it still reads as a history in the printed case.
    with([](GeneratedCase& s) { s.prior_stage.reset(); });
    if (c.prior_stage->events > 0) with([](GeneratedCase& s) { s.prior_stage->events /= 2; });
    if (c.prior_stage->keep_live) with([](GeneratedCase& s) { s.prior_stage->keep_live = false; });
  }
  if (c.prior.size() > 1) with([](GeneratedCase& s) { s.prior.resize(s.prior.size() / 2); });
  // The default allocator, unless the search was scoped to settings that exclude it.
  const auto& confs = inputs.scope.alloc_confs;
  if (!c.alloc_conf.empty() && (confs.empty() || std::find(confs.begin(), confs.end(), "") != confs.end())) {
    with([](GeneratedCase& s) { s.alloc_conf.clear(); });
  }
  if (c.context != 0) with([](GeneratedCase& s) { s.context = 0; });
  if (c.other_processes != 0) with([](GeneratedCase& s) { s.other_processes = 0; });
  const auto& versions = inputs.scope.torch_versions;
  const std::string& first = generated_torch_versions().front();
  if (c.torch != first && (versions.empty() || std::find(versions.begin(), versions.end(), first) != versions.end())) {
    with([&first](GeneratedCase& s) { s.torch = first; });
  }
  if (c.lightx2v_granularity != "model") with([](GeneratedCase& s) { s.lightx2v_granularity = "model"; });
  if (c.group_offload_leaf_level || c.group_offload_blocks_per_group != 1) {
    with([](GeneratedCase& s) {
      s.group_offload_leaf_level = false;
      s.group_offload_blocks_per_group = 1;
    });
  }
  const PipelineTemplate& t = pipeline_templates()[c.pipeline];
  if (!t.denoise_steps.empty()) {
    const int fewest = *std::min_element(t.denoise_steps.begin(), t.denoise_steps.end());
    if (c.denoise_steps != fewest) with([fewest](GeneratedCase& s) { s.denoise_steps = fewest; });
  }
  // Smaller decodes of the same published grid, smallest first (with the matching encode, if any).
  std::vector<const policies::PublishedPoint*> smaller;
  for (const policies::PublishedPoint& p : inputs.points) {
    if (p.grid == c.decode.grid && p.family == c.decode.family && p.op == policies::VaeOp::decode &&
        static_cast<long>(p.height) * p.width < static_cast<long>(c.decode.height) * c.decode.width) {
      smaller.push_back(&p);
    }
  }
  std::stable_sort(smaller.begin(), smaller.end(), [](const auto* a, const auto* b) {
    return static_cast<long>(a->height) * a->width < static_cast<long>(b->height) * b->width;
  });
  for (const policies::PublishedPoint* p : smaller) {
    with([&](GeneratedCase& s) {
      s.decode = *p;
      if (!s.encode) return;
      s.encode.reset();
      for (const policies::PublishedPoint& e : inputs.points) {
        if (e.grid == p->grid && e.family == p->family && e.op == policies::VaeOp::encode && e.height == p->height &&
            e.width == p->width) {
          s.encode = e;
        }
      }
    });
  }
  // Rounder capacities only (a card's reported figure, then whole, then tenth GiB), so moves never cycle.
  const int rank = capacity_rank(c.capacity);
  if (rank > 0) {
    for (const KnownCapacity& k : known_capacities()) with([&k](GeneratedCase& s) { s.capacity = k.bytes; });
  }
  if (rank > 1) round_capacity(c, GiB, out);
  if (rank > 2) round_capacity(c, GiB / 10, out);
  return out;
}

GeneratedCase simplify(GeneratedCase c, const GeneratorInputs& inputs,
                       const std::function<bool(const GeneratedCase&)>& still_fails) {
  // Every accepted step makes the case strictly simpler in one dimension and no step undoes another's
  // (capacities only move to a rounder class), so this ends; the bound guards against a bug.
  for (int step = 0; step < 1000; ++step) {
    bool moved = false;
    for (GeneratedCase& s : simplifications(c, inputs)) {
      if (still_fails(s)) {
        c = std::move(s);
        moved = true;
        break;
      }
    }
    if (!moved) break;
  }
  return c;
}

}  // namespace offsim::check
