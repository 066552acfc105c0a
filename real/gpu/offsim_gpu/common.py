"""Shared helpers: atomic output, progress lines, time budgets, metadata merging, environment capture.

Output discipline (real/gpu/README.md): everything that must come back lives directly in the output
folder as a handful of files (the device returns at most 8 files, 16 MiB each, 64 MiB in all); scratch
files live in a work folder outside it. Every file is written atomically (temp file + rename in the same
folder, DESIGN.md section 5), so a part killed half-way never leaves a truncated result, and earlier
results are never rewritten by a later failing part.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

# Limits of what comes back from $OUT (/work/.library/device/README.md, Limits table).
OUT_MAX_FILES = 8
OUT_MAX_FILE_BYTES = 16 * 1024 * 1024
OUT_MAX_TOTAL_BYTES = 64 * 1024 * 1024
# The files run.sh may leave in the output folder, in priority order. Anything else there is a bug.
OUT_FILES = (
    "metadata.json",
    "vae_peaks.jsonl",
    "allocdiff.tar.gz",
    "scenarios.tar.gz",
    "vae_traces.tar.gz",
    "run.log",
)
METADATA = "metadata.json"

_T0 = time.monotonic()


def log(part: str, msg: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp} +{time.monotonic() - _T0:6.1f}s] {part}: {msg}", flush=True)


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(path: str, data: bytes) -> None:
    d = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be read and committed
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def to_jsonable(obj: Any) -> Any:
    """JSON has no tuples, inf or NaN; torch/numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            return str(obj)
        return obj
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if hasattr(obj, "item"):
        try:
            return to_jsonable(obj.item())
        except Exception:  # noqa: BLE001 - fall through to str
            pass
    return str(obj)


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(to_jsonable(obj), indent=1, sort_keys=False) + "\n").encode())


def append_jsonl(path: str, obj: Any) -> None:
    """One record per line, flushed and fsynced at once: a kill loses at most the line being written."""
    line = json.dumps(to_jsonable(obj), separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_json(path: str, default=None):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def update_metadata(out_dir: str, section: str, value: Any) -> None:
    """Merge one section into metadata.json (read, modify, atomic rewrite). Parts run one after the other,
    so there is no concurrent writer."""
    path = os.path.join(out_dir, METADATA)
    meta = read_json(path, default={}) or {}
    meta.setdefault("format", "offsim-gpu-run/1")
    if section.startswith("parts."):
        meta.setdefault("parts", {})[section.split(".", 1)[1]] = value
    else:
        meta[section] = value
    meta["updated"] = now_iso()
    atomic_write_json(path, meta)


class Budget:
    """Wall-clock budget of one part, capped by the global deadline that run.sh passes down
    (OFFSIM_DEADLINE, a time.time() value)."""

    def __init__(self, seconds: float, deadline: float | None = None):
        self.start = time.time()
        end = self.start + max(0.0, seconds)
        env_deadline = os.environ.get("OFFSIM_DEADLINE")
        if deadline is None and env_deadline:
            try:
                deadline = float(env_deadline)
            except ValueError:
                deadline = None
        self.end = min(end, deadline) if deadline else end

    def left(self) -> float:
        return self.end - time.time()

    def elapsed(self) -> float:
        return time.time() - self.start

    def allows(self, estimate_s: float) -> bool:
        return self.left() >= estimate_s


def run_cmd(cmd: list[str], timeout: float = 20.0) -> dict:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return {"cmd": cmd, "rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr[-4000:]}
    except FileNotFoundError as e:
        return {"cmd": cmd, "rc": None, "error": f"not found: {e}"}
    except subprocess.TimeoutExpired:
        return {"cmd": cmd, "rc": None, "error": f"timed out after {timeout}s"}


def python_info() -> dict:
    return {"executable": sys.executable, "version": sys.version}


def torch_info(cuda: bool) -> dict:
    """Versions and device facts. With cuda=False nothing touches the CUDA driver (safe before fork)."""
    import torch

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "torch_cuda": getattr(torch.version, "cuda", None),
        "torch_hip": getattr(torch.version, "hip", None),
        "torch_git": getattr(torch.version, "git_version", None),
    }
    if not cuda:
        return info
    info["cuda_available"] = torch.cuda.is_available()
    if not info["cuda_available"]:
        return info
    dev = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(dev)
    pinfo = {}
    for key in ("name", "total_memory", "major", "minor", "multi_processor_count", "L2_cache_size",
                "uuid", "pci_bus_id", "pci_device_id", "pci_domain_id", "gcnArchName", "is_integrated",
                "max_threads_per_multi_processor", "warp_size"):
        if hasattr(props, key):
            pinfo[key] = str(getattr(props, key)) if key == "uuid" else getattr(props, key)
    info["device_index"] = dev
    info["device_count"] = torch.cuda.device_count()
    info["device_properties"] = pinfo
    info["cudnn_version"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    info["allocator_backend"] = (torch.cuda.get_allocator_backend()
                                 if hasattr(torch.cuda, "get_allocator_backend") else None)
    flags = {
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "cudnn.deterministic": torch.backends.cudnn.deterministic,
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }
    for name in ("benchmark_limit",):
        if hasattr(torch.backends.cudnn, name):
            flags[f"cudnn.{name}"] = getattr(torch.backends.cudnn, name)
    for fn in ("flash_sdp_enabled", "mem_efficient_sdp_enabled", "math_sdp_enabled", "cudnn_sdp_enabled",
               "fp16_bf16_reduction_math_sdp_allowed"):
        f = getattr(torch.backends.cuda, fn, None)
        if callable(f):
            try:
                flags[f"cuda.{fn}"] = f()
            except Exception as e:  # noqa: BLE001
                flags[f"cuda.{fn}"] = f"error: {e}"
    info["backend_flags"] = flags
    return info


def env_info() -> dict:
    keys = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF", "CUDA_MODULE_LOADING", "CUDA_VISIBLE_DEVICES",
            "CUBLAS_WORKSPACE_CONFIG", "CUDNN_CONV_WSCAP_DBG", "TORCH_CUDNN_V8_API_DISABLED", "OMP_NUM_THREADS",
            "OFFSIM_GIT_SHA")
    return {k: os.environ.get(k) for k in keys}
