#include "offsim/policies/working_memory_lookup.hpp"

#include <fstream>
#include <sstream>
#include <vector>

#include "offsim/policies/published_measurements.hpp"

namespace offsim::policies {

namespace {

// traces/cpu/index.tsv's model column (scripts/record_vae_table.sh): the VAEs offsim has re-implemented.
std::optional<std::string> recorded_model(VaeFamily family) {
  switch (family) {
    case VaeFamily::sd15: return "sd15-vae";
    case VaeFamily::sdxl: return "sdxl-vae";
    case VaeFamily::flux1:
    case VaeFamily::z_image: return "flux1-vae";  // Z-Image decodes with the FLUX.1 VAE
    case VaeFamily::qwen_image: return "qwen-image-vae";
    default: return std::nullopt;
  }
}

struct IndexRow {
  std::string model, op, size, dtype, attention, conv_workspace, trace;
};

// name, model, op, size, dtype, attention, conv_workspace, ..., trace (the last column).
std::vector<IndexRow> read_index(const std::filesystem::path& path) {
  std::vector<IndexRow> rows;
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return rows;  // header
  while (std::getline(in, line)) {
    std::vector<std::string> cols;
    std::stringstream fields(line);
    for (std::string col; std::getline(fields, col, '\t');) cols.push_back(col);
    if (cols.size() < 8) continue;
    rows.push_back({cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols.back()});
  }
  return rows;
}

std::optional<WorkingMemory> from_index(const std::filesystem::path& root, const std::string& index, const VaeWorkload& w,
                                        bool kernels_by_backend) {
  const auto model = recorded_model(w.family);
  if (!model) return std::nullopt;
  const std::string size = std::to_string(w.pixel_width) + "x" + std::to_string(w.pixel_height);
  const bool rocm = w.backend == Backend::rocm;
  for (const IndexRow& row : read_index(root / index)) {
    if (row.model != *model || row.op != to_string(w.op) || row.size != size || row.dtype != to_string(w.dtype)) continue;
    if (kernels_by_backend && (row.attention != (rocm ? "math" : "efficient") ||
                               row.conv_workspace != (rocm ? "column-buffer" : "implicit"))) {
      continue;
    }
    WorkingMemory memory;
    memory.source = row.trace;
    memory.trace = load_working_memory_file(root / row.trace);
    return memory;
  }
  return std::nullopt;
}

}  // namespace

std::optional<WorkingMemory> find_working_memory(const std::filesystem::path& root, const VaeWorkload& w,
                                                 std::string* why_none) {
  if (w.tile_size || w.frames != 1 || w.batch != 1 || w.memory_optimization) {
    if (why_none) *why_none = "no trace records a tiled, batched, multi-frame or memory-optimized workload";
    return std::nullopt;
  }
  const std::vector<PublishedPoint> points = load_published_points(root);
  if (const PublishedPoint* p = best_published_point(points, w)) {
    WorkingMemory memory;
    memory.source = "traces/published (" + p->grid + ")";
    memory.trace = published_stage_trace(*p);
    return memory;
  }
  if (auto gpu = from_index(root, "traces/gpu/index.tsv", w, false)) return gpu;
  if (auto cpu = from_index(root, "traces/cpu/index.tsv", w, true)) return cpu;
  if (why_none) {
    *why_none = "no published measurement (traces/published), GPU-recorded trace (traces/gpu/index.tsv) or "
                "CPU-recorded trace (traces/cpu/index.tsv) of " + std::string(to_string(w.family)) + " " +
                std::string(to_string(w.op)) + " " + std::to_string(w.pixel_width) + "x" +
                std::to_string(w.pixel_height) + " " + std::string(to_string(w.dtype)) + " on " +
                std::string(to_string(w.backend));
  }
  return std::nullopt;
}

}  // namespace offsim::policies
