"""Optional, best-effort hook that logs InvokeAI's ModelCache decisions without changing InvokeAI.

Hook points, read from invoke-ai/InvokeAI invokeai/backend/model_manager/load/model_cache/model_cache.py
(@00f5ba9f; the same names at fda7c42b and a6724695):

* `ModelCache.lock(cache_entry, working_mem_bytes)` calls `_load_locked_model(cache_entry,
  working_mem_bytes)`: one cache decision per model lock. `working_mem_bytes` is what the invocation
  passed (None when it passed none: the pre-PR-#9305 Qwen-Image decode).
* Inside it, `_offload_unlocked_models` evicts through `_move_model_to_ram(entry, bytes_to_free)` (returns
  the bytes freed), then the cache loads through `_move_model_to_vram(entry, vram_available + MB)` (returns
  the bytes loaded). The argument of that call is the cache's own `vram_available` at the moment it
  stopped evicting, plus its 1 MB slack; `_get_vram_available` computes vram_available as
  `mem_get_info free + memory_allocated - working_mem - memory_allocated` on CUDA/ROCm.

So, per decision: F_P = the driver's free memory read at the `_move_model_to_vram` call (the cache's
figure before subtracting E; reserved-but-unallocated counts as used), E = F_P - vram_available (the
reserve actually in effect, whatever branch chose it: legacy floor, smart floor, partial-load headroom),
stop = satisfied when vram_available >= the bytes the model still needed and the cache did not have to
unload the model being locked, W_load / loads from `_move_model_to_vram`, evictions from
`_move_model_to_ram`. With `max_vram_cache_gb` set the cache ignores working memory: F_P is then the cap
minus memory_allocated and E is 0.

Every attribute is looked up with hasattr/getattr: when InvokeAI renames one, the hook logs what it still
can (fields it cannot get are null, offsim reports them n/a) and never raises into InvokeAI.
"""
from __future__ import annotations

import sys
import warnings
from typing import Any, Callable, Optional

from .log import DecisionLog

# InvokeAI: GB = 2**30, MB = 2**20 (model_cache.py module constants; read from the module when present).
_GB = 2**30
_MB = 2**20

FREE_MEMORY_FORMULA = ("driver_free (mem_get_info free + memory_allocated - memory_allocated): "
                       "reserved-but-unallocated counts as used")
CAP_FREE_MEMORY_FORMULA = "max_vram_cache_gb - memory_allocated (fixed VRAM cap; working memory not reserved)"
P1_SLACK_BYTES = _MB  # _load_locked_model loads up to vram_available + MB


def open_log(path: str, policy_version: Optional[str] = None, **kwargs) -> DecisionLog:
    """A DecisionLog with InvokeAI's policy facts filled in (policy_id "invokeai@<version>", its F_P
    formula and P1 slack). The version defaults to invokeai.version.__version__ when importable."""
    if policy_version is None:
        try:
            from invokeai.version import __version__ as policy_version  # type: ignore
        except Exception:
            policy_version = "unknown"
    kwargs.setdefault("policy_id", f"invokeai@{policy_version}")
    kwargs.setdefault("policy_family", "invokeai")
    kwargs.setdefault("policy_version", str(policy_version))
    kwargs.setdefault("free_memory_formula", FREE_MEMORY_FORMULA)
    kwargs.setdefault("p1_slack_bytes", P1_SLACK_BYTES)
    return DecisionLog(path, **kwargs)


