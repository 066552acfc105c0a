"""Part 0: metadata about the machine and the software, plus the memory that lives outside the caching
allocator (CUDA context, cuBLAS and cuDNN handles), which the Device model of the simulator needs
(DESIGN.md 3.1: "memory outside the allocator that grows over time") and which every later number
depends on."""
from __future__ import annotations

import os
import platform
import socket
import time

from . import common


def _nvidia_smi() -> dict:
    q = common.run_cmd(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,memory.used,memory.free,"
                        "pci.bus_id,compute_cap,clocks.max.sm,clocks.max.mem,power.limit,mig.mode.current",
                        "--format=csv,noheader,nounits"])
    out: dict = {"query": q}
    if q.get("rc") == 0 and q.get("stdout"):
        first = q["stdout"].strip().splitlines()[0]
        fields = [f.strip() for f in first.split(",")]
        names = ["name", "driver_version", "memory_total_mib", "memory_used_mib", "memory_free_mib", "pci_bus_id",
                 "compute_cap", "clocks_max_sm_mhz", "clocks_max_mem_mhz", "power_limit_w", "mig_mode"]
        out.update(dict(zip(names, fields)))
    full = common.run_cmd(["nvidia-smi", "-q"])
    out["q"] = full.get("stdout", full.get("error"))
    return out


def _outside_allocator(torch) -> dict:
    """Driver free memory at each step of bringing up the libraries, against torch's reserved bytes."""
    rows = []

    def row(label):
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        rows.append({"step": label, "driver_free": free, "driver_total": total,
                     "reserved": torch.cuda.memory_reserved(), "allocated": torch.cuda.memory_allocated()})

    torch.cuda.init()
    torch.empty(1, device="cuda")
    row("context + first allocation")
    a = torch.randn(256, 256, device="cuda")
    _ = a @ a
    row("after first matmul (cuBLAS handle + workspace)")
    x = torch.randn(1, 64, 64, 64, device="cuda", dtype=torch.float16)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to("cuda", torch.float16)
    with torch.inference_mode():
        _ = conv(x)
    row("after first conv2d fp16 (cuDNN handle)")
    x3 = torch.randn(1, 32, 3, 32, 32, device="cuda", dtype=torch.bfloat16)
    conv3 = torch.nn.Conv3d(32, 32, 3).to("cuda", torch.bfloat16)
    with torch.inference_mode():
        _ = conv3(x3)
    row("after first conv3d bf16")
    del a, x, conv, x3, conv3, _
    torch.cuda.empty_cache()
    row("after empty_cache")
    total = rows[0]["driver_total"]
    for r in rows:
        r["used_outside_allocator"] = total - r["driver_free"] - r["reserved"]
    return {"rows": rows, "note": "used_outside_allocator = total - driver_free - reserved: context, library "
                                  "handles, module images, plus any other process on the GPU"}


def _ballast_probe(torch) -> dict:
    from . import ballast

    b = ballast.Ballast()
    try:
        rep = b.allocate(torch, 256 << 20)
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": str(e)}
    finally:
        b.release()
    return {"ok": True, **rep}


def run_part(out_dir: str, work_dir: str, dry_run: bool) -> dict:
    meta = {
        "started": common.now_iso(),
        "dry_run": dry_run,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": common.python_info(),
        "env": common.env_info(),
        "run_args": os.environ.get("OFFSIM_RUN_ARGS"),
        "budgets_s": os.environ.get("OFFSIM_BUDGETS"),
    }
    import torch

    from . import allocdiff, attention, twins, vae_points

    meta["torch"] = common.torch_info(cuda=not dry_run)
    meta["attention_impl"] = attention.implementation_name()
    meta["twins"] = {m: {"params": twins.count_params(twins.construct(m)), "expected": twins.EXPECTED_PARAMS[m]}
                     for m in twins.MODELS}
    meta["allocdiff_configs"] = [{"name": n, "PYTORCH_CUDA_ALLOC_CONF": c, "memory_fraction": f,
                                  "limit_bytes": allocdiff.DEFAULT_LIMIT if f else None}
                                 for n, c, f in allocdiff.CONFIGS]
    meta["vae_grid_size"] = len(vae_points.grid())
    if not dry_run:
        meta["nvidia_smi"] = _nvidia_smi()
        t0 = time.time()
        meta["outside_allocator"] = _outside_allocator(torch)
        meta["outside_allocator"]["wall_s"] = round(time.time() - t0, 3)
        meta["allocator_settings_default"] = torch.cuda.memory._snapshot().get("allocator_settings")
        meta["ballast_probe"] = _ballast_probe(torch)
    for k, v in meta.items():
        common.update_metadata(out_dir, k, v)
    return {"status": "ok"}
