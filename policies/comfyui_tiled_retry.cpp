#include "offsim/policies/comfyui_tiled_retry.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>
#include <vector>

#include "offsim/sim/bytes.hpp"

namespace offsim::policies {

namespace {

// VAE.__init__ sets latent_dim = 3 for the video-shaped VAEs (Wan 2.1 / Qwen-Image, Wan 2.2, Hunyuan video,
// LTXV, Mochi, Cosmos); the AutoencoderKL branches keep 2.
bool three_d(comfyui::VaeType type) {
  return type != comfyui::VaeType::autoencoder_kl && type != comfyui::VaeType::flux2_kl;
}

struct TileShape {
  int width;
  int height;
};

// The tile shapes (pixels) of the fallback's passes, as listed in the header.
std::vector<TileShape> passes(comfyui::VaeType type, VaeOp op) {
  if (three_d(type)) return {{256, 256}};
  if (op == VaeOp::encode) return {{512, 512}, {1024, 256}, {256, 1024}};
  const int up = type == comfyui::VaeType::flux2_kl ? 16 : 8;  // upscale_ratio (x2 for the batch-norm latent)
  return {{32 * up, 128 * up}, {128 * up, 32 * up}, {64 * up, 64 * up}};
}

// Peak of the bytes the trace holds live at once (requested sizes).
std::uint64_t peak_live_bytes(const sim::Trace& trace) {
  std::unordered_map<std::uint64_t, std::uint64_t> live;
  std::uint64_t now = 0, peak = 0;
  for (const sim::TraceEvent& e : trace.events) {
    if (e.action == sim::TraceAction::kAlloc) {
      live[e.addr] = e.size;
      now += e.size;
      peak = std::max(peak, now);
    } else if (e.action == sim::TraceAction::kFreeRequested) {
      if (auto it = live.find(e.addr); it != live.end()) {
        now -= it->second;
        live.erase(it);
      }
    }
  }
  return peak;
}

}  // namespace

std::uint64_t comfyui_retry_tile_pixels(comfyui::VaeType type, VaeOp op, int width, int height) {
  std::uint64_t largest = 0;
  for (const TileShape& t : passes(type, op)) {
    const auto w = static_cast<std::uint64_t>(std::min(t.width, width));
    const auto h = static_cast<std::uint64_t>(std::min(t.height, height));
    largest = std::max(largest, w * h);
  }
  return largest;
}

std::optional<OomFallback> comfyui_tiled_retry(const Stage& stage, comfyui::VaeType type) {
  const auto* vae = stage.workload ? std::get_if<VaeWorkload>(&*stage.workload) : nullptr;
  if (vae == nullptr || vae->tile_size || !stage.working_memory) return std::nullopt;
  const bool decode = vae->op == VaeOp::decode;
  const std::uint64_t image = static_cast<std::uint64_t>(vae->pixel_width) * static_cast<std::uint64_t>(vae->pixel_height);
  const std::uint64_t tile = comfyui_retry_tile_pixels(type, vae->op, vae->pixel_width, vae->pixel_height);
  // The tiler's batch loop splits the batch, except a 3-D encode's, which VAE.encode made frames.
  const std::uint64_t elements = (three_d(type) && !decode) ? 1 : static_cast<std::uint64_t>(std::max(1, vae->batch));
  const std::uint64_t peak = peak_live_bytes(*stage.working_memory->trace);
  const auto bytes = static_cast<std::uint64_t>(
      std::ceil(static_cast<double>(peak) / static_cast<double>(elements) * static_cast<double>(tile) / static_cast<double>(image)));

  const std::string call = std::string(decode ? "VAE.decode" : "VAE.encode") + " -> " +
                           (decode ? (three_d(type) ? "decode_tiled_3d" : "decode_tiled_") : (three_d(type) ? "encode_tiled_3d" : "encode_tiled_"));
  const TileShape square = passes(type, vae->op).back();
  const std::string tiles = std::to_string(square.width) + " px" + (three_d(type) ? "" : "-area") + " tiles";
  auto trace = std::make_shared<sim::Trace>();
  sim::Provenance& p = trace->metadata.provenance;
  p = stage.working_memory->trace->metadata.provenance;
  p.notes = "derived by offsim for ComfyUI's tiled retry: the stage's peak live bytes (" + format_bytes(peak) + ")" +
            (elements > 1 ? " / " + std::to_string(elements) + " batch elements" : "") + " x largest tile area / image area (" +
            std::to_string(tile) + " of " + std::to_string(vae->pixel_width) + "x" + std::to_string(vae->pixel_height) +
            " px), one tile at a time; no tiled run was measured";
  trace->metadata.label = stage.working_memory->trace->metadata.label + ", tiled retry";
  trace->events.push_back({4096, bytes, 0, 0, sim::TraceAction::kAlloc, sim::kTraceFlagNone});
  trace->events.push_back({4096, bytes, 0, 0, sim::TraceAction::kFreeRequested, sim::kTraceFlagNone});
  trace->events.push_back({4096, bytes, 0, 0, sim::TraceAction::kFreeCompleted, sim::kTraceFlagNone});
  return OomFallback{"comfy/sd.py@a125cd84 " + call + " (" + tiles + "): " + format_bytes(bytes) +
                         " at once, derived from the stage's " + format_bytes(peak) + " by tile area",
                     std::move(trace)};
}

}  // namespace offsim::policies
