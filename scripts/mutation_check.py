#!/usr/bin/env python3
"""Mutation check: apply each deliberately broken variant in tests/mutation/ and see whether offsim notices.

For every mutant in tests/mutation/mutants.json, on a private worktree of HEAD (your checkout is never
touched): apply its patch, rebuild incrementally, run the test suite (ctest, as CI runs it, without the
`real` and `browser` labels, which need libtorch and Chromium and cover none of the mutated code) and the
mutant's scoped property search (`offsim check ...`), then revert. The unmutated tree must pass both
first, or the run stops: a check that already fails cannot catch anything.

A mutant expected "caught" that survives fails the run (exit 1). Mutants declared "equivalent" or
"conservative" are applied too: an equivalent one that anything catches, or a conservative one that a
property flags (the tests pinning upstream's exact constants may catch it), means the declaration was
wrong, and the run says so.

    scripts/mutation_check.py [--only ID ...] [--jobs N] [--workdir DIR] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTATION_DIR = ROOT / "tests" / "mutation"


def run(cmd: list[str], cwd: Path, log: Path | None = None, check: bool = False) -> int:
    with (open(log, "a") if log else open(os.devnull, "w")) as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        rc = subprocess.call(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if check and rc != 0:
        sys.exit(f"mutation_check: `{' '.join(cmd)}` failed with exit {rc} (log: {log})")
    return rc


def failed_tests(build: Path) -> list[str]:
    last = build / "Testing" / "Temporary" / "LastTestsFailed.log"
    if not last.exists():
        return []
    return [line.split(":", 1)[1].strip() for line in last.read_text().splitlines() if ":" in line]


def run_suite(build: Path, jobs: int, log: Path) -> tuple[bool, list[str]]:
    rc = run(["ctest", "--test-dir", str(build), "-j", str(jobs), "-LE", "^(real|browser)$",
              "--timeout", "900"], cwd=build, log=log)
    return rc == 0, failed_tests(build) if rc != 0 else []


def run_property_check(src: Path, build: Path, args: list[str] | None, log: Path) -> bool | None:
    if args is None:
        return None
    rc = run([str(build / "cli" / "offsim"), "check", "--quiet", "--root", str(src), *args], cwd=src, log=log)
    if rc not in (0, 1):
        sys.exit(f"mutation_check: offsim check exited {rc} (usage or input error), see {log}")
    return rc == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=[], help="mutant ids to run (default: all)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "mutation")
    parser.add_argument("--json", type=Path, help="write the results here")
    options = parser.parse_args()

    manifest = json.loads((MUTATION_DIR / "mutants.json").read_text())
    mutants = [m for m in manifest["mutants"] if not options.only or m["id"] in options.only]
    unknown = set(options.only) - {m["id"] for m in manifest["mutants"]}
    if unknown:
        sys.exit(f"mutation_check: unknown mutant id(s): {', '.join(sorted(unknown))}")

    work: Path = options.workdir.resolve()
    src, build, logs = work / "src", work / "build", work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    head = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True).strip()
    if not (src / ".git").exists():
        run(["git", "worktree", "add", "--detach", str(src), head], cwd=ROOT, log=logs / "setup.log", check=True)
    run(["git", "checkout", "--detach", "--force", head], cwd=src, log=logs / "setup.log", check=True)
    run(["git", "reset", "--hard", "--quiet"], cwd=src, log=logs / "setup.log", check=True)
    print(f"mutation check of {head[:12]} in {src} ({len(mutants)} mutants, logs in {logs})", flush=True)
    run(["cmake", "-S", str(src), "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
         "-DOFFSIM_WITH_TORCH=OFF", "-DOFFSIM_BUILD_BENCH=OFF"], cwd=src, log=logs / "setup.log", check=True)

    start = time.monotonic()
    run(["cmake", "--build", str(build), "-j", str(options.jobs)], cwd=src, log=logs / "baseline.log", check=True)
    suite_ok, failing = run_suite(build, options.jobs, logs / "baseline.log")
    if not suite_ok:
        sys.exit(f"mutation_check: the unmutated tree fails {failing}: fix that first (log: {logs / 'baseline.log'})")
    for m in mutants:
        if run_property_check(src, build, m.get("property_check"), logs / "baseline.log") is False:
            sys.exit(f"mutation_check: the unmutated tree fails {m['id']}'s property check: "
                     f"{m['property_check']} (log: {logs / 'baseline.log'})")
    print(f"baseline passes ({time.monotonic() - start:.0f} s)", flush=True)

    results = []
    for m in mutants:
        t0 = time.monotonic()
        log = logs / f"{m['id']}.log"
        log.unlink(missing_ok=True)
        patch = MUTATION_DIR / m["patch"]
        if run(["git", "apply", str(patch)], cwd=src, log=log) != 0:
            sys.exit(f"mutation_check: {patch} no longer applies to HEAD: regenerate it (log: {log})")
        try:
            built = run(["cmake", "--build", str(build), "-j", str(options.jobs)], cwd=src, log=log) == 0
            if built:
                suite_ok, failing = run_suite(build, options.jobs, log)
                property_ok = run_property_check(src, build, m.get("property_check"), log)
            else:  # a mutant that does not compile is caught by the compiler, which says nothing useful
                suite_ok, failing, property_ok = False, ["(does not compile)"], None
        finally:
            run(["git", "checkout", "--", "."], cwd=src, log=log, check=True)
        caught = not suite_ok or property_ok is False
        r = {"id": m["id"], "expect": m["expect"], "caught": caught, "suite_failed": failing,
             "property_check_failed": None if property_ok is None else not property_ok,
             "seconds": round(time.monotonic() - t0, 1)}
        results.append(r)
        verdict = "caught" if caught else "SURVIVED"
        print(f"  {m['id']:<40} {verdict:<9} expected {m['expect']:<12} suite: "
              f"{len(failing)} failed{' (' + ', '.join(failing[:3]) + (', ...' if len(failing) > 3 else '') + ')' if failing else ''}; "
              f"property check: {'n/a' if property_ok is None else ('passed' if property_ok else 'FAILED')} "
              f"({r['seconds']:.0f} s)", flush=True)
    # Rebuild the unmutated tree so the worktree's binaries match HEAD again.
    run(["cmake", "--build", str(build), "-j", str(options.jobs)], cwd=src, log=logs / "baseline.log")

    must = [r for r in results if r["expect"] == "caught"]
    caught = [r for r in must if r["caught"]]
    # An equivalent mutant must survive everything; a conservative one may be caught by the tests that pin
    # upstream's exact values, but no property may flag it.
    wrong = [r for r in results if (r["expect"] == "equivalent" and r["caught"]) or
             (r["expect"] == "conservative" and r["property_check_failed"])]
    print(f"\ncaught {len(caught)}/{len(must)} mutants that must be caught; "
          f"{len(results) - len(must)} declared equivalent or conservative"
          + (f", of which {len(wrong)} contradict their declaration: {', '.join(r['id'] for r in wrong)}" if wrong else ""))
    if options.json:
        options.json.write_text(json.dumps({"format": "offsim-mutation-results/1", "commit": head,
                                            "results": results}, indent=2) + "\n")
    return 0 if len(caught) == len(must) and not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
