#!/usr/bin/env python3
"""The fragmentation experiment: search for cases where P1 and P2 hold yet P3 fails on fragmentation.

For each policy the gate checks and each allocator setting (native default, native with
max_split_size_mb:512, expandable segments), run `offsim check --property P3 --aspect fragmentation-only`
over --seeds seeds of --cases generated cases each (RapidCheck, shrinking on), and tabulate how many cases
were searched and what was found. Shrunk counterexamples land in OUT/<setting>/; every row is
replayable with the command offsim prints. docs/fragmentation_experiment.md reports a run of this.

    scripts/fragmentation_search.py [--seeds N] [--cases N] [--out DIR] [--offsim PATH]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (allocator setting, PyTorch versions drawn). Expandable segments only with 2.11: PyTorch 2.9's ROCm build
# ignores the flag (sim/caching_allocator.cpp), and the shrinker would otherwise move cases there.
SETTINGS = {"native": ("", []), "native, max_split_size_mb:512": ("max_split_size_mb:512", []),
            "expandable segments (torch 2.11)": ("expandable_segments:True", ["2.11"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "fragmentation")
    parser.add_argument("--offsim", type=Path, default=ROOT / "build" / "release" / "cli" / "offsim")
    parser.add_argument("--policy", nargs="*", default=[], help="policy ids (default: the gate's)")
    options = parser.parse_args()

    rows = []
    for label, (conf, torch_versions) in SETTINGS.items():
        out = options.out / label.split(",")[0].replace(" ", "-") / (conf.replace(":", "-") or "default")
        out.mkdir(parents=True, exist_ok=True)
        cmd = [str(options.offsim), "check", "--quiet", "--root", str(ROOT), "--property", "P3",
               "--aspect", "fragmentation-only", "--alloc-conf", conf, "--seed", str(options.first_seed),
               "--seeds", str(options.seeds), "--cases", str(options.cases), "--time-budget", "1e9",
               "--out", str(out), "--json", str(out / "results.json")]
        for p in options.policy:
            cmd += ["--policy", p]
        for version in torch_versions:
            cmd += ["--torch", version]
        t0 = time.monotonic()
        rc = subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if rc not in (0, 1):
            sys.exit(f"fragmentation_search: {' '.join(cmd)} exited {rc}")
        doc = json.loads((out / "results.json").read_text())
        by_policy: dict[str, dict] = {}
        for c in doc["checks"]:
            row = by_policy.setdefault(c["policy"], {"setting": label, "policy": c["policy"], "seeds": 0,
                                                     "cases": 0, "stranded": 0, "warm_above_cold": 0, "found": 0,
                                                     "example": ""})
            row["seeds"] += 1
            row["cases"] += c["cases"]
            row["stranded"] += c["classes"].get("stranded>=64MiB", 0)
            row["warm_above_cold"] += c["classes"].get("warm>cold", 0)
            if not c.get("passed", False) and c.get("failure"):
                row["found"] += 1
                row["example"] = row["example"] or c["failure"]
        rows.extend(by_policy.values())
        print(f"{label}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)

    print("| allocator | policy | seeds | cases searched | a stage began with >= 64 MiB stranded | T_warm > T_cold "
          "| seeds that found P3 failing on fragmentation alone | first shrunk find |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        example = r["example"].replace("|", "\\|")
        print(f"| {r['setting']} | `{r['policy']}` | {r['seeds']} | {r['cases']} | {r['stranded']} | "
              f"{r['warm_above_cold']} | {r['found']} | {example} |")
    (options.out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
