#!/usr/bin/python3
"""The README's main job: `offsim eval --json F` on the bundled default suite (scenarios/default) exits 0
and writes the JSON it promises (docs/eval_json.md): one result per (policy, scenario) with every property
judged, P4's capacity search run, and the seed bug where the README says it is (pre-fix InvokeAI dies in
the W7900 decode with an estimator fault; the fix completes). ctest judges the exit code and this file, not
a line of the table.

usage: eval_default_suite.py OFFSIM SOURCE_DIR JSON_OUT. Exits 0 or raises."""
import glob
import json
import os
import subprocess
import sys

W7900 = "qwen-edit-2511-q8-decode-w7900-rocm"


def main(offsim, source, out):
    if os.path.exists(out):
        os.remove(out)
    r = subprocess.run([offsim, "eval", "--quiet", "--root", source, "--json", out], capture_output=True, text=True,
                       timeout=600, check=False)
    table = r.stdout + r.stderr
    assert r.returncode == 0, f"offsim eval: exit {r.returncode}, expected 0\n{table[-3000:]}"
    with open(out, encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["format"] == "offsim-eval/1", doc["format"]
    results = doc["results"]

    scenario_files = sorted(glob.glob(os.path.join(source, "scenarios", "default", "*.json")))
    sources = {os.path.realpath(r["scenario"]["source"]) for r in results}
    assert sources == {os.path.realpath(p) for p in scenario_files}, (sources, scenario_files)
    policies = {r["policy"]["id"] for r in results}
    assert len(policies) >= 15, policies
    cells = {(r["policy"]["id"], r["scenario"]["source"]) for r in results}
    assert len(cells) == len(results) == len(policies) * len(scenario_files), (len(cells), len(results))

    for r in results:
        where = (r["policy"]["id"], r["scenario"]["name"])
        assert set(r["properties"]) == {"P1", "P2", "P3", "P4", "P5"}, where
        for p, v in r["properties"].items():
            assert v["verdict"] in ("pass", "FAIL", "n/a", "over"), (where, p, v)
            if v["verdict"] == "n/a":
                assert v["detail"], ("an n/a says why", where, p)
        # Every cell but a scenario the policy cannot express has run something and judged P3.
        if not r["failure"].startswith("not applicable"):
            assert r["stages"] and r["properties"]["P3"]["checked"] > 0, where
        # P4's capacity search runs by default (--no-min-capacity skips it) on every scenario of several calls
        # that completed.
        if r["completed"] and r["scenario"]["calls"] > 1:
            assert r["min_capacity_one_call_bytes"] and r["min_capacity_all_calls_bytes"], where

    def cell(policy):
        [hit] = [r for r in results if r["policy"]["id"] == policy and r["scenario"]["name"] == W7900]
        return hit

    pre_fix, fixed = cell("invokeai@fda7c42b"), cell("invokeai@a6724695")
    assert not pre_fix["completed"] and "Tried to allocate 5.01 GiB" in pre_fix["failure"], pre_fix["failure"]
    assert pre_fix["diagnosis"].startswith("estimator fault"), pre_fix["diagnosis"]
    assert pre_fix["properties"]["P3"]["verdict"] == "FAIL" and pre_fix["properties"]["P2"]["verdict"] == "FAIL"
    assert fixed["completed"] and fixed["properties"]["P3"]["verdict"] == "pass", fixed["failure"]
    # The table says the same as the JSON.
    assert any(line.split()[:3] == [W7900, "invokeai@fda7c42b", "OOM"] for line in table.splitlines()), table[-3000:]
    print(f"eval default suite: {len(results)} results, {len(policies)} policies x {len(scenario_files)} scenarios")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
