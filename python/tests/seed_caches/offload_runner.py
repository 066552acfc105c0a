"""A schedule-based CPU offloader with the structure of LightX2V's cpu_offload runner (docs/seed_facts.md 2),
model granularity:

* the text encoder goes to the GPU for the text encode and back afterwards (a pointer swap: a CPU copy is
  kept);
* the transformer goes to the GPU at the start of each denoise step; before LightX2V PR #1051/#1053 it never
  went back (the bug: the next call's text encoder has no room), after it, it goes back after the last step;
* the VAE stays on the GPU (it is not offloaded);
* after the last step of each stage, the allocator cache is emptied when the device is short (free below
  4 GiB) and at least 2 GiB are reclaimable.

Models are offsim stand-ins used like torch modules (.to(device)); torch.cuda answers from the simulated
device. Each stage step logs one decision (schedule-based: no free-memory figure, stop reason
not_applicable) and, at the end of a call, what it says is offloaded (P4).
"""
from __future__ import annotations

import torch

GB = 2**30
DEVICE = "cuda"


class OffloadRunner:
    def __init__(self, models: dict, run_stage, log=None, steps: int = 4, offload_transformer: bool = False):
        self.te = models["text_encoder"]
        self.transformer = models["transformer"]
        self.vae = models["vae"]
        self.run_stage = run_stage            # runs a stage's working memory on the device
        self.log = log
        self.steps = steps
        self.offload_transformer = offload_transformer  # the fix
        self.vae.to(DEVICE)                   # built on the GPU: not offloaded

    def __call__(self) -> None:
        """One request: text encode, `steps` denoise steps, VAE decode."""
        with self._stage("text_encode") as stage:
            self._load(stage, "text_encoder", self.te)
            self.run_stage("text_encode")
            self.te.to("cpu")
            self._maybe_empty_cache()
        for step in range(self.steps):
            with self._stage("denoise", step=step) as stage:
                self._load(stage, "transformer", self.transformer)
                self.run_stage("denoise")
                if self.offload_transformer and step + 1 == self.steps:
                    self.transformer.to("cpu")
                if step + 1 == self.steps:
                    self._maybe_empty_cache()
        with self._stage("decode") as stage:
            self._load(stage, "vae", self.vae)
            self.run_stage("decode")
            self._maybe_empty_cache()
            if stage is not None:  # what the runner says after the request (P4): offloaded between uses
                stage.report_model("text_encoder", self.te.cur_vram_bytes(), offloaded=True)
                stage.report_model("transformer", self.transformer.cur_vram_bytes(), offloaded=True)
                stage.report_model("vae", self.vae.cur_vram_bytes(), offloaded=False, resident_by_design=True)
        if self.log is not None:
            self.log.new_call()

    def _stage(self, name: str, step: int = 0):
        if self.log is None:
            return _NoStage()
        return self.log.stage(name, "denoise" if name == "denoise" else "vae_decode" if name == "decode"
                              else "text_encode", step=step)

    def _load(self, stage, model_id: str, model) -> None:
        if stage is None:
            model.to(DEVICE)
            return
        with stage.decision(models=[model_id]) as d:
            before = model.cur_vram_bytes()
            try:
                model.to(DEVICE)
            finally:
                d.loaded(model_id, model.cur_vram_bytes() - before)

    def _maybe_empty_cache(self) -> None:
        free, _ = torch.cuda.mem_get_info()
        if free < 4 * GB and torch.cuda.memory_reserved() - torch.cuda.memory_allocated() >= 2 * GB:
            torch.cuda.empty_cache()


class _NoStage:
    def __enter__(self):
        return None

    def __exit__(self, *exc) -> bool:
        return False
