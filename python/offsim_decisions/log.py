"""The decision log: one JSON line per cache decision and per stage step, after a header line
(schema offsim-decision/1, docs/decision_log.md). A policy's own tests wrap each stage and each cache
decision; `offsim check --decisions LOG` then checks P1-P5 (DESIGN.md section 2) on what was logged.

    log = DecisionLog("decisions.jsonl", policy_id="invokeai@6.9.0", policy_family="invokeai",
                      free_memory_formula="driver_free", p1_slack_bytes=2**20)
    with log:
        with log.stage("decode", kind="vae_decode",
                       workload=vae_workload("qwen_image", "decode", 832, 1248, "bf16")) as stage:
            with stage.decision(models=["vae"], estimate_passed=None) as d:
                ...                                  # the cache's own decision
                d.set_estimate(e_bytes, source="default device_working_mem_gb")
                d.set_free_memory(f_bytes)           # before subtracting E
                d.set_stop("satisfied")
                d.evicted("transformer", n); d.loaded("vae", m)
            ...                                      # the stage runs; an OOM raised here is logged

Lines are written as they happen (flushed) to PATH.partial, which close() renames to PATH: a test that
dies half-way leaves a readable PATH.partial, and PATH only ever holds a finished log.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import threading
from typing import Any, Callable, Iterable, Mapping, Optional

from . import schema
from .memory import DeviceMemory
from .schema import SchemaError, check_bytes, check_choice, check_workload, transfer_list


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Decision:
    """One cache decision being logged. Fill it while the cache decides; it is written when the `with`
    block ends (or by DecisionLog.record_decision). Every size is bytes."""

    def __init__(self, log: "DecisionLog", stage: Optional["StageScope"], models: Iterable[str],
                 estimate_passed: Optional[int]):
        self._log = log
        self._stage = stage
        self.models = [str(m) for m in models]
        self.estimate_passed = check_bytes("estimate.passed_bytes", estimate_passed, optional=True)
        self.estimate: Optional[int] = None
        self.estimate_source = "" if estimate_passed is None else "passed by the call site"
        self.free_memory: Optional[int] = None
        self.free_memory_formula = log.free_memory_formula
        self.stop = "not_applicable"
        self.evictions: list = []
        self.loads: Optional[list] = []
        self.weights_loaded: Optional[int] = None  # None: the sum of loads
        self.memory: Optional[dict] = None
        self.oom: Optional[dict] = None
        self.seq: Optional[int] = None

    # ---- what the cache decided ----
    def set_estimate(self, estimate_bytes: Optional[int], source: Optional[str] = None) -> None:
        """E: the working memory the cache reserved for the stage (its default when the call site passed
        none). `source` says where it came from, e.g. "default device_working_mem_gb = 3 GiB"."""
        self.estimate = check_bytes("estimate.bytes", estimate_bytes, optional=True)
        if source is not None:
            self.estimate_source = str(source)

    def set_free_memory(self, free_bytes: Optional[int], formula: Optional[str] = None) -> None:
        """F_P: free memory as the cache itself computes it, before subtracting E, when it stopped evicting
        (may be negative). `formula` names the computation (default: the log's free_memory_formula)."""
        self.free_memory = check_bytes("free_memory.bytes", free_bytes, signed=True, optional=True)
        if formula is not None:
            self.free_memory_formula = str(formula)

    def set_stop(self, reason: str) -> None:
        """"satisfied" (the cache's own condition held), "exhausted" (nothing left to evict; it proceeded
        anyway) or "not_applicable" (schedule-based offloaders)."""
        self.stop = check_choice("stop_reason", reason, schema.STOP_REASONS)

    def evicted(self, model: str, nbytes: int) -> None:
        self.evictions.append((str(model), check_bytes("evictions[].bytes", nbytes)))

    def loaded(self, model: str, nbytes: int) -> None:
        if self.loads is None:
            self.loads = []
        self.loads.append((str(model), check_bytes("loads[].bytes", nbytes)))

    def set_weights_loaded(self, nbytes: int, itemized: bool = False) -> None:
        """W_load when the loads are not itemized per model (itemized=False drops the per-model list)."""
        self.weights_loaded = check_bytes("weights_loaded_bytes", nbytes)
        if not itemized:
            self.loads = None

    def snapshot_memory(self) -> None:
        """Record the device's memory figures now (at the stop). Called automatically at the end of the
        decision if not called before."""
        self.memory = self._log.memory.snapshot()

    # ---- writing ----
    def to_record(self) -> dict:
        loads = transfer_list("loads", self.loads) if self.loads is not None else None
        w_load = self.weights_loaded
        if w_load is None:
            w_load = sum(item["bytes"] for item in loads) if loads is not None else 0
        elif loads is not None and sum(item["bytes"] for item in loads) != w_load:
            raise SchemaError(f"weights_loaded_bytes: {w_load} is not the sum of loads[] ({loads})")
        key = self._stage.key() if self._stage is not None else None
        return {
            "schema": schema.SCHEMA,
            "record": schema.RECORD_DECISION,
            "seq": self.seq,
            "stage": key,
            "models": self.models,
            "estimate": {"bytes": self.estimate, "passed": self.estimate_passed is not None,
                         "passed_bytes": self.estimate_passed, "source": self.estimate_source},
            "free_memory": {"bytes": self.free_memory, "formula": self.free_memory_formula},
            "weights_loaded_bytes": w_load,
            "stop_reason": self.stop,
            "evictions": transfer_list("evictions", self.evictions),
            "loads": loads,
            "memory": self.memory,
            "oom": self.oom,
        }

    def __enter__(self) -> "Decision":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None and self._log.memory.is_oom(exc):
            self.oom = {"message": str(exc), "requested_bytes": None}
        if self.memory is None:
            self.snapshot_memory()
        self._log._write_decision(self)
        return False


class StageScope:
    """One step of a stage (a decode, one denoise step, ...). Decisions made inside belong to it; when
    the block ends its memory figures and outcome are written as a stage line. An OOM raised out of the
    block is logged as unhandled and re-raised; call handled_oom() where the code recovers from one."""

    def __init__(self, log: "DecisionLog", name: str, kind: str, workload: Optional[Mapping[str, Any]],
                 working_memory: Optional[str], call: int, step: int):
        self._log = log
        self.name = str(name)
        self.kind = check_choice("stage.kind", kind, schema.STAGE_KINDS)
        self.workload = check_workload("workload", workload)
        for kind_key in ("vae", "denoise"):
            # offsim's reader needs a backend for every workload (estimators and published peaks differ
            # between CUDA and ROCm); refuse here what `offsim check --decisions` would refuse later.
            if self.workload is not None and kind_key in self.workload and "backend" not in self.workload[kind_key] \
                    and not log.backend:
                raise SchemaError(f"workload.{kind_key}.backend: missing, and the log names no device backend (no GPU "
                                  f"answered torch.cuda): pass backend=\"cuda\" or \"rocm\" to the workload or to DecisionLog")
        self.working_memory = working_memory
        self.call = call
        self.step = step
        self.decisions: list = []
        self.handled_ooms = 0
        self.models: Optional[list] = None
        self._before: Optional[dict] = None
        self._peak_reset = False

    def key(self) -> dict:
        return {"name": self.name, "kind": self.kind, "call": self.call, "step": self.step}

    def decision(self, models: Iterable[str] = (), estimate_passed: Optional[int] = None) -> Decision:
        """A cache decision made for this stage (context manager)."""
        return Decision(self._log, self, models, estimate_passed)

    def handled_oom(self) -> None:
        """The code caught an allocation failure and recovered (tiled retry, algorithm fallback)."""
        self.handled_ooms += 1

    def report_model(self, model: str, device_bytes: int, offloaded: bool, resident_by_design: bool = False) -> None:
        """What the policy says about a model after the stage (P4): offloaded=True claims it holds no
        device memory; device_bytes is what it actually holds (e.g. sum of its parameters on the device)."""
        if self.models is None:
            self.models = []
        self.models.append({"model": str(model), "device_bytes": check_bytes("models[].device_bytes", device_bytes),
                            "offloaded": bool(offloaded), "resident_by_design": bool(resident_by_design)})

    def _body_starts(self) -> None:
        """Figures when the stage's own work starts: at entry, and again after each decision made inside
        the stage (evictions, empty_cache() and loads change them). T_warm is the peak reserved growth from
        here: the peak counter is reset so that max_memory_reserved() at the end is the stage's own peak."""
        self._before = self._log.memory.snapshot()
        if self._log.reset_peak:
            self._peak_reset = self._log.memory.reset_peak()
            if self._peak_reset and self._before is not None:
                self._before = self._log.memory.snapshot()

    def __enter__(self) -> "StageScope":
        self._log._enter_stage(self)
        self._body_starts()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        after = self._log.memory.snapshot()
        peak = None
        if after is not None and after.get("max_reserved_bytes") is not None:
            before_max = (self._before or {}).get("max_reserved_bytes")
            # Without a reset the counter holds the process's peak; it is this stage's only if it grew here.
            if self._peak_reset or (before_max is not None and after["max_reserved_bytes"] > before_max):
                peak = after["max_reserved_bytes"]
        oom = None
        if exc is not None and self._log.memory.is_oom(exc):
            oom = {"message": str(exc), "requested_bytes": None}
        workload = self.workload
        if workload is not None and "vae" in workload and "backend" not in workload["vae"] and self._log.backend:
            workload = {"vae": dict(workload["vae"], backend=self._log.backend)}
        if workload is not None and "denoise" in workload and "backend" not in workload["denoise"] and self._log.backend:
            workload = {"denoise": dict(workload["denoise"], backend=self._log.backend)}
        record = {
            "schema": schema.SCHEMA,
            "record": schema.RECORD_STAGE,
            "seq": None,
            "stage": self.key(),
            "workload": workload,
            "working_memory": self.working_memory,
            "decisions": list(self.decisions),
            "memory": {"before": self._before, "after": after, "peak_reserved_bytes": peak,
                       "peak_reset": self._peak_reset},
            "outcome": {"completed": exc is None, "oom": oom, "handled_ooms": self.handled_ooms},
            "models": self.models,
        }
        self._log._exit_stage(self, record)
        return False


class DecisionLog:
    """Writes an offsim-decision/1 log.

    policy_id: what offsim prints, e.g. "invokeai@6.9.0" or "invokeai@<git sha>".
    policy_family: "invokeai", "comfyui", ... (free text).
    free_memory_formula: how the policy computes F_P; "" for schedule-based offloaders (P1 then n/a).
    p1_slack_bytes: documented slack P1 allows (InvokeAI loads up to F_P - E + 1 MiB).
    torch_module / device: passed to DeviceMemory (tests hand in a mock module).
    measured: whether the memory figures are a real GPU's (default: a device answered torch.cuda and it is not
        offsim's virtual CUDA); offsim uses a logged peak as T only from a measured log.
    reset_peak: reset torch's peak counters at each stage start so T_warm is measured (default True).
    """

    def __init__(self, path: str, policy_id: str, *, policy_family: str = "", policy_version: str = "",
                 free_memory_formula: str = "", p1_slack_bytes: int = 0, torch_module: Any = None,
                 device: Any = None, measured: Optional[bool] = None, memory_source: Optional[str] = None,
                 reset_peak: bool = True, device_name: Optional[str] = None,
                 device_total_bytes: Optional[int] = None, backend: Optional[str] = None,
                 alloc_conf: Optional[str] = None, source: Optional[Mapping[str, Any]] = None):
        if not policy_id:
            raise SchemaError("policy.id: required (e.g. \"invokeai@6.9.0\")")
        self.path = os.fspath(path)
        self.partial_path = self.path + ".partial"
        self.policy_id = policy_id
        self.policy_family = policy_family
        self.policy_version = policy_version
        self.free_memory_formula = free_memory_formula
        self.p1_slack_bytes = check_bytes("policy.p1_slack_bytes", p1_slack_bytes)
        self.memory = DeviceMemory(torch_module, device)
        self.reset_peak = reset_peak
        available = self.memory.available()
        simulated = self.memory.simulated_device() is not None  # offsim's virtual CUDA: figures are simulated
        self.measured = (available and not simulated) if measured is None else bool(measured)
        self.memory_source = memory_source or ("offsim-simulator" if simulated else "torch.cuda" if available else "none")
        check_choice("device.memory_source", self.memory_source, schema.MEMORY_SOURCES)
        self.backend = backend or self.memory.backend()
        snap = self.memory.snapshot()
        self.device_name = device_name or self.memory.device_name()
        self.device_total_bytes = check_bytes(
            "device.total_bytes", device_total_bytes if device_total_bytes is not None else (snap or {}).get("total_bytes"),
            optional=True)
        self.alloc_conf = alloc_conf if alloc_conf is not None else os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")
        self.source = dict(source) if source else None
        self._lock = threading.RLock()
        self._seq = 0
        self._stages: list = []  # open StageScopes, innermost last
        self._steps: dict = {}  # (call, stage name) -> stage steps written
        self.call = 0
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        self._file = open(self.partial_path, "w", encoding="utf-8")
        self._write(self._header())

    def _header(self) -> dict:
        torch_info = None
        if self.memory.torch() is not None:
            torch_info = {"version": self.memory.torch_version(), "hip": self.memory.hip_version()}
        return {
            "schema": schema.SCHEMA,
            "record": schema.RECORD_HEADER,
            "shim": {"name": schema.SHIM_NAME, "version": schema.SHIM_VERSION},
            "policy": {"id": self.policy_id, "family": self.policy_family, "version": self.policy_version,
                       "free_memory_formula": self.free_memory_formula, "p1_slack_bytes": self.p1_slack_bytes},
            "device": {"name": self.device_name, "total_bytes": self.device_total_bytes, "backend": self.backend,
                       "measured": self.measured, "memory_source": self.memory_source},
            "torch": torch_info,
            "alloc_conf": self.alloc_conf,
            "created": _now(),
            "source": self.source,
        }

    # ---- public API ----
    def stage(self, name: str, kind: str = "other", *, workload: Optional[Mapping[str, Any]] = None,
              working_memory: Optional[str] = None, call: Optional[int] = None,
              step: Optional[int] = None) -> StageScope:
        """One stage step (context manager). call defaults to the log's current call (see new_call());
        step to the number of steps of this stage already logged in that call. working_memory: an offsim
        stage trace (path relative to the offsim checkout) that stands for this stage's activations."""
        with self._lock:
            call = self.call if call is None else int(call)
            if step is None:
                step = self._steps.get((call, name), 0)
            return StageScope(self, name, kind, workload, working_memory, call, int(step))

    def decision(self, models: Iterable[str] = (), estimate_passed: Optional[int] = None) -> Decision:
        """A cache decision (context manager), attached to the innermost open stage if any."""
        with self._lock:
            stage = self._stages[-1] if self._stages else None
        return Decision(self, stage, models, estimate_passed)

    def record_decision(self, *, models: Iterable[str] = (), estimate_passed: Optional[int] = None,
                        estimate: Optional[int] = None, estimate_source: Optional[str] = None,
                        free_memory: Optional[int] = None, free_memory_formula: Optional[str] = None,
                        stop: str = "not_applicable", evictions: Iterable = (), loads: Optional[Iterable] = (),
                        weights_loaded: Optional[int] = None) -> int:
        """Writes one decision in one call (for call sites that already have every figure); returns its seq."""
        d = self.decision(models, estimate_passed)
        d.set_estimate(estimate, estimate_source)
        d.set_free_memory(free_memory, free_memory_formula)
        d.set_stop(stop)
        for model, nbytes in evictions:
            d.evicted(model, nbytes)
        if loads is None:
            d.loads = None
        else:
            for model, nbytes in loads:
                d.loaded(model, nbytes)
        if weights_loaded is not None:
            d.set_weights_loaded(weights_loaded, itemized=d.loads is not None)
        d.__exit__(None, None, None)
        return d.seq

    def staged(self, name: str, kind: str = "other", workload: Any = None,
               working_memory: Optional[str] = None) -> Callable:
        """Decorator: every call of the function is one step of stage `name`. `workload` may be a callable
        taking the function's arguments and returning the workload."""
        def wrap(fn: Callable) -> Callable:
            @functools.wraps(fn)
            def run(*args, **kwargs):
                w = workload(*args, **kwargs) if callable(workload) else workload
                with self.stage(name, kind, workload=w, working_memory=working_memory):
                    return fn(*args, **kwargs)
            return run
        return wrap

    def current_stage(self) -> Optional[StageScope]:
        with self._lock:
            return self._stages[-1] if self._stages else None

    def new_call(self) -> int:
        """The next request (call) of the pipeline begins; stage steps count from 0 again."""
        with self._lock:
            self.call += 1
            return self.call

    def close(self) -> None:
        """Finishes the log: PATH.partial becomes PATH."""
        with self._lock:
            if self._file is None:
                return
            self._file.close()
            self._file = None
            os.replace(self.partial_path, self.path)

    def __enter__(self) -> "DecisionLog":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False

    # ---- internals ----
    def _write(self, record: dict) -> None:
        if self._file is None:
            raise SchemaError(f"{self.path}: the log is closed")
        self._file.write(json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n")
        self._file.flush()

    def _write_decision(self, d: Decision) -> None:
        with self._lock:
            d.seq = self._seq
            record = d.to_record()
            self._seq += 1
            self._write(record)
            if d._stage is not None:
                d._stage.decisions.append(d.seq)
                if d._stage in self._stages:
                    d._stage._body_starts()

    def _enter_stage(self, stage: StageScope) -> None:
        with self._lock:
            self._stages.append(stage)

    def _exit_stage(self, stage: StageScope, record: dict) -> None:
        with self._lock:
            if stage in self._stages:
                self._stages.remove(stage)
            record["seq"] = self._seq
            self._seq += 1
            self._write(record)
            self._steps[(stage.call, stage.name)] = max(self._steps.get((stage.call, stage.name), 0), stage.step + 1)


def open_from_env(variable: str = "OFFSIM_DECISION_LOG", **kwargs) -> Optional[DecisionLog]:
    """A DecisionLog writing to the path in the environment variable, or None when it is unset: lets a
    project's CI turn logging on without changing its tests."""
    path = os.environ.get(variable)
    return DecisionLog(path, **kwargs) if path else None
