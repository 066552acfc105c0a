"""OffsimGpu: one scenario's simulated device with torch.cuda patched to answer from it, its models as
stand-ins, its stages' working memory, and a decision log that offsim checks when the run ends. The pytest
fixture `offsim_gpu` (offsim.pytest_plugin) is one of these; it works without pytest too:

    with offsim.OffsimGpu("scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json") as gpu:
        log = gpu.open_log(policy_id="mycache@dev", free_memory_formula="driver free", p1_slack_bytes=2**20)
        with gpu.stage("decode") as stage:          # a stage step of the scenario, logged
            ...                                     # the cache decides (log.decision(...)), loads gpu.models[...]
            gpu.run_stage("decode")                 # the stage's working memory; an OOM is raised here
    report = gpu.report                             # offsim.check() of the log
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Optional

from . import _core, paths
from .checks import check
from .standins import StandInModel
from .virtual_cuda import VirtualCuda


class OffsimGpu:
    """A scenario's device under a virtual CUDA. `scenario`: a scenario file (relative to the offsim checkout or
    the current directory); or pass `device=` an offsim.Device to use instead (no stages then)."""

    def __init__(self, scenario: Optional[str] = None, *, device: Any = None, root: Optional[str] = None,
                 log_path: Optional[str] = None, torch_module: Any = None):
        self.root = root or paths.root()
        if (scenario is None) == (device is None):
            raise _core.UsageError("OffsimGpu(scenario=..., device=...): give a scenario file or a device")
        self.scenario_path = paths.resolve(scenario, self.root) if scenario else None
        self.device = device if device is not None else _core.Device.from_scenario(self.scenario_path, self.root)
        self.scenario = self.device.scenario or {}
        self._stages = {s["name"]: s for s in self.scenario.get("stages", [])}
        self.models = {mid: StandInModel(self.device.model(mid), working_memory=self._stage_runner_for(mid))
                       for mid in self.device.model_ids()}
        self._cuda = VirtualCuda(self.device, torch_module)
        self._torch_module = torch_module
        self._log_path = log_path
        self._tmp: Optional[tempfile.TemporaryDirectory] = None
        self.log: Any = None
        self.report: Any = None

    # ---- the run ----
    def __enter__(self) -> "OffsimGpu":
        self._cuda.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if self.log is not None and self.report is None:
                self.check()
        finally:
            self._cuda.__exit__(exc_type, exc, tb)
        return False

    def model(self, model_id: str) -> StandInModel:
        return self.models[model_id]

    def stage_info(self, name: str) -> dict:
        """The scenario's stage `name` as JSON (kind, models, steps, workload, working_memory, ...)."""
        if name not in self._stages:
            raise _core.ConfigError(f"stage({name!r}): the scenario has no such stage (stages: {', '.join(self._stages)})")
        return self._stages[name]

    def run_stage(self, name: str) -> dict:
        """One step of stage `name` on the device, as offsim's runner runs it after the policy decided: memory
        its first run takes outside the allocator, then its working memory. Raises the OOM where it fails."""
        return self.device.run_stage(name)

    def _stage_runner_for(self, model_id: str):
        """forward() of a stand-in runs the working memory of the scenario's (single) stage that uses it."""
        def run() -> None:
            stages = [s["name"] for s in self.scenario.get("stages", []) if model_id in s.get("models", [])]
            if len(stages) != 1:
                raise _core.UsageError(f"{model_id}.forward(): the model runs in stages {stages}; call run_stage(name)")
            self.run_stage(stages[0])
        return run

    # ---- the decision log ----
    def open_log(self, policy_id: str, **kwargs: Any) -> Any:
        """A decision log (offsim_decisions.DecisionLog) written while the virtual CUDA is active: its figures
        are the simulated device's (memory_source "offsim-simulator")."""
        from offsim_decisions import DecisionLog  # noqa: PLC0415 (the shim is optional for device-only use)
        if self.log is not None:
            raise _core.UsageError("open_log(): a log is open already")
        path = self._log_path
        if path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="offsim-")
            path = os.path.join(self._tmp.name, "decisions.jsonl")
        kwargs.setdefault("torch_module", self._torch_module)
        self.log = DecisionLog(path, policy_id, **kwargs)
        return self.log

    def stage(self, name: str, **kwargs: Any) -> Any:
        """log.stage() for the scenario's stage `name`, with its kind, workload and working-memory trace."""
        if self.log is None:
            raise _core.UsageError(f"stage({name!r}): open_log() first")
        info = self.stage_info(name)
        kwargs.setdefault("workload", info.get("workload"))
        wm = info.get("working_memory")
        if isinstance(wm, str):
            kwargs.setdefault("working_memory", wm)
        return self.log.stage(name, info.get("kind", "other"), **kwargs)

    def check(self) -> Any:
        """Closes the log and checks P1-P5 on it (offsim.check): the report, also kept as self.report."""
        if self.log is None:
            raise _core.UsageError("check(): no decision log was opened")
        self.log.close()
        self.report = check(self.log.path, root=self.root)
        return self.report

    @property
    def log_path(self) -> Optional[str]:
        return None if self.log is None else self.log.path
