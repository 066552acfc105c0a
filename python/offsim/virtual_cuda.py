"""A virtual CUDA: torch.cuda answering from a simulated device, with Debian's CPU-only torch.

    import offsim, torch
    gpu = offsim.Device("44.98GiB", platform="rocm", torch="2.9")
    with offsim.virtual_cuda(gpu):
        torch.cuda.is_available()            # True
        torch.cuda.mem_get_info()            # (free, total) of the simulated device
        model.to("cuda")                     # a stand-in model: allocates on the simulated device

What it patches (on the torch.cuda module, restored on exit): is_available, is_initialized, init, device_count,
current_device, set_device, get_device_name, get_device_properties, synchronize, mem_get_info,
memory_allocated, memory_reserved, max_memory_allocated, max_memory_reserved, reset_peak_memory_stats,
reset_max_memory_allocated, reset_accumulated_memory_stats, empty_cache, memory_stats,
set_per_process_memory_fraction, caching_allocator_alloc, caching_allocator_delete and
torch.cuda.memory._snapshot; torch.version.cuda / torch.version.hip as the platform's build would set them;
PYTORCH_CUDA_ALLOC_CONF in os.environ. An OOM on the simulated device is raised as a subclass of both
offsim.OutOfMemoryError and torch.cuda.OutOfMemoryError.

What it does not do: create CUDA tensors (torch 1.13's FakeTensorMode cannot either), run kernels, model
streams other than the current one or CUDA graphs. Code that imported a function before the patch
(`from torch.cuda import mem_get_info`) keeps the real one. docs/python.md says more.
"""
from __future__ import annotations

import collections
import os
import types
from typing import Any, Optional

from . import _core

# torch.version strings a build for the platform reports (only their truthiness is read by the caches
# offsim knows: InvokeAI's estimators and ComfyUI's is_amd() test torch.version.hip).
_PLATFORM_VERSIONS = {"cuda": ("12.8", None), "rocm": (None, "6.4")}

_oom_types: dict = {}


def _oom_type(torch: Any) -> type:
    """offsim.OutOfMemoryError that is also torch.cuda.OutOfMemoryError (RuntimeError on torch < 1.13)."""
    torch_oom = getattr(torch.cuda, "OutOfMemoryError", None) or RuntimeError
    cls = _oom_types.get(torch_oom)
    if cls is None:
        cls = type("OutOfMemoryError", (_core.OutOfMemoryError, torch_oom),
                   {"__module__": "offsim", "__doc__": "An OOM on the simulated device, raised as torch raises it."})
        _oom_types[torch_oom] = cls
    return cls


def device_index(call: str, device: Any) -> int:
    """The index a torch.cuda call's `device` argument names: None, 0, "cuda", "cuda:0", torch.device(...).
    Raises offsim.WrongDeviceError naming the call for any other device: the virtual CUDA has one."""
    if device is None:
        return 0
    text = str(device)
    if isinstance(device, int) and not isinstance(device, bool):
        index = device
    elif text == "cuda":
        index = 0
    elif text.startswith("cuda:") and text[5:].isdigit():
        index = int(text[5:])
    else:
        raise _core.WrongDeviceError(f"{call}(device={device!r}): expected a cuda device; the virtual CUDA has one, cuda:0")
    if index != 0:
        raise _core.WrongDeviceError(f"{call}(device={device!r}): the virtual CUDA has one device, cuda:0")
    return 0


