"""Part 3: the seed scenarios of the known-bug corpus on an emulated smaller card.

Each variant runs in a fresh process: CUDA context, then a ballast allocation outside PyTorch
(ballast.py) so that the driver reports the small card's free memory, then the scenario's weight
residency is reproduced with the models' real tensor lists (manifests.py) and the VAE stage is run for
real with the twin. Memory history (no stacks) is recorded from the first weight load, and the snapshot
is dumped at the end or right after an OOM, so the simulator can replay the exact request sequence.

What is real and what is not (also written into every result):
* real: the allocator, the driver, the weight tensor sizes and order, the VAE decode, OOM messages;
* not run: text-encoder and transformer forward passes (no twins of those models here), so their
  activations and the cached blocks they leave behind are absent; the allocator state before the VAE
  stage therefore holds weights only (cleaner than in the field reports);
* emulated policy decisions: LightX2V's to_cuda/to_cpu schedule before/after PR #1053 and InvokeAI's
  ModelCache arithmetic, transcribed from shared/specs/offload_policies.md sections 4.5 and 9; the C++
  policies in policies/ are the reference implementation, this is only the GPU-side replay.

Scenarios (shared/specs/offload_policies.md section 7, DESIGN.md section 1):
* B11 LightX2V FLUX.2-klein-9B, cpu_offload, 3 calls on "a 32 GB Blackwell card" reporting 31.35 GiB
  (RTX 5090 in DESIGN.md; docs/seed_facts.md 2.1): before the fix the transformer stays resident and call 2
  fails in text_encoder.to(device) on a 32 MiB weight; after it, three calls pass.
* B1 InvokeAI Qwen-Image-Edit decode at 1248x832 with the Q8_0 GGUF transformer (~20.7 GB) and the
  Qwen2.5-VL text encoder (~15.8 GB) resident on a card reporting 44.98 GiB (ROCm W7900 in the report;
  here CUDA, which is the point: the verdict depends on the backend), with no estimate (3 GiB default
  working memory), the CUDA constant 2900 and the ROCm constant 5500.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from . import common, manifests

GiB = 1 << 30

SCENARIOS = {
    "lightx2v_klein9b_pre_fix": {
        "bug": "B11", "kind": "lightx2v", "capacity_gib": 31.35, "fixed": False, "calls": 3, "steps": 4,
        "width": 1024, "height": 1024, "vae": "flux2", "dtype": "bf16",
        "te": "qwen3_8b_bf16", "dit": "flux2_klein_9b_transformer_bf16",
        "schedule": "pre-#1053 (c177fd82 'before') Flux2: to_cuda() at every step, never to_cpu(); the #1051 text read "
                    "names neither the granularity nor the step count (docs/seed_facts.md 2.1): 4 steps as #1053's config",
    },
    "lightx2v_klein9b_post_fix": {
        "bug": "B11", "kind": "lightx2v", "capacity_gib": 31.35, "fixed": True, "calls": 3, "steps": 4,
        "width": 1024, "height": 1024, "vae": "flux2", "dtype": "bf16",
        "te": "qwen3_8b_bf16", "dit": "flux2_klein_9b_transformer_bf16",
        "schedule": "#1053 (c177fd82), granularity model: to_cuda() at step 0, to_cpu() at the last step",
    },
    "invokeai_qwen_decode_no_estimate": {
        "bug": "B1", "kind": "invokeai", "capacity_gib": 44.98, "estimate_k": None, "width": 1248, "height": 832,
        "vae": "qwen", "dtype": "bf16", "te": "qwen25_vl_7b_bf16", "dit": "qwen_image_transformer_q8_0",
        "schedule": "pre-#9305: model_on_device(vae) without working_mem_bytes -> default 3 GiB",
    },
    "invokeai_qwen_decode_cuda_estimate": {
        "bug": "B1", "kind": "invokeai", "capacity_gib": 44.98, "estimate_k": 2900, "width": 1248, "height": 832,
        "vae": "qwen", "dtype": "bf16", "te": "qwen25_vl_7b_bf16", "dit": "qwen_image_transformer_q8_0",
        "schedule": "#9305 CUDA constant: 2900 * H * W * element_size",
    },
    "invokeai_qwen_decode_rocm_estimate": {
        "bug": "B1", "kind": "invokeai", "capacity_gib": 44.98, "estimate_k": 5500, "width": 1248, "height": 832,
        "vae": "qwen", "dtype": "bf16", "te": "qwen25_vl_7b_bf16", "dit": "qwen_image_transformer_q8_0",
        "schedule": "#9305 ROCm constant 5500 (what the W7900 needed), run on CUDA",
    },
}
ORDER = tuple(SCENARIOS)

INVOKEAI_DEFAULT_WM = 3 * GiB  # device_working_mem_gb default (offload_policies.md section 9)
LIGHTX2V_EMPTY_CACHE_MIN_FREE = 4 * GiB       # maybe_empty_cache thresholds (section 4.1)
LIGHTX2V_EMPTY_CACHE_MIN_RECLAIMABLE = 2 * GiB


class StageOOM(Exception):
    pass


class CudaDevice:
    def __init__(self, torch):
        self.torch = torch
        self.oom = (torch.cuda.OutOfMemoryError,)

    def load(self, tensors: list) -> list:
        t = self.torch
        dt = {"bf16": t.bfloat16, "fp16": t.float16, "f32": t.float32}
        out = []
        for x in tensors:
            if x.dtype == "q8_0":  # GGUF blocks stay quantized on the device: one uint8 buffer
                out.append(t.empty(x.nbytes, dtype=t.uint8, device="cuda"))
            elif x.dtype == "i64":
                out.append(t.empty(x.shape, dtype=t.int64, device="cuda"))
            else:
                out.append(t.empty(x.shape, dtype=dt[x.dtype], device="cuda"))
        return out

    def stats(self) -> dict:
        t = self.torch
        s = t.cuda.memory_stats()
        free, total = t.cuda.mem_get_info()
        return {"allocated": s.get("allocated_bytes.all.current", 0), "reserved": s.get("reserved_bytes.all.current", 0),
                "max_allocated": s.get("allocated_bytes.all.peak", 0), "max_reserved": s.get("reserved_bytes.all.peak", 0),
                "num_ooms": s.get("num_ooms", 0), "num_alloc_retries": s.get("num_alloc_retries", 0),
                "driver_free": free, "driver_total": total}

    def empty_cache(self):
        self.torch.cuda.empty_cache()

    def sync(self):
        self.torch.cuda.synchronize()

    def reset_peak(self):
        self.torch.cuda.reset_peak_memory_stats()


class DryDevice:
    """--dry-run stand-in: counts bytes against the emulated capacity (no caching, no rounding, no
    context). Exercises the control flow, including the OOM path; its numbers are not measurements."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.used = 0
        self.peak = 0
        self.oom = (StageOOM,)

    def load(self, tensors: list) -> list:
        out = []
        for x in tensors:
            if self.used + x.nbytes > self.capacity:
                raise StageOOM(f"dry run: {x.name} ({x.nbytes} bytes) does not fit: {self.capacity - self.used} free")
            self.used += x.nbytes
            self.peak = max(self.peak, self.used)
            out.append(_DryBuf(self, x.nbytes))
        return out

    def stats(self) -> dict:
        return {"allocated": self.used, "reserved": self.used, "max_allocated": self.peak, "max_reserved": self.peak,
                "num_ooms": 0, "num_alloc_retries": 0, "driver_free": self.capacity - self.used,
                "driver_total": self.capacity}

    def empty_cache(self):
        pass

    def sync(self):
        pass

    def reset_peak(self):
        self.peak = self.used


