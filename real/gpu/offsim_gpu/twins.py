"""Factory for the VAE twins: build on the meta device (no memory), materialise on the target device, and
fill with a fast deterministic random init.

Parameter counts must equal the real checkpoints (brief + shared/specs/vae_architectures.md 5.1):
SD1.5/SDXL 83,653,863; FLUX.1 83,819,683; FLUX.2 84,046,115 parameters (34.42 M enc + 49.62 M dec: FLUX.1
plus conv_out 512->64, quant convs 64->64 / 32->32 and conv_in 32->512), plus the BatchNorm running
statistics (256 elements + num_batches_tracked) that make the 84,046,371-element, 168,092,750-byte bf16
state dict of docs/seed_facts.md; Qwen-Image 126,892,531 (spec: 126.89 M). The tests also compare every
state-dict name, shape and byte count with the project's manifests in traces/models/*-vae.json.
Weights are allocated in module registration order, which is what `model.to("cuda")` does (diffusers'
mid blocks register attentions before resnets). Random weights are fine for memory; the init keeps activations O(1) so that fp16 does not
overflow (an inf/NaN would not change memory but would make the output check fail).
The init is PyTorch's default range, drawn with a seeded generator on the target device.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from . import twins_akl, twins_qwen

MODELS = ("sd", "flux1", "flux2", "qwen")

EXPECTED_PARAMS = {
    "sd": 83_653_863,
    "flux1": 83_819_683,
    "flux2": 84_046_115,
    "qwen": 126_892_531,
}

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def construct(model: str, device="meta", dtype=None) -> nn.Module:
    if model == "sd":
        return twins_akl.AutoencoderKLTwin(twins_akl.SD, device=device, dtype=dtype)
    if model == "flux1":
        return twins_akl.AutoencoderKLTwin(twins_akl.FLUX1, device=device, dtype=dtype)
    if model == "flux2":
        return twins_akl.AutoencoderKLTwin(twins_akl.FLUX2, device=device, dtype=dtype)
    if model == "qwen":
        return twins_qwen.QwenImageVAETwin(device=device, dtype=dtype)
    raise ValueError(f"unknown model {model!r}: expected one of {MODELS}")


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def init_weights(module: nn.Module, seed: int = 0) -> None:
    gen_device = next(module.parameters()).device
    gen = torch.Generator(device=gen_device)
    gen.manual_seed(seed)
    for name, p in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("gamma",) or (p.dim() == 1 and "norm" in name and leaf == "weight"):
            p.fill_(1.0)
        elif leaf == "bias":
            p.zero_()
        else:
            # PyTorch's default Conv/Linear init range (kaiming_uniform with a = sqrt(5) gives
            # U(-1/sqrt(fan_in), 1/sqrt(fan_in))); uniform_ is also ~5x faster than normal_ for bf16 on CPU.
            fan_in = p[0].numel() if p.dim() > 1 else p.numel()
            bound = 1.0 / math.sqrt(max(1, fan_in))
            p.uniform_(-bound, bound, generator=gen)
    for name, b in module.named_buffers():
        if name.endswith("running_var"):
            b.fill_(1.0)
        elif name.endswith("running_mean"):
            b.zero_()
        elif name.endswith("num_batches_tracked"):
            b.zero_()


def build(model: str, device, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    """Weights are allocated directly on `device` (one allocation per parameter, as a checkpoint load
    does), never through a CPU copy."""
    m = construct(model, device="meta", dtype=dtype)
    m = m.to_empty(device=device)
    init_weights(m, seed)
    m.eval()
    m.requires_grad_(False)
    if model == "qwen":
        m.clear_cache()
    return m


def weight_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters()) + sum(
        b.numel() * b.element_size() for b in module.buffers())
