// ComfyUI's VAE out-of-memory path (Comfy-Org/ComfyUI comfy/sd.py @a125cd84b054a57729b5eecab930ca9408719832,
// VAE.decode and VAE.encode): the untiled run sits in `try: ... except model_management.OOM_EXCEPTION:`,
// which logs "Ran out of memory when regular VAE decoding, retrying with tiled VAE decoding.", sets do_tile
// (so that the attempt's tensors are freed once the exception is gone) and runs the stage again in tiles.
// An OOM of the tiled run propagates. So an OOM of ComfyUI's untiled VAE stage is a handled OOM (a slower
// decode), not a failed run, unless the tiles do not fit either. The tiles, by VAE.latent_dim:
//   * 2-D decode: decode_tiled_(samples) with its defaults tile_x = tile_y = 64 latents, three passes of
//     32x128, 128x32 and 64x64 latents: 256x1024, 1024x256 and 512x512 px at upscale_ratio 8 (1024 px
//     squares for the FLUX.2 batch-norm VAE, whose upscale_ratio is 16).
//   * 2-D encode: encode_tiled_(pixels), 512x512, 1024x256 and 256x1024 px.
//   * 3-D decode: decode_tiled_3d with tile = 256 // spacial_compression_decode() latents: 256x256 px for
//     every 3-D VAE offsim knows (spatial ratio 8, 16 or 32). 3-D encode: encode_tiled_3d, 256x256 px.
// comfy/utils.py tiled_scale_multidim runs one batch element and one tile at a time, a tile clipped to the
// image at its edges (an image no larger than the tile runs whole), the output gathered on the
// intermediate device (the CPU). VAE.encode of a 3-D VAE moves an image batch into the frame axis first,
// and the frame axis is never tiled (tile_t 999 / 9999), so its tiles keep the whole batch.
//
// The tiles' working memory is not measured anywhere: offsim derives it from the stage's own working
// memory, its peak live bytes (per batch element where the tiler splits the batch) scaled by the largest
// tile area / image area, the linear-in-pixels assumption upstream's estimators make. A tile as large as
// the image gives the untiled peak back: the retry fails as the first run did.
//
// Not modelled: an OOM of load_models_gpu inside the same try block (a weight load) also reaches the
// except clause upstream, with the VAE left part-loaded; offsim reports it as the load's unhandled OOM.
#pragma once

#include <optional>

#include "offsim/policies/comfyui_vae_estimators.hpp"
#include "offsim/policies/policy.hpp"

namespace offsim::policies {

/// The largest tile, in pixels of the image, that VAE.decode / VAE.encode's tiled fallback runs for a VAE
/// of `type` on a `width` x `height` image (`op` decode or encode), clipped to the image.
std::uint64_t comfyui_retry_tile_pixels(comfyui::VaeType type, VaeOp op, int width, int height);

/// The fallback of a VAE stage run by VAE.decode / VAE.encode; nullopt when the stage has no VAE workload or
/// working memory to scale, or is already tiled (the tiled nodes call decode_tiled without the fallback).
std::optional<OomFallback> comfyui_tiled_retry(const Stage& stage, comfyui::VaeType type);

}  // namespace offsim::policies