class _DryBuf:
    def __init__(self, dev: DryDevice, n: int):
        self.dev, self.n = dev, n

    def __del__(self):
        self.dev.used -= self.n


def _nbytes(buf) -> int:
    return buf.n if isinstance(buf, _DryBuf) else buf.numel() * buf.element_size()


class Recorder:
    def __init__(self, dev):
        self.dev = dev
        self.stages: list = []

    def mark(self, name: str, **extra):
        row = {"stage": name, "t": round(time.time(), 3), **self.dev.stats(), **extra}
        self.stages.append(row)
        common.log("scenarios", f"    {name}: reserved {row['reserved'] / GiB:.2f} GiB, allocated "
                                f"{row['allocated'] / GiB:.2f} GiB, driver free {row['driver_free'] / GiB:.2f} GiB")
        return row


def _vae_decode(torch, dev, rec: Recorder, vae, sc: dict, cuda: bool, label: str) -> dict:
    from . import twins

    dtype = twins.DTYPES[sc["dtype"]]
    h, w = (sc["height"], sc["width"]) if cuda else (64, 64)
    lat = torch.randn(vae.latent_shape(h, w), device="cuda" if cuda else "cpu", dtype=dtype)
    dev.sync()
    dev.reset_peak()
    before = dev.stats()
    with torch.inference_mode():
        y = vae.decode_latents(lat)
    dev.sync()
    after = dev.stats()
    del y, lat
    res = {"peak_reserved_growth": after["max_reserved"] - before["reserved"],
           "peak_allocated_growth": after["max_allocated"] - before["allocated"],
           "decode_shape": [h, w]}
    rec.mark(label, **res)
    return res