class VirtualCuda:
    """Context manager: torch.cuda answers from `device` (an offsim.Device, or a run's device view) while active.

    Nesting another VirtualCuda inside is allowed; the inner one wins until it exits."""

    def __init__(self, device: Any, torch_module: Any = None):
        self.device = device
        self._torch = torch_module
        self._saved: list = []
        self._env_saved: Optional[str] = None
        self._env_had = False
        self._previous_oom_type: Optional[type] = None

    # ---- the patched functions ----
    def _functions(self) -> dict:
        d = self.device

        def check(call: str, device: Any = None) -> None:
            device_index(f"torch.cuda.{call}", device)

        def props(device: Any = None) -> Any:
            check("get_device_properties", device)
            return types.SimpleNamespace(name=d.name, total_memory=d.total_memory, major=9, minor=0,
                                         multi_processor_count=132, is_integrated=False, is_multi_gpu_board=False,
                                         gcnArchName="gfx1100" if d.platform == "rocm" else "")

        def needs(name: str, call: str):
            fn = getattr(d, name, None)
            if fn is None:
                raise _core.UsageError(f"torch.cuda.{call}: not available on this virtual device ({type(d).__name__})")
            return fn

        def mem_get_info(device: Any = None):
            check("mem_get_info", device)
            return d.mem_get_info()

        def memory_allocated(device: Any = None):
            check("memory_allocated", device)
            return d.memory_allocated()

        def memory_reserved(device: Any = None):
            check("memory_reserved", device)
            return d.memory_reserved()

        def max_memory_allocated(device: Any = None):
            check("max_memory_allocated", device)
            return d.max_memory_allocated()

        def max_memory_reserved(device: Any = None):
            check("max_memory_reserved", device)
            return d.max_memory_reserved()

        def reset_peak_memory_stats(device: Any = None):
            check("reset_peak_memory_stats", device)
            d.reset_peak_memory_stats()

        def reset_accumulated_memory_stats(device: Any = None):
            check("reset_accumulated_memory_stats", device)
            needs("reset_accumulated_memory_stats", "reset_accumulated_memory_stats")()

        def empty_cache():
            d.empty_cache()

        def memory_stats(device: Any = None):
            check("memory_stats", device)
            # torch.cuda.memory_stats returns an OrderedDict sorted by key (torch/cuda/memory.py).
            return collections.OrderedDict(sorted(d.memory_stats().items()))

        def synchronize(device: Any = None):
            check("synchronize", device)

        def set_device(device: Any):
            check("set_device", device)

        def get_device_name(device: Any = None):
            check("get_device_name", device)
            return d.name

        def set_per_process_memory_fraction(fraction: float, device: Any = None):
            check("set_per_process_memory_fraction", device)
            needs("set_per_process_memory_fraction", "set_per_process_memory_fraction")(fraction)

        def caching_allocator_alloc(size: int, device: Any = None, stream: Any = None):
            check("caching_allocator_alloc", device)
            return needs("malloc", "caching_allocator_alloc")(size)

        def caching_allocator_delete(mem_ptr: int):
            needs("free", "caching_allocator_delete")(mem_ptr)

        def snapshot():
            return needs("snapshot", "memory._snapshot")()

        return {
            "is_available": lambda: True,
            "is_initialized": lambda: True,
            "init": lambda: None,
            "device_count": lambda: 1,
            "current_device": lambda: 0,
            "set_device": set_device,
            "get_device_name": get_device_name,
            "get_device_properties": props,
            "synchronize": synchronize,
            "mem_get_info": mem_get_info,
            "memory_allocated": memory_allocated,
            "memory_reserved": memory_reserved,
            "max_memory_allocated": max_memory_allocated,
            "max_memory_reserved": max_memory_reserved,
            "reset_peak_memory_stats": reset_peak_memory_stats,
            "reset_max_memory_allocated": reset_peak_memory_stats,
            "reset_accumulated_memory_stats": reset_accumulated_memory_stats,
            "empty_cache": empty_cache,
            "memory_stats": memory_stats,
            "set_per_process_memory_fraction": set_per_process_memory_fraction,
            "caching_allocator_alloc": caching_allocator_alloc,
            "caching_allocator_delete": caching_allocator_delete,
            "_offsim_snapshot": snapshot,
        }

    # ---- entering and leaving ----
    def __enter__(self) -> "VirtualCuda":
        torch = self._torch
        if torch is None:
            import torch  # noqa: PLC0415 (imported only when a virtual CUDA is used)
            self._torch = torch
        cuda = torch.cuda
        functions = self._functions()
        snapshot = functions.pop("_offsim_snapshot")
        for name, fn in functions.items():
            self._patch(cuda, name, fn)
        memory = getattr(cuda, "memory", None)
        if memory is not None:
            self._patch(memory, "_snapshot", lambda device=None: snapshot())
        self._patch(cuda, "_offsim_device", self.device)  # lets the decision-log shim see figures are simulated
        cuda_version, hip_version = _PLATFORM_VERSIONS.get(self.device.platform, (None, None))
        self._patch(torch.version, "cuda", cuda_version)
        self._patch(torch.version, "hip", hip_version)
        self._env_had = "PYTORCH_CUDA_ALLOC_CONF" in os.environ
        self._env_saved = os.environ.get("PYTORCH_CUDA_ALLOC_CONF")
        os.environ["PYTORCH_CUDA_ALLOC_CONF"] = self.device.alloc_conf
        self._previous_oom_type = _current_oom_type[0]
        _current_oom_type[0] = _oom_type(torch)
        _core._set_oom_type(_current_oom_type[0])
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        for target, name, had, value in reversed(self._saved):
            if had:
                setattr(target, name, value)
            else:
                delattr(target, name)
        self._saved.clear()
        if self._env_had:
            os.environ["PYTORCH_CUDA_ALLOC_CONF"] = self._env_saved or ""
        else:
            os.environ.pop("PYTORCH_CUDA_ALLOC_CONF", None)
        _current_oom_type[0] = self._previous_oom_type
        _core._set_oom_type(self._previous_oom_type)
        return False

    def _patch(self, target: Any, name: str, value: Any) -> None:
        had = hasattr(target, name)
        self._saved.append((target, name, had, getattr(target, name, None)))
        setattr(target, name, value)


_current_oom_type: list = [None]


def virtual_cuda(device: Any, torch_module: Any = None) -> VirtualCuda:
    """torch.cuda answers from `device` inside the `with` block (see the module docstring)."""
    return VirtualCuda(device, torch_module)


def active_device() -> Any:
    """The simulated device torch.cuda answers from, or None outside a virtual CUDA."""
    import sys
    torch = sys.modules.get("torch")
    return getattr(getattr(torch, "cuda", None), "_offsim_device", None) if torch is not None else None
