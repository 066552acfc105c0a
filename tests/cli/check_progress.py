"""`offsim check` progress on a terminal (ctest check_progress; Debian's /usr/bin/python3, standard library).

usage: check_progress.py OFFSIM_BINARY REPOSITORY_ROOT

Runs `check --seeds N` and `check --corpus --seeds N` with stderr on a pseudo-terminal and reads the
progress lines: done never exceeds the total, and the total is what was asked (policies x properties x
seeds for the gate; entries x seeds for the corpus), never 0. Exits 0 or raises.
"""
import glob
import os
import pty
import re
import select
import subprocess
import sys

OFFSIM, ROOT = sys.argv[1], sys.argv[2]


def on_a_terminal(*args):
    """stderr of `offsim args` as a terminal shows it (carriage returns kept), and the exit code."""
    main, secondary = pty.openpty()
    p = subprocess.Popen([OFFSIM, *args, "--root", ROOT], stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    seen = b""
    while True:
        ready, _, _ = select.select([main], [], [], 600)
        if not ready:
            p.kill()
            raise AssertionError(f"offsim {' '.join(args)}: nothing on the terminal for 600 s")
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    return p.wait(timeout=60), seen.decode(errors="replace")


def progress_counts(text, label):
    counts = [(int(d), int(t)) for d, t in re.findall(re.escape(label) + r": (\d+)/(\d+) ", text)]
    assert counts, f"no {label!r} progress line on the terminal:\n{text!r}"
    return counts


def gate_progress_counts_the_checks_asked_for():
    # P4 runs two minimum-capacity searches per case (~1 s a seed): several seconds, so the line shows.
    seeds = 8
    code, text = on_a_terminal("check", "-p", "invokeai@a6724695", "--property", "P4", "--seeds", str(seeds))
    assert code in (0, 1), (code, text)
    for done, total in progress_counts(text, "check"):
        assert total == seeds and 1 <= done <= total, (done, total, text)


def corpus_progress_counts_entries_times_seeds():
    seeds = 3
    entries = len(glob.glob(os.path.join(ROOT, "tests", "corpus", "*.json")))
    code, text = on_a_terminal("check", "--corpus", "--seeds", str(seeds))
    assert code in (0, 1), (code, text)
    for done, total in progress_counts(text, "check --corpus (entry x seed)"):
        assert total == entries * seeds and 1 <= done <= total, (done, total, entries, text)


def main():
    for test in (gate_progress_counts_the_checks_asked_for, corpus_progress_counts_entries_times_seeds):
        test()
        print(f"ok: {test.__name__}")


if __name__ == "__main__":
    main()
