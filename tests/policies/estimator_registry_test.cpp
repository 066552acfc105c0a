// The estimator registry: ids, citations, lookup errors, wiring to the transcribed functions, the pre-fix
// call sites that pass no estimate, and the domain each estimator claims.
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "offsim/policies/estimator.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

VaeWorkload vae(VaeFamily family, VaeOp op, int width, int height, DType dtype = DType::bf16,
                Backend backend = Backend::cuda) {
  VaeWorkload w;
  w.family = family;
  w.op = op;
  w.pixel_width = width;
  w.pixel_height = height;
  w.dtype = dtype;
  w.backend = backend;
  return w;
}

std::optional<std::uint64_t> run(std::string_view id, const Workload& w) { return find_estimator(id).estimate(w); }

TEST(EstimatorRegistry, IdsAreUniqueAndCiteAFullCommit) {
  std::set<std::string> ids;
  const std::regex upstream(R"(^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+:[^@ ]+@[0-9a-f]{40}( .*)?$)");
  const std::regex id_form(R"(^(invokeai|comfyui)/[a-z0-9-]+@[0-9a-f]{8}$)");
  for (const auto& e : all_estimators()) {
    SCOPED_TRACE(e.id);
    EXPECT_TRUE(ids.insert(e.id).second) << "duplicate id";
    EXPECT_TRUE(std::regex_match(e.id, id_form));
    EXPECT_TRUE(std::regex_match(e.upstream, upstream)) << e.upstream;
    // The id's short commit is the cited commit.
    const auto at = e.id.find('@');
    EXPECT_NE(e.upstream.find("@" + e.id.substr(at + 1)), std::string::npos);
    EXPECT_FALSE(e.label.empty());
    EXPECT_FALSE(e.domain.basis.empty());
    EXPECT_TRUE(static_cast<bool>(e.estimate));
  }
  EXPECT_GE(ids.size(), 28u);
}

TEST(EstimatorRegistry, UnknownIdListsTheKnownOnes) {
  try {
    (void)find_estimator("invokeai/qwen-image@deadbeef");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("invokeai/qwen-image@deadbeef"), std::string::npos);
    EXPECT_NE(msg.find("invokeai/qwen-image@a6724695"), std::string::npos);
    EXPECT_NE(msg.find("comfyui/memory-required@a125cd84"), std::string::npos);
  }
}

