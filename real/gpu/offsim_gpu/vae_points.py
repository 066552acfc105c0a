"""Part 2: VAE decode/encode true cold peaks (T_cold, DESIGN.md section 2) and stage traces.

Each point runs in a fresh process, as InvokeAI's calibration scripts do (scripts/
calibrate_qwen_vae_working_memory.py: one subprocess per point, cold first call): the weights are put on
the GPU, the cache is emptied, peak statistics are reset, and the stage runs once:

    T_cold = max_memory_reserved() after - memory_reserved() before      (reserved growth, what estimators
                                                                          are calibrated on)
plus the allocated growth, the driver-level free memory before/after (what the allocator cannot see:
cuDNN/cuBLAS handles created during the first call), handled OOMs (num_ooms / num_alloc_retries: cuDNN
falls back when a workspace allocation fails) and, for some points, a memory-history snapshot with each
allocation tagged by the module that made it (user_metadata), and a warm second call.

Fresh processes are forked from a parent that imported torch but never touched CUDA (cheap: no
interpreter start, no torch import per point); if a forked child cannot initialise CUDA the part falls
back to spawning `python -m offsim_gpu vae-point`. The conv workspace is whatever cuDNN picks: it is
recorded (in the trace and the peaks), never modelled here.

Points are ordered by value (the brief): the Qwen-Image 1248x832 and 1024^2 points first (part "vae0"),
then the rest of the table (part "vae"), each within its time budget; what the budget cut is listed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from . import common

RESOLUTIONS = ((512, 512), (768, 768), (1024, 1024), (1248, 832), (2048, 2048))  # (width, height)
DTYPE_NAMES = ("fp16", "bf16", "fp32")
ATTN = ("efficient", "math", "auto", "legacy-fp32-softmax")
CUDNN = ("default", "benchmark", "deterministic")
STAGES = ("decode", "encode")
MODELS = ("qwen", "sd", "flux1", "flux2")


@dataclass
class Point:
    model: str
    stage: str
    width: int
    height: int
    dtype: str
    attn: str = "efficient"
    cudnn: str = "default"
    memfmt: str = "contiguous"  # or channels_last (2-D models only)
    trace: bool = False
    warm: bool = False
    tier: int = 0
    why: str = ""

    @property
    def id(self) -> str:
        s = f"{self.model}-{self.stage}-{self.width}x{self.height}-{self.dtype}-{self.attn}-{self.cudnn}"
        return s + ("-channels_last" if self.memfmt == "channels_last" else "")

    def key(self) -> str:
        return self.id

    def to_dict(self) -> dict:
        d = asdict(self)
        d["id"] = self.id
        return d


# ---- planning estimates ---------------------------------------------------------------------------
# Seconds, used ONLY to order points and to decide what fits the budget before running it; never
# reported as a result. The driver rescales them online from measured wall times (see Planner).
_OVERHEAD_S = 2.5
_S_PER_MPIX = {("qwen", "fp32"): 1.5, ("qwen", "fp16"): 0.5, ("qwen", "bf16"): 0.5}
_S_PER_MPIX_AKL = {"fp32": 0.5, "fp16": 0.15, "bf16": 0.15}


def estimate_s(p: Point) -> float:
    mpix = p.width * p.height / 1e6
    per = _S_PER_MPIX.get((p.model, p.dtype), _S_PER_MPIX_AKL[p.dtype])
    fwd = per * mpix * (0.5 if p.stage == "encode" else 1.0)
    if p.attn in ("math", "legacy-fp32-softmax"):
        n = (p.width // 8) * (p.height // 8)
        fwd += 2e-10 * n * n * (4 if p.dtype == "fp32" else 1)
    extra = 0.0
    if p.cudnn == "benchmark":
        extra += 15.0 if p.model == "qwen" else 5.0
    if p.trace:
        extra += 0.5
    return _OVERHEAD_S + fwd * (2 if p.warm else 1) + extra


def timeout_s(p: Point) -> float:
    return max(30.0, 4.0 * estimate_s(p))


# ---- the grid --------------------------------------------------------------------------------------

def grid() -> list[Point]:
    """The whole table in run order. Tier 0 = part vae0 (Qwen-Image points that decide B1 and the
    InvokeAI CUDA constant); tiers 1-2 = hand-picked comparisons with published numbers; tier 3 = the rest
    of the cross product, cheapest first."""
    P = Point
    t0 = [
        P("qwen", "decode", 1248, 832, "bf16", trace=True, warm=True, why="B1 shape; bf16 as InvokeAI runs Qwen"),
        P("qwen", "decode", 1248, 832, "fp16", trace=True, warm=True, why="B1 shape; fp16 as the PR #9305 grid"),
        P("qwen", "decode", 1024, 1024, "fp16", trace=True, warm=True, why="PR #9305 4090 table: 5.254 GiB"),
        P("qwen", "decode", 1024, 1024, "bf16"),
        P("qwen", "encode", 1024, 1024, "fp16", trace=True, why="PR #9305 4090 table: 2.848 GiB"),
        P("qwen", "encode", 1248, 832, "bf16"),
        P("qwen", "decode", 832, 1248, "fp16", why="PR #9305 lists 832x1248: orientation check"),
        P("qwen", "decode", 1248, 832, "bf16", attn="math", why="math attention (ROCm-like fallback)"),
        P("qwen", "decode", 1248, 832, "fp32"),
        P("qwen", "decode", 1024, 1024, "fp32"),
        # Last in its tier: benchmarking every Conv3d shape may take long (unmeasured); nothing waits on it.
        P("qwen", "decode", 1248, 832, "bf16", cudnn="benchmark", why="cuDNN benchmark inflates the cold call"),
    ]
    t1 = [
        P("qwen", "decode", 512, 512, "fp16", why="PR #9305: 1.311 GiB"),
        P("qwen", "decode", 768, 768, "fp16", why="PR #9305: 2.992 GiB"),
        P("qwen", "decode", 2048, 2048, "fp16", why="PR #9305: 20.799 GiB; linear-in-area question"),
        P("qwen", "encode", 512, 512, "fp16", why="PR #9305: 0.711 GiB"),
        P("qwen", "encode", 768, 768, "fp16", why="PR #9305: 1.594 GiB"),
        P("qwen", "decode", 1248, 832, "bf16", attn="auto", why="does default dispatch equal efficient?"),
        P("qwen", "decode", 1248, 832, "bf16", cudnn="deterministic"),
        P("qwen", "decode", 1024, 1024, "bf16", attn="math"),
        P("sd", "decode", 1024, 1024, "fp16", trace=True, warm=True, why="PR #7674 SDXL fp16: 3232 MB (cudaMallocAsync)"),
        P("sd", "decode", 512, 512, "fp16"),
        P("sd", "decode", 768, 768, "fp16"),
        P("sd", "decode", 1248, 832, "fp16"),
        P("sd", "decode", 2048, 2048, "fp16"),
        P("sd", "decode", 1024, 1024, "fp32", why="SDXL fp32 upcast; PR #7674: 5568 MB"),
        P("sd", "decode", 512, 512, "fp32", why="PR #7674 SD1 fp32 512: 1696 MB"),
        P("flux2", "decode", 512, 512, "bf16", why="PR #9519 ROCm: 1.721 GiB"),
        P("flux2", "decode", 768, 768, "bf16", why="PR #9519 ROCm: 3.781 GiB"),
        P("flux2", "decode", 1024, 1024, "bf16", why="PR #9519 ROCm: 6.703 GiB"),
        P("flux1", "decode", 1024, 1024, "bf16"),
        P("flux1", "decode", 1248, 832, "bf16"),
        P("sd", "encode", 1024, 1024, "fp16"),
        P("flux1", "encode", 1024, 1024, "bf16"),
        P("qwen", "decode", 2048, 2048, "bf16", attn="math", why="N^2 attention at 2048^2"),
    ]
    t2 = [
        P("sd", "decode", 1024, 1024, "fp16", attn="math"),
        P("sd", "decode", 2048, 2048, "fp16", attn="math", why="N^2 = 4.3 G scores"),
        P("sd", "decode", 1024, 1024, "fp16", cudnn="benchmark"),
        P("sd", "decode", 1024, 1024, "fp16", cudnn="deterministic"),
        P("sd", "decode", 1024, 1024, "fp16", memfmt="channels_last"),
        P("qwen", "decode", 2048, 2048, "bf16"),
        P("qwen", "encode", 2048, 2048, "fp16"),
        P("flux2", "decode", 2048, 2048, "bf16"),
        P("flux2", "decode", 1024, 1024, "bf16", attn="math"),
        P("flux1", "decode", 1024, 1024, "fp32"),
        P("flux1", "decode", 2048, 2048, "bf16"),
        P("qwen", "decode", 2048, 2048, "fp32"),
        P("sd", "decode", 2048, 2048, "fp32", attn="math", why="largest math case: 2 x 16 GiB fp32 scores"),
        P("sd", "decode", 1024, 1024, "fp16", attn="legacy-fp32-softmax", why="spec 5.3 (sim): 2.08 GiB"),
        P("sd", "decode", 2048, 2048, "fp16", attn="legacy-fp32-softmax", why="two fp32 N x N buffers at N = 65536"),
    ]
    for p in t1:
        p.tier = 1
    for p in t2:
        p.tier = 2
    seen = {p.key() for p in t0 + t1 + t2}
    rest = []
    for model in MODELS:
        for stage in STAGES:
            for (w, h) in RESOLUTIONS:
                for dt in DTYPE_NAMES:
                    for attn in ("efficient", "math"):
                        for cd in CUDNN:
                            fmts = ("contiguous", "channels_last") if model != "qwen" else ("contiguous",)
                            for fmt in fmts:
                                p = Point(model, stage, w, h, dt, attn=attn, cudnn=cd, memfmt=fmt, tier=3)
                                if p.key() not in seen:
                                    seen.add(p.key())
                                    rest.append(p)
    rest.sort(key=lambda p: (estimate_s(p), p.key()))
    return t0 + t1 + t2 + rest


def dry_run_grid() -> list[Point]:
    """CPU logic check: every model, both stages, fp32 and bf16, at 64x64 (Qwen fp32 at 32x32: its CPU
    Conv3d path is slow in Debian's torch 1.13), one point with a trace and a warm call."""
    pts = []
    for model in MODELS:
        for dt in ("fp32", "bf16"):
            s = 32 if (model == "qwen" and dt == "fp32") else 64
            pts.append(Point(model, "decode", s, s, dt, attn="math", trace=(model == "sd" and dt == "fp32"),
                             warm=(model == "sd" and dt == "fp32"), tier=0 if model == "qwen" else 1))
        pts.append(Point(model, "encode", 64, 64, "bf16", attn="math", tier=0 if model == "qwen" else 1))
    return pts


# ---- the measured point (runs in the fresh child) -------------------------------------------------

_MARK_TYPES = ("ResnetBlock2D", "Attention", "Upsample2D", "Downsample2D", "MidBlock2D", "UpDecoderBlock2D",
               "DownEncoderBlock2D", "ResidualBlock", "AttentionBlock", "Resample", "MidBlock", "UpBlock",
               "CausalConv3d", "Conv2d", "GroupNorm")


def _stats(torch, cuda: bool) -> dict:
    if not cuda:
        return {}
    s = torch.cuda.memory_stats()
    free, total = torch.cuda.mem_get_info()
    return {
        "allocated": s.get("allocated_bytes.all.current", 0),
        "reserved": s.get("reserved_bytes.all.current", 0),
        "active": s.get("active_bytes.all.current", 0),
        "requested": s.get("requested_bytes.all.current", 0),
        "max_allocated": s.get("allocated_bytes.all.peak", 0),
        "max_reserved": s.get("reserved_bytes.all.peak", 0),
        "max_active": s.get("active_bytes.all.peak", 0),
        "segments": s.get("segment.all.current", 0),
        "num_ooms": s.get("num_ooms", 0),
        "num_alloc_retries": s.get("num_alloc_retries", 0),
        "num_device_alloc": s.get("num_device_alloc", 0),
        "num_device_free": s.get("num_device_free", 0),
        "driver_free": free,
        "driver_total": total,
    }


def _growth(before: dict, after: dict) -> dict:
    if not before:
        return {}
    out = {
        "peak_reserved_growth": after["max_reserved"] - before["reserved"],
        "peak_allocated_growth": after["max_allocated"] - before["allocated"],
        "reserved_growth_after": after["reserved"] - before["reserved"],
        "handled_ooms": after["num_ooms"] - before["num_ooms"],
        "alloc_retries": after["num_alloc_retries"] - before["num_alloc_retries"],
        "device_allocs": after["num_device_alloc"] - before["num_device_alloc"],
    }
    # Driver memory the allocator does not account for (cuDNN / cuBLAS handles, module loading) that
    # appeared during the call: the drop in driver free memory minus the growth of reserved memory.
    out["outside_allocator_growth"] = (before["driver_free"] - after["driver_free"]) - (after["reserved"] - before["reserved"])
    return out


class _Marks:
    """Forward hooks on block-level modules: allocator statistics on entry and exit, and (for traced
    points) the module's name as the snapshot's user_metadata so every allocation is attributed."""

    def __init__(self, torch, model, cuda: bool, tag_metadata: bool):
        self.torch, self.cuda = torch, cuda
        self.rows: list = []
        self.stack: list[str] = []
        self.handles = []
        self.set_meta = None
        if tag_metadata and cuda:
            self.set_meta = getattr(torch.cuda.memory, "_set_memory_metadata", None)
        for name, mod in model.named_modules():
            if not name or type(mod).__name__ not in _MARK_TYPES:
                continue
            if type(mod).__name__ in ("Conv2d", "GroupNorm", "CausalConv3d") and not self.set_meta:
                continue  # leaf modules only when tagging a trace
            self.handles.append(mod.register_forward_pre_hook(self._pre(name)))
            self.handles.append(mod.register_forward_hook(self._post(name)))

    def _row(self, name, ev):
        if self.cuda:
            s = self.torch.cuda.memory_stats()
            self.rows.append([name, ev, s.get("allocated_bytes.all.current", 0), s.get("reserved_bytes.all.current", 0),
                              s.get("allocated_bytes.all.peak", 0), s.get("reserved_bytes.all.peak", 0)])
        else:
            self.rows.append([name, ev, None, None, None, None])

    def _pre(self, name):
        def hook(_mod, _inp):
            self.stack.append(name)
            if self.set_meta:
                self.set_meta(name)
            self._row(name, "enter")
        return hook

    def _post(self, name):
        def hook(_mod, _inp, _out):
            self._row(name, "exit")
            if self.stack and self.stack[-1] == name:
                self.stack.pop()
            if self.set_meta:
                self.set_meta(self.stack[-1] if self.stack else "")
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()
        if self.set_meta:
            self.set_meta("")


def _configure_cudnn(torch, mode: str):
    torch.backends.cudnn.benchmark = mode == "benchmark"
    torch.backends.cudnn.deterministic = mode == "deterministic"


def run_point(spec: dict, work_dir: str, dry_run: bool) -> dict:
    """Measure one point in this (fresh) process. Never raises for OOM: an OOM is a result."""
    import torch

    from . import attention, twins

    p = Point(**{k: v for k, v in spec.items() if k != "id"})
    cuda = not dry_run
    dev = "cuda" if cuda else "cpu"
    dtype = twins.DTYPES[p.dtype]
    res: dict = {"id": p.id, "spec": p.to_dict(), "dry_run": dry_run, "pid": os.getpid(), "status": "error"}
    t_start = time.time()
    if cuda:
        torch.cuda.init()
        torch.empty(1, device="cuda")  # create the context now, so its memory is outside every delta below
        res["context_stats"] = _stats(torch, True)
    _configure_cudnn(torch, p.cudnn)
    res["cudnn_flags"] = {"benchmark": torch.backends.cudnn.benchmark, "deterministic": torch.backends.cudnn.deterministic}
    res["attention_impl"] = attention.implementation_name()
    # On the GPU the convolution workspace is whatever cuDNN picks; it is measured (peaks, traces), never
    # modelled here (the C++ twins' conv_workspace switch is for CPU recordings).
    res["conv_workspace"] = "cuDNN's choice (recorded)" if cuda else "CPU backend (dry run)"
    model = twins.build(p.model, dev, dtype)
    if p.memfmt == "channels_last":
        if p.model == "qwen":
            raise ValueError("channels_last applies to the 2-D VAEs only")
        model = model.to(memory_format=torch.channels_last)
    res["param_count"] = twins.count_params(model)
    res["weight_bytes"] = twins.weight_bytes(model)
    gen = torch.Generator(device=dev)
    gen.manual_seed(1234)
    shape = model.latent_shape(p.height, p.width) if p.stage == "decode" else model.image_shape(p.height, p.width)
    x = torch.randn(shape, generator=gen, device=dev, dtype=dtype)
    if p.stage == "encode":
        x = x.clamp_(-1.0, 1.0)
    if p.memfmt == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    res["input_shape"] = list(shape)
    fn = model.decode_latents if p.stage == "decode" else model.encode_image

    marks = _Marks(torch, model, cuda, tag_metadata=p.trace)
    trace_name = None
    oom_exc = (torch.cuda.OutOfMemoryError,) if hasattr(torch.cuda, "OutOfMemoryError") else ()

    def one_call(label: str, record: bool) -> dict:
        nonlocal trace_name
        if cuda:
            torch.cuda.synchronize()
            if label == "cold":
                torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        before = _stats(torch, cuda)
        if record and cuda:
            torch.cuda.memory._record_memory_history(enabled="all", context=None, stacks="python",
                                                     max_entries=2_000_000)
        t0 = time.time()
        out_info: dict = {"label": label}
        try:
            with torch.inference_mode(), attention.backend(p.attn):
                y = fn(x)
            if cuda:
                torch.cuda.synchronize()
            out_info["forward_s"] = round(time.time() - t0, 4)
            out_info["status"] = "ok"
            after = _stats(torch, cuda)
            out_info["output_shape"] = list(y.shape)
            out_info["finite"] = bool(torch.isfinite(y).all().item())
            del y
        except oom_exc as e:
            out_info["forward_s"] = round(time.time() - t0, 4)
            out_info["status"] = "oom"
            out_info["error"] = str(e)[:2000]
            after = _stats(torch, cuda)
        if record and cuda:
            os.makedirs(os.path.join(work_dir, "traces"), exist_ok=True)
            trace_name = f"{p.id}.snapshot.pickle"
            path = os.path.join(work_dir, "traces", trace_name)
            torch.cuda.memory._dump_snapshot(path + ".tmp")
            os.replace(path + ".tmp", path)
            torch.cuda.memory._record_memory_history(enabled=None)
        out_info["before"] = before
        out_info["after"] = after
        out_info.update(_growth(before, after))
        return out_info

    try:
        cold = one_call("cold", record=p.trace)
        res["cold"] = cold
        res["status"] = cold["status"]
        if p.warm and cold["status"] == "ok":
            marks.rows.append(["<warm call>", "enter", None, None, None, None])
            res["warm"] = one_call("warm", record=False)
    except Exception as e:  # noqa: BLE001 - recorded, the driver goes on with the next point
        res["status"] = "error"
        res["error"] = f"{type(e).__name__}: {e}"[:2000]
    finally:
        marks.remove()
    res["trace"] = trace_name
    os.makedirs(os.path.join(work_dir, "marks"), exist_ok=True)
    common.atomic_write_json(os.path.join(work_dir, "marks", f"{p.id}.marks.json"),
                             {"id": p.id, "columns": ["module", "event", "allocated", "reserved", "max_allocated",
                                                      "max_reserved"], "rows": marks.rows})
    res["wall_s"] = round(time.time() - t_start, 3)
    return res


# ---- launching fresh processes ---------------------------------------------------------------------

class Launcher:
    """fork (default) or spawn. fork is only used while this process has not initialised CUDA."""

    def __init__(self, work_dir: str, dry_run: bool, mode: str = "fork"):
        self.work_dir = work_dir
        self.dry_run = dry_run
        self.mode = mode
        self.fell_back = None

    def run(self, p: Point, timeout: float) -> dict:
        import torch

        if self.mode == "fork" and not self.dry_run and torch.cuda.is_initialized():
            self.mode, self.fell_back = "spawn", "parent had initialised CUDA"
        res = self._fork(p, timeout) if self.mode == "fork" else self._spawn(p, timeout)
        err = str(res.get("error", ""))
        if self.mode == "fork" and res.get("status") == "error" and (
                "forked subprocess" in err or "initialization error" in err or "CUDA driver initialization" in err):
            self.mode, self.fell_back = "spawn", f"fork child could not initialise CUDA: {err[:200]}"
            common.log("vae", f"falling back to spawned processes ({self.fell_back})")
            res = self._spawn(p, timeout)
        res["launcher"] = self.mode
        return res

    def _result_path(self, p: Point) -> str:
        """Where the child writes its result; any stale file is removed before the child starts."""
        d = os.path.join(self.work_dir, "points")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"{p.id}.json")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return path

    def _fork(self, p: Point, timeout: float) -> dict:
        path = self._result_path(p)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child: measure, write, leave without running the parent's atexit handlers
            code = 0
            try:
                res = run_point(p.to_dict(), self.work_dir, self.dry_run)
                common.atomic_write_json(path, res)
            except BaseException as e:  # noqa: BLE001
                code = 1
                try:
                    common.atomic_write_json(path, {"id": p.id, "status": "error", "error": f"{type(e).__name__}: {e}"[:2000]})
                except BaseException:  # noqa: BLE001
                    pass
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        return self._wait(p, path, timeout, lambda: os.waitpid(pid, os.WNOHANG), lambda: os.kill(pid, signal.SIGKILL),
                          lambda: os.waitpid(pid, 0))

    def _spawn(self, p: Point, timeout: float) -> dict:
        path = self._result_path(p)
        cmd = [sys.executable, "-m", "offsim_gpu", "vae-point", "--spec", json.dumps(p.to_dict()), "--work", self.work_dir,
               "--result", path] + (["--dry-run"] if self.dry_run else [])
        proc = subprocess.Popen(cmd)

        def poll():
            rc = proc.poll()
            return (0, 0) if rc is None else (proc.pid, rc)
        return self._wait(p, path, timeout, poll, proc.kill, proc.wait)

    @staticmethod
    def _wait(p: Point, path: str, timeout: float, poll, kill, reap) -> dict:
        t0 = time.time()
        while True:
            done_pid, _status = poll()
            if done_pid:
                break
            if time.time() - t0 > timeout:
                kill()
                reap()
                return {"id": p.id, "spec": p.to_dict(), "status": "timeout", "error": f"killed after {timeout:.0f}s"}
            time.sleep(0.02)
        res = common.read_json(path)
        if res is None:
            return {"id": p.id, "spec": p.to_dict(), "status": "error", "error": "child exited without a result"}
        return res


