"""`offsim record` end to end (ctest record_cli; Debian's /usr/bin/python3, standard library only).

usage: record_cli.py OFFSIM_BINARY WORK_DIRECTORY

`offsim` itself links no libtorch (every command but record starts in milliseconds); `offsim record` runs
offsim-record from the same folder, and says what is missing when it is not there. An output it could not
write is refused before the forward pass (a 1248x832 Qwen-Image decode, minutes on a CPU, is never
started); the output format follows the extension as in `offsim convert`; a terminal shows the forward
pass's progress, module by module. Exits 0 or raises.
"""
import json
import os
import pickle
import pty
import select
import shutil
import subprocess
import sys

OFFSIM, WORK = sys.argv[1], sys.argv[2]
SMALL = ["--model", "sd15-vae", "--op", "decode", "--size", "64x48", "--dtype", "bf16", "-q"]
# Minutes on 2 CPU cores if it ever ran: a test that hangs here means the output was checked too late.
LARGE = ["--model", "qwen-image-vae", "--op", "decode", "--size", "1248x832", "--dtype", "bf16"]


def run(*args, cwd=None):
    return subprocess.run([OFFSIM, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def expect(result, code, text):
    message = f"exit {result.returncode}, expected {code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.returncode == code, message
    assert text in result.stdout + result.stderr, f"{text!r} not in the output\n{message}"


def offsim_links_no_torch():
    libraries = subprocess.run(["ldd", OFFSIM], capture_output=True, text=True, check=True).stdout
    assert "torch" not in libraries and "libc10" not in libraries, f"offsim links libtorch:\n{libraries}"
    assert os.path.exists(os.path.join(os.path.dirname(OFFSIM), "offsim-record")), "offsim-record is not beside offsim"


def missing_record_program_is_named():
    lone = os.path.join(WORK, "lone")
    os.makedirs(lone, exist_ok=True)
    shutil.copy2(OFFSIM, os.path.join(lone, "offsim"))
    r = subprocess.run([os.path.join(lone, "offsim"), "record", *SMALL, "-o", "x.otrace"], capture_output=True,
                       text=True, timeout=60)
    expect(r, 2, os.path.join(lone, "offsim-record") + " is missing")
    assert "libtorch" in r.stderr, r.stderr


def help_comes_from_offsim_record():
    r = run("record", "--help")
    expect(r, 0, "--conv-workspace")
    expect(r, 0, ".pickle/.pkl")


def outputs_are_checked_before_the_forward_pass():
    r = run("record", *LARGE, "-o", os.path.join(WORK, "no-such-folder", "decode.otrace"))
    expect(r, 2, os.path.join(WORK, "no-such-folder"))
    assert "qwen-image-vae decode" not in r.stderr, "the forward pass was started: " + r.stderr
    r = run("record", *LARGE, "-o", os.path.join(WORK, "decode.trace"))
    expect(r, 64, '".trace"')  # docs/exit_codes.md: an output format the command line names wrong
    r = run("record", *LARGE, "-o", os.path.join(WORK, "decode.otrace"),
            "--cpu-trace", os.path.join(WORK, "no-such-folder", "cpu.otrace"))
    expect(r, 2, "no-such-folder")
    assert not os.path.exists(os.path.join(WORK, "decode.otrace")), "an output was written although record failed"


def format_follows_the_extension():
    pickle_path = os.path.join(WORK, "decode.pickle")
    json_path = os.path.join(WORK, "decode.json")
    otrace_path = os.path.join(WORK, "decode.otrace")
    expect(run("record", *SMALL, "-o", pickle_path, "--cpu-trace", json_path), 0, "")
    with open(pickle_path, "rb") as f:
        assert f.read(1) == b"\x80", "not a pickle"
    with open(pickle_path, "rb") as f:
        snapshot = pickle.load(f)
    entries = snapshot["device_traces"][0]
    assert entries and {e["action"] for e in entries} >= {"alloc", "free_completed"}, entries[:3]
    with open(json_path) as f:
        assert json.load(f)["device_traces"][0], "empty JSON snapshot"
    assert os.path.exists(pickle_path + ".scopes.json"), "no sidecar"
    expect(run("record", *SMALL, "-o", otrace_path), 0, "")
    with open(otrace_path, "rb") as f:
        assert f.read(8) == b"\x89OTRACE\n", "not an .otrace"
    # The three hold the same allocations: offsim converts the pickle back to the .otrace's events.
    again = os.path.join(WORK, "again.otrace")
    expect(run("convert", pickle_path, again), 0, "")
    assert run("replay", again).stdout.count("\n") > 0


def progress_on_a_terminal():
    """stderr on a pseudo-terminal: the forward pass shows modules done, of how many, and the current one."""
    main, secondary = pty.openpty()
    p = subprocess.Popen([OFFSIM, "record", "--model", "qwen-image-vae", "--op", "decode", "--size", "128x128",
                          "--dtype", "bf16", "-o", os.path.join(WORK, "progress.otrace")],
                         stdout=subprocess.PIPE, stderr=secondary, text=False)
    os.close(secondary)
    seen = b""
    while True:
        ready, _, _ = select.select([main], [], [], 300)
        if not ready:
            p.kill()
            raise AssertionError("no output on the terminal for 300 s")
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out, _ = p.communicate(timeout=60)
    os.close(main)
    assert p.returncode == 0, (p.returncode, seen, out)
    text = seen.decode(errors="replace")
    assert "record (modules): " in text, f"no progress line on the terminal:\n{text!r}"
    assert "decoder." in text, f"the progress line names no module:\n{text!r}"
    assert b"wrote " in out, out


def main():
    shutil.rmtree(WORK, ignore_errors=True)  # what an earlier run wrote must not pass for this run's output
    os.makedirs(WORK)
    for check in (offsim_links_no_torch, missing_record_program_is_named, help_comes_from_offsim_record,
                  outputs_are_checked_before_the_forward_pass, format_follows_the_extension, progress_on_a_terminal):
        check()
        print(f"ok: {check.__name__}")


if __name__ == "__main__":
    main()