TEST(EstimatorRegistry, QwenImageHistory) {
  const auto d = vae(VaeFamily::qwen_image, VaeOp::decode, 1248, 832, DType::fp16, Backend::rocm);
  const auto e = vae(VaeFamily::qwen_image, VaeOp::encode, 1024, 1024, DType::fp16, Backend::cuda);
  // Before PR #9305 the call site passes nothing: the cache falls back to its default.
  EXPECT_FALSE(find_estimator("invokeai/qwen-image@fda7c42b").passes_estimate);
  EXPECT_EQ(run("invokeai/qwen-image@fda7c42b", d), std::nullopt);
  EXPECT_EQ(run("invokeai/qwen-image@e9aa4b0f", d), 11'421'696'000u);
  EXPECT_EQ(run("invokeai/qwen-image@e9aa4b0f", e), 5'767'168'000u);   // 2750
  EXPECT_EQ(run("invokeai/qwen-image@f3c73bb0", e), 13'212'057'600u);  // 6300
  EXPECT_EQ(run("invokeai/qwen-image@a6724695", e), 3'355'443'200u);   // 1600 on CUDA
  EXPECT_EQ(run("invokeai/qwen-image@a6724695", d), 11'421'696'000u);  // 5500 on ROCm
  auto t = vae(VaeFamily::qwen_image, VaeOp::decode, 2560, 1440, DType::fp16, Backend::cuda);
  t.tile_size = 256;
  EXPECT_EQ(run("invokeai/qwen-image@a6724695", t), 21'381'120'000u);
  EXPECT_EQ(run("invokeai/qwen-image@8e71a8a5", t), 585'728'000u);
}

TEST(EstimatorRegistry, OtherCallSitesWithoutAnEstimate) {
  EXPECT_EQ(run("invokeai/z-image@c1a8300e", vae(VaeFamily::z_image, VaeOp::decode, 1024, 1024)), std::nullopt);
  EXPECT_EQ(run("invokeai/z-image@d34655fd", vae(VaeFamily::z_image, VaeOp::decode, 1024, 1024)), 4'613'734'400u);
  EXPECT_EQ(run("invokeai/flux2@8e71a8a5", vae(VaeFamily::flux2, VaeOp::decode, 1024, 1024)), std::nullopt);
  std::set<std::string> none;
  for (const auto& e : all_estimators()) {
    if (!e.passes_estimate) none.insert(e.id);
  }
  EXPECT_EQ(none, (std::set<std::string>{"invokeai/qwen-image@fda7c42b", "invokeai/z-image@c1a8300e",
                                         "invokeai/flux2@8e71a8a5"}));
}

TEST(EstimatorRegistry, DecodeEstimatesBeforeAndWithPr7674) {
  const auto sdxl = vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024, DType::fp16);
  EXPECT_EQ(run("invokeai/sd15-sdxl@7567ee2a", sdxl), 2'415'919'104u);  // 960 x 1.2
  EXPECT_EQ(run("invokeai/sd15-sdxl@b9f9d1c1", sdxl), 4'613'734'400u);  // 2200
  EXPECT_EQ(run("invokeai/flux@7567ee2a", vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024)), 2'743'074'816u);
  EXPECT_EQ(run("invokeai/flux@b9f9d1c1", vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024)), 4'613'734'400u);
  EXPECT_EQ(run("invokeai/sd3@7567ee2a", vae(VaeFamily::sd3, VaeOp::decode, 1024, 1024, DType::fp16)), 3'095'396'352u);
  EXPECT_EQ(run("invokeai/sd3@b9f9d1c1", vae(VaeFamily::sd3, VaeOp::decode, 1024, 1024, DType::fp16)), 4'613'734'400u);
  // Decode call sites only: the encode nodes of early 2025 are the profiles' business (they pass none).
  for (const char* id : {"invokeai/sd15-sdxl@7567ee2a", "invokeai/sd15-sdxl@b9f9d1c1"}) {
    EXPECT_THROW((void)run(id, vae(VaeFamily::sdxl, VaeOp::encode, 1024, 1024, DType::fp16)), ConfigError) << id;
  }
  EXPECT_THROW((void)run("invokeai/flux@b9f9d1c1", vae(VaeFamily::z_image, VaeOp::decode, 1024, 1024)), ConfigError);
}

TEST(EstimatorRegistry, WiringMatchesTheSpecVectors) {
  EXPECT_EQ(run("invokeai/sd15-sdxl@8e71a8a5", vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024, DType::fp16)),
            4'613'734'400u);
  EXPECT_EQ(run("invokeai/flux@8e71a8a5", vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024)), 4'613'734'400u);
  EXPECT_EQ(run("invokeai/sd3@8e71a8a5", vae(VaeFamily::sd3, VaeOp::encode, 1024, 1024)), 2'306'867'200u);
  EXPECT_EQ(run("invokeai/cogview4@8e71a8a5", vae(VaeFamily::cogview4, VaeOp::decode, 1024, 1024)), 4'613'734'400u);
  EXPECT_EQ(run("invokeai/anima@be8ebeb3", vae(VaeFamily::anima, VaeOp::decode, 1024, 1024)), 6'081'740'800u);
  auto wan = vae(VaeFamily::wan21, VaeOp::decode, 832, 480);
  wan.frames = 81;
  EXPECT_EQ(run("invokeai/wan@fd0e38bc", wan), 5'579'857'920u);
  EXPECT_EQ(run("invokeai/wan@eb9a9512", wan), 2'704'465'920u);
  EXPECT_EQ(run("comfyui/vae-wan21@a125cd84", wan), 5'591'040'000u);
  auto pid = vae(VaeFamily::flux1, VaeOp::decode, 2048, 2048, DType::fp32);
  EXPECT_EQ(run("invokeai/pid-decode@a202b161", pid), 4'362'076'160u);
  EXPECT_EQ(run("invokeai/pid-decode@3f5588f2", pid), 4'194'304'000u);
  EXPECT_EQ(run("comfyui/vae-autoencoder-kl@a125cd84", vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024)),
            4'567'597'056u);
  EXPECT_EQ(run("comfyui/vae-wan21@a125cd84", vae(VaeFamily::qwen_image, VaeOp::decode, 1024, 1024)),
            14'680'064'000u);
  EXPECT_EQ(run("comfyui/vae-wan21@033046cc", vae(VaeFamily::qwen_image, VaeOp::decode, 1024, 1024)),
            4'613'734'400u);
  EXPECT_EQ(run("comfyui/vae-flux2-kl@033046cc", vae(VaeFamily::flux2, VaeOp::decode, 1024, 1024)), 4'567'597'056u);
  EXPECT_EQ(run("invokeai/flux2@e724d69e", vae(VaeFamily::flux2, VaeOp::decode, 1024, 1024)), 4'613'734'400u);
  EXPECT_EQ(run("invokeai/flux2@e724d69e", vae(VaeFamily::flux2, VaeOp::decode, 768, 768, DType::bf16, Backend::rocm)),
            4'246'732'800u);
  DenoiseWorkload flux;
  flux.model = DiffusionModel::flux;
  flux.noise_shape = {1, 16, 128, 128};
  EXPECT_EQ(run("comfyui/memory-required@a125cd84", flux), 2'130'303'779u);
}

TEST(EstimatorRegistry, WrongWorkloadKindOrFamilyIsAConfigError) {
  DenoiseWorkload flux;
  flux.model = DiffusionModel::flux;
  flux.noise_shape = {1, 16, 128, 128};
  EXPECT_THROW((void)run("invokeai/flux@8e71a8a5", flux), ConfigError);
  EXPECT_THROW((void)run("comfyui/memory-required@a125cd84", vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024)),
               ConfigError);
  EXPECT_THROW((void)run("invokeai/flux@8e71a8a5", vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024)), ConfigError);
  EXPECT_THROW((void)run("invokeai/pid-decode@a202b161", vae(VaeFamily::flux1, VaeOp::encode, 1024, 1024)),
               ConfigError);
  EXPECT_THROW((void)run("invokeai/qwen-image@8e71a8a5", vae(VaeFamily::qwen_image, VaeOp::decode, 0, 1024)),
               ConfigError);
}

TEST(EstimatorDomain, QwenClaimsTheCalibrationGrid) {
  const auto& merged = find_estimator("invokeai/qwen-image@a6724695").domain;
  EXPECT_TRUE(merged.covers(vae(VaeFamily::qwen_image, VaeOp::decode, 2048, 2048)));
  EXPECT_TRUE(merged.covers(vae(VaeFamily::qwen_image, VaeOp::encode, 512, 512, DType::fp16, Backend::rocm)));
  EXPECT_FALSE(merged.covers(vae(VaeFamily::qwen_image, VaeOp::decode, 2560, 1440)));
  EXPECT_FALSE(merged.covers(vae(VaeFamily::qwen_image, VaeOp::decode, 256, 1024)));
  EXPECT_NE(merged.why_not_covered(vae(VaeFamily::qwen_image, VaeOp::decode, 2560, 1440)).find("2560"),
            std::string::npos);
  // PR #9427 measured tiling at 2560x1440; untiled stays inside the grid.
  const auto& tiled = find_estimator("invokeai/qwen-image@8e71a8a5").domain;
  auto t = vae(VaeFamily::qwen_image, VaeOp::decode, 2560, 1440);
  EXPECT_FALSE(tiled.covers(t));
  t.tile_size = 256;
  EXPECT_TRUE(tiled.covers(t));
  // Calibrated before any grid: no size bound stated.
  EXPECT_TRUE(find_estimator("invokeai/qwen-image@e9aa4b0f").domain.covers(
      vae(VaeFamily::qwen_image, VaeOp::decode, 2560, 1440)));
}

TEST(EstimatorDomain, ClaimsFollowTheCallSites) {
  const auto& sd = find_estimator("invokeai/sd15-sdxl@8e71a8a5").domain;
  EXPECT_TRUE(sd.covers(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024, DType::fp16)));
  EXPECT_FALSE(sd.covers(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024, DType::bf16)));  // nodes run fp16/fp32
  EXPECT_FALSE(sd.applies_to(vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024)));
  const auto& flux = find_estimator("invokeai/flux@8e71a8a5").domain;
  auto ft = vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024);
  EXPECT_TRUE(flux.covers(ft));
  ft.tile_size = 512;
  EXPECT_FALSE(flux.covers(ft));  // no tiling term
  const auto& wan = find_estimator("invokeai/wan@fd0e38bc").domain;
  auto v = vae(VaeFamily::wan22, VaeOp::decode, 1280, 704);
  v.frames = 121;
  EXPECT_TRUE(wan.covers(v));
  EXPECT_FALSE(find_estimator("invokeai/anima@be8ebeb3").domain.covers(v));
  const auto& pid = find_estimator("invokeai/pid-decode@a202b161").domain;
  EXPECT_FALSE(pid.applies_to(vae(VaeFamily::flux1, VaeOp::encode, 1024, 1024)));
  EXPECT_FALSE(pid.covers(vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024, DType::bf16)));  // PidNet is fp32
  DenoiseWorkload q;
  q.model = DiffusionModel::qwen_image;
  q.noise_shape = {1, 16, 128, 128};
  const auto& mr = find_estimator("comfyui/memory-required@a125cd84").domain;
  EXPECT_TRUE(mr.covers(q));
  q.dtype = DType::q8_0;
  EXPECT_FALSE(mr.covers(q));
  EXPECT_FALSE(mr.applies_to(vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024)));
}

TEST(EstimatorDomain, EveryDomainCoversSomeWorkloadItAppliesTo) {
  // A domain that covers nothing would make P2/P5 vacuous for that estimator.
  for (const auto& e : all_estimators()) {
    SCOPED_TRACE(e.id);
    bool covered = false;
    if (!e.domain.models.empty()) {
      DenoiseWorkload d;
      d.model = e.domain.models.front();
      d.noise_shape = {1, 16, 128, 128};
      d.dtype = e.domain.dtypes.front();
      d.backend = e.domain.backends.front();
      covered = e.domain.covers(d);
    } else {
      auto w = vae(e.domain.families.front(), e.domain.ops.front(), 1024, 1024, e.domain.dtypes.front(),
                   e.domain.backends.front());
      covered = e.domain.covers(w);
      if (covered) {
        EXPECT_NO_THROW((void)e.estimate(w));
      }
    }
    EXPECT_TRUE(covered);
  }
}

}  // namespace
}  // namespace offsim::policies
