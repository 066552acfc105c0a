#!/usr/bin/python3
"""Bad input through the command line (issue 20, items 12 and 13): every refusal exits with the code of
docs/exit_codes.md (2 for a malformed input file, 64 for a wrong command line) and a message that names the
input, the position and the problem, never "internal error"; memory bombs and absurd sizes are refused
before anything large is allocated or run. The inputs are fuzz/regressions/, the inputs of those findings.

usage: bad_input.py OFFSIM SOURCE_DIR WORK_DIR. Exits 0 or raises."""
import os
import resource
import shutil
import subprocess
import sys
import time

CPU_TRACE = "traces/cpu/sd15-vae_decode_512x512_bf16_efficient_implicit.otrace"
REGRESSIONS = "fuzz/regressions"


def main(offsim, source, work):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    for name in ("traces", "scenarios", "tests", "fuzz"):
        os.symlink(os.path.join(source, name), os.path.join(work, name))

    def run(*args, expect, within_s=60):
        start = time.monotonic()
        r = subprocess.run([offsim, *args], cwd=work, capture_output=True, text=True, timeout=300, check=False)
        elapsed = time.monotonic() - start
        out = r.stdout + r.stderr
        where = f"offsim {' '.join(args)}"
        assert r.returncode == expect, f"{where}: exit {r.returncode}, expected {expect}\n{out[-3000:]}"
        assert "internal error" not in out, f"{where}: {out[-3000:]}"
        assert elapsed < within_s, f"{where}: took {elapsed:.1f} s, expected a refusal up front"
        return out

    def refused(args, expect, *needles, within_s=60):
        out = run(*args, expect=expect, within_s=within_s)
        for needle in needles:
            assert needle in out, f"offsim {' '.join(args)}: expected {needle!r} in\n{out[-3000:]}"

    # A pickle of 8 bytes whose LONG4 declares 2^31 - 1 bytes took 2.25 GB before it was refused. The peak
    # resident size of the command must stay far below that.
    bomb = f"{REGRESSIONS}/snapshot_pickle/long4-length-2gib-in-8-bytes.pickle"
    refused(["replay", "-q", bomb], 2, f"{bomb}:2: LONG of 2147483647 bytes runs past the end of the file")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak_kib < 1024 * 1024, f"a child of this test peaked at {peak_kib} KiB: the 8-byte pickle was allocated for"

    # Snapshot entries whose values do not fit: named with file, offset and entry.
    for ext in ("pickle", "json"):
        refused(["replay", "-q", f"{REGRESSIONS}/snapshot_{ext}/time-us-2-to-the-63.{ext}"], 2,
                "device_traces[?][0].time_us: expected microseconds in int64's range (below 2^63), found 9223372036854775808")
        refused(["replay", "-q", f"{REGRESSIONS}/snapshot_{ext}/alloc-of-2-to-the-61-bytes.{ext}"], 2,
                f"alloc-of-2-to-the-61-bytes.{ext}:",
                "device_traces[?][0].size: an alloc of 2305843009213693952 bytes is 1 EiB or more")

    # --capacity: a count beyond 64 bits said "internal error: stoull"; 0 silently meant 1 TiB.
    refused(["replay", "-q", CPU_TRACE, "--capacity", "99999999999999999999999"], 64,
            "offsim replay: usage error: --capacity: cannot read \"99999999999999999999999\" as a byte size (too large")
    refused(["replay", "-q", CPU_TRACE, "--capacity", "0"], 64, "--capacity must be above 0 bytes, got \"0\"")
    refused(["replay", "-q", CPU_TRACE, "--capacity", "2000000TiB"], 64, "--capacity \"2000000TiB\" is above 1 EiB")
    # --cases -1 said "internal error: vector::reserve".
    refused(["check", "--cases", "-1"], 64, "offsim check: usage error", "--cases")

    # Scenarios: the refusal names FILE:LINE:COLUMN and the field, at once (steps 1e9 and calls 1e6 ended in
    # std::bad_alloc after 7-20 s at 2+ GB; 1e999 in "internal error: [json.exception.out_of_range.406]").
    scenario = f"{REGRESSIONS}/scenario"
    for file, needle in (
            ("steps-1e9.json", ":22:4: scenario.stages[0].steps: must be an integer from 1 to 10000, got 1000000000"),
            ("calls-1e6.json", ":55:2: scenario.calls: must be an integer from 1 to 10000, got 1000000"),
            ("height-2-to-the-32-plus-512.json",
             ":27:6: scenario.stages[0].workload.vae.height: must be an integer from 1 to 65536, got 4294967808"),
            ("batch-2-to-the-32-plus-1.json", "scenario.stages[0].workload.vae.batch: must be an integer from 1 to 65536"),
            ("number-beyond-a-double.json", ":55:19: not valid JSON: number overflow parsing '1e999'"),
            ("misspelt-keys.json", "scenario.initialy_resident: unknown key (did you mean \"initially_resident\"?)"),
            ("null-platform-negative-gb.json", "scenario.device.platform: must not be null"),
            ("subnormal-and-2-to-the-62.json", "reserve_vram_gb: 1e-320 is below the smallest normal double")):
        refused(["eval", "-q", "-s", f"{scenario}/{file}"], 2, f"{scenario}/{file}{needle}" if needle[0] == ":" else needle,
                within_s=10)

    # Decision logs: 1e999 named with its line and column.
    log = f"{REGRESSIONS}/decision_log/number-beyond-a-double.jsonl"
    refused(["check", "--decisions", log], 2, f"{log}:2:", "not valid JSON: number overflow parsing '1e999'")

    print("bad input: every refusal names the input and the problem, with the documented exit code")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