def _module_constant(obj: Any, name: str, default: int) -> int:
    module = sys.modules.get(getattr(type(obj), "__module__", ""), None)
    value = getattr(module, name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _entry_key(entry: Any) -> str:
    return str(getattr(entry, "key", None) or getattr(entry, "cache_key", None) or type(entry).__name__)


def _bytes_of(entry: Any, method: str) -> Optional[int]:
    model = getattr(entry, "cached_model", None)
    fn = getattr(model, method, None)
    if not callable(fn):
        return None
    try:
        value = fn()
    except Exception:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _free_memory(cache: Any, log: DecisionLog) -> tuple:
    """(F_P, formula) as _get_vram_available computes it before subtracting working memory."""
    device = getattr(cache, "_execution_device", None)
    if getattr(device, "type", "cuda") != "cuda":
        return None, ""  # mps: psutil-based; not logged
    snap = log.memory.snapshot()
    if snap is None:
        return None, ""
    cap = getattr(cache, "_max_vram_cache_size_gb", None)
    if cap is not None:
        gb = _module_constant(cache, "GB", _GB)
        if snap.get("allocated_bytes") is None:
            return None, ""
        return int(cap * gb) - snap["allocated_bytes"], CAP_FREE_MEMORY_FORMULA
    if snap.get("free_bytes") is None:
        return None, ""
    return snap["free_bytes"], FREE_MEMORY_FORMULA


def _decide(cache: Any, log: DecisionLog, original: Callable, cache_entry: Any, args: tuple, kwargs: dict) -> Any:
    working_mem_bytes = args[0] if args else kwargs.get("working_mem_bytes")
    passed = working_mem_bytes if isinstance(working_mem_bytes, int) and not isinstance(working_mem_bytes, bool) else None
    key = _entry_key(cache_entry)
    try:
        decision = log.decision(models=[key], estimate_passed=passed)
    except Exception as e:  # e.g. a negative working_mem_bytes: InvokeAI's business, not the log's
        warnings.warn(f"offsim_decisions: InvokeAI decision not logged: {e}")
        return original(cache_entry, *args, **kwargs)
    if passed is None:
        default_gb = getattr(cache, "_execution_device_working_mem_gb", None)
        decision.estimate_source = (f"none passed: cache default device_working_mem_gb = {default_gb}"
                                    if default_gb is not None else "none passed: cache default")
    total = _bytes_of(cache_entry, "total_bytes")
    current = _bytes_of(cache_entry, "cur_vram_bytes")
    needed = total - current if total is not None and current is not None else None
    state = {"own_unloaded": False}
    mb = _module_constant(cache, "MB", _MB)

    to_ram = getattr(cache, "_move_model_to_ram", None)
    to_vram = getattr(cache, "_move_model_to_vram", None)
    patched = {}

    if callable(to_ram):
        def logged_to_ram(entry, *a, **k):
            freed = to_ram(entry, *a, **k)
            if entry is cache_entry:
                state["own_unloaded"] = True
            if isinstance(freed, int) and freed > 0:
                decision.evicted(_entry_key(entry), freed)
            return freed
        patched["_move_model_to_ram"] = logged_to_ram

    if callable(to_vram):
        def logged_to_vram(entry, vram_available, *a, **k):
            if entry is cache_entry and isinstance(vram_available, int):
                try:
                    available = vram_available - mb
                    free, formula = _free_memory(cache, log)
                    if free is not None:
                        decision.set_free_memory(free, formula)
                        decision.set_estimate(free - available, decision.estimate_source or None)
                    satisfied = needed is not None and available >= needed and not state["own_unloaded"]
                    decision.set_stop("satisfied" if satisfied else "exhausted")
                    decision.snapshot_memory()
                except Exception as e:  # logging must never break the cache
                    warnings.warn(f"offsim_decisions: InvokeAI hook could not read the decision: {e}")
            loaded = to_vram(entry, vram_available, *a, **k)
            if isinstance(loaded, int) and loaded > 0:
                decision.loaded(_entry_key(entry), loaded)
            return loaded
        patched["_move_model_to_vram"] = logged_to_vram

    # Instance attributes shadow the class's methods for this call only (the cache holds its RLock here).
    shadowed = {name: cache.__dict__[name] for name in patched if name in getattr(cache, "__dict__", {})}
    try:
        for name, fn in patched.items():
            setattr(cache, name, fn)
    except Exception:
        patched = {}  # e.g. __slots__: log the decision without evictions/loads
    error: Optional[BaseException] = None
    try:
        return original(cache_entry, *args, **kwargs)
    except BaseException as e:
        error = e
        raise
    finally:
        for name in patched:
            if name in shadowed:
                setattr(cache, name, shadowed[name])
            else:
                try:
                    delattr(cache, name)
                except AttributeError:
                    pass
        try:  # write the line (an OOM raised by the load is recorded on it); never raise into InvokeAI
            decision.__exit__(type(error) if error is not None else None, error, None)
        except Exception as e:
            warnings.warn(f"offsim_decisions: InvokeAI decision not logged: {e}")


def install_invokeai_hook(cache: Any, log: DecisionLog) -> Callable[[], None]:
    """Log every `_load_locked_model` call of `cache` (a ModelCache instance, or the ModelCache class to
    log every instance) as a decision in `log`, attached to the log's open stage. Returns a function that
    removes the hook. When the cache has no `_load_locked_model`, warns and does nothing."""
    original = getattr(cache, "_load_locked_model", None)
    if not callable(original):
        warnings.warn("offsim_decisions: this InvokeAI ModelCache has no _load_locked_model; decisions are not logged")
        return lambda: None
    if isinstance(cache, type):
        own = cache.__dict__.get("_load_locked_model")

        def class_hook(self, cache_entry, *args, **kwargs):
            return _decide(self, log, original.__get__(self, type(self)), cache_entry, args, kwargs)
        setattr(cache, "_load_locked_model", class_hook)

        def remove_class_hook() -> None:
            if own is not None:
                setattr(cache, "_load_locked_model", own)
            else:
                delattr(cache, "_load_locked_model")  # it was inherited
        return remove_class_hook

    def instance_hook(cache_entry, *args, **kwargs):
        return _decide(cache, log, original, cache_entry, args, kwargs)
    had_own = "_load_locked_model" in getattr(cache, "__dict__", {})
    setattr(cache, "_load_locked_model", instance_hook)

    def remove_instance_hook() -> None:
        if had_own:
            setattr(cache, "_load_locked_model", original)
        else:
            delattr(cache, "_load_locked_model")
    return remove_instance_hook
