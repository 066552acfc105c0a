#include "offsim/policies/published_measurements.hpp"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

using nlohmann::json;

constexpr std::uint64_t kGrid = 2 * MiB;  // large segments are whole multiples of 2 MiB

std::uint64_t on_grid(double gib) {
  return static_cast<std::uint64_t>(std::llround(gib * static_cast<double>(GiB) / static_cast<double>(kGrid))) * kGrid;
}

// A published figure in `unit` (GiB or MiB) as bytes, rounded to the nearest byte.
std::uint64_t as_bytes(double value, std::uint64_t unit) {
  return static_cast<std::uint64_t>(std::llround(value * static_cast<double>(unit)));
}

json read(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ParseError(path.string(), 0, "cannot open published measurements");
  try {
    return json::parse(in);
  } catch (const json::parse_error& e) {
    throw ParseError(path.string(), e.byte, e.what());
  }
}

DType parse_published_dtype(const std::string& text) {
  if (text.find("16") != std::string::npos && text.find("bf") == std::string::npos && text.find("bfloat") == std::string::npos) {
    return DType::fp16;
  }
  if (text.find("bf") != std::string::npos) return DType::bf16;
  if (text.find("32") != std::string::npos) return DType::fp32;
  return DType::fp16;
}

}  // namespace

std::vector<PublishedPoint> load_published_points(const std::filesystem::path& root) {
  return load_published_points_in(root / "traces/published");
}

std::vector<PublishedPoint> load_published_points_in(const std::filesystem::path& folder) {
  std::vector<PublishedPoint> out;
  const std::filesystem::path calibration = folder / "qwen_image_vae_calibration.json";
  const json doc = read(calibration);
  for (const json& grid : doc.at("grids")) {
    const std::string id = grid.at("id").get<std::string>();
    for (const json& p : grid.at("points")) {
      if (p.value("status", "ok") != "ok") continue;
      PublishedPoint point;
      point.grid = id;
      point.family = VaeFamily::qwen_image;
      point.op = parse_vae_op(p.at("op").get<std::string>());
      point.backend = parse_backend(grid.at("backend").get<std::string>());
      point.height = p.at("height").get<int>();
      point.width = p.at("width").get<int>();
      point.dtype = parse_published_dtype(p.value("dtype", grid.value("dtype", "float16")));
      if (p.contains("peak_reserved_growth_gib") && p["peak_reserved_growth_gib"].is_number()) {
        point.peak_reserved = on_grid(p["peak_reserved_growth_gib"].get<double>());
        point.peak_reserved_as_published = as_bytes(p["peak_reserved_growth_gib"].get<double>(), GiB);
      } else if (p.contains("peak_reserved_growth_bytes_derived") && p["peak_reserved_growth_bytes_derived"].is_number()) {
        point.peak_reserved_as_published = p["peak_reserved_growth_bytes_derived"].get<std::uint64_t>();
        point.peak_reserved = (point.peak_reserved_as_published + kGrid - 1) / kGrid * kGrid;
        point.derived = true;
      } else {
        continue;
      }
      if (p.contains("peak_allocated_growth_gib") && p["peak_allocated_growth_gib"].is_number()) {
        const std::uint64_t allocated = on_grid(p["peak_allocated_growth_gib"].get<double>());
        // Some encode rows publish allocated above reserved (the weights counted in one and not the
        // other); only a consistent pair is used.
        if (allocated <= point.peak_reserved) point.peak_allocated = allocated;
      }
      point.device = grid.value("device", "");
      point.torch = grid.value("torch", "");
      point.citation = grid.value("citation", doc.value("provenance", "")) + " [" + id + "]";
      point.used_to_set = grid.value("used_to_set", std::vector<std::string>{});
      out.push_back(std::move(point));
    }
  }
  const std::filesystem::path other = folder / "vae_peaks_other.json";
  const json others = read(other);
  for (const json& e : others.at("entries")) {
    // The SD1.x / SDXL VAE decodes of InvokeAI PR #7674, one point per entry: "Reserved" in MB, which are MiB
    // (the PR's "Estimated" figures, 2450 / 4400 / 9050 MB, are its formula's bytes / 2^20 exactly). The model
    // names map to families as scripts/vae_table.py reads them.
    if (e.contains("reserved_mb") && e.contains("height")) {
      const std::string model = e.value("model", "");
      const bool sd1 = model.rfind("SD1", 0) == 0;
      if (!sd1 && model.rfind("SDXL", 0) != 0) continue;
      PublishedPoint point;
      point.grid = e.at("id").get<std::string>();
      point.family = sd1 ? VaeFamily::sd15 : VaeFamily::sdxl;
      point.op = parse_vae_op(e.value("op", "decode"));
      point.backend = Backend::cuda;  // pytorch_cuda_alloc_conf, a CUDA-only setting; the GPU is not stated
      point.height = e.at("height").get<int>();
      point.width = e.at("width").get<int>();
      point.dtype = parse_published_dtype(e.value("dtype", "float16"));
      const std::uint64_t bytes = as_bytes(e.at("reserved_mb").get<double>(), MiB);
      point.peak_reserved = (bytes + kGrid - 1) / kGrid * kGrid;
      point.peak_reserved_as_published = bytes;
      point.alloc_conf = e.value("allocator", "");
      point.used_to_set = e.value("used_to_set", std::vector<std::string>{});
      point.citation = e.value("citation", "") + ", measured with allocator " + e.value("allocator", "not stated") +
                       " [" + point.grid + "]";
      out.push_back(std::move(point));
      continue;
    }
    // Points with a peak in GiB and a known VAE: the FLUX.2 ROCm grid of InvokeAI PR #9519.
    if (!e.contains("points") || e.value("model", "").find("FLUX.2") == std::string::npos) continue;
    for (const json& p : e.at("points")) {
      if (!p.contains("measured_gib")) continue;
      PublishedPoint point;
      point.grid = e.at("id").get<std::string>();
      point.family = VaeFamily::flux2;
      point.op = parse_vae_op(e.value("op", "decode"));
      point.backend = parse_backend(e.value("backend", "cuda"));
      point.height = p.at("height").get<int>();
      point.width = p.at("width").get<int>();
      point.dtype = parse_published_dtype(e.value("dtype", "bfloat16"));
      point.peak_reserved = on_grid(p.at("measured_gib").get<double>());
      point.peak_reserved_as_published = as_bytes(p.at("measured_gib").get<double>(), GiB);
      point.device = e.value("device", "");
      point.torch = e.value("torch", "");
      point.citation = e.value("citation", "") + " [" + point.grid + "]";
      point.used_to_set = e.value("used_to_set", std::vector<std::string>{});
      out.push_back(std::move(point));
    }
  }
  return out;
}

