// `offsim calibrate`'s fitting and held-out logic on synthetic points with a known answer: exact recovery of
// the constants that generated them, the smallest margin (one less and a point is no longer bounded),
// leave-one-out that leaves out every point of a size, the held-out band, and the linearity verdict.
#include <gtest/gtest.h>

#include "offsim/policies/calibration.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

CalibrationPoint point(int side, std::uint64_t bytes, DType dtype = DType::fp16, std::string source = "synthetic",
                       int height = 0) {
  CalibrationPoint p;
  p.model = VaeFamily::qwen_image;
  p.op = VaeOp::decode;
  p.width = side;
  p.height = height ? height : side;
  p.dtype = dtype;
  p.backend = Backend::cuda;
  p.peak_reserved_growth = bytes;
  p.source = std::move(source);
  return p;
}

std::uint64_t px(int side) { return static_cast<std::uint64_t>(side) * static_cast<std::uint64_t>(side); }

// T = C x H x W x es + F exactly.
CalibrationPoint linear(int side, std::uint64_t c, std::uint64_t f = 0, DType dtype = DType::fp16) {
  return point(side, c * px(side) * *element_size(dtype) + f, dtype);
}

bool bounds_all(const FittedEstimate& fit, const std::vector<CalibrationPoint>& points) {
  for (const CalibrationPoint& p : points) {
    if (estimate_bytes(fit, p) < p.peak_reserved_growth) return false;
  }
  return true;
}

TEST(CalibrationFit, RecoversTheConstantThatGeneratedThePoints) {
  const std::vector<CalibrationPoint> points{linear(512, 3000), linear(768, 3000), linear(1024, 3000),
                                            linear(1024, 3000, 0, DType::fp32)};
  const FittedEstimate invoke = fit_estimate(FitForm::invokeai, points);
  EXPECT_EQ(invoke.constant, 3000u);
  EXPECT_EQ(invoke.fixed_bytes, 0u);
  for (const CalibrationPoint& p : points) EXPECT_EQ(estimate_bytes(invoke, p), p.peak_reserved_growth);
  // ComfyUI's factor times the latent volume (h x w x 8 x 8) is the same line for images whose sides are
  // multiples of 8.
  EXPECT_EQ(fit_estimate(FitForm::comfyui, points).constant, 3000u);
  // No fixed term is invented for points on a line through the origin.
  const FittedEstimate fixed = fit_estimate(FitForm::invokeai_fixed, points);
  EXPECT_EQ(fixed.constant, 3000u);
  EXPECT_EQ(fixed.fixed_bytes, 0u);
}

TEST(CalibrationFit, RecoversAConstantAndAFixedTerm) {
  const std::uint64_t f = 512 * MiB;
  const std::vector<CalibrationPoint> points{linear(512, 2500, f), linear(1024, 2500, f), linear(1536, 2500, f),
                                            linear(2048, 2500, f)};
  const FittedEstimate fixed = fit_estimate(FitForm::invokeai_fixed, points);
  EXPECT_EQ(fixed.form, FitForm::invokeai_fixed);
  EXPECT_EQ(fixed.constant, 2500u);
  EXPECT_EQ(fixed.fixed_bytes, f);
  for (const CalibrationPoint& p : points) EXPECT_EQ(estimate_bytes(fixed, p), p.peak_reserved_growth);
  // Without the fixed term the constant has to cover the smallest image's share of F.
  const FittedEstimate plain = fit_estimate(FitForm::invokeai, points);
  EXPECT_EQ(plain.constant, 2500u + (f + px(512) * 2 - 1) / (px(512) * 2));
}

TEST(CalibrationFit, TheMarginIsTheSmallestThatBoundsEveryPoint) {
  // Implied constants 2684.3, 2723.6, 2662.2 (not integers): C must be the ceiling of the largest.
  const std::vector<CalibrationPoint> points{point(512, 1407582821), point(768, 3212628017), point(2048, 22332958720)};
  const FittedEstimate fit = fit_estimate(FitForm::invokeai, points);
  EXPECT_EQ(fit.constant, 2724u);
  EXPECT_TRUE(bounds_all(fit, points));
  FittedEstimate less = fit;
  less.constant -= 1;
  EXPECT_FALSE(bounds_all(less, points));

  // The fixed-term form: its F is the least that bounds with its C.
  const std::vector<CalibrationPoint> curved{point(512, 1500 * MiB), point(1024, 5 * GiB), point(1536, 11 * GiB),
                                             point(2048, 21 * GiB)};
  const FittedEstimate withf = fit_estimate(FitForm::invokeai_fixed, curved);
  EXPECT_TRUE(bounds_all(withf, curved));
  if (withf.fixed_bytes > 0) {
    FittedEstimate lessf = withf;
    lessf.fixed_bytes -= 1;
    EXPECT_FALSE(bounds_all(lessf, curved));
  }
  // It never over-covers on average more than the fit without a fixed term (that one is feasible for it too).
  double with_sum = 0, plain_sum = 0;
  const FittedEstimate plain = fit_estimate(FitForm::invokeai, curved);
  for (const CalibrationPoint& p : curved) {
    with_sum += static_cast<double>(estimate_bytes(withf, p)) / static_cast<double>(p.peak_reserved_growth);
    plain_sum += static_cast<double>(estimate_bytes(plain, p)) / static_cast<double>(p.peak_reserved_growth);
  }
  EXPECT_LE(with_sum, plain_sum * (1 + 1e-9));
}

