#!/usr/bin/env python3
"""Writes the real-recordings fidelity table into README.md (between its realtrace-table markers): for every
snapshot in ../shared/real-snapshots/ and every device with trace entries, what `offsim replay` compared and
reproduced with no flags, the recorded and simulated peak reserved, the minimum capacity, and how long the
replay and the search took on this machine.

The snapshots are third parties' recordings, not redistributed (SOURCES.md in that folder says whose, and the
PyTorch version each was recorded with, which this script reads from there). Cheap: about half a minute.

    scripts/realtrace_table.py [--offsim build/release/cli/offsim] [--snapshots ../shared/real-snapshots]
                               [--readme README.md]
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GIB = 1 << 30
BEGIN = "<!-- realtrace-table:begin"
END = "<!-- realtrace-table:end -->"


def gib(b: int) -> str:
    return f"{b / GIB:.2f}"


def torch_versions(sources: Path) -> dict[str, str]:
    """File name -> the PyTorch version SOURCES.md gives ("torch (guess): ~2.7/2.8 (...)")."""
    versions, current = {}, None
    for line in sources.read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
        match = re.match(r"- torch \(guess\): ([^;(]+)", line)
        if current and match:
            versions[current] = match.group(1).strip()
    return versions


def replay(offsim: Path, path: Path, *args: str) -> tuple[dict, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        started = time.monotonic()
        subprocess.run([str(offsim), "replay", str(path), "--quiet", "--json", out.name, *args], check=True,
                       stdout=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        return json.loads(Path(out.name).read_text()), seconds


def rows(offsim: Path, folder: Path) -> list[str]:
    versions = torch_versions(folder / "SOURCES.md")
    out = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix != ".md"):
        doc, replay_s = replay(offsim, path)
        searched, search_s = replay(offsim, path, "--min-capacity")
        for device, with_min in zip(doc["devices"], searched["devices"]):
            name = path.name + (f" (device {device['device']})" if len(doc["devices"]) > 1 else "")
            conf = device["recorded_alloc_conf"] or "(default)"
            if device["comparison"] == "state-only":
                compared = "state only: no requests"
                matched = "-"
                peaks = f"- / {gib(device['peak_reserved_bytes'])}"
            else:
                c = device["compared"]
                compared = (f"{device['events_total']} ({c['segment_events']['total']} segment, "
                            f"{c['addresses']['total']} address, {c['frees']['total']} free)")
                matched = f"{device['events_matched']}"
                recorded = device["recorded_peak_reserved_bytes"]
                peaks = f"{gib(recorded) if recorded else '-'} / {gib(device['peak_reserved_bytes'])}"
            total = gib(device["capacity_bytes"]) + " GiB"
            if device["capacity_source"].startswith("inferred"):
                total += " (from its OOM)"
            elif device["capacity_source"] == "assumed":
                total = "not recorded"
            minimum = gib(with_min["min_capacity_bytes"]) + ("" if with_min["min_capacity_verified"] else " (unverified)")
            out.append(f"| {name} | {versions.get(path.name, '?')} | {conf} | {compared} | {matched} | {peaks} | "
                       f"{total} | {minimum} | {replay_s:.2f} / {search_s:.2f} |")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offsim", type=Path, default=ROOT / "build/release/cli/offsim")
    parser.add_argument("--snapshots", type=Path, default=ROOT.parent / "shared/real-snapshots")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args()
    if not (args.snapshots / "SOURCES.md").exists():
        print(f"{args.snapshots}: no real snapshots there (they are not redistributed with offsim)", file=sys.stderr)
        return 1
    header = ["| snapshot | PyTorch (recorded with) | settings | events compared | matched | peak reserved GiB, "
              "recorded / simulated | device total | min capacity GiB | seconds (whole file): replay / with --min-capacity |",
              "|---|---|---|---|---|---|---|---|---|"]
    table = "\n".join(header + rows(args.offsim, args.snapshots))
    readme = args.readme.read_text()
    begin, end = readme.index(BEGIN), readme.index(END)
    begin_line_end = readme.index("\n", begin) + 1
    args.readme.write_text(readme[:begin_line_end] + table + "\n" + readme[end:])
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
