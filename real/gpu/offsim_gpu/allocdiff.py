"""Part 1: allocator differential runs.

The same deterministic, seeded sequences of allocator requests run on the real CUDA caching allocator
under several PYTORCH_CUDA_ALLOC_CONF settings, each in a fresh process (the config is parsed once, when
the allocator is first used: shared/specs/pytorch_caching_allocator.md 2.3). For every (config, seed)
the run leaves, in the work folder:

* `<config>/seed<k>.ops.json`: the op list exactly as executed, the outcome of every op (pointer, "oom"
  with the message, "skip" for frees of requests that failed), stats checkpoints, the stream handles,
  the memory-fraction limit, and the allocator settings PyTorch reports;
* `<config>/seed<k>.snapshot.pickle`: `torch.cuda.memory._dump_snapshot` of a history recorded with no
  stacks (context=None) from the first op to the final empty_cache, so the simulator can replay the
  requests and compare segment_alloc / segment_free / segment_map / oom / free_completed event for event
  (spec section 9).

Op format ("offsim-allocdiff-ops/1"), one JSON array per op:
  ["alloc", id, nbytes, stream]   torch.cuda.caching_allocator_alloc(nbytes, device, stream)
  ["free", id]                    torch.cuda.caching_allocator_delete(ptr)   (skipped if id is not live)
  ["talloc", id, nbytes, stream]  torch.empty(nbytes, uint8) with that stream current (a tensor, so that
                                  record_stream can be used on it)
  ["record", id, stream]          tensor.record_stream(stream)                (skipped if id is not live)
  ["tfree", id]                   drop the tensor                              (skipped if id is not live)
  ["sleep", stream, cycles]       torch.cuda._sleep(cycles) on that stream: keeps it busy so that a block
                                  freed after record_stream stays pending (spec 6.1)
  ["sync"]                        torch.cuda.synchronize()
  ["empty_cache"]                 torch.cuda.empty_cache()
  ["mark", label]                 stats checkpoint only (no allocator call)
Streams: 0 = the current (default) stream, 1 = one side stream created at start.
A request that fails with OOM leaves its id not live; later ops on it are skipped, and a replay must apply
the same rule (a divergence in which requests OOM is itself a finding).
"""
from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time

from . import common

OPS_FORMAT = "offsim-allocdiff-ops/1"
MiB = 1 << 20
GiB = 1 << 30

# (name, PYTORCH_CUDA_ALLOC_CONF, use the memory fraction). The garbage collector only runs with a
# fraction set (spec 5.4), and a fraction makes the OOM/reclaim path reachable on an 80 GB card; the
# last run, without a fraction, is the plain default.
CONFIGS = (
    ("default", "", True),
    ("expandable_segments", "expandable_segments:True", True),
    ("max_split_64", "max_split_size_mb:64", True),
    ("roundup_pow2_4", "roundup_power2_divisions:4", True),
    ("gc_0.6", "garbage_collection_threshold:0.6", True),
    ("default_nofraction", "", False),
)
DEFAULT_LIMIT = 8 * GiB
DEFAULT_SEEDS = (1, 2)
DEFAULT_OPS = 3000

# Sizes on the boundaries of the allocator's rules (spec 2.1-2.4, 3.2, 11.1): 512-byte rounding, the
# 1 MiB small/large split, 2 MiB small segments, 10 MiB / 20 MiB large segments, the 64 MiB
# max_split_size used above, and the n of PyTorch's own test_allocator_settings (21 * 2^20 * 4).
BOUNDARY_SIZES = (
    1, 511, 512, 513, 4096, MiB - 1, MiB, MiB + 1, 2 * MiB - 512, 2 * MiB, 2 * MiB + 1,
    10 * MiB - 1, 10 * MiB, 10 * MiB + 1, 10 * MiB + 512 * 1024, 11 * MiB, 19 * MiB, 20 * MiB,
    20 * MiB + 1, 21 * MiB * 4, 64 * MiB - 1, 64 * MiB, 64 * MiB + 1, 100 * MiB, 128 * MiB + 1,
)


def _size(rng: random.Random, limit: int) -> int:
    r = rng.random()
    if r < 0.30:
        return rng.randint(1, MiB)
    if r < 0.40:
        return rng.choice(BOUNDARY_SIZES)
    if r < 0.72:
        return rng.randint(MiB + 1, 10 * MiB)
    if r < 0.95:
        return int(math.exp(rng.uniform(math.log(10 * MiB), math.log(512 * MiB))))
    return int(math.exp(rng.uniform(math.log(512 * MiB), math.log(max(513 * MiB, int(0.4 * limit))))))


