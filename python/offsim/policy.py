"""A policy written in Python, run by offsim's own runner over its scenarios and generated cases: offsim calls
the policy object back for every decision, with the run's models (stand-ins on the run's simulated device)
and, while it decides, torch.cuda answering from that device (the virtual CUDA).

    class EvictOthersFirst:
        id = "evict-others-first@dev"
        free_memory_formula = "driver free after empty_cache()"   # "" for schedule-based offloaders (P1 n/a)

        def prepare(self, run, step):
            d = run.decision                                     # fill it, or return an offsim.Decision
            for mid, model in run.models.items():
                if mid not in step.models and model.cur_vram_bytes():
                    d.evicted(mid, model.full_unload_from_vram())
            torch.cuda.empty_cache()
            d.free_memory = torch.cuda.mem_get_info()[0]
            d.stop = "satisfied"
            for mid in step.models:
                d.loaded(mid, run.models[mid].full_load_to_vram())

        def residency(self, run):
            return {"offloaded": [m for m in run.models if m not in self.kept]}

    offsim.evaluate(EvictOthersFirst, "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json")
    offsim.check_generated(EvictOthersFirst, properties=["P3"], cases=20)

Attributes read from the policy (all optional but id): id, family (its key in a scenario's policy_settings),
label, upstream, free_memory_formula, p1_slack_bytes, uses_estimates, virtual_cuda (default True: torch.cuda
is patched while it decides, when torch is importable). Methods: prepare(run, step) (required), begin_run(run),
finish(run, step), end_call(run, call), residency(run) -> {"offloaded": [...], "resident_by_design": [...]}.
"""
from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import sys
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from . import _core, paths
from .standins import StandInModel
from .virtual_cuda import VirtualCuda

_STOPS = {"satisfied": _core.StopReason.satisfied, "exhausted": _core.StopReason.exhausted,
          "not_applicable": _core.StopReason.not_applicable}


class Decision:
    """What P1-P5 read of one decision before a stage step. Every size is bytes.

    estimate: E, the working memory reserved for the stage (its default when the call site passed none);
    free_memory: F_P, free memory as the policy computes it when it stopped evicting (before subtracting E);
    stop: "satisfied", "exhausted" or "not_applicable"; evictions / loads: (model, bytes) moved off / on;
    weights_loaded: W_load (default: the sum of loads); streamed_weights: the largest per-forward copy of a
    partially loaded model's weights, held on top of the stage's working memory."""

    def __init__(self) -> None:
        self.estimate: Optional[int] = None
        self.estimate_source = ""
        self.free_memory: Optional[int] = None
        self.stop = "not_applicable"
        self.evictions: list = []
        self.loads: list = []
        self.weights_loaded: Optional[int] = None
        self.streamed_weights = 0
        self.streamed_to_device = 0
        self.load_oom: Optional[BaseException] = None

    def evicted(self, model: str, nbytes: int) -> None:
        self.evictions.append((str(model), int(nbytes)))

    def loaded(self, model: str, nbytes: int) -> None:
        self.loads.append((str(model), int(nbytes)))

    def to_core(self) -> Any:
        d = _core.StageDecision()
        d.estimate = None if self.estimate is None else int(self.estimate)
        d.estimate_source = str(self.estimate_source)
        d.free_memory = None if self.free_memory is None else int(self.free_memory)
        if self.stop not in _STOPS:
            raise _core.UsageError(f"Decision.stop = {self.stop!r}: expected one of {sorted(_STOPS)}")
        d.stop = _STOPS[self.stop]
        d.evictions = [_core.Eviction(m, b) for m, b in self.evictions]
        d.weights_loaded = int(self.weights_loaded if self.weights_loaded is not None else sum(b for _, b in self.loads))
        d.streamed_weights = int(self.streamed_weights)
        d.streamed_to_device = int(self.streamed_to_device)
        if self.load_oom is not None:
            d.load_oom = oom_report(self.load_oom)
        return d


def oom_report(error: BaseException) -> Any:
    """An offsim.OutOfMemoryError as the runner records a failed weight load."""
    r = _core.OomReport()
    r.message = str(error)
    for field, attr in (("requested", "requested_bytes"), ("device_free", "device_free_bytes"),
                        ("reserved", "reserved_bytes"), ("allocated", "allocated_bytes"), ("stranded", "stranded_bytes")):
        setattr(r, field, int(getattr(error, attr, 0) or 0))
    return r


