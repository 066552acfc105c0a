"""Packing a part's work folder into one .tar.gz in the output folder, within the device's return limits,
and unpacking a returned run into traces/gpu/<date>-<gpu>/.

The device returns at most 8 files of at most 16 MiB (64 MiB in all) from $OUT, no deeper than two
folders (/work/.library/device/README.md). So each part's many small results travel as one archive;
if an archive would pass its size cap, the largest low-priority members (trace snapshots) are left out
and named in DROPPED.json inside the archive, never silently.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
import time

from . import common

DEFAULT_CAP = 15 * 1024 * 1024  # under 16 MiB with room for the tar/gzip framing


def _priority(rel: str) -> int:
    """Lower sorts first = kept first. JSON results beat snapshots; snapshots of later seeds go first."""
    if rel.endswith(".json") or rel.endswith(".jsonl"):
        return 0
    if rel.endswith(".txt") or rel.endswith(".md"):
        return 1
    return 2


def _files(src_dir: str) -> list[str]:
    out = []
    for root, _dirs, files in os.walk(src_dir):
        for f in files:
            if f.startswith(".tmp-") or f.endswith(".tmp"):
                continue
            out.append(os.path.relpath(os.path.join(root, f), src_dir))
    return sorted(out, key=lambda r: (_priority(r), r))


def _build(src_dir: str, members: list[str], arcroot: str, dropped: list[dict]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=4) as tar:
        for rel in members:
            tar.add(os.path.join(src_dir, rel), arcname=f"{arcroot}/{rel}", recursive=False)
        if dropped:
            data = json.dumps({"dropped": dropped, "reason": "archive size cap (device return limit)"},
                              indent=1).encode()
            info = tarfile.TarInfo(f"{arcroot}/DROPPED.json")
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def pack_part(src_dir: str, out_path: str, arcroot: str, cap: int = DEFAULT_CAP) -> dict:
    """Write `out_path` atomically; returns what was packed and what was left out."""
    members = _files(src_dir)
    dropped: list[dict] = []
    data = _build(src_dir, members, arcroot, dropped)
    while len(data) > cap:
        # Leave out the largest member of the lowest priority class still present.
        candidates = [m for m in members if _priority(m) == max(_priority(x) for x in members)]
        victim = max(candidates, key=lambda m: os.path.getsize(os.path.join(src_dir, m)))
        if _priority(victim) == 0 and len(members) == 1:
            raise RuntimeError(f"{out_path}: even the JSON results alone exceed {cap} bytes")
        members.remove(victim)
        dropped.append({"file": victim, "bytes": os.path.getsize(os.path.join(src_dir, victim))})
        data = _build(src_dir, members, arcroot, dropped)
    common.atomic_write_bytes(out_path, data)
    return {"archive": os.path.basename(out_path), "bytes": len(data), "members": len(members), "dropped": dropped}


def check_out_dir(out_dir: str) -> dict:
    """The return limits, checked on the finished output folder (run.sh's last step and the tests)."""
    entries = sorted(os.listdir(out_dir))
    files = [e for e in entries if os.path.isfile(os.path.join(out_dir, e))]
    dirs = [e for e in entries if os.path.isdir(os.path.join(out_dir, e))]
    sizes = {f: os.path.getsize(os.path.join(out_dir, f)) for f in files}
    problems = []
    if dirs:
        problems.append(f"folders in the output folder: {dirs}")
    if len(files) > common.OUT_MAX_FILES:
        problems.append(f"{len(files)} files > {common.OUT_MAX_FILES}")
    for f, s in sizes.items():
        if s > common.OUT_MAX_FILE_BYTES:
            problems.append(f"{f}: {s} bytes > {common.OUT_MAX_FILE_BYTES}")
        if f not in common.OUT_FILES:
            problems.append(f"unexpected file {f}")
    if sum(sizes.values()) > common.OUT_MAX_TOTAL_BYTES:
        problems.append(f"total {sum(sizes.values())} bytes > {common.OUT_MAX_TOTAL_BYTES}")
    return {"files": sizes, "total_bytes": sum(sizes.values()), "problems": problems}


def _slug(s: str) -> str:
    keep = []
    for ch in s.lower():
        keep.append(ch if ch.isalnum() else "-")
    return "-".join(p for p in "".join(keep).split("-") if p)


def commit_layout(src: str, traces_root: str, date: str | None = None, git_sha: str | None = None) -> str:
    """Unpack a returned run (the files from $OUT) into traces/gpu/<date>-<gpu>/ with a metadata.json that
    says where the data came from. Returns the destination folder. Refuses to overwrite one."""
    meta = common.read_json(os.path.join(src, common.METADATA))
    if not meta:
        raise FileNotFoundError(f"{src}: no {common.METADATA}; not an offsim GPU run folder")
    gpu = ((meta.get("torch") or {}).get("device_properties") or {}).get("name") or "unknown-gpu"
    run_date = date or (meta.get("started") or common.now_iso())[:10]
    dest = os.path.join(traces_root, f"{run_date}-{_slug(gpu)}")
    if os.path.exists(dest):
        raise FileExistsError(f"{dest} exists; pick another --date or remove it")
    os.makedirs(dest)
    for name in sorted(os.listdir(src)):
        p = os.path.join(src, name)
        if name.endswith(".tar.gz"):
            with tarfile.open(p, "r:gz") as tar:
                for m in tar.getmembers():
                    if m.name.startswith("/") or ".." in m.name.split("/") or not (m.isfile() or m.isdir()):
                        raise ValueError(f"{p}: refusing archive member {m.name!r}")
                tar.extractall(dest)
        elif os.path.isfile(p):
            with open(p, "rb") as f:
                data = f.read()
            common.atomic_write_bytes(os.path.join(dest, name if name != common.METADATA else "run_metadata.json"), data)
    provenance = {
        "format": "offsim-trace-metadata/1",
        "kind": "real GPU measurement",
        "source": "real/gpu/run.sh (PyTorch Python API, no build)",
        "gpu": gpu,
        "date": run_date,
        "torch": (meta.get("torch") or {}).get("torch"),
        "cuda": (meta.get("torch") or {}).get("torch_cuda"),
        "cudnn": (meta.get("torch") or {}).get("cudnn_version"),
        "driver": (meta.get("nvidia_smi") or {}).get("driver_version"),
        "dry_run": meta.get("dry_run"),
        "offsim_git_sha_of_run": (meta.get("env") or {}).get("OFFSIM_GIT_SHA") or git_sha,
        "files": sorted(os.listdir(dest)),
        "run_metadata": "run_metadata.json (the metadata.json the run wrote: GPU, driver, versions, configs, wall times)",
    }
    common.atomic_write_json(os.path.join(dest, "metadata.json"), provenance)
    return dest
