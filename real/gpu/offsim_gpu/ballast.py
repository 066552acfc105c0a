"""Emulating a smaller card: a ballast allocation made OUTSIDE PyTorch's caching allocator.

A memory fraction (torch.cuda.set_per_process_memory_fraction) would only cap this allocator's reserved
bytes and leave cudaMemGetInfo at the full size (shared/specs/pytorch_caching_allocator.md 5.5, 14), but
the policies under test read driver free memory. `torch.cuda.caching_allocator_alloc` would be inside
the allocator (it would show up as reserved, could be split and reused). So the ballast is a raw
device allocation, by the first method that works here:

1. cudaMalloc from the libcudart that this process already loaded (found in /proc/self/maps; PyTorch
   2.11 binds no cudaMalloc in torch.cuda.cudart(): torch/csrc/cuda/shared/cudart.cpp exposes only the
   profiler, host-register and stream calls), through ctypes;
2. cuMemAlloc_v2 from the driver library libcuda.so.1 on the current (primary) context, through ctypes;
3. cupy.cuda.runtime.malloc (raw cudaMalloc, not cupy's pool), if cupy is installed;
4. cuda.bindings.runtime.cudaMalloc (NVIDIA cuda-python), if installed.

Each attempt is verified: driver free memory must drop by about the ballast size while torch's reserved
bytes do not move. If one allocation of the whole size fails, 1 GiB chunks are tried. What was used and
the verification numbers go into the scenario result.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

GiB = 1 << 30
CHUNK = 1 * GiB


def _loaded_library(fragment: str) -> str | None:
    try:
        with open("/proc/self/maps", "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and fragment in os.path.basename(parts[5]):
                    return parts[5]
    except OSError:
        return None
    return None


class _Cudart:
    name = "ctypes cudaMalloc (libcudart loaded by torch)"

    def __init__(self):
        path = _loaded_library("libcudart.so")
        candidates = [path] if path else []
        candidates += [n for n in ("libcudart.so.13", "libcudart.so.12", "libcudart.so") if n]
        found = ctypes.util.find_library("cudart")
        if found:
            candidates.append(found)
        last = None
        for c in candidates:
            try:
                self.lib = ctypes.CDLL(c)
                self.path = c
                break
            except OSError as e:
                last = e
        else:
            raise OSError(f"no libcudart: {last}")
        self.lib.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        self.lib.cudaMalloc.restype = ctypes.c_int
        self.lib.cudaFree.argtypes = [ctypes.c_void_p]
        self.lib.cudaFree.restype = ctypes.c_int

    def malloc(self, n: int) -> int:
        p = ctypes.c_void_p()
        rc = self.lib.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(n))
        if rc != 0:
            raise MemoryError(f"cudaMalloc({n}) returned {rc}")
        return int(p.value)

    def free(self, ptr: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(ptr))


class _Driver:
    name = "ctypes cuMemAlloc_v2 (libcuda.so.1, primary context)"

    def __init__(self):
        self.path = _loaded_library("libcuda.so") or "libcuda.so.1"
        self.lib = ctypes.CDLL(self.path)
        ctx = ctypes.c_void_p()
        if self.lib.cuCtxGetCurrent(ctypes.byref(ctx)) != 0 or not ctx.value:
            dev = ctypes.c_int()
            if self.lib.cuDeviceGet(ctypes.byref(dev), 0) != 0:
                raise OSError("cuDeviceGet failed")
            if self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev) != 0:
                raise OSError("cuDevicePrimaryCtxRetain failed")
            if self.lib.cuCtxSetCurrent(ctx) != 0:
                raise OSError("cuCtxSetCurrent failed")
        self.lib.cuMemAlloc_v2.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
        self.lib.cuMemFree_v2.argtypes = [ctypes.c_uint64]

    def malloc(self, n: int) -> int:
        p = ctypes.c_uint64()
        rc = self.lib.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(n))
        if rc != 0:
            raise MemoryError(f"cuMemAlloc_v2({n}) returned {rc}")
        return int(p.value)

    def free(self, ptr: int) -> None:
        self.lib.cuMemFree_v2(ctypes.c_uint64(ptr))


class _Cupy:
    name = "cupy.cuda.runtime.malloc"

    def __init__(self):
        import cupy  # noqa: F401
        from cupy.cuda import runtime
        self.rt = runtime
        self.path = "cupy"

    def malloc(self, n: int) -> int:
        return int(self.rt.malloc(n))

    def free(self, ptr: int) -> None:
        self.rt.free(ptr)


class _CudaBindings:
    name = "cuda.bindings.runtime.cudaMalloc"

    def __init__(self):
        from cuda.bindings import runtime
        self.rt = runtime
        self.path = "cuda-bindings"

    def malloc(self, n: int) -> int:
        err, ptr = self.rt.cudaMalloc(n)
        if int(err) != 0:
            raise MemoryError(f"cudaMalloc({n}) -> {err}")
        return int(ptr)

    def free(self, ptr: int) -> None:
        self.rt.cudaFree(ptr)


METHODS = (_Cudart, _Driver, _Cupy, _CudaBindings)


class Ballast:
    def __init__(self):
        self.method = None
        self.ptrs: list[int] = []
        self.bytes = 0
        self.report: dict = {"attempts": []}

    def allocate(self, torch, nbytes: int) -> dict:
        """Take `nbytes` of device memory outside the caching allocator; returns the verification report."""
        if nbytes <= 0:
            self.report.update({"requested": nbytes, "method": None, "note": "no ballast needed"})
            return self.report
        torch.cuda.synchronize()
        free0, total = torch.cuda.mem_get_info()
        reserved0 = torch.cuda.memory_reserved()
        for cls in METHODS:
            try:
                m = cls()
            except Exception as e:  # noqa: BLE001 - try the next method
                self.report["attempts"].append({"method": cls.name, "error": f"unavailable: {e}"})
                continue
            ptrs: list[int] = []
            try:
                try:
                    ptrs.append(m.malloc(nbytes))
                except MemoryError:
                    left = nbytes
                    while left > 0:
                        ptrs.append(m.malloc(min(CHUNK, left)))
                        left -= min(CHUNK, left)
            except Exception as e:  # noqa: BLE001
                for p in ptrs:
                    m.free(p)
                self.report["attempts"].append({"method": cls.name, "error": str(e)})
                continue
            torch.cuda.synchronize()
            free1, _ = torch.cuda.mem_get_info()
            reserved1 = torch.cuda.memory_reserved()
            dropped = free0 - free1
            ok = dropped >= nbytes - 4 * (1 << 20) and reserved1 == reserved0
            self.report["attempts"].append({"method": cls.name, "library": getattr(m, "path", None), "chunks": len(ptrs),
                                            "driver_free_drop": dropped, "reserved_change": reserved1 - reserved0,
                                            "verified": ok})
            if not ok:
                for p in ptrs:
                    m.free(p)
                continue
            self.method, self.ptrs, self.bytes = m, ptrs, nbytes
            self.report.update({"requested": nbytes, "method": cls.name, "chunks": len(ptrs),
                                "driver_free_before": free0, "driver_free_after": free1, "driver_total": total})
            return self.report
        raise RuntimeError(f"no ballast method worked: {self.report['attempts']}")

    def release(self) -> None:
        if self.method is not None:
            for p in self.ptrs:
                self.method.free(p)
        self.ptrs, self.bytes = [], 0


def ballast_for_capacity(total: int, capacity_bytes: int) -> int:
    """Bytes to take so that the card looks like one whose driver-reported total is `capacity_bytes`:
    what the real card's own context and libraries use stays inside both totals."""
    return max(0, total - capacity_bytes)
