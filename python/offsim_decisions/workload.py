"""What a stage computes, in the words offsim uses to look up its true peak T (published measurements and
estimator domains are keyed by VAE family, op, pixel size, dtype and backend). The dictionaries are the
`workload` object of offsim's scenario format (docs/scenario_format.md), so the same names work in both.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from .schema import SchemaError


def dtype_name(dtype: Any) -> str:
    """"bf16", "fp16", "bfloat16", torch.bfloat16 -> a name offsim's parse_dtype accepts."""
    text = str(dtype)
    if text.startswith("torch."):
        text = text[len("torch."):]
    if not text:
        raise SchemaError("dtype: empty")
    return text


def vae_workload(
    family: str,
    op: str,
    height: int,
    width: int,
    dtype: Any,
    *,
    backend: Optional[str] = None,
    tile_size: Optional[int] = None,
    frames: int = 1,
    batch: int = 1,
    memory_optimization: bool = False,
    vae_tile_sample_min_size: Optional[int] = None,
) -> dict:
    """A VAE encode/decode. height/width are pixels (the decode's output, the encode's input); family is one
    of offsim's VaeFamily names (sd15, sdxl, flux1, flux2, sd3, cogview4, z_image, qwen_image, anima, wan21,
    wan22, ...); backend None = the log's device backend (filled in when the stage is written);
    tile_size None = untiled."""
    if op not in ("encode", "decode"):
        raise SchemaError(f'workload.vae.op: must be "encode" or "decode", got {op!r}')
    for name, value in (("height", height), ("width", width), ("frames", frames), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SchemaError(f"workload.vae.{name}: must be a positive integer, got {value!r}")
    body: dict = {"family": family, "op": op, "height": height, "width": width, "dtype": dtype_name(dtype)}
    if backend is not None:
        body["backend"] = backend
    if frames != 1:
        body["frames"] = frames
    if batch != 1:
        body["batch"] = batch
    if tile_size is not None:
        body["tile_size"] = int(tile_size)
    if memory_optimization:
        body["memory_optimization"] = True
    if vae_tile_sample_min_size is not None:
        body["vae_tile_sample_min_size"] = int(vae_tile_sample_min_size)
    return {"vae": body}


def denoise_workload(
    model: str,
    noise_shape: Sequence[int],
    dtype: Any,
    *,
    backend: Optional[str] = None,
    efficient_attention: bool = True,
    ref_latent_elements: Sequence[int] = (),
    model_dim: Optional[int] = None,
) -> dict:
    """A denoise (sampling) run as ComfyUI's memory_required sees it: model is one of offsim's DiffusionModel
    names (flux, sdxl, qwen_image, wan21, ...), noise_shape the latent shape (B, C, H, W) or (B, C, T, H, W)."""
    body: dict = {"model": model, "noise_shape": [int(d) for d in noise_shape], "dtype": dtype_name(dtype),
                  "efficient_attention": bool(efficient_attention)}
    if backend is not None:
        body["backend"] = backend
    if ref_latent_elements:
        body["ref_latent_elements"] = [int(n) for n in ref_latent_elements]
    if model_dim is not None:
        body["model_dim"] = int(model_dim)
    return {"denoise": body}
