"""`offsim eval`'s table and suites (ctest eval_table; Debian's /usr/bin/python3, standard library only).

usage: eval_table.py OFFSIM_BINARY REPOSITORY_ROOT WORK_DIRECTORY

Every n/a in the table is explained under it: a run the policy cannot express, with the reason, and each
property's n/a reasons with how many runs gave them. `--suite DIR` finds scenarios in DIR's subfolders too,
and when it finds none it says where it looked. Exits 0 or raises.
"""
import os
import shutil
import subprocess
import sys

OFFSIM, ROOT, WORK = sys.argv[1], sys.argv[2], sys.argv[3]


def eval_(*args):
    return subprocess.run([OFFSIM, "eval", "--root", ROOT, "--no-min-capacity", "--quiet", *args],
                          capture_output=True, text=True, timeout=300)


def check(result, code, *texts):
    message = f"exit {result.returncode}, expected {code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.returncode == code, message
    for text in texts:
        assert text in result.stdout + result.stderr, f"{text!r} not in the output\n{message}"


def not_applicable_rows_say_why():
    scenario = os.path.join(ROOT, "scenarios/default/flux1-dev-rtx4090-offload-modes.json")
    r = eval_("-s", scenario, "-p", "lightx2v@c177fd82")
    check(r, 0, "n/a runs (the policy cannot run the scenario as written):",
          'flux1-dev-rtx4090-offload-modes x lightx2v@c177fd82: lightx2v: model "transformer" does not fit')


def not_applicable_verdicts_say_why():
    scenario = os.path.join(ROOT, "scenarios/default/lightx2v-1051-flux2-klein-9b-3-calls.json")
    r = eval_("-s", scenario, "-p", "lightx2v@c177fd82")
    check(r, 0, "n/a verdicts (nothing for the property to judge):",
          "P1, 1 run: schedule-based policy: no free-memory function")


def folders_are_searched_with_their_subfolders():
    suite = os.path.join(WORK, "suite")
    shutil.rmtree(suite, ignore_errors=True)
    os.makedirs(os.path.join(suite, "cuda", "flux2"))
    os.makedirs(os.path.join(suite, ".hidden"))
    default = os.path.join(ROOT, "scenarios/default")
    shutil.copy(os.path.join(default, "invokeai-9305-qwen-edit-q8-w7900-rocm.json"), suite)
    shutil.copy(os.path.join(default, "lightx2v-1051-flux2-klein-9b-3-calls.json"), os.path.join(suite, "cuda", "flux2"))
    # Not a scenario: a hidden folder is not searched (editor and VCS folders).
    with open(os.path.join(suite, ".hidden", "broken.json"), "w") as f:
        f.write("{")
    r = eval_("-s", suite, "-p", "invokeai@a6724695")
    check(r, 0, "qwen-edit-2511-q8-decode-w7900-rocm", "flux2-klein-9b-cpu-offload-3-calls-32gb")


def an_empty_suite_says_where_it_looked():
    empty = os.path.join(WORK, "empty")
    os.makedirs(os.path.join(empty, "sub"), exist_ok=True)
    r = eval_("-s", empty)
    assert r.returncode != 0, r
    check(r, r.returncode, "no scenarios found", empty, "any folder below it")


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    for test in (not_applicable_rows_say_why, not_applicable_verdicts_say_why,
                 folders_are_searched_with_their_subfolders, an_empty_suite_says_where_it_looked):
        test()
        print(f"ok: {test.__name__}")


if __name__ == "__main__":
    main()
