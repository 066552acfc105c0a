// Properties every transcribed VAE estimator shares with its upstream formula, over random workloads inside
// each estimator's claimed domain: a larger image or a longer clip never gets a smaller estimate, and the
// linear InvokeAI estimators scale exactly with pixel area. A transcription slip that breaks the formula's
// shape (a term dropped, a dimension swapped, a wrong latent-frame formula) fails here even where no
// hand-computed vector sits.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <iterator>
#include <string>

#include "offsim/policies/estimator.hpp"

namespace offsim::policies {
namespace {

constexpr int kStep = 64;  // a multiple of every spatial scale (8, 16, 32) and of PiD's 32 / 64

struct Case {
  const Estimator* estimator;
  VaeWorkload workload;
};

// Random workloads for the VAE estimators that pass an estimate and satisfy `keep`.
template <typename Keep>
rc::Gen<Case> vae_case(bool untiled_only, Keep keep) {
  std::vector<const Estimator*> vae_estimators;
  for (const auto& e : all_estimators()) {
    if (e.passes_estimate && e.domain.models.empty() && (e.domain.untiled || !untiled_only) && keep(e)) {
      vae_estimators.push_back(&e);
    }
  }
  return rc::gen::exec([vae_estimators, untiled_only] {
    const auto* e = *rc::gen::elementOf(vae_estimators);
    const auto& d = e->domain;
    VaeWorkload w;
    w.family = *rc::gen::elementOf(d.families);
    w.op = *rc::gen::elementOf(d.ops);
    w.dtype = *rc::gen::elementOf(d.dtypes);
    w.backend = *rc::gen::elementOf(d.backends);
    const int lo = std::max(kStep, d.min_pixel_side.value_or(kStep));
    const int hi = std::min(4096, d.max_pixel_side.value_or(4096)) - kStep;  // room for one step up
    const int steps_lo = (lo + kStep - 1) / kStep;
    const int steps_hi = hi / kStep;
    RC_PRE(steps_lo <= steps_hi);
    w.pixel_height = kStep * *rc::gen::inRange(steps_lo, steps_hi + 1);
    w.pixel_width = kStep * *rc::gen::inRange(steps_lo, steps_hi + 1);
    if (d.max_frames > 1) {
      std::vector<VaeFamily> video;
      std::copy_if(d.families.begin(), d.families.end(), std::back_inserter(video), is_video_vae);
      if (!video.empty() && *rc::gen::arbitrary<bool>()) w.family = *rc::gen::elementOf(video);
    }
    if (is_video_vae(w.family) && d.max_frames > 1) {
      w.frames = (*rc::gen::inRange(0, 30)) * vae_temporal_scale(w.family) + 1;
    }
    if (!untiled_only && d.tiled && *rc::gen::arbitrary<bool>()) {
      w.tile_size = kStep * *rc::gen::inRange(1, 9);
    }
    w.memory_optimization = *rc::gen::arbitrary<bool>();
    return Case{e, w};
  });
}

RC_GTEST_PROP(EstimatorShape, LargerImagesNeverGetSmallerEstimates, ()) {
  const auto c = *vae_case(false, [](const Estimator&) { return true; });
  RC_PRE(c.estimator->domain.covers(c.workload));
  auto taller = c.workload;
  taller.pixel_height += kStep;
  RC_PRE(c.estimator->domain.covers(taller));
  const auto a = c.estimator->estimate(c.workload);
  const auto b = c.estimator->estimate(taller);
  RC_ASSERT(a.has_value());
  RC_ASSERT(b.has_value());
  RC_LOG() << c.estimator->id << ": " << describe(c.workload) << " -> " << *a << ", taller " << *b;
  RC_ASSERT(*b >= *a);
}

RC_GTEST_PROP(EstimatorShape, LongerClipsNeverGetSmallerEstimates, ()) {
  const auto c = *vae_case(false, [](const Estimator& e) {
    return std::any_of(e.domain.families.begin(), e.domain.families.end(), is_video_vae);
  });
  RC_PRE(is_video_vae(c.workload.family));
  auto longer = c.workload;
  longer.frames += vae_temporal_scale(longer.family);
  RC_PRE(c.estimator->domain.covers(c.workload) && c.estimator->domain.covers(longer));
  const auto a = c.estimator->estimate(c.workload);
  const auto b = c.estimator->estimate(longer);
  RC_LOG() << c.estimator->id << ": " << describe(c.workload) << " -> " << *a << ", longer " << *b;
  RC_ASSERT(*b >= *a);
}

RC_GTEST_PROP(EstimatorShape, InvokeAiLinearEstimatorsScaleWithArea, ()) {
  // H x W x es x C: doubling the width doubles the estimate exactly (the SD1.5/SDXL fp32 bump aside).
  const auto c = *vae_case(true, [](const Estimator& e) {
    return e.id == "invokeai/flux@8e71a8a5" || e.id == "invokeai/sd3@8e71a8a5" || e.id == "invokeai/cogview4@8e71a8a5" ||
           e.id == "invokeai/z-image@d34655fd" || e.id == "invokeai/anima@be8ebeb3" ||
           e.id.starts_with("invokeai/qwen-image@") || e.id == "invokeai/sd15-sdxl@8e71a8a5";
  });
  RC_PRE(!(c.estimator->id == "invokeai/sd15-sdxl@8e71a8a5" && c.workload.dtype == DType::fp32));
  auto wide = c.workload;
  wide.pixel_width *= 2;
  RC_PRE(c.estimator->domain.applies_to(wide));
  RC_ASSERT(*c.estimator->estimate(wide) == 2 * *c.estimator->estimate(c.workload));
}

}  // namespace
}  // namespace offsim::policies
