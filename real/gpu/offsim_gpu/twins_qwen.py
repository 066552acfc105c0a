"""Plain-torch twin of diffusers' AutoencoderKLQwenImage (Qwen-Image VAE = Wan 2.1 causal 3-D VAE).

Written from reading huggingface/diffusers src/diffusers/models/autoencoders/autoencoder_kl_qwenimage.py
(snapshot 071190da) and shared/specs/vae_architectures.md section 3; no code copied. The memory-relevant
behaviour of the diffusers eager code is kept on purpose, because it is what InvokeAI's estimator was
calibrated on (vae_architectures.md 3.4):

* every causal 3x3x3 conv materialises its zero-padded input (`F.pad`, time padded 2 in front), so a
  single image (T = 1) becomes a 3-frame tensor;
* every conv that takes the feature cache stores a `.clone()` of its input in the cache list, and the list
  lives until `_decode`/`_encode` ends (`clear_cache()`);
* RMS norm normalises in fp32 for fp16/bf16 inputs (diffusers PR #13316) and upsampling runs in fp32;
* upsample3d's time_conv is skipped on the first chunk (cache marker "Rep") but its weights exist.

Module / parameter names follow diffusers' state-dict keys. Decoding one image frame is what
Qwen-Image (and InvokeAI's Qwen l2i) does.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import attention
from .attention import sdpa

CACHE_T = 2

# Published per-channel latent statistics (AutoencoderKLQwenImage defaults); the pipeline de-normalises
# with them before decode. Values only matter numerically, never for memory.
LATENTS_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
LATENTS_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
               3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)


class CausalConv3d(nn.Conv3d):
    def __init__(self, ci, co, kernel_size, stride=1, padding=0, **fk):
        super().__init__(ci, co, kernel_size, stride=stride, padding=padding, **fk)
        p = self.padding
        # (w, w, h, h, 2*t front, 0 back): causal in time.
        self._causal_padding = (p[2], p[2], p[1], p[1], 2 * p[0], 0)
        self.padding = (0, 0, 0)

    def forward(self, x, cache_x=None):
        padding = list(self._causal_padding)
        if cache_x is not None and self._causal_padding[4] > 0:
            cache_x = cache_x.to(x.device)
            x = torch.cat([cache_x, x], dim=2)
            padding[4] -= cache_x.shape[2]
        x = F.pad(x, padding)
        return super().forward(x)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, images: bool = True, fp32_normalize: bool = True, **fk):
        super().__init__()
        shape = (dim, 1, 1) if images else (dim, 1, 1, 1)
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(shape, **fk))
        self.bias = 0.0  # a Python float: the `+ 0.0` still allocates, as in diffusers
        self.fp32_normalize = fp32_normalize

    def forward(self, x):
        upcast = self.fp32_normalize and x.dtype in (torch.float16, torch.bfloat16)
        normalized = F.normalize(x.float() if upcast else x, dim=1).to(x.dtype)
        return normalized * self.scale * self.gamma + self.bias


class Upsample(nn.Upsample):
    def forward(self, x):
        return super().forward(x.float()).type_as(x)


class Resample(nn.Module):
    def __init__(self, dim: int, mode: str, **fk):
        super().__init__()
        self.mode = mode
        if mode in ("upsample2d", "upsample3d"):
            self.resample = nn.Sequential(Upsample(scale_factor=(2.0, 2.0), mode="nearest-exact"),
                                          nn.Conv2d(dim, dim // 2, 3, padding=1, **fk))
            if mode == "upsample3d":
                self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0), **fk)
        elif mode in ("downsample2d", "downsample3d"):
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=(2, 2), **fk))
            if mode == "downsample3d":
                self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0), **fk)
        else:
            raise ValueError(mode)

    def forward(self, x, feat_cache=None, feat_idx=None):
        b, c, t, h, w = x.size()
        if self.mode == "upsample3d" and feat_cache is not None:
            idx = feat_idx[0]
            if feat_cache[idx] is None:
                feat_cache[idx] = "Rep"  # first chunk: time_conv skipped
                feat_idx[0] += 1
            else:
                # Later chunks (video only); an image decode never gets here.
                cache_x = x[:, :, -min(CACHE_T, x.shape[2]):, :, :].clone()
                if cache_x.shape[2] < 2 and feat_cache[idx] != "Rep":
                    cache_x = torch.cat([feat_cache[idx][:, :, -1, :, :].unsqueeze(2), cache_x], dim=2)
                if cache_x.shape[2] < 2 and feat_cache[idx] == "Rep":
                    cache_x = torch.cat([torch.zeros_like(cache_x), cache_x], dim=2)
                x = self.time_conv(x) if feat_cache[idx] == "Rep" else self.time_conv(x, feat_cache[idx])
                feat_cache[idx] = cache_x
                feat_idx[0] += 1
                x = x.reshape(b, 2, c, t, h, w)
                x = torch.stack((x[:, 0], x[:, 1]), 3)
                x = x.reshape(b, c, t * 2, h, w)
        t = x.shape[2]
        x = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        x = self.resample(x)
        x = x.view(b, t, x.size(1), x.size(2), x.size(3)).permute(0, 2, 1, 3, 4)
        if self.mode == "downsample3d" and feat_cache is not None:
            idx = feat_idx[0]
            if feat_cache[idx] is None:
                feat_cache[idx] = x.clone()
                feat_idx[0] += 1
            else:
                cache_x = x[:, :, -1:, :, :].clone()
                x = self.time_conv(torch.cat([feat_cache[idx][:, :, -1:, :, :], x], 2))
                feat_cache[idx] = cache_x
                feat_idx[0] += 1
        return x


def _cached_conv(conv, x, feat_cache, feat_idx):
    """The pattern repeated in every diffusers block: clone the last CACHE_T frames of the conv input into
    the cache slot, run the conv with the previous slot content, store the clone."""
    if feat_cache is None:
        return conv(x)
    idx = feat_idx[0]
    cache_x = x[:, :, -min(CACHE_T, x.shape[2]):, :, :].clone()
    if cache_x.shape[2] < 2 and feat_cache[idx] is not None:
        cache_x = torch.cat([feat_cache[idx][:, :, -1, :, :].unsqueeze(2).to(cache_x.device), cache_x], dim=2)
    x = conv(x, feat_cache[idx])
    feat_cache[idx] = cache_x
    feat_idx[0] += 1
    return x


class ResidualBlock(nn.Module):
    def __init__(self, ci: int, co: int, fp32_rms: bool = True, **fk):
        super().__init__()
        self.norm1 = RMSNorm(ci, images=False, fp32_normalize=fp32_rms, **fk)
        self.conv1 = CausalConv3d(ci, co, 3, padding=1, **fk)
        self.norm2 = RMSNorm(co, images=False, fp32_normalize=fp32_rms, **fk)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = CausalConv3d(co, co, 3, padding=1, **fk)
        self.conv_shortcut = CausalConv3d(ci, co, 1, **fk) if ci != co else None

    def forward(self, x, feat_cache=None, feat_idx=None):
        h = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        x = self.norm1(x)
        x = F.silu(x)
        x = _cached_conv(self.conv1, x, feat_cache, feat_idx)
        x = self.norm2(x)
        x = F.silu(x)
        x = self.dropout(x)
        x = _cached_conv(self.conv2, x, feat_cache, feat_idx)
        return x + h


class AttentionBlock(nn.Module):
    def __init__(self, dim: int, fp32_rms: bool = True, **fk):
        super().__init__()
        self.norm = RMSNorm(dim, images=True, fp32_normalize=fp32_rms, **fk)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1, **fk)
        self.proj = nn.Conv2d(dim, dim, 1, **fk)

    def forward(self, x):
        if attention.current_mode() == "legacy-fp32-softmax":
            raise ValueError("legacy-fp32-softmax is diffusers' AutoencoderKL processor; the Qwen-Image VAE calls SDPA")
        identity = x
        b, c, t, h, w = x.size()
        x = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        x = self.norm(x)
        qkv = self.to_qkv(x)
        qkv = qkv.reshape(b * t, 1, c * 3, -1)
        qkv = qkv.permute(0, 1, 3, 2).contiguous()
        q, k, v = qkv.chunk(3, dim=-1)
        x = sdpa(q, k, v)
        x = x.squeeze(1).permute(0, 2, 1).reshape(b * t, c, h, w)
        x = self.proj(x)
        x = x.view(b, t, c, h, w).permute(0, 2, 1, 3, 4)
        return x + identity


class MidBlock(nn.Module):
    def __init__(self, dim: int, fp32_rms: bool = True, **fk):
        super().__init__()
        self.attentions = nn.ModuleList([AttentionBlock(dim, fp32_rms, **fk)])
        self.resnets = nn.ModuleList([ResidualBlock(dim, dim, fp32_rms, **fk), ResidualBlock(dim, dim, fp32_rms, **fk)])

    def forward(self, x, feat_cache=None, feat_idx=None):
        x = self.resnets[0](x, feat_cache, feat_idx)
        x = self.attentions[0](x)
        return self.resnets[1](x, feat_cache, feat_idx)


class UpBlock(nn.Module):
    def __init__(self, ci: int, co: int, num_res_blocks: int, upsample_mode, fp32_rms: bool = True, **fk):
        super().__init__()
        self.resnets = nn.ModuleList([ResidualBlock(ci if j == 0 else co, co, fp32_rms, **fk)
                                      for j in range(num_res_blocks + 1)])
        self.upsamplers = nn.ModuleList([Resample(co, upsample_mode, **fk)]) if upsample_mode else None

    def forward(self, x, feat_cache=None, feat_idx=None):
        for resnet in self.resnets:
            x = resnet(x, feat_cache, feat_idx)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, feat_cache, feat_idx)
        return x


class Encoder3d(nn.Module):
    def __init__(self, dim, z_dim, dim_mult, num_res_blocks, temperal_downsample, fp32_rms=True, **fk):
        super().__init__()
        dims = [dim * u for u in [1] + list(dim_mult)]
        self.conv_in = CausalConv3d(3, dims[0], 3, padding=1, **fk)
        blocks = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(num_res_blocks):
                blocks.append(ResidualBlock(in_dim, out_dim, fp32_rms, **fk))
                in_dim = out_dim
            if i != len(dim_mult) - 1:
                blocks.append(Resample(out_dim, "downsample3d" if temperal_downsample[i] else "downsample2d", **fk))
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = MidBlock(dims[-1], fp32_rms, **fk)
        self.norm_out = RMSNorm(dims[-1], images=False, fp32_normalize=fp32_rms, **fk)
        self.conv_out = CausalConv3d(dims[-1], z_dim, 3, padding=1, **fk)

    def forward(self, x, feat_cache=None, feat_idx=None):
        x = _cached_conv(self.conv_in, x, feat_cache, feat_idx)
        for layer in self.down_blocks:
            x = layer(x, feat_cache, feat_idx)
        x = self.mid_block(x, feat_cache, feat_idx)
        x = self.norm_out(x)
        x = F.silu(x)
        return _cached_conv(self.conv_out, x, feat_cache, feat_idx)


class Decoder3d(nn.Module):
    def __init__(self, dim, z_dim, dim_mult, num_res_blocks, temperal_upsample, fp32_rms=True, **fk):
        super().__init__()
        dims = [dim * u for u in [dim_mult[-1]] + list(dim_mult[::-1])]
        self.conv_in = CausalConv3d(z_dim, dims[0], 3, padding=1, **fk)
        self.mid_block = MidBlock(dims[0], fp32_rms, **fk)
        blocks = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim = in_dim // 2  # the previous stage's upsample conv halved the channels
            mode = None
            if i != len(dim_mult) - 1:
                mode = "upsample3d" if temperal_upsample[i] else "upsample2d"
            blocks.append(UpBlock(in_dim, out_dim, num_res_blocks, mode, fp32_rms, **fk))
        self.up_blocks = nn.ModuleList(blocks)
        self.norm_out = RMSNorm(dims[-1], images=False, fp32_normalize=fp32_rms, **fk)
        self.conv_out = CausalConv3d(dims[-1], 3, 3, padding=1, **fk)

    def forward(self, x, feat_cache=None, feat_idx=None):
        x = _cached_conv(self.conv_in, x, feat_cache, feat_idx)
        x = self.mid_block(x, feat_cache, feat_idx)
        for up_block in self.up_blocks:
            x = up_block(x, feat_cache, feat_idx)
        x = self.norm_out(x)
        x = F.silu(x)
        return _cached_conv(self.conv_out, x, feat_cache, feat_idx)


class QwenImageVAETwin(nn.Module):
    def __init__(self, base_dim=96, z_dim=16, dim_mult=(1, 2, 4, 4), num_res_blocks=2,
                 temperal_downsample=(False, True, True), fp32_rms=True, device=None, dtype=None):
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.z_dim = z_dim
        self.spatial_compression_ratio = 2 ** len(temperal_downsample)
        self.encoder = Encoder3d(base_dim, z_dim * 2, dim_mult, num_res_blocks, list(temperal_downsample),
                                 fp32_rms, **fk)
        self.quant_conv = CausalConv3d(z_dim * 2, z_dim * 2, 1, **fk)
        self.post_quant_conv = CausalConv3d(z_dim, z_dim, 1, **fk)
        self.decoder = Decoder3d(base_dim, z_dim, dim_mult, num_res_blocks, list(temperal_downsample)[::-1],
                                 fp32_rms, **fk)
        self._dec_conv_num = sum(isinstance(m, CausalConv3d) for m in self.decoder.modules())
        self._enc_conv_num = sum(isinstance(m, CausalConv3d) for m in self.encoder.modules())
        self._feat_map = None
        self._enc_feat_map = None

    def clear_cache(self):
        self._feat_map = [None] * self._dec_conv_num
        self._enc_feat_map = [None] * self._enc_conv_num

    # ---- shapes ---------------------------------------------------------------------------------
    def latent_shape(self, height: int, width: int) -> tuple:
        s = self.spatial_compression_ratio
        return (1, self.z_dim, 1, height // s, width // s)

    def image_shape(self, height: int, width: int) -> tuple:
        return (1, 3, 1, height, width)

    # ---- diffusers _decode / _encode --------------------------------------------------------------
    def _decode(self, z):
        num_frame = z.shape[2]
        self.clear_cache()
        x = self.post_quant_conv(z)
        out = None
        for i in range(num_frame):
            conv_idx = [0]
            o = self.decoder(x[:, :, i:i + 1, :, :], feat_cache=self._feat_map, feat_idx=conv_idx)
            out = o if out is None else torch.cat([out, o], 2)
            del o
        out = torch.clamp(out, min=-1.0, max=1.0)
        self.clear_cache()
        return out

    def _encode(self, x):
        num_frame = x.shape[2]
        self.clear_cache()
        out = None
        for i in range(1 + (num_frame - 1) // 4):
            conv_idx = [0]
            chunk = x[:, :, :1] if i == 0 else x[:, :, 1 + 4 * (i - 1):1 + 4 * i]
            o = self.encoder(chunk, feat_cache=self._enc_feat_map, feat_idx=conv_idx)
            out = o if out is None else torch.cat([out, o], 2)
            del o
        enc = self.quant_conv(out)
        del out
        self.clear_cache()
        return enc

    # ---- stages as the Qwen-Image pipeline runs them ----------------------------------------------
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(LATENTS_MEAN).view(1, self.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
        inv_std = 1.0 / torch.tensor(LATENTS_STD).view(1, self.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
        latents = latents / inv_std + mean
        image = self._decode(latents)
        return image[:, :, 0]

    def encode_image(self, image: torch.Tensor, generator=None) -> torch.Tensor:
        from .twins_akl import diagonal_gaussian_sample
        h = self._encode(image)
        z = diagonal_gaussian_sample(h, generator=generator)
        mean = torch.tensor(LATENTS_MEAN).view(1, self.z_dim, 1, 1, 1).to(z.device, z.dtype)
        std = torch.tensor(LATENTS_STD).view(1, self.z_dim, 1, 1, 1).to(z.device, z.dtype)
        return (z - mean) / std
