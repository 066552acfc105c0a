"""A lock-based model cache with the decision structure of InvokeAI's ModelCache (docs/seed_facts.md 1):

* a lock asks for a model and for working memory; no estimate means the cache's default (3 GiB);
* free VRAM is the driver's free memory minus that working memory (cached-but-unallocated bytes count as
  used, as mem_get_info sees them);
* when the model does not fit, unlocked models are partially unloaded, smallest first, re-checking after each,
  then the allocator cache is emptied; the model is then loaded as far as the free VRAM (+1 MiB) allows.

`decode_working_memory` is the call site's estimate for the Qwen-Image VAE decode: `None` before InvokeAI PR
#9305 (the bug: no estimate, so only the default is reserved and nothing is evicted), the per-pixel constant
by backend after it. Models are offsim stand-ins with InvokeAI's cached-model methods; memory figures come from
torch.cuda, which the virtual CUDA answers from the simulated device.
"""
from __future__ import annotations

from typing import Optional

import torch

MB = 2**20
GB = 2**30
DEFAULT_WORKING_MEMORY = 3 * GB


def qwen_decode_estimate(height: int, width: int, element_size: int) -> int:
    """Working memory of a Qwen-Image VAE decode: bytes per output pixel per element byte, by backend (the
    constants published with PR #9305: 5500 on ROCm, 2900 on CUDA)."""
    per_pixel = 5500 if torch.version.hip else 2900
    return per_pixel * height * width * element_size


class ModelCache:
    def __init__(self, models: dict, log=None, default_working_memory: int = DEFAULT_WORKING_MEMORY):
        self.models = models          # id -> stand-in with total_bytes/cur_vram_bytes/partial_*_vram methods
        self.log = log                # an offsim_decisions.DecisionLog, or None
        self.default_working_memory = default_working_memory
        self.locked: set = set()

    def _free_vram(self, working_memory: int) -> int:
        free, _total = torch.cuda.mem_get_info()
        return free - working_memory

    def lock(self, model_id: str, working_mem_bytes: Optional[int] = None) -> None:
        working_memory = self.default_working_memory if working_mem_bytes is None else working_mem_bytes
        model = self.models[model_id]
        with self._decision(model_id, working_mem_bytes) as d:
            d.set_estimate(working_memory, source="passed by the call site" if working_mem_bytes is not None
                           else "the cache's default working memory, 3 GiB (none passed)")
            needed = model.total_bytes() - model.cur_vram_bytes()
            if needed > self._free_vram(working_memory):
                for other_id in sorted(self.models, key=lambda m: self.models[m].total_bytes()):
                    shortfall = needed - self._free_vram(working_memory)  # freed bytes stay cached: re-read
                    if shortfall <= 0:
                        break
                    if other_id == model_id or other_id in self.locked:
                        continue
                    freed = self.models[other_id].partial_unload_from_vram(shortfall)
                    if freed:
                        d.evicted(other_id, freed)
                torch.cuda.empty_cache()
            free = torch.cuda.mem_get_info()[0]
            d.set_free_memory(free)
            d.set_stop("satisfied" if free - working_memory >= needed else "exhausted")
            d.loaded(model_id, model.partial_load_to_vram(free - working_memory + MB) if needed > 0 else 0)
        self.locked.add(model_id)

    def _decision(self, model_id: str, working_mem_bytes: Optional[int]):
        if self.log is None:
            return _Unlogged()
        return self.log.decision(models=[model_id], estimate_passed=working_mem_bytes)

    def unlock(self, model_id: str) -> None:
        self.locked.discard(model_id)


class _Unlogged:
    """Stands for a logged decision when the cache runs without a log."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def decode(cache: ModelCache, vae_stage, height: int, width: int, element_size: int, estimate: bool) -> None:
    """The latents-to-image step: lock the VAE (with or without an estimate), run the decode, unlock."""
    cache.lock("vae", qwen_decode_estimate(height, width, element_size) if estimate else None)
    try:
        vae_stage()  # the decode's working memory on the device
    finally:
        cache.unlock("vae")