class RunDevice:
    """The run's device as torch.cuda sees it (what the virtual CUDA answers from during a run)."""

    def __init__(self, context: Any):
        self._context = context
        self._backend = context.backend
        self.name = context.device_name
        self.capacity = context.capacity
        self.total_memory = context.capacity
        self.platform = context.platform
        self.alloc_conf = context.alloc_conf
        self.torch_version = context.torch_version

    def mem_get_info(self) -> tuple:
        return self._backend.mem_get_info()

    def memory_allocated(self) -> int:
        return self._backend.memory_allocated()

    def memory_reserved(self) -> int:
        return self._backend.memory_reserved()

    def max_memory_allocated(self) -> int:
        return self._backend.max_memory_allocated()

    def max_memory_reserved(self) -> int:
        return self._backend.max_memory_reserved()

    def memory_stats(self) -> dict:
        return self._backend.memory_stats()

    def empty_cache(self) -> None:
        self._backend.empty_cache()

    def reset_peak_memory_stats(self) -> None:
        self._backend.reset_peak_memory_stats()


class Run:
    """What a Python policy sees of a run: the run's models as stand-ins, its device, the scenario."""

    def __init__(self, context: Any):
        self.context = context
        self.cuda = RunDevice(context)
        self.models = {mid: StandInModel(context.model(mid)) for mid in context.model_ids()}
        self.decision = Decision()
        self._scenario: Optional[dict] = None

    @property
    def scenario(self) -> dict:
        """The run's scenario as JSON (docs/scenario_format.md); made on first use (a generated case's prior
        history can be long)."""
        if self._scenario is None:
            self._scenario = self.context.scenario
        return self._scenario

    def settings(self, family: str) -> dict:
        """The scenario's policy_settings for `family` ({} when absent)."""
        return self.context.settings(family)

    def stage(self, step: Any) -> dict:
        """The scenario's stage of `step` as JSON (name, kind, models, steps, workload, estimator, ...)."""
        return next(s for s in self.scenario.get("stages", []) if s["name"] == step.stage)

    def allocate_buffer(self, label: str, nbytes: int) -> bool:
        """A buffer the policy holds on the device (counted as resident by design); False when it does not fit."""
        return self.context.allocate_buffer(label, int(nbytes))

    def free_buffers(self, label: str) -> None:
        self.context.free_buffers(label)


class PolicyAdapter:
    """Called by the C++ runner (python/bindings/policy.cpp); forwards to one fresh instance of a Python policy."""

    def __init__(self, factory: Callable[[], Any]):
        self.policy = factory()
        self._run: Optional[Run] = None
        self._context: Any = None
        self._use_torch = bool(getattr(self.policy, "virtual_cuda", True)) and importlib.util.find_spec("torch") is not None

    def policy_info(self) -> Any:
        p = self.policy
        info = _core.PolicyInfo()
        info.id = policy_id(p)
        info.family = str(getattr(p, "family", info.id.split("@")[0]))
        info.label = str(getattr(p, "label", "") or (inspect.getdoc(type(p)) or "").split("\n")[0])
        info.upstream = str(getattr(p, "upstream", f"{type(p).__module__}.{type(p).__qualname__}"))
        info.free_memory_formula = str(getattr(p, "free_memory_formula", ""))
        info.p1_slack = int(getattr(p, "p1_slack_bytes", 0))
        info.uses_estimates = bool(getattr(p, "uses_estimates", True))
        return info

    def _view(self, context: Any) -> Run:
        # One Run per run: stand-ins keep no state of their own, the C++ models hold it.
        if self._run is None or self._context is not context:
            self._run = Run(context)
            self._context = context
        return self._run

    @contextlib.contextmanager
    def _calling(self, context: Any) -> Iterator[Run]:
        run = self._view(context)
        if self._use_torch:
            with VirtualCuda(run.cuda):
                yield run
        else:
            yield run

    def begin_run(self, context: Any) -> None:
        self._run = None  # a run's models live as long as the run: never reuse a view across runs
        if hasattr(self.policy, "begin_run"):
            with self._calling(context) as run:
                self.policy.begin_run(run)

    def prepare(self, context: Any, step: Any) -> Any:
        with self._calling(context) as run:
            run.decision = Decision()
            try:
                returned = self.policy.prepare(run, step)
            except _core.OutOfMemoryError as error:  # a weight load that did not fit: the decision failed
                run.decision.load_oom = error
                returned = None
            decision = returned if returned is not None else run.decision
            return decision.to_core()

    def finish(self, context: Any, step: Any) -> None:
        if hasattr(self.policy, "finish"):
            with self._calling(context) as run:
                self.policy.finish(run, step)

    def end_call(self, context: Any, call: int) -> None:
        if hasattr(self.policy, "end_call"):
            with self._calling(context) as run:
                self.policy.end_call(run, call)

    def residency(self, context: Any) -> Any:
        claim = _core.ResidencyClaim()
        if hasattr(self.policy, "residency"):
            with self._calling(context) as run:
                r = self.policy.residency(run) or {}
            claim.offloaded = [str(m) for m in r.get("offloaded", [])]
            claim.resident_by_design = [str(m) for m in r.get("resident_by_design", [])]
        return claim