# ---- part driver -----------------------------------------------------------------------------------

class Planner:
    """Scales the planning estimates by what the run has measured so far (median ratio)."""

    def __init__(self):
        self.ratios: list[float] = []

    def scale(self) -> float:
        if not self.ratios:
            return 1.0
        r = sorted(self.ratios)
        return max(0.25, min(4.0, r[len(r) // 2]))

    def observe(self, p: Point, wall: float):
        self.ratios.append(wall / max(0.1, estimate_s(p)))


def run_part(out_dir: str, work_dir: str, budget_s: float, dry_run: bool, tiers: tuple, launcher_mode: str = "fork",
             limit: int | None = None) -> dict:
    from . import pack

    import torch  # noqa: F401 - imported once here, before forking (no CUDA use in this process)

    budget = common.Budget(budget_s)
    part_dir = os.path.join(work_dir, "vae")
    os.makedirs(part_dir, exist_ok=True)
    points = [p for p in (dry_run_grid() if dry_run else grid()) if p.tier in tiers]
    if limit is not None:
        points = points[:limit]
    done_path = os.path.join(part_dir, "done.json")
    done = set(common.read_json(done_path, default=[]) or [])
    launcher = Launcher(part_dir, dry_run, launcher_mode)
    planner = Planner()
    peaks_path = os.path.join(out_dir, "vae_peaks.jsonl")
    summary = {"tiers": list(tiers), "dry_run": dry_run, "ran": 0, "ok": 0, "oom": 0, "failed": 0, "skipped": [],
               "status": "running"}
    since_pack, last_pack = 0, time.time()
    for i, p in enumerate(points):
        if p.id in done:
            continue
        est = estimate_s(p) * planner.scale()
        if not budget.allows(est):
            summary["skipped"].append(p.id)
            continue
        common.log("vae", f"[{i + 1}/{len(points)}] {p.id} (est {est:.1f}s, {budget.left():.0f}s left)")
        t0 = time.time()
        res = launcher.run(p, timeout=min(timeout_s(p), max(5.0, budget.left())))
        wall = time.time() - t0
        planner.observe(p, wall)
        res["driver_wall_s"] = round(wall, 3)
        res["tier"] = p.tier
        common.append_jsonl(peaks_path, res)
        done.add(p.id)
        common.atomic_write_json(done_path, sorted(done))
        summary["ran"] += 1
        st = res.get("status")
        summary["ok" if st == "ok" else "oom" if st == "oom" else "failed"] += 1
        cold = res.get("cold") or {}
        if st == "ok" and "peak_reserved_growth" in cold:
            common.log("vae", f"    reserved +{cold['peak_reserved_growth'] / 2**30:.3f} GiB, allocated "
                              f"+{cold['peak_allocated_growth'] / 2**30:.3f} GiB, {cold.get('forward_s')}s fwd, "
                              f"wall {wall:.1f}s")
        else:
            common.log("vae", f"    {st}: {str(res.get('error') or cold.get('error') or '')[:200]} (wall {wall:.1f}s)")
        # The per-point results are already safe in vae_peaks.jsonl; the trace archive (seconds to gzip)
        # is refreshed every 25 s of run time or 10 points, and at the end of the part.
        since_pack += 1
        if since_pack >= 10 or (time.time() - last_pack >= 25.0 and (res.get("trace") or since_pack >= 3)):
            pack.pack_part(part_dir, os.path.join(out_dir, "vae_traces.tar.gz"), arcroot="vae")
            since_pack, last_pack = 0, time.time()
    summary["launcher"] = launcher.mode
    summary["launcher_fallback"] = launcher.fell_back
    summary["n_planned"] = len(points)
    summary["status"] = "done"
    summary["time_scale_vs_plan"] = planner.scale()
    common.atomic_write_json(os.path.join(part_dir, f"summary_tiers{'-'.join(map(str, tiers))}.json"), summary)
    summary["packed"] = pack.pack_part(part_dir, os.path.join(out_dir, "vae_traces.tar.gz"), arcroot="vae")
    return summary