def generate_ops(seed: int, n_ops: int = DEFAULT_OPS, limit: int = DEFAULT_LIMIT, streams: int = 2) -> list:
    """Deterministic op list. Live bytes follow a target that sweeps between 15 % and 100 % of `limit`,
    with pressure phases up to 125 % (so that OOM recovery, garbage collection and splitting/merging of
    large cached blocks all happen), occasional empty_cache, and record_stream on a busy side stream."""
    rng = random.Random(seed)
    ops: list = []
    live: dict[int, tuple[int, str, int]] = {}  # id -> (nbytes, kind, stream)
    live_bytes = 0
    next_id = 0
    period = max(50, n_ops // 6)
    pending_sync_at = None
    for t in range(n_ops):
        phase = abs(math.sin(math.pi * t / period))
        target = limit * (0.15 + 0.85 * phase)
        if (t // period) % 3 == 2:
            target *= 1.25  # pressure phase: more than the limit is requested
        if pending_sync_at is not None and t >= pending_sync_at:
            ops.append(["sync"])
            pending_sync_at = None
            continue
        r = rng.random()
        if r < 0.004:
            ops.append(["empty_cache"])
            continue
        if r < 0.014:
            ops.append(["mark", f"t{t}"])
            continue
        if r < 0.04 and streams > 1 and pending_sync_at is None:
            tensors = [i for i, (_, kind, s) in live.items() if kind == "t" and s == 0]
            if tensors:
                i = rng.choice(tensors)
                ops.append(["sleep", 1, 20_000_000])
                ops.append(["record", i, 1])
                ops.append(["tfree", i])
                live_bytes -= live.pop(i)[0]
                pending_sync_at = t + rng.randint(3, 25)
                continue
        want_alloc = (rng.random() < 0.75) if live_bytes < target else (rng.random() < 0.25)
        if want_alloc or not live:
            n = _size(rng, limit)
            stream = 1 if (streams > 1 and rng.random() < 0.2) else 0
            kind = "t" if rng.random() < 0.3 else "r"
            ops.append(["talloc" if kind == "t" else "alloc", next_id, n, stream])
            live[next_id] = (n, kind, stream)
            live_bytes += n
            next_id += 1
        else:
            # Free mostly recent blocks (stack-like lifetimes, as in a forward pass), sometimes old ones.
            ids = list(live)
            i = ids[-1 - min(len(ids) - 1, int(rng.expovariate(0.3)))] if rng.random() < 0.7 else rng.choice(ids)
            n, kind, _ = live.pop(i)
            live_bytes -= n
            ops.append(["tfree" if kind == "t" else "free", i])
    # Tear-down: free everything, wait, release: the trace ends with the segment frees.
    for i, (_, kind, _) in sorted(live.items()):
        ops.append(["tfree" if kind == "t" else "free", i])
    ops.append(["sync"])
    ops.append(["empty_cache"])
    ops.append(["mark", "end"])
    return ops


# ------------------------------------------------------------------------------------------------------
# Executors


class NullBackend:
    """CPU stand-in used by --dry-run: exercises the executor's bookkeeping with fake pointers."""

    name = "null (dry run, no allocator)"

    def __init__(self):
        self._next = 0x7F0000000000
        self.stream_handles = [0, 1]

    def alloc(self, n, stream):
        p = self._next
        self._next += (n + 511) // 512 * 512
        return p

    def free(self, ptr):
        pass

    def talloc(self, n, stream):
        return ("tensor", self.alloc(n, stream), n)

    def record(self, t, stream):
        pass

    def sleep(self, stream, cycles):
        pass

    def sync(self):
        pass

    def empty_cache(self):
        pass

    def stats(self):
        return {}


class CudaBackend:
    def __init__(self, torch):
        self.torch = torch
        self.dev = torch.cuda.current_device()
        self.streams = [torch.cuda.current_stream(), torch.cuda.Stream()]
        self.stream_handles = [s.cuda_stream for s in self.streams]
        self.name = "torch.cuda caching allocator"

    def alloc(self, n, stream):
        return self.torch.cuda.caching_allocator_alloc(n, self.dev, self.streams[stream])

    def free(self, ptr):
        self.torch.cuda.caching_allocator_delete(ptr)

    def talloc(self, n, stream):
        with self.torch.cuda.stream(self.streams[stream]):
            return self.torch.empty(n, dtype=self.torch.uint8, device="cuda")

    def record(self, t, stream):
        t.record_stream(self.streams[stream])

    def sleep(self, stream, cycles):
        with self.torch.cuda.stream(self.streams[stream]):
            self.torch.cuda._sleep(cycles)

    def sync(self):
        self.torch.cuda.synchronize()

    def empty_cache(self):
        self.torch.cuda.empty_cache()

    def stats(self):
        s = self.torch.cuda.memory_stats()
        keys = ("allocated_bytes.all.current", "reserved_bytes.all.current", "active_bytes.all.current",
                "inactive_split_bytes.all.current", "requested_bytes.all.current", "segment.all.current",
                "allocated_bytes.all.peak", "reserved_bytes.all.peak", "num_alloc_retries", "num_ooms",
                "num_device_alloc", "num_device_free", "num_sync_all_streams")
        return {k: s.get(k) for k in keys}


def execute(ops: list, backend, oom_exc=()) -> tuple[list, list]:
    """Run ops; returns (outcomes aligned with ops, stats checkpoints)."""
    live: dict = {}
    outcomes: list = []
    marks: list = []
    for op in ops:
        kind = op[0]
        try:
            if kind in ("alloc", "talloc"):
                _, i, n, stream = op
                obj = backend.alloc(n, stream) if kind == "alloc" else backend.talloc(n, stream)
                live[i] = obj
                outcomes.append(obj if kind == "alloc" else _ptr(obj))
            elif kind in ("free", "tfree"):
                obj = live.pop(op[1], None)
                if obj is None:
                    outcomes.append("skip")
                    continue
                if kind == "free":
                    backend.free(obj)
                del obj
                outcomes.append(None)
            elif kind == "record":
                obj = live.get(op[1])
                if obj is None:
                    outcomes.append("skip")
                    continue
                backend.record(obj, op[2])
                outcomes.append(None)
            elif kind == "sleep":
                backend.sleep(op[1], op[2])
                outcomes.append(None)
            elif kind == "sync":
                backend.sync()
                outcomes.append(None)
            elif kind == "empty_cache":
                backend.empty_cache()
                outcomes.append(None)
            elif kind == "mark":
                marks.append({"op_index": len(outcomes), "label": op[1], "stats": backend.stats()})
                outcomes.append(None)
            else:
                raise ValueError(f"unknown op {op!r}")
        except oom_exc as e:  # only allocations can raise it
            outcomes.append({"oom": str(e).splitlines()[0][:500]})
    return outcomes, marks


def _ptr(obj):
    if isinstance(obj, tuple):
        return obj[1]
    return obj.data_ptr()


# ------------------------------------------------------------------------------------------------------
# Worker: one config, fresh process


def worker(config_name: str, alloc_conf: str, use_fraction: bool, seeds, n_ops: int, limit: int,
           work_dir: str, dry_run: bool) -> int:
    out = os.path.join(work_dir, config_name)
    os.makedirs(out, exist_ok=True)
    if dry_run:
        backend = NullBackend()
        torch = None
        total_memory = None
        fraction = None
        oom_exc = ()
        settings = None
    else:
        import torch
        torch.cuda.init()
        backend = CudaBackend(torch)
        total_memory = torch.cuda.get_device_properties(backend.dev).total_memory
        fraction = None
        if use_fraction:
            fraction = limit / total_memory
            torch.cuda.set_per_process_memory_fraction(fraction, backend.dev)
        oom_exc = (torch.cuda.OutOfMemoryError,)
        settings = torch.cuda.memory._snapshot().get("allocator_settings")
    for seed in seeds:
        t0 = time.time()
        ops = generate_ops(seed, n_ops, limit)
        snap_path = os.path.join(out, f"seed{seed}.snapshot.pickle")
        if not dry_run:
            torch.cuda.memory._record_memory_history(enabled=None)
            torch.cuda.reset_peak_memory_stats()
            start_segments = torch.cuda.memory_snapshot()
            torch.cuda.memory._record_memory_history(enabled="all", context=None, stacks="python",
                                                     max_entries=10_000_000)
        else:
            start_segments = []
        outcomes, marks = execute(ops, backend, oom_exc)
        if not dry_run:
            torch.cuda.memory._dump_snapshot(snap_path + ".tmp")
            os.replace(snap_path + ".tmp", snap_path)
            torch.cuda.memory._record_memory_history(enabled=None)
        record = {
            "format": OPS_FORMAT,
            "dry_run": dry_run,
            "config_name": config_name,
            "PYTORCH_CUDA_ALLOC_CONF": alloc_conf,
            "allocator_settings_reported": settings,
            "memory_fraction": fraction,
            "memory_fraction_repr": repr(fraction),
            "total_memory": total_memory,
            "limit_intended": limit if use_fraction else None,
            "seed": seed,
            "n_ops_requested": n_ops,
            "generator": "offsim_gpu.allocdiff.generate_ops",
            "stream_handles": backend.stream_handles,
            "backend": backend.name,
            "start_segments": start_segments,
            "ops": ops,
            "outcomes": outcomes,
            "marks": marks,
            "n_oom": sum(1 for o in outcomes if isinstance(o, dict) and "oom" in o),
            "snapshot": None if dry_run else os.path.basename(snap_path),
            "wall_s": round(time.time() - t0, 3),
        }
        common.atomic_write_json(os.path.join(out, f"seed{seed}.ops.json"), record)
        common.log("allocdiff", f"{config_name} seed {seed}: {len(ops)} ops, {record['n_oom']} OOM, "
                                f"{record['wall_s']} s")
    return 0


# ------------------------------------------------------------------------------------------------------
# Part driver


def run_part(out_dir: str, work_dir: str, budget_s: float, dry_run: bool, seeds=DEFAULT_SEEDS,
             n_ops: int = DEFAULT_OPS, limit: int = DEFAULT_LIMIT, configs=CONFIGS) -> dict:
    from . import pack

    budget = common.Budget(budget_s)
    part_dir = os.path.join(work_dir, "allocdiff")
    os.makedirs(part_dir, exist_ok=True)
    summary = {"configs": [], "seeds": list(seeds), "n_ops": n_ops, "limit": limit, "dry_run": dry_run,
               "status": "running"}
    est = 8.0  # seconds per config: interpreter + torch import + CUDA init + ops + dump
    for name, conf, use_fraction in configs:
        if not budget.allows(est):
            summary["configs"].append({"name": name, "conf": conf, "status": "skipped: budget"})
            continue
        env = dict(os.environ)
        env["PYTORCH_CUDA_ALLOC_CONF"] = conf
        env.pop("PYTORCH_ALLOC_CONF", None)  # newer alias; one source of truth
        cmd = [sys.executable, "-m", "offsim_gpu", "allocdiff-worker", "--config-name", name, "--alloc-conf", conf,
               "--seeds", ",".join(map(str, seeds)), "--n-ops", str(n_ops), "--limit", str(limit),
               "--work", part_dir] + (["--fraction"] if use_fraction else []) + (["--dry-run"] if dry_run else [])
        t0 = time.time()
        common.log("allocdiff", f"config {name!r} ({conf or 'defaults'}, fraction={'yes' if use_fraction else 'no'})")
        try:
            p = subprocess.run(cmd, env=env, timeout=max(5.0, min(60.0, budget.left())), text=True,
                               capture_output=True)
            rc, err = p.returncode, p.stderr[-3000:]
            sys.stdout.write(p.stdout)
        except subprocess.TimeoutExpired as e:
            rc, err = None, f"timeout after {e.timeout:.0f}s"
        entry = {"name": name, "conf": conf, "fraction": use_fraction, "rc": rc, "wall_s": round(time.time() - t0, 2)}
        if rc != 0:
            entry["error"] = err
            common.log("allocdiff", f"config {name} failed (rc={rc}): {err.strip().splitlines()[-1:] if err else ''}")
        entry["status"] = "ok" if rc == 0 else "failed"
        summary["configs"].append(entry)
        est = max(est, entry["wall_s"] * 1.2)
        common.atomic_write_json(os.path.join(part_dir, "summary.json"), summary)
        pack.pack_part(part_dir, os.path.join(out_dir, "allocdiff.tar.gz"), arcroot="allocdiff")
    summary["status"] = "done"
    common.atomic_write_json(os.path.join(part_dir, "summary.json"), summary)
    packed = pack.pack_part(part_dir, os.path.join(out_dir, "allocdiff.tar.gz"), arcroot="allocdiff")
    summary["packed"] = packed
    return summary


def load_ops(path: str) -> dict:
    with open(path, "r", encoding="utf-8") as f:
        rec = json.load(f)
    if rec.get("format") != OPS_FORMAT:
        raise ValueError(f"{path}: format {rec.get('format')!r}, expected {OPS_FORMAT!r}")
    return rec