def policy_id(policy: Any) -> str:
    pid = getattr(policy, "id", None)
    if not pid:
        raise _core.UsageError(f"{type(policy).__name__}: a Python policy needs an `id` attribute, e.g. \"mycache@dev\"")
    return str(pid)


def _factory(policy: Any) -> Callable[[], Any]:
    """A class or a zero-argument callable makes a fresh instance per run (a policy holds per-run state)."""
    if not callable(policy):
        raise _core.UsageError(f"{policy!r}: pass the policy's class or a function that makes a fresh instance")
    return policy


@contextlib.contextmanager
def registered(policy: Any) -> Iterator[str]:
    """Registers a Python policy (its class or factory) under its id while the block runs; yields the id."""
    factory = _factory(policy)
    pid = policy_id(factory())
    _core.register_policy(pid, str(getattr(factory, "__doc__", "") or "").strip().split("\n")[0],
                          lambda: PolicyAdapter(factory))
    try:
        yield pid
    finally:
        _core.unregister_policy(pid)


@contextlib.contextmanager
def _policy_id(policy: Any) -> Iterator[str]:
    if isinstance(policy, str):
        yield policy
    else:
        with registered(policy) as pid:
            yield pid


def evaluate(policy: Any, scenario: str, root: Optional[str] = None, min_capacity: bool = True) -> dict:
    """`offsim eval` of one policy on one scenario: the run and the P1-P5 verdicts as offsim eval --json writes
    them (docs/eval_json.md). `policy`: an offsim policy id or a Python policy (class or factory)."""
    base = root or paths.root()
    with _policy_id(policy) as pid:
        return _core.evaluate(pid, paths.resolve(scenario, base), base, min_capacity)


def run_suite(policy: Any, suite: str = "scenarios/default", root: Optional[str] = None,
              min_capacity: bool = True) -> list:
    """evaluate() on every scenario of a folder (offsim eval --suite), sorted by file name."""
    base = root or paths.root()
    folder = paths.resolve(suite, base)
    files = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".json")] \
        if os.path.isdir(folder) else [folder]
    with _policy_id(policy) as pid:
        return [_core.evaluate(pid, f, base, min_capacity) for f in files]


def replay_command(policy: Any, property_id: str, counterexample_file: str) -> str:
    """How to re-check one stored counterexample of a Python policy from a shell."""
    if isinstance(policy, str):
        return f"offsim check --replay {counterexample_file} --policy '{policy}' --property {property_id}"
    module = getattr(policy, "__module__", "__main__")
    name = getattr(policy, "__qualname__", getattr(policy, "__name__", "policy"))
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = inspect.getsourcefile(policy) if inspect.isclass(policy) or inspect.isfunction(policy) else None
    extra = f":{os.path.dirname(source)}" if source else ""
    return (f"PYTHONPATH={here}{extra} {sys.executable} -m offsim check --policy {module}:{name} "
            f"--property {property_id} --replay {counterexample_file}")


def _check_dict(policy: Any, c: Any) -> dict:
    d = {k: getattr(c, k) for k in ("policy", "property", "seed", "cases", "outcome", "holds", "violated", "ok",
                                     "blocks_gate", "classes", "missing_classes", "failure", "counterexample_case",
                                     "counterexample", "counterexample_file", "seconds")}
    d["replay_command"] = replay_command(policy, c.property, c.counterexample_file) if c.counterexample_file \
        else c.replay_command
    return d


def check_generated(policy: Any, properties: Sequence[str] = (), seeds: Iterable[int] = (20261126,), cases: int = 60,
                    out: Optional[str] = None, root: Optional[str] = None, time_budget: float = 150.0,
                    pipelines: Sequence[str] = ()) -> dict:
    """`offsim check` for one policy: every applicable property (or `properties`) over generated cases from fixed
    seeds, RapidCheck's shrinking, counterexamples written to `out` as scenario JSON. Returns
    {"failed", "checks": [{policy, property, outcome, holds, violated, ok, blocks_gate, failure, counterexample,
    replay_command, ...}], ...}; "failed" is the gate's verdict (a violation, a property not exercised, or
    nothing checked)."""
    base = root or paths.root()
    with _policy_id(policy) as pid:
        result = _core.run_gate([pid], list(properties), list(seeds), int(cases), base, out or "", float(time_budget),
                                list(pipelines))
    result["checks"] = [_check_dict(policy, c) for c in result["checks"]]
    return result


def check_counterexample(policy: Any, property_id: str, scenario: str, root: Optional[str] = None) -> dict:
    """offsim check --replay: one property on one stored counterexample scenario."""
    base = root or paths.root()
    with _policy_id(policy) as pid:
        c = _core.check_property_on(pid, property_id, paths.resolve(scenario, base), base)
    return _check_dict(policy, c)
