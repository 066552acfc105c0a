"""Plain-torch twin of diffusers' AutoencoderKL (SD1.5/SDXL, FLUX.1) and AutoencoderKLFlux2 (FLUX.2).

Written from reading huggingface/diffusers (src/diffusers/models/autoencoders/autoencoder_kl.py, vae.py,
autoencoder_kl_flux2.py, resnet.py ResnetBlock2D, unets/unet_2d_blocks.py UNetMidBlock2D /
UpDecoderBlock2D / DownEncoderBlock2D, upsampling.py Upsample2D, downsampling.py Downsample2D,
attention_processor.py Attention + AttnProcessor2_0) and shared/specs/vae_architectures.md sections 1-2.
No code is copied; what matters for memory is reproduced: the same tensors are created in the same
order and die at the same time as in the eager diffusers code (names are rebound the same way, the
caller keeps a block's input alive during the call, `x / output_scale_factor` is a real allocation,
bf16 nearest upsampling goes through fp32 as diffusers' Upsample2D does).

Module and parameter names follow diffusers' state-dict keys, so a diffusers checkpoint's tensor list and
this twin's parameter list are the same (parameter counts are checked in real/gpu/tests).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import attention
from .attention import sdpa


@dataclass(frozen=True)
class AKLConfig:
    name: str
    latent_channels: int
    use_quant_conv: bool
    use_post_quant_conv: bool
    scaling_factor: float
    shift_factor: float | None = None
    block_out_channels: tuple = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    eps: float = 1e-6
    # FLUX.2 only: 2x2 patchify of the latent and BatchNorm running statistics used by the pipeline
    # (diffusers autoencoder_kl_flux2.py: `bn = BatchNorm2d(4 * latent_channels, affine=False, eps=1e-4)`).
    patch_size: int | None = None
    batch_norm_eps: float = 1e-4
    notes: tuple = field(default_factory=tuple)


# Configs as published (vae_architectures.md 1.1, 2.1, 2.2). SDXL has the SD1.5 topology; only
# scaling_factor (0.13025) differs, which changes no tensor size.
SD = AKLConfig("sd", latent_channels=4, use_quant_conv=True, use_post_quant_conv=True, scaling_factor=0.18215)
FLUX1 = AKLConfig("flux1", latent_channels=16, use_quant_conv=False, use_post_quant_conv=False,
                  scaling_factor=0.3611, shift_factor=0.1159)
FLUX2 = AKLConfig("flux2", latent_channels=32, use_quant_conv=True, use_post_quant_conv=True,
                  scaling_factor=1.0, patch_size=2)


def _gn(c: int, cfg: AKLConfig, **fk) -> nn.GroupNorm:
    return nn.GroupNorm(cfg.norm_num_groups, c, eps=cfg.eps, affine=True, **fk)


class ResnetBlock2D(nn.Module):
    """diffusers ResnetBlock2D without time embedding (temb_channels=None), output_scale_factor 1."""

    def __init__(self, ci: int, co: int, cfg: AKLConfig, **fk):
        super().__init__()
        self.norm1 = _gn(ci, cfg, **fk)
        self.conv1 = nn.Conv2d(ci, co, 3, padding=1, **fk)
        self.norm2 = _gn(co, cfg, **fk)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(co, co, 3, padding=1, **fk)
        self.conv_shortcut = nn.Conv2d(ci, co, 1, **fk) if ci != co else None
        self.output_scale_factor = 1.0

    def forward(self, input_tensor: torch.Tensor) -> torch.Tensor:
        h = self.norm1(input_tensor)
        h = F.silu(h)
        h = self.conv1(h)
        h = self.norm2(h)
        h = F.silu(h)
        h = self.dropout(h)
        h = self.conv2(h)
        if self.conv_shortcut is not None:
            input_tensor = self.conv_shortcut(input_tensor.contiguous())
        # Two allocations, as in diffusers: the sum, then the division by output_scale_factor (= 1).
        return (input_tensor + h) / self.output_scale_factor


class Attention(nn.Module):
    """Mid-block attention: diffusers Attention(heads=1, dim_head=C, group norm, residual) run by
    AttnProcessor2_0. One head of dimension C (512)."""

    def __init__(self, c: int, cfg: AKLConfig, **fk):
        super().__init__()
        self.heads = 1
        self.group_norm = _gn(c, cfg, **fk)
        self.to_q = nn.Linear(c, c, bias=True, **fk)
        self.to_k = nn.Linear(c, c, bias=True, **fk)
        self.to_v = nn.Linear(c, c, bias=True, **fk)
        self.to_out = nn.ModuleList([nn.Linear(c, c, bias=True, **fk), nn.Dropout(0.0)])
        self.rescale_output_factor = 1.0

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = hidden_states
        b, c, h, w = hidden_states.shape
        hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        hidden_states = self.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = self.to_q(hidden_states)
        key = self.to_k(hidden_states)
        value = self.to_v(hidden_states)
        head_dim = key.shape[-1] // self.heads
        if attention.current_mode() == "legacy-fp32-softmax":
            hidden_states = self._legacy(query, key, value, head_dim)
        else:
            query = query.view(b, -1, self.heads, head_dim).transpose(1, 2)
            key = key.view(b, -1, self.heads, head_dim).transpose(1, 2)
            value = value.view(b, -1, self.heads, head_dim).transpose(1, 2)
            hidden_states = sdpa(query, key, value)
            hidden_states = hidden_states.transpose(1, 2).reshape(b, -1, self.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = self.to_out[0](hidden_states)
        hidden_states = self.to_out[1](hidden_states)
        hidden_states = hidden_states.transpose(-1, -2).reshape(b, c, h, w)
        hidden_states = hidden_states + residual
        return hidden_states / self.rescale_output_factor


    def _legacy(self, query, key, value, head_dim):
        """diffusers' legacy AttnProcessor (attention_processor.py, Attention.get_attention_scores with
        upcast_softmax=True): an empty N x N baddbmm input in the working dtype, scores, fp32 upcast,
        fp32 softmax, cast back, bmm."""
        b, n, _ = query.shape
        dtype = query.dtype
        query = query.reshape(b, n, self.heads, head_dim).permute(0, 2, 1, 3).reshape(b * self.heads, n, head_dim)
        key = key.reshape(b, n, self.heads, head_dim).permute(0, 2, 1, 3).reshape(b * self.heads, n, head_dim)
        value = value.reshape(b, n, self.heads, head_dim).permute(0, 2, 1, 3).reshape(b * self.heads, n, head_dim)
        baddbmm_input = torch.empty(b * self.heads, n, n, dtype=dtype, device=query.device)
        scores = torch.baddbmm(baddbmm_input, query, key.transpose(-1, -2), beta=0, alpha=head_dim ** -0.5)
        del baddbmm_input
        scores = scores.float()
        probs = scores.softmax(dim=-1)
        del scores
        probs = probs.to(dtype)
        hidden_states = torch.bmm(probs, value)
        del probs
        return hidden_states.reshape(b, self.heads, n, head_dim).permute(0, 2, 1, 3).reshape(b, n, self.heads * head_dim)


class Upsample2D(nn.Module):
    def __init__(self, c: int, **fk):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, **fk)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # diffusers upsampling.py: bf16 goes through fp32 for the nearest interpolation, then back.
        dtype = hidden_states.dtype
        if dtype == torch.bfloat16:
            hidden_states = hidden_states.to(torch.float32)
        if hidden_states.shape[0] >= 64:
            hidden_states = hidden_states.contiguous()
        hidden_states = F.interpolate(hidden_states, scale_factor=2.0, mode="nearest")
        if dtype == torch.bfloat16:
            hidden_states = hidden_states.to(dtype)
        return self.conv(hidden_states)


class Downsample2D(nn.Module):
    def __init__(self, c: int, **fk):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0, **fk)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = F.pad(hidden_states, (0, 1, 0, 1), mode="constant", value=0)
        return self.conv(hidden_states)


class MidBlock2D(nn.Module):
    def __init__(self, c: int, cfg: AKLConfig, **fk):
        super().__init__()
        self.attentions = nn.ModuleList([Attention(c, cfg, **fk)])
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, cfg, **fk), ResnetBlock2D(c, c, cfg, **fk)])

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.resnets[0](hidden_states)
        hidden_states = self.attentions[0](hidden_states)
        return self.resnets[1](hidden_states)


class UpDecoderBlock2D(nn.Module):
    def __init__(self, ci: int, co: int, n: int, add_upsample: bool, cfg: AKLConfig, **fk):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(ci if j == 0 else co, co, cfg, **fk) for j in range(n)])
        self.upsamplers = nn.ModuleList([Upsample2D(co, **fk)]) if add_upsample else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            hidden_states = resnet(hidden_states)
        if self.upsamplers is not None:
            hidden_states = self.upsamplers[0](hidden_states)
        return hidden_states


class DownEncoderBlock2D(nn.Module):
    def __init__(self, ci: int, co: int, n: int, add_downsample: bool, cfg: AKLConfig, **fk):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(ci if j == 0 else co, co, cfg, **fk) for j in range(n)])
        self.downsamplers = nn.ModuleList([Downsample2D(co, **fk)]) if add_downsample else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            hidden_states = resnet(hidden_states)
        if self.downsamplers is not None:
            hidden_states = self.downsamplers[0](hidden_states)
        return hidden_states


class Encoder(nn.Module):
    def __init__(self, cfg: AKLConfig, **fk):
        super().__init__()
        ch = cfg.block_out_channels
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1, **fk)
        blocks = []
        out_c = ch[0]
        for i, c in enumerate(ch):
            in_c, out_c = out_c, c
            blocks.append(DownEncoderBlock2D(in_c, out_c, cfg.layers_per_block, i != len(ch) - 1, cfg, **fk))
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = MidBlock2D(ch[-1], cfg, **fk)
        self.conv_norm_out = _gn(ch[-1], cfg, **fk)
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg.latent_channels, 3, padding=1, **fk)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        sample = self.conv_in(sample)
        for block in self.down_blocks:
            sample = block(sample)
        sample = self.mid_block(sample)
        sample = self.conv_norm_out(sample)
        sample = F.silu(sample)
        return self.conv_out(sample)


class Decoder(nn.Module):
    def __init__(self, cfg: AKLConfig, **fk):
        super().__init__()
        rev = tuple(reversed(cfg.block_out_channels))
        self.conv_in = nn.Conv2d(cfg.latent_channels, rev[0], 3, padding=1, **fk)
        self.mid_block = MidBlock2D(rev[0], cfg, **fk)
        blocks = []
        prev = rev[0]
        for i, c in enumerate(rev):
            blocks.append(UpDecoderBlock2D(prev, c, cfg.layers_per_block + 1, i != len(rev) - 1, cfg, **fk))
            prev = c
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = _gn(rev[-1], cfg, **fk)
        self.conv_out = nn.Conv2d(rev[-1], 3, 3, padding=1, **fk)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        sample = self.conv_in(sample)
        upscale_dtype = next(iter(self.up_blocks.parameters())).dtype
        sample = self.mid_block(sample)
        sample = sample.to(upscale_dtype)
        for block in self.up_blocks:
            sample = block(sample)
        sample = self.conv_norm_out(sample)
        sample = F.silu(sample)
        return self.conv_out(sample)


def diagonal_gaussian_sample(parameters: torch.Tensor, generator=None, mode: bool = False) -> torch.Tensor:
    """diffusers vae.py DiagonalGaussianDistribution(parameters) followed by .sample() or .mode()."""
    mean, logvar = torch.chunk(parameters, 2, dim=1)
    logvar = torch.clamp(logvar, -30.0, 20.0)
    std = torch.exp(0.5 * logvar)
    var = torch.exp(logvar)  # computed by the constructor even when unused
    del var
    if mode:
        return mean
    noise = torch.randn(mean.shape, generator=generator, device=parameters.device, dtype=parameters.dtype)
    return mean + std * noise


class AutoencoderKLTwin(nn.Module):
    """encoder / decoder / quant convs with diffusers' names; `decode_latents` and `encode_image` add the
    pipeline's pre/post-processing so that the measured stage matches what an app runs."""

    def __init__(self, cfg: AKLConfig, device=None, dtype=None):
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.cfg = cfg
        self.encoder = Encoder(cfg, **fk)
        self.decoder = Decoder(cfg, **fk)
        zc = 2 * cfg.latent_channels
        self.quant_conv = nn.Conv2d(zc, zc, 1, **fk) if cfg.use_quant_conv else None
        self.post_quant_conv = (nn.Conv2d(cfg.latent_channels, cfg.latent_channels, 1, **fk)
                                if cfg.use_post_quant_conv else None)
        if cfg.patch_size:
            pc = cfg.latent_channels * cfg.patch_size ** 2
            self.bn = nn.BatchNorm2d(pc, eps=cfg.batch_norm_eps, momentum=0.1, affine=False,
                                     track_running_stats=True, device=device, dtype=dtype)
        else:
            self.bn = None

    # ---- shapes ---------------------------------------------------------------------------------
    def latent_shape(self, height: int, width: int) -> tuple:
        if self.cfg.patch_size:  # FLUX.2 pipeline latents: 128 channels at H/16 (vae_architectures.md 2.2)
            p = self.cfg.patch_size
            return (1, self.cfg.latent_channels * p * p, height // (8 * p), width // (8 * p))
        return (1, self.cfg.latent_channels, height // 8, width // 8)

    def image_shape(self, height: int, width: int) -> tuple:
        return (1, 3, height, width)

    # ---- stages ---------------------------------------------------------------------------------
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if cfg.patch_size:
            # pipeline_flux2: de-normalise with the BN running stats, then unpatchify to (B, 32, H/8, W/8).
            p = cfg.patch_size
            bn_mean = self.bn.running_mean.view(1, -1, 1, 1).to(latents.device, latents.dtype)
            bn_std = torch.sqrt(self.bn.running_var.view(1, -1, 1, 1) + cfg.batch_norm_eps).to(
                latents.device, latents.dtype)
            latents = latents * bn_std + bn_mean
            b, c, h, w = latents.shape
            latents = latents.reshape(b, c // (p * p), p, p, h, w)
            latents = latents.permute(0, 1, 4, 2, 5, 3)
            latents = latents.reshape(b, c // (p * p), h * p, w * p)
        elif cfg.shift_factor is not None:
            latents = latents / cfg.scaling_factor + cfg.shift_factor
        else:
            latents = latents / cfg.scaling_factor
        z = latents
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)

    def encode_image(self, image: torch.Tensor, generator=None) -> torch.Tensor:
        cfg = self.cfg
        h = self.encoder(image)
        if self.quant_conv is not None:
            h = self.quant_conv(h)
        if cfg.patch_size:
            # FLUX.2 reference-image encode: mode of the posterior, patchify, BN-normalise.
            z = diagonal_gaussian_sample(h, mode=True)
            p = cfg.patch_size
            b, c, hh, ww = z.shape
            z = z.view(b, c, hh // p, p, ww // p, p).permute(0, 1, 3, 5, 2, 4).reshape(b, c * p * p, hh // p, ww // p)
            bn_mean = self.bn.running_mean.view(1, -1, 1, 1).to(z.device, z.dtype)
            bn_std = torch.sqrt(self.bn.running_var.view(1, -1, 1, 1) + cfg.batch_norm_eps).to(z.device, z.dtype)
            return (z - bn_mean) / bn_std
        z = diagonal_gaussian_sample(h, generator=generator)
        if cfg.shift_factor is not None:
            return (z - cfg.shift_factor) * cfg.scaling_factor
        return z * cfg.scaling_factor