TEST(CalibrationFit, PiecewiseGoesThroughTheLargestPeakAtEachSizeAndInterpolates) {
  // Two runs at 1024^2 (the larger counts), a rise above 1536^2 that no constant fitted below it sees.
  const std::vector<CalibrationPoint> points{point(512, 2 * GiB), point(1024, 8 * GiB), point(1024, 9 * GiB, DType::fp16, "other"),
                                            point(1536, 14 * GiB), point(2048, 37 * GiB)};
  const FittedEstimate fit = fit_estimate(FitForm::piecewise, points);
  ASSERT_EQ(fit.knots.size(), 4u);
  EXPECT_EQ(fit.knots[1], (Knot{px(1024), 9 * GiB / 2}));
  for (const CalibrationPoint& p : points) EXPECT_GE(estimate_bytes(fit, p), p.peak_reserved_growth);
  EXPECT_EQ(estimate_bytes(fit, points[2]), 9 * GiB);  // zero margin at the largest point of a size
  // Halfway in pixels between 1024^2 and 1536^2: halfway between 9 and 14 GiB (fp16: x 2 / 2).
  VaeWorkload mid = workload_of(points[0]);
  mid.pixel_width = static_cast<int>(px(1024) + (px(1536) - px(1024)) / 2) / 1024;
  mid.pixel_height = 1024;
  ASSERT_EQ(static_cast<std::uint64_t>(mid.pixel_width) * 1024, px(1024) + (px(1536) - px(1024)) / 2);
  EXPECT_EQ(estimate_bytes(fit, mid), 9 * GiB + (14 * GiB - 9 * GiB) / 2);
  // Beyond the last knot: its bytes per pixel (37 GiB at 2048^2 -> 4 x at 4096^2).
  VaeWorkload big = mid;
  big.pixel_width = big.pixel_height = 4096;
  EXPECT_EQ(estimate_bytes(fit, big), 4 * 37 * GiB);
}

TEST(CalibrationFit, HeadroomScalesTheConstantUpExactly) {
  const std::vector<CalibrationPoint> points{linear(512, 5000), linear(1024, 5000)};
  EXPECT_EQ(fit_estimate(FitForm::invokeai, points, 0.08).constant, 5400u);
  EXPECT_EQ(fit_estimate(FitForm::invokeai, points, 0.0801).constant, 5401u);
  EXPECT_THROW(fit_estimate(FitForm::invokeai, points, -0.1), ConfigError);
  EXPECT_THROW(fit_estimate(FitForm::invokeai, {}), ConfigError);
}

const FormResult& form(const CalibrationGroup& g, FitForm f) {
  for (const FormResult& r : g.forms) {
    if (r.form == f) return r;
  }
  throw std::runtime_error("form not run");
}

TEST(CalibrationHeldOut, LeaveOneOutJudgesEachSizeWithAFitThatNeverSawIt) {
  // 1024^2 has the largest implied constant: left out, the others' fit (3000) under-estimates it.
  const CalibrationReport report =
      calibrate({linear(512, 3000), linear(1024, 3100), linear(2048, 2900)}, CalibrationOptions{});
  ASSERT_EQ(report.groups.size(), 1u);
  const CalibrationGroup& g = report.groups[0];
  const FormResult& r = form(g, FitForm::invokeai);
  EXPECT_EQ(r.fit.constant, 3100u);
  ASSERT_EQ(r.leave_one_out.size(), 3u);
  for (const Judgement& j : r.leave_one_out) {
    ASSERT_TRUE(j.judged_by);
    const bool is_1024 = g.points[j.point].width == 1024;
    EXPECT_EQ(j.judged_by->constant, is_1024 ? 3000u : 3100u);
    EXPECT_EQ(j.p2_holds, !is_1024);
  }
  // The calibration fit bounds every point it saw (not a verdict: it saw them).
  for (const Judgement& j : r.calibration) EXPECT_TRUE(j.p2_holds);
  // The band: fitted on <= 1024^2 (C = 3100), judging 2048^2 only.
  ASSERT_TRUE(r.band_fit);
  EXPECT_EQ(r.band_fit->constant, 3100u);
  ASSERT_EQ(r.band.size(), 1u);
  EXPECT_EQ(g.points[r.band[0].point].width, 2048);
  EXPECT_TRUE(r.band[0].p2_holds);
  EXPECT_NEAR(r.band[0].ratio, 3100.0 / 2900.0, 1e-9);
}