def run_variant(name: str, work_dir: str, dry_run: bool) -> dict:
    import torch

    from . import ballast, twins

    sc = SCENARIOS[name]
    cuda = not dry_run
    out = {"scenario": name, "config": sc, "dry_run": dry_run, "status": "running",
           "real": ["allocator", "driver", "weight tensor sizes and order", "VAE decode"],
           "not_run": ["text-encoder forward", "transformer forward (activations and the cache state they leave)"],
           "emulated": ["policy schedule (" + sc["schedule"] + ")"],
           "manifest_assumptions": manifests.__doc__.split("GGUF Q8_0")[1].strip() if sc["dit"].endswith("q8_0") else None}
    capacity = int(sc["capacity_gib"] * GiB)
    bal = ballast.Ballast()
    if cuda:
        torch.cuda.init()
        torch.empty(1, device="cuda")
        free0, total = torch.cuda.mem_get_info()
        out["card"] = {"driver_free_before_ballast": free0, "driver_total": total, "emulated_capacity": capacity}
        out["ballast"] = bal.allocate(torch, ballast.ballast_for_capacity(total, capacity))
        dev = CudaDevice(torch)
        torch.cuda.memory._record_memory_history(enabled="all", context=None, stacks="python", max_entries=5_000_000)
    else:
        dev = DryDevice(capacity)
        out["ballast"] = {"requested": None, "note": "dry run: nothing allocated"}
    rec = Recorder(dev)
    rec.mark("start")
    (te_list, te_src), (dit_list, dit_src) = manifests.get_with_source(sc["te"]), manifests.get_with_source(sc["dit"])
    out["manifests"] = {sc["te"]: {"source": te_src, **manifests.summary(te_list)},
                        sc["dit"]: {"source": dit_src, **manifests.summary(dit_list)}}
    try:
        vae = twins.build(sc["vae"], "cuda" if cuda else "cpu", twins.DTYPES[sc["dtype"]])
        out["vae_weight_bytes"] = twins.weight_bytes(vae)
        rec.mark("vae_resident")
        # The helpers fill out["calls"] / out["decision"] as they go, so an OOM keeps what happened before it.
        if sc["kind"] == "lightx2v":
            _lightx2v(torch, dev, rec, sc, vae, te_list, dit_list, cuda, out.setdefault("calls", []))
        else:
            _invokeai(torch, dev, rec, sc, vae, te_list, dit_list, cuda, out.setdefault("decision", {}))
        out["status"] = "ok"
    except dev.oom as e:
        out["status"] = "oom"
        out["oom_message"] = str(e)[:3000]
        rec.mark("oom")
    except Exception as e:  # noqa: BLE001
        out["status"] = "error"
        out["error"] = f"{type(e).__name__}: {e}"[:3000]
    finally:
        out["stages"] = rec.stages
        if cuda:
            snap = os.path.join(work_dir, f"{name}.snapshot.pickle")
            torch.cuda.memory._dump_snapshot(snap + ".tmp")
            os.replace(snap + ".tmp", snap)
            torch.cuda.memory._record_memory_history(enabled=None)
            out["snapshot"] = os.path.basename(snap)
            bal.release()
    return out


def _lightx2v(torch, dev, rec, sc, vae, te_list, dit_list, cuda, calls: list) -> list:
    dit = None
    for c in range(1, sc["calls"] + 1):
        call = {"call": c}
        calls.append(call)
        rec.mark(f"call{c}.start")
        try:
            te = dev.load(te_list)  # text_encoder.to(cuda)
            rec.mark(f"call{c}.te_to_cuda")
            del te  # encode not run; text encoder offloaded after it (CPU master copy kept, GPU copy dropped)
            rec.mark(f"call{c}.te_to_cpu")
            for step in range(sc["steps"]):
                if dit is None and (step == 0 or not sc["fixed"]):
                    dit = dev.load(dit_list)  # to_cuda(): a no-op while the weights are still resident
                    rec.mark(f"call{c}.step{step}.dit_to_cuda")
                if sc["fixed"] and step == sc["steps"] - 1:
                    dit = None  # to_cpu() at the last step (#1053)
                    rec.mark(f"call{c}.step{step}.dit_to_cpu")
            call["vae_decode"] = _vae_decode(torch, dev, rec, vae, sc, cuda, f"call{c}.vae_decode")
            s = dev.stats()
            reclaimable = s["reserved"] - s["allocated"]
            if s["driver_free"] < LIGHTX2V_EMPTY_CACHE_MIN_FREE and reclaimable >= LIGHTX2V_EMPTY_CACHE_MIN_RECLAIMABLE:
                dev.empty_cache()
                call["empty_cache"] = True
            call["end"] = rec.mark(f"call{c}.end")
            call["status"] = "ok"
        except dev.oom:
            call["status"] = "oom"
            raise
    return calls


