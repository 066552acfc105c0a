#!/usr/bin/python3
"""Every offsim command into every exit code it can return (docs/exit_codes.md): 0 success, 1 what the
user gates on failed or was not checked, 2 offsim could not do the job, 64 usage error. (The page's
script block runs as written under `ctest -L docs`.)

usage: exit_codes.py OFFSIM SOURCE_DIR WORK_DIR. Exits 0 or raises."""
import os
import shutil
import subprocess
import sys

CPU_TRACE = "traces/cpu/sd15-vae_decode_512x512_bf16_efficient_implicit.otrace"
SEED_SCENARIO = "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json"
COUNTEREXAMPLE = "tests/corpus/counterexamples/b01-qwen-edit-decode-23.64gib.json"
PRE_FIX_LOG = "tests/corpus/decision_logs/invokeai-9305-fda7c42b-w7900-rocm.jsonl"


def main(offsim, source, work):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    # The checkout's data, linked so that the commands run from a scratch folder as from the checkout.
    for name in ("traces", "scenarios", "tests", "report"):
        os.symlink(os.path.join(source, name), os.path.join(work, name))

    def run(*args, expect):
        r = subprocess.run([offsim, *args], cwd=work, capture_output=True, text=True, timeout=300, check=False)
        out = r.stdout + r.stderr
        assert r.returncode == expect, f"offsim {' '.join(args)}: exit {r.returncode}, expected {expect}\n{out[-3000:]}"
        return out

    def write(name, text):
        with open(os.path.join(work, name), "w", encoding="utf-8") as f:
            f.write(text)
        return name

    bad_json = write("bad.json", '{"format": ')
    # `offsim record` runs offsim-record from offsim's folder; it is built only with libtorch.
    has_record = os.path.exists(os.path.join(os.path.dirname(os.path.abspath(offsim)), "offsim-record"))

    # The top level: no command, an unknown one (named), --version.
    out = run(expect=64)
    assert "usage error" in out, out
    out = run("bogus", expect=64)
    assert 'unknown command "bogus"' in out and "check" in out, out
    run("--version", expect=0)

    # check: the gate. 0 and 1 on a stored counterexample; usage errors for counts that check nothing.
    run("check", "--replay", COUNTEREXAMPLE, "-p", "invokeai@a6724695", "--property", "P3", expect=0)
    out = run("check", "--replay", COUNTEREXAMPLE, "-p", "invokeai@fda7c42b", "--property", "P3", expect=1)
    assert "VIOLATED" in out, out
    run("check", "--replay", bad_json, "-p", "invokeai@a6724695", "--property", "P3", expect=2)
    # A counterexample records its policy and property ("finding"): nothing to retype. Family names work.
    out = run("check", "--replay", COUNTEREXAMPLE, expect=1)
    assert "invokeai@fda7c42b P3.estimator" in out and "VIOLATED" in out, out
    out = run("check", "--replay", COUNTEREXAMPLE, "-p", "comfyui", expect=0)
    assert "comfyui@a125cd84 P3.estimator" in out and "comfyui@a125cd84+vae-033046cc P3.estimator" in out, out
    out = run("check", "--replay", SEED_SCENARIO, expect=64)
    assert "records no \"finding\"" in out, out
    run("check", "--decisions", bad_json, expect=2)
    run("check", "--decisions", PRE_FIX_LOG, expect=1)
    for args in (["--seeds", "0"], ["--seeds", "-5"], ["--time-budget", "0"], ["--time-budget", "-1"],
                 ["--time-budget", "nan"], ["--cases", "0"], ["--shard", "2/2"], ["--property", "P9"],
                 ["-p", "nosuch"], ["--bogus"], ["--decisions", "missing.jsonl"]):
        out = run("check", *args, expect=64)
        assert "offsim check: usage error" in out, (args, out)

    # The gate never passes having checked nothing: checks not started (time budget), an empty shard, a
    # merge that lacks a shard or repeats one all exit 1; a selection with nothing to check is a usage error.
    out = run("check", "-q", "-p", "lightx2v@c177fd82", "--property", "P3", "--time-budget", "0.000001", expect=1)
    assert "NOT RUN" in out and "1 of 1 checks not started" in out, out
    out = run("check", "-q", "-p", "lightx2v@c177fd82", "--property", "P1", expect=64)
    assert "nothing to check" in out, out
    gate = ["check", "-q", "-p", "invokeai@a6724695", "-p", "comfyui@a125cd84+vae-033046cc", "--property", "P1",
            "--cases", "20", "--out", "found"]
    out = run(*gate, "--shard", "0/2", "--json", "s0.json", expect=0)
    # The seed is fixed and said so; RapidCheck's own line with a random, unused seed is not printed.
    assert "seed 20261126 (fixed" in out and "counterexamples go to found/" in out, out
    assert "Using configuration" not in out, out
    run(*gate, "--shard", "1/2", "--json", "s1.json", expect=0)
    out = run(*gate, "--shard", "5/10", expect=1)
    assert "shard 5/10 holds none of the 2 checks" in out, out
    out = run("check", "--merge", "s0.json", "--merge", "s1.json", expect=0)
    assert "P1=40" in out, out
    out = run("check", "--merge", "s1.json", expect=1)
    assert "shard 0/2 is missing" in out, out
    out = run("check", "--merge", "s0.json", "--merge", "s0.json", expect=1)
    assert "shard 0 given twice" in out and "shard 1/2 is missing" in out, out
    run("check", "--merge", bad_json, expect=2)

    # eval: reports (0) unless --strict, which fails on a FAIL verdict (the pre-fix InvokeAI OOMs).
    common = ["eval", "-q", "-s", SEED_SCENARIO, "--no-min-capacity"]
    run(*common, "-p", "invokeai@fda7c42b", expect=0)
    run(*common, "-p", "invokeai@a6724695", "--strict", expect=0)
    out = run(*common, "-p", "invokeai@fda7c42b", "--strict", expect=1)
    assert "strict: FAILED" in out, out
    run("eval", "-q", "-s", bad_json, expect=2)
    run("eval", "-p", "nosuch", expect=64)
    run("eval", "-s", "no/such/folder", expect=64)

    # replay: 0 whatever happens unless asked; --fail-on-oom and --strict gate.
    run("replay", "-q", CPU_TRACE, expect=0)
    run("replay", "-q", CPU_TRACE, "--capacity", "300MiB", expect=0)
    out = run("replay", "-q", CPU_TRACE, "--capacity", "300MiB", "--fail-on-oom", expect=1)
    assert "unhandled OOM" in out, out
    run("replay", "-q", CPU_TRACE, "--fail-on-oom", expect=0)
    out = run("replay", "-q", CPU_TRACE, "--strict", expect=1)  # a CPU recording has nothing to compare
    assert "checked nothing" in out, out
    # A simulated run exported as a snapshot replays event for event: --strict passes.
    run(*common, "-p", "invokeai@a6724695", "--export-snapshot", "run.pickle", expect=0)
    run("replay", "-q", "run.pickle", "--strict", expect=0)
    run("replay", "-q", bad_json, expect=2)
    for args in (["--capacity", "lots"], ["--platform", "tpu"], ["--torch-version", "0.1"],
                 ["--alloc-conf", "no_such_key:1"], ["--bogus"]):
        out = run("replay", "-q", CPU_TRACE, *args, expect=64)
        assert "offsim replay: usage error" in out, (args, out)
    run("replay", "missing.otrace", expect=64)

    # convert: no gate; 2 for bad input or an unwritable output, 64 for an output format it does not know.
    run("convert", CPU_TRACE, "out.json", expect=0)
    run("convert", bad_json, "out.otrace", expect=2)
    run("convert", CPU_TRACE, "no/such/dir/out.otrace", expect=2)
    run("convert", CPU_TRACE, "out.csv", expect=64)
    run("convert", "missing.otrace", "out.json", expect=64)

    # estimate: no gate; every bad value is a usage error.
    run("estimate", "--vae", "qwen_image", "--size", "512x512", expect=0)
    for args in (["--vae", "nosuch", "--size", "512x512"], ["--vae", "qwen_image", "--size", "512"],
                 ["--vae", "qwen_image", "--size", "512x512", "--dtype", "fp7"], ["--vae", "qwen_image"]):
        run("estimate", *args, expect=64)

    # calibrate: reports (0) unless --strict, which fails when a judged estimator under-estimates a point it
    # was not calibrated on (ComfyUI's later Qwen-Image factors, finding F2); 2 for a bad points file.
    run("calibrate", "-q", "--model", "qwen_image", expect=0)
    run("calibrate", "-q", "--model", "qwen_image", "--judge", "invokeai/qwen-image@a6724695", "--strict", expect=0)
    out = run("calibrate", "-q", "--model", "qwen_image", "--judge", "comfyui/vae-wan21@033046cc", "--strict", expect=1)
    assert "P2 FAIL" in out, out
    no_backend = write("no-backend.csv", "model,op,width,height,dtype,peak_reserved_growth_bytes\n"
                                         "qwen_image,decode,512,512,fp16,1394606080\n")
    out = run("calibrate", no_backend, expect=2)
    assert "no-backend.csv:2:" in out, out
    for args in (["--model", "nosuch"], ["--form", "linear"], ["--holdout-above", "big"], ["--judge", "invokeai/x@0"],
                 ["--emit", "forge"], ["missing.csv"], ["--emit", "invokeai"]):
        out = run("calibrate", "-q", *args, expect=64)
        assert "offsim calibrate: usage error" in out, (args, out)
    run("eval", "-q", "-s", SEED_SCENARIO, "--no-min-capacity", "--estimator-override", "missing.json", expect=64)
    run("eval", "-q", "-s", SEED_SCENARIO, "--no-min-capacity", "--estimator-override", bad_json, expect=2)

    # record (only in builds with libtorch): a tiny encode, then usage errors.
    if has_record:
        run("record", "--model", "sd15-vae", "--op", "encode", "--size", "64x64", "--dtype", "fp32", "-q",
            "-o", "tiny.otrace", expect=0)
        run("record", "--model", "sd15", "--op", "encode", "--size", "64x64", "--dtype", "fp32", "-o", "x.otrace",
            expect=64)
        run("record", "--model", "sd15-vae", "--op", "encode", "--size", "64", "--dtype", "fp32", "-o", "x.otrace",
            expect=64)
        run("record", "--model", "sd15-vae", "--op", "encode", "--size", "64x64", "--dtype", "fp32", "-o", "x.csv",
            expect=64)
        run("record", "--model", "sd15-vae", "--op", "encode", "--size", "64x64", "--dtype", "fp32",
            "-o", "/nonexistent/x.otrace", expect=2)
        run("record", "--bogus", expect=64)
    else:
        out = run("record", "--model", "sd15-vae", expect=2)
        assert "offsim-record is missing" in out, out

    print("exit codes: every command exits as docs/exit_codes.md says")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