TEST(CalibrationHeldOut, LeaveOneOutLeavesOutEveryRunOfTheSameSize) {
  // Two sources at 512^2: had the other run stayed in the training set, C would be 3300 and both pass.
  std::vector<CalibrationPoint> points{linear(512, 3000), linear(1024, 3000)};
  CalibrationPoint other = linear(512, 3300);
  other.source = "another run";
  points.push_back(other);
  const CalibrationReport report = calibrate(points, CalibrationOptions{});
  const CalibrationGroup& g = report.groups[0];
  std::size_t judged_512 = 0;
  for (const Judgement& j : form(g, FitForm::invokeai).leave_one_out) {
    if (g.points[j.point].width != 512) continue;
    ++judged_512;
    EXPECT_EQ(j.judged_by->constant, 3000u);  // fitted on 1024^2 alone
    EXPECT_EQ(j.p2_holds, g.points[j.point].source != "another run");
  }
  EXPECT_EQ(judged_512, 2u);
}

TEST(CalibrationHeldOut, OneSizeGivesNoHeldOutVerdict) {
  const CalibrationReport report = calibrate({linear(1024, 3000), linear(1024, 3000, 0, DType::fp32)}, CalibrationOptions{});
  const FormResult& r = form(report.groups[0], FitForm::invokeai);
  EXPECT_TRUE(r.leave_one_out.empty());
  EXPECT_FALSE(r.band_fit);
  EXPECT_TRUE(r.band.empty());
}

TEST(CalibrationLinearity, SaysWhetherTheImpliedConstantStaysPut) {
  CalibrationOptions options;
  options.judge = std::vector<std::string>{};
  const CalibrationReport flat = calibrate({linear(512, 3000), linear(1024, 3050), linear(2048, 3010)}, options);
  ASSERT_EQ(flat.groups[0].linearity.size(), 1u);
  const Linearity& l = flat.groups[0].linearity[0];
  EXPECT_TRUE(l.proportional);
  EXPECT_NEAR(l.spread, 50.0 / 3000.0, 1e-9);
  EXPECT_NEAR(l.largest_rise, 50.0 / 3000.0, 1e-9);

  // The ROCm shape: falling, then rising by 47% from 1536^2 to 2048^2.
  const CalibrationReport rocm =
      calibrate({linear(512, 5132), linear(1024, 4570), linear(1536, 3273), linear(2048, 4813)}, options);
  const Linearity& r = rocm.groups[0].linearity[0];
  const auto& pts = rocm.groups[0].points;
  EXPECT_FALSE(r.proportional);
  EXPECT_NEAR(r.largest_rise, 4813.0 / 3273.0 - 1, 1e-9);
  EXPECT_EQ(pts[r.rise_from].width, 1536);
  EXPECT_EQ(pts[r.rise_to].width, 2048);
  EXPECT_EQ(pts[r.at_max].width, 512);
}

TEST(Calibration, GroupsPerVaeOpAndBackend) {
  CalibrationPoint rocm = linear(512, 5000);
  rocm.backend = Backend::rocm;
  CalibrationPoint encode = linear(512, 1500);
  encode.op = VaeOp::encode;
  CalibrationOptions options;
  options.judge = std::vector<std::string>{};
  const CalibrationReport report = calibrate({linear(512, 3000), rocm, encode}, options);
  ASSERT_EQ(report.groups.size(), 3u);
  for (const CalibrationGroup& g : report.groups) {
    const std::uint64_t c = form(g, FitForm::invokeai).fit.constant;
    if (g.backend == Backend::rocm) {
      EXPECT_EQ(c, 5000u);
    }
    if (g.op == VaeOp::encode) {
      EXPECT_EQ(c, 1500u);
    }
  }
  EXPECT_THROW(calibrate({}, options), ConfigError);
  options.judge = std::vector<std::string>{"invokeai/qwen-image@deadbeef"};
  EXPECT_THROW(calibrate({linear(512, 3000)}, options), ConfigError);
}

TEST(Calibration, FittedEstimatesRoundTripThroughJson) {
  const std::vector<CalibrationPoint> points{linear(512, 2500, 512 * MiB), linear(1024, 2600), linear(1536, 2400)};
  for (const FitForm f : all_fit_forms()) {
    const FittedEstimate fit = fit_estimate(f, points);
    const FittedEstimate back = fitted_estimate_from_json(to_json(fit), "test");
    EXPECT_EQ(back.form, fit.form);
    EXPECT_EQ(back.constant, fit.constant);
    EXPECT_EQ(back.fixed_bytes, fit.fixed_bytes);
    EXPECT_EQ(back.knots, fit.knots);
  }
  EXPECT_THROW(fitted_estimate_from_json(nlohmann::json{{"form", "piecewise"}, {"knots", {{2, 5}, {1, 6}}}}, "t"), ConfigError);
  EXPECT_THROW(fitted_estimate_from_json(nlohmann::json{{"constant", -3}}, "t"), ConfigError);
  EXPECT_THROW(fitted_estimate_from_json(nlohmann::json{{"constant", 3}, {"typo", 1}}, "t"), ConfigError);
}

}  // namespace
}  // namespace offsim::policies