std::shared_ptr<const sim::Trace> published_stage_trace(const PublishedPoint& point) {
  auto trace = std::make_shared<sim::Trace>();
  sim::Provenance& p = trace->metadata.provenance;
  p.kind = sim::ProvenanceKind::kPublishedMeasurement;
  p.citation = point.citation;
  p.gpu = point.device;
  p.torch_version = point.torch;
  p.source = "traces/published";
  trace->metadata.label = std::string(to_string(point.family)) + " " + std::string(to_string(point.op)) + " " +
                          std::to_string(point.width) + "x" + std::to_string(point.height) + " " +
                          std::string(to_string(point.backend));
  auto alloc = [&](std::uint64_t handle, std::uint64_t bytes) {
    trace->events.push_back({handle, bytes, 0, 0, sim::TraceAction::kAlloc, sim::kTraceFlagNone});
  };
  auto free = [&](std::uint64_t handle, std::uint64_t bytes) {
    trace->events.push_back({handle, bytes, 0, 0, sim::TraceAction::kFreeRequested, sim::kTraceFlagNone});
    trace->events.push_back({handle, bytes, 0, 0, sim::TraceAction::kFreeCompleted, sim::kTraceFlagNone});
  };
  if (point.peak_allocated && *point.peak_allocated < point.peak_reserved) {
    // Reserved above allocated at the peak: a block that was freed and stays cached, then the live peak,
    // which does not fit in it.
    const std::uint64_t cached = point.peak_reserved - *point.peak_allocated;
    alloc(4096, cached);
    free(4096, cached);
    alloc(8192, *point.peak_allocated);
    free(8192, *point.peak_allocated);
    p.notes = "minimal trace: reproduces the published peak reserved and peak allocated growth only";
  } else {
    alloc(4096, point.peak_reserved);
    free(4096, point.peak_reserved);
    p.notes = "minimal trace: reproduces the published peak reserved growth only";
  }
  return trace;
}

const PublishedPoint* best_published_point(const std::vector<PublishedPoint>& points, const VaeWorkload& w,
                                           std::size_t* matches) {
  const std::optional<std::uint32_t> element = element_size(w.dtype);
  const PublishedPoint* best = nullptr;
  std::size_t n = 0;
  for (const PublishedPoint& p : points) {
    // Points whose dtype was not published are read as fp16 by load_published_points, the 2-byte case.
    if (p.family != w.family || p.op != w.op || p.backend != w.backend || p.height != w.pixel_height ||
        p.width != w.pixel_width || element_size(p.dtype) != element) {
      continue;
    }
    ++n;
    if (best == nullptr || p.peak_reserved > best->peak_reserved) best = &p;
  }
  if (matches != nullptr) *matches = n;
  return best;
}

}  // namespace offsim::policies