def _invokeai(torch, dev, rec, sc, vae, te_list, dit_list, cuda, decision: dict) -> dict:
    te = dev.load(te_list)
    rec.mark("te_resident")
    dit = dev.load(dit_list)
    rec.mark("transformer_resident")
    dev.empty_cache()  # InvokeAI empties the cache at the end of every offload pass
    el = 2 if sc["dtype"] in ("bf16", "fp16") else 4
    k = sc["estimate_k"]
    wm = INVOKEAI_DEFAULT_WM if k is None else k * sc["height"] * sc["width"] * el
    s = dev.stats()
    free = s["driver_free"]
    decision.update({"working_memory": wm, "estimate_k": k, "driver_free_at_decision": free, "vae_needed": 0,
                     "available": free - wm})
    unloaded = 0
    if free - wm < 0:
        # Smallest-first offload of unlocked models: the VAE is locked (in use); the text encoder is smaller
        # than the transformer, so it is partially unloaded until the working memory fits; then
        # empty_cache() returns the freed segments (offload_policies.md section 9, worked check of B1).
        # The order in which InvokeAI's partial unload walks the weights was not transcribed: here the
        # last tensors of the state dict go first.
        to_free = wm - free
        while te and unloaded < to_free:
            unloaded += _nbytes(te.pop())
        dev.empty_cache()
        decision["to_free"] = to_free
    decision["te_bytes_unloaded"] = unloaded
    rec.mark("policy_done", **decision)
    decision["vae_decode"] = _vae_decode(torch, dev, rec, vae, sc, cuda, "vae_decode")
    del te, dit
    return decision


def run_part(out_dir: str, work_dir: str, budget_s: float, dry_run: bool, names=ORDER) -> dict:
    from . import pack

    budget = common.Budget(budget_s)
    part_dir = os.path.join(work_dir, "scenarios")
    os.makedirs(part_dir, exist_ok=True)
    summary = {"variants": [], "dry_run": dry_run, "status": "running"}
    est = 12.0
    for name in names:
        if not budget.allows(est):
            summary["variants"].append({"name": name, "status": "skipped: budget"})
            continue
        common.log("scenarios", f"{name}: {SCENARIOS[name]['schedule']}")
        t0 = time.time()
        cmd = [sys.executable, "-m", "offsim_gpu", "scenario-worker", "--name", name, "--work", part_dir] + (
            ["--dry-run"] if dry_run else [])
        try:
            p = subprocess.run(cmd, timeout=max(5.0, min(90.0, budget.left())), text=True, capture_output=True)
            rc, err = p.returncode, p.stderr[-3000:]
            sys.stdout.write(p.stdout)
        except subprocess.TimeoutExpired as e:
            rc, err = None, f"timeout after {e.timeout:.0f}s"
        res = common.read_json(os.path.join(part_dir, f"{name}.json")) or {}
        entry = {"name": name, "rc": rc, "status": res.get("status", "no result"), "wall_s": round(time.time() - t0, 2)}
        if rc != 0:
            entry["error"] = err
        summary["variants"].append(entry)
        common.log("scenarios", f"{name}: {entry['status']} ({entry['wall_s']} s)")
        est = max(est, entry["wall_s"] * 1.2)
        common.atomic_write_json(os.path.join(part_dir, "summary.json"), summary)
        pack.pack_part(part_dir, os.path.join(out_dir, "scenarios.tar.gz"), arcroot="scenarios")
    summary["status"] = "done"
    common.atomic_write_json(os.path.join(part_dir, "summary.json"), summary)
    summary["packed"] = pack.pack_part(part_dir, os.path.join(out_dir, "scenarios.tar.gz"), arcroot="scenarios")
    return summary
