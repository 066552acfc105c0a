"""Every real GPU recording in ../shared/real-snapshots/ replays exactly (ctest label `realtrace`; Debian's
/usr/bin/python3, standard library only). Issue 16 item 7.

usage: realtrace.py OFFSIM_BINARY SNAPSHOT_DIRECTORY WORK_DIRECTORY

The recordings are other people's (torch.cuda.memory._dump_snapshot on real GPUs; SOURCES.md says whose):
their licences do not allow redistribution, so they are not in this repository and the test skips (exit 77,
saying why) where the folder is absent. For every snapshot file in it and every device with trace entries,
with no flags:
* `offsim replay` reproduces every recorded event it compares (events matched = events compared), and
  compares something, unless the snapshot is state-only (no allocator requests), which is reported as
  such rather than as a failure (its --min-capacity, the state itself, must still answer);
* `--min-capacity` answers with a verified boundary, and a replay at that capacity (`--capacity`) runs to
  the end without an unhandled OOM while one allocation granule (2 MiB) less stops at one, unless the
  minimum is the start state itself (nothing smaller can even hold it).
Prints one line per device (the numbers the README's fidelity table shows). Exits 0, 77 or raises.
"""
import glob
import json
import os
import subprocess
import sys
import time

MIB = 1024 * 1024


def run(offsim, *args, expect=0):
    result = subprocess.run([offsim, *args], capture_output=True, text=True, check=False)
    assert result.returncode == expect, (args, result.returncode, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


def gib(n):
    return f"{n / (1 << 30):.2f} GiB"


def main():
    offsim, folder, work = sys.argv[1:4]
    files = sorted(p for p in glob.glob(os.path.join(folder, "*")) if os.path.isfile(p) and not p.endswith(".md"))
    if not files:
        print(f"SKIP: {folder} is absent or holds no snapshots: the real recordings are not redistributed with "
              "offsim (their licences forbid it); put them there to run this test (see issue 16)")
        return 77
    os.makedirs(work, exist_ok=True)
    failures = []
    for path in files:
        name = os.path.basename(path)
        out_json = os.path.join(work, name + ".json")
        started = time.monotonic()
        run(offsim, "replay", "-q", path, "--min-capacity", "--json", out_json)
        seconds = time.monotonic() - started
        doc = json.load(open(out_json))
        for device in doc["devices"]:
            where = f"{name} device {device['device']}"
            if device["comparison"] == "state-only":
                # Nothing to compare; --min-capacity still answers: the smallest device that holds the state.
                if device["min_capacity_bytes"] is None or not device["min_capacity_verified"]:
                    failures.append(f"{where}: state only, --min-capacity gave {device['min_capacity_bytes']}")
                print(f"{where}: state only (no allocator requests): reported as such, nothing to compare; "
                      f"min capacity {gib(device['min_capacity_bytes'] or 0)} (the state itself)")
                continue
            total, matched = device["events_total"], device["events_matched"]
            if total == 0:
                failures.append(f"{where}: compared nothing ({device['comparison']})")
            if matched != total:
                failures.append(f"{where}: {matched} of {total} events reproduced, first divergence "
                                f"{device['first_divergence'] and device['first_divergence']['event_index']}")
            minimum = device["min_capacity_bytes"]
            if minimum is None or not device["min_capacity_verified"]:
                failures.append(f"{where}: --min-capacity gave {minimum}, verified {device['min_capacity_verified']}")
                continue
            one = ["--device", str(device["device"])]
            at_json = os.path.join(work, f"{name}.{device['device']}.at.json")
            run(offsim, "replay", "-q", path, *one, "--capacity", str(minimum), "--json", at_json)
            at = json.load(open(at_json))
            if not at["completed"] or at["unhandled_ooms"] != 0:
                failures.append(f"{where}: a replay at the minimum capacity {minimum} stopped at an unhandled OOM")
            below = minimum - 2 * MIB
            below_json = os.path.join(work, f"{name}.{device['device']}.below.json")
            result = subprocess.run([offsim, "replay", "-q", path, *one, "--capacity", str(below), "--json", below_json],
                                    capture_output=True, text=True, check=False)
            if result.returncode in (2, 64) and "cannot hold the state the trace starts from" in result.stdout + result.stderr:
                pass  # the minimum is the start state: nothing smaller holds it
            elif result.returncode != 0 or json.load(open(below_json))["unhandled_ooms"] == 0:
                failures.append(f"{where}: 2 MiB below the minimum ({below}) still runs without an unhandled OOM")
            print(f"{where}: {matched}/{total} events reproduced ({device['comparison']}: addresses "
                  f"{device['compared']['addresses']['matched']}/{device['compared']['addresses']['total']}, segment "
                  f"events {device['compared']['segment_events']['matched']}/{device['compared']['segment_events']['total']}); "
                  f"peak reserved recorded {gib(device['recorded_peak_reserved_bytes'])}, simulated "
                  f"{gib(device['peak_reserved_bytes'])}; device {gib(device['capacity_bytes'])} "
                  f"({device['capacity_source']}); min capacity {gib(minimum)}; replay + search {seconds:.1f} s")
    for failure in failures:
        print("FAILED: " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
