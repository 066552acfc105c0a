#!/usr/bin/python3
"""The test programs' RapidCheck properties run from the fixed seed under ctest, and RC_PARAMS given by a
person wins (tests/common/rapidcheck_seed.cpp): two runs of one differential property print RapidCheck's
"Using configuration: seed=20261126"; with RC_PARAMS="seed=7 max_success=3" they print seed=7.

usage: rapidcheck_seed.py PROPERTY_TEST_PROGRAM. Exits 0 or raises."""
import os
import subprocess
import sys

TEST = "AllocatorDifferential.SameBehaviourDefault"


def run(program, rc_params):
    env = dict(os.environ)
    env.pop("RC_PARAMS", None)
    if rc_params is not None:
        env["RC_PARAMS"] = rc_params
    r = subprocess.run([program, f"--gtest_filter={TEST}"], env=env, capture_output=True, text=True, timeout=300,
                       check=False)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    return [line for line in out.splitlines() if line.startswith("Using configuration:")]


def main(program):
    first, second = run(program, None), run(program, None)
    assert first == second == ["Using configuration: seed=20261126"], (first, second)
    assert run(program, "seed=7 max_success=3") == ["Using configuration: max_success=3 seed=7"]
    assert run(program, "max_success=3") == ["Using configuration: max_success=3 seed=20261126"]
    print("rapidcheck seed: fixed under ctest, RC_PARAMS wins")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
