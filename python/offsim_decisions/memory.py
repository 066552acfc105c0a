"""Device memory figures read from torch.cuda (ROCm builds answer the same API), for the decision log.

torch is imported lazily, the first time a figure is asked for: importing offsim_decisions never imports
torch, a project without a GPU gets "no figures" instead of an error, and tests can hand in a stand-in
module. Every figure is an int number of bytes or None when the backend does not report it.
"""
from __future__ import annotations

import importlib
from typing import Any, Optional

from .schema import MEMORY_KEYS


class DeviceMemory:
    """Reads memory figures of one device through torch.cuda.

    torch_module: a module object to use instead of `import torch` (tests pass a mock).
    device: what torch.cuda functions take as `device` (None = the current device).
    """

    def __init__(self, torch_module: Any = None, device: Any = None):
        self._torch = torch_module
        self._imported = torch_module is not None
        self.device = device

    def torch(self) -> Any:
        if not self._imported:
            self._imported = True
            try:
                self._torch = importlib.import_module("torch")
            except ImportError:
                self._torch = None
        return self._torch

    def _cuda(self) -> Any:
        torch = self.torch()
        cuda = getattr(torch, "cuda", None) if torch is not None else None
        if cuda is None:
            return None
        try:
            return cuda if cuda.is_available() else None
        except Exception:  # a broken driver install reports as "no GPU", not as a failed test
            return None

    def available(self) -> bool:
        """A device answers torch.cuda's memory functions."""
        return self._cuda() is not None

    def simulated_device(self) -> Any:
        """The simulated device torch.cuda answers from under offsim's virtual CUDA (python/offsim), or None
        when the figures are a real GPU's."""
        cuda = self._cuda()
        return getattr(cuda, "_offsim_device", None) if cuda is not None else None

    def backend(self) -> Optional[str]:
        """"rocm" when torch is a HIP build (torch.version.hip, the switch InvokeAI's estimators use),
        "cuda" for a CUDA build with a device, None otherwise."""
        torch = self.torch()
        if torch is None:
            return None
        version = getattr(torch, "version", None)
        if getattr(version, "hip", None):
            return "rocm"
        return "cuda" if self.available() else None

    def torch_version(self) -> Optional[str]:
        """torch.__version__; under offsim's virtual CUDA the allocator profile the simulated device runs
        (what offsim reads this field for), not the CPU build's version."""
        simulated = self.simulated_device()
        if simulated is not None:
            return str(simulated.torch_version)
        torch = self.torch()
        version = getattr(torch, "__version__", None) if torch is not None else None
        return str(version) if version else None

    def hip_version(self) -> Optional[str]:
        torch = self.torch()
        hip = getattr(getattr(torch, "version", None), "hip", None) if torch is not None else None
        return str(hip) if hip else None

    def device_name(self) -> Optional[str]:
        cuda = self._cuda()
        if cuda is None or not hasattr(cuda, "get_device_name"):
            return None
        return str(cuda.get_device_name(self.device))

    def snapshot(self) -> Optional[dict]:
        """The figures named in schema.MEMORY_KEYS, or None when no device answers."""
        cuda = self._cuda()
        if cuda is None:
            return None
        out = dict.fromkeys(MEMORY_KEYS)
        if hasattr(cuda, "mem_get_info"):
            free, total = cuda.mem_get_info(self.device)
            out["free_bytes"], out["total_bytes"] = int(free), int(total)
        for key, name in (
            ("allocated_bytes", "memory_allocated"),
            ("reserved_bytes", "memory_reserved"),
            ("max_allocated_bytes", "max_memory_allocated"),
            ("max_reserved_bytes", "max_memory_reserved"),
        ):
            if hasattr(cuda, name):
                out[key] = int(getattr(cuda, name)(self.device))
        if hasattr(cuda, "memory_stats"):
            stats = cuda.memory_stats(self.device)
            # Free bytes inside segments that still hold live blocks: what DESIGN.md calls stranded.
            value = stats.get("inactive_split_bytes.all.current") if hasattr(stats, "get") else None
            out["inactive_split_bytes"] = int(value) if value is not None else None
        return out

    def reset_peak(self) -> bool:
        """torch.cuda.reset_peak_memory_stats(); False when there is no device or no such function."""
        cuda = self._cuda()
        if cuda is None or not hasattr(cuda, "reset_peak_memory_stats"):
            return False
        cuda.reset_peak_memory_stats(self.device)
        return True

    def is_oom(self, exc: BaseException) -> bool:
        """An allocation failure: torch.cuda.OutOfMemoryError (torch >= 1.13), or the RuntimeError older
        releases raise with "CUDA out of memory" / "HIP out of memory" in its text."""
        torch = self.torch()
        oom_type = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None) if torch is not None else None
        if isinstance(oom_type, type) and isinstance(exc, oom_type):
            return True
        return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()
