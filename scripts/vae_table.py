#!/usr/bin/env python3
"""Writes the VAE table into README.md (between its vae-table markers): per recorded VAE point, the simulated peaks, every estimator's estimate and
the ratio, beside upstream's published GPU measurements.

Inputs: traces/cpu/index.tsv (CPU-recorded traces, made by scripts/record_vae_table.sh, minutes each),
`offsim replay` (the simulated CUDA allocator, default settings and expandable segments, on an empty
device), `offsim estimate` (every transcribed estimator), traces/published/ (GPU measurements with their
citations) and traces/gpu/ when a GPU run has been committed. Cheap (seconds): run it after recording.

    scripts/vae_table.py [--offsim build/release/cli/offsim] [--readme README.md]
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GIB = 1 << 30
FAMILY = {"sd15-vae": "sd15", "sdxl-vae": "sdxl", "flux1-vae": "flux1", "qwen-image-vae": "qwen_image"}
# The kernel variant a CPU recording rewrote towards, and the platform whose constants match it.
BACKEND = {"efficient": "cuda", "math": "rocm"}


def gib(b: float | None) -> str:
    return "-" if b is None else f"{b / GIB:.2f}"


def replay_peak(offsim: Path, trace: str, conf: str) -> tuple[int, int]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [str(offsim), "replay", str(ROOT / trace), "--quiet", "--json", out.name]
        if conf:
            cmd += ["--alloc-conf", conf]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        doc = json.loads(Path(out.name).read_text())
    return doc["peak_reserved_bytes"], doc["peak_allocated_bytes"]


def estimates(offsim: Path, family: str, op: str, size: str, dtype: str, backend: str) -> list[dict]:
    out = subprocess.run([str(offsim), "estimate", "--vae", family, "--op", op, "--size", size, "--dtype", dtype,
                          "--backend", backend, "--json"], check=True, capture_output=True, text=True).stdout
    return [e for e in json.loads(out)["estimates"] if e["estimate_bytes"] is not None and e["in_domain"]]


ELEMENT_SIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "bf16": 2, "fp16": 2, "fp32": 4}


def published_points() -> dict[tuple[str, str, int, int], list[str]]:
    """(family, op, height*width, element size) -> ["10.06 (ROCM, grid id)", ...]"""
    out: dict[tuple[str, str, int, int], list[str]] = {}
    cal = json.loads((ROOT / "traces/published/qwen_image_vae_calibration.json").read_text())
    for grid in cal["grids"]:
        for p in grid["points"]:
            value = p.get("peak_reserved_growth_gib", p.get("peak_reserved_growth_gib_derived"))
            if value is None:
                value_text = p.get("status", "?").upper()
            else:
                value_text = f"{value:.2f}" + ("*" if "peak_reserved_growth_gib_derived" in p else "")
            # The ROCm single point states no dtype; InvokeAI's Qwen-Image VAE runs in bf16 there.
            key = ("qwen_image", p["op"], p["height"] * p["width"], ELEMENT_SIZE.get(p.get("dtype", "bfloat16"), 2))
            out.setdefault(key, []).append(f"{value_text} ({grid['backend'].upper()}, {grid['id']})")
    other = json.loads((ROOT / "traces/published/vae_peaks_other.json").read_text())
    for e in other["entries"]:
        if "reserved_mb" in e and "height" in e:
            family = "sd15" if e["model"].startswith("SD1") else "sdxl" if e["model"].startswith("SDXL") else None
            if family:
                key = (family, e["op"], e["height"] * e["width"], ELEMENT_SIZE[e["dtype"]])
                out.setdefault(key, []).append(f"{e['reserved_mb'] / 1024:.2f} ({e['dtype']}, cudaMallocAsync, {e['id']})")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--offsim", type=Path, default=ROOT / "build" / "release" / "cli" / "offsim")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    options = parser.parse_args()

    published = published_points()
    rows = []
    with open(ROOT / "traces/cpu/index.tsv") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            family = FAMILY[r["model"]]
            w, h = (int(x) for x in r["size"].split("x"))
            reserved, allocated = replay_peak(options.offsim, r["trace"], "")
            expandable, _ = replay_peak(options.offsim, r["trace"], "expandable_segments:True")
            backend = BACKEND[r["attention"]]
            est = estimates(options.offsim, family, r["op"], r["size"], r["dtype"], backend)
            est_text = "<br>".join(
                f"`{e['estimator']}` {gib(e['estimate_bytes'])} ({e['estimate_bytes'] / reserved:.2f}x)" for e in est)
            pub = "<br>".join(published.get((family, r["op"], w * h, ELEMENT_SIZE[r["dtype"]]), [])) or "-"
            rows.append((r["model"], r["op"], r["size"], r["dtype"], f"{r['attention']} / {r['conv_workspace']}",
                         gib(allocated), gib(reserved), gib(expandable), backend.upper(), est_text, pub,
                         r["peak_scope"]))

    lines = [
        "<!-- vae-table:begin (generated by scripts/vae_table.py from traces/cpu/index.tsv; edit the script) -->",
        "* **allocated / reserved (sim)**: the CPU-recorded trace (libtorch forward pass with random weights, "
        "rewritten per kernel into a CUDA-like trace, `traces/cpu/README.md`) replayed through offsim's simulated "
        "CUDA caching allocator on an empty device: peak allocated, peak reserved with the default settings and "
        "with `expandable_segments:True`. Provenance: **CPU-recorded + simulated**, provisional until a GPU run "
        "validates it.",
        "* **estimates**: every transcribed estimator whose stated domain covers the point "
        "(`offsim estimate`), with the platform constants that match the kernel variant (efficient/implicit: "
        "CUDA; math/column-buffer: ROCm), and the ratio E / simulated reserved peak (>= 1 is safe).",
        "* **published GPU**: reserved growth measured on real GPUs by upstream, with the grid's id "
        "(`traces/published/`; `*` = derived from a published implied constant). Real GPU runs of this project: "
        "none yet (`traces/gpu/` is empty: no GPU was lent to the sessions so far).",
        "",
        "| VAE | op | size | dtype | kernels | allocated (sim) GiB | reserved (sim) GiB | reserved, expandable (sim) GiB "
        "| constants | estimates GiB (E / reserved) | published GPU reserved growth GiB | peak at |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    lines.append("<!-- vae-table:end -->")
    readme = options.readme.read_text()
    begin, end = readme.find("<!-- vae-table:begin"), readme.find("<!-- vae-table:end -->")
    if begin < 0 or end < begin:
        sys.exit(f"vae_table: {options.readme} has no <!-- vae-table:begin --> ... <!-- vae-table:end --> markers")
    end += len("<!-- vae-table:end -->")
    options.readme.write_text(readme[:begin] + "\n".join(lines) + readme[end:])
    print(f"wrote the table into {options.readme} ({len(rows)} points)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
