"""Scaled-dot-product attention with a selectable backend (`math | efficient | auto`).

The VAEs call `F.scaled_dot_product_attention` (diffusers AttnProcessor2_0, Qwen-Image
QwenImageAttentionBlock); which kernel runs decides whether attention memory is O(N) or O(N^2)
(shared/specs/vae_architectures.md section 1.2 and 8.2). The backend is chosen per measured point with
`torch.nn.attention.sdpa_kernel` (PyTorch >= 2.3), falling back to `torch.backends.cuda.sdp_kernel`
(2.0 - 2.2). PyTorch < 2.0 (Debian's CPU 1.13 used for the dry-run tests) has no public SDPA, so the
explicit bmm/softmax/bmm formula is used there; that is only ever a CPU logic check, never a measurement.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

# Names shared with the C++ twins (include/offsim/real/switches.hpp: "math", "efficient",
# "legacy-fp32-softmax"); "auto" = PyTorch's own dispatch, which only exists on the GPU.
MODES = ("math", "efficient", "auto", "legacy-fp32-softmax")

_current = {"mode": "auto"}


def current_mode() -> str:
    return _current["mode"]

HAVE_SDPA = hasattr(F, "scaled_dot_product_attention")


def _manual(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # Same math as PyTorch's math backend: softmax(q k^T / sqrt(d)) v, materialising the N x N scores.
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = torch.matmul(q * scale, k.transpose(-1, -2))
    probs = torch.softmax(scores, dim=-1)
    del scores
    return torch.matmul(probs, v)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if HAVE_SDPA:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
    return _manual(q, k, v)


def implementation_name() -> str:
    return "torch.nn.functional.scaled_dot_product_attention" if HAVE_SDPA else "manual bmm-softmax-bmm (torch < 2.0)"


@contextlib.contextmanager
def backend(mode: str):
    """Restrict SDPA to one backend for the duration of a measured call."""
    if mode not in MODES:
        raise ValueError(f"attention mode {mode!r}: expected one of {MODES}")
    previous = _current["mode"]
    _current["mode"] = mode
    try:
        with _sdpa_backend(mode):
            yield
    finally:
        _current["mode"] = previous


@contextlib.contextmanager
def _sdpa_backend(mode: str):
    # legacy-fp32-softmax does not call SDPA at all (twins_akl.Attention computes it explicitly).
    if mode in ("auto", "legacy-fp32-softmax") or not HAVE_SDPA:
        yield
        return
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # PyTorch >= 2.3
    except ImportError:  # PyTorch 2.0 - 2.2
        flags = dict(enable_flash=False, enable_math=mode == "math", enable_mem_efficient=mode == "efficient")
        with torch.backends.cuda.sdp_kernel(**flags):
            yield
        return
    chosen = SDPBackend.MATH if mode == "math" else SDPBackend.EFFICIENT_ATTENTION
    with sdpa_kernel([chosen]):
        yield
