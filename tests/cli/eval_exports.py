"""`offsim eval` exports end to end (ctest eval_exports; Debian's /usr/bin/python3, standard library only).

usage: eval_exports.py OFFSIM_BINARY SOURCE_DIR WORK_DIRECTORY

--export-snapshot: the InvokeAI #9305 seed bug's simulated run as a memory snapshot, loaded with
pickle.load and checked against what PyTorch's memory_viz reads (torch/utils/viz/MemoryViz.js and
process_alloc_data.js): only the pickle opcodes its own unpickler implements; segments with device,
address, total_size, stream and blocks whose sizes tile the segment (the viewer derives block addresses
by adding sizes); trace entries with action, addr, size, stream (oom: device_free); alloc/free_completed
pairs by address, with the blocks still live at the end being exactly the active blocks of the
segments, and segment_alloc/segment_free leading to exactly the segments (so no block or segment is
"initially allocated" in a run that started empty). --export-perfetto: the same run as a Chrome trace.
Folder exports, and the errors for a file that cannot hold several runs and for --html without the
report's JavaScript installed. Exits 0 or raises.
"""
import json
import os
import pickle
import pickletools
import subprocess
import sys
import tempfile

# The opcodes MemoryViz.js's unpickle() implements (anything else: "UNKNOWN OPCODE").
MEMORY_VIZ_OPCODES = {
    "PROTO", "APPEND", "APPENDS", "LIST", "TUPLE", "NEWFALSE", "NEWTRUE", "NONE", "BINGET", "BININT", "BININT1",
    "BININT2", "EMPTY_DICT", "EMPTY_LIST", "FRAME", "LONG1", "LONG_BINGET", "MARK", "MEMOIZE", "BINPUT",
    "LONG_BINPUT", "SETITEMS", "SETITEM", "DICT", "SHORT_BINUNICODE", "BINUNICODE", "STOP", "EMPTY_TUPLE",
    "TUPLE1", "TUPLE2", "TUPLE3", "BINFLOAT",
}
ACTIONS = {"alloc", "free_requested", "free_completed", "segment_alloc", "segment_free", "segment_map",
           "segment_unmap", "oom", "snapshot"}
STATES = {"active_allocated", "active_pending_free", "inactive"}
SCENARIO = "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json"
POLICY = "invokeai@fda7c42b"


def run(offsim, *args, expect=0, env=None):
    result = subprocess.run([offsim, *args], capture_output=True, text=True, check=False, timeout=600, env=env)
    assert result.returncode == expect, (args, result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout + result.stderr


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_snapshot(path):
    with open(path, "rb") as f:
        data = f.read()
    ops = {op.name for op, _, _ in pickletools.genops(data)}
    assert ops <= MEMORY_VIZ_OPCODES, f"opcodes memory_viz cannot read: {sorted(ops - MEMORY_VIZ_OPCODES)}"
    assert data[0] == 0x80 and 2 <= data[1] <= 4, f"protocol {data[1]} (memory_viz reads 2 to 4)"
    snap = pickle.loads(data)
    assert isinstance(snap, dict) and isinstance(snap["segments"], list) and isinstance(snap["device_traces"], list)
    assert len(snap["device_traces"]) >= 1 and isinstance(snap["device_traces"][0], list)

    active = {}
    segment_addresses = set()
    for s in snap["segments"]:
        for key in ("device", "address", "total_size", "stream"):
            assert is_int(s[key]), (key, s)
        assert s["device"] == 0 and s["segment_type"] in ("small", "large")
        address = s["address"]
        segment_addresses.add(address)
        for b in s["blocks"]:
            assert b["state"] in STATES and is_int(b["size"]) and b["size"] > 0 and is_int(b["requested_size"]), b
            assert b["address"] == address, "blocks must tile the segment in order (memory_viz adds sizes)"
            if b["state"] != "inactive":
                assert b["requested_size"] <= b["size"], b
                active[b["address"]] = b["requested_size"]
            address += b["size"]
        assert address == s["address"] + s["total_size"], "block sizes must add up to the segment"

    live, segments, ooms = {}, set(), 0
    for e in snap["device_traces"][0]:
        assert e["action"] in ACTIONS, e
        assert is_int(e["size"]) and is_int(e["stream"]) and is_int(e["time_us"]), e
        if e["action"] == "oom":
            assert is_int(e["device_free"]), e
            ooms += 1
            continue
        assert is_int(e["addr"]), e
        if e["action"] == "alloc":
            assert e["addr"] not in live, f"alloc of a live block {e}"
            live[e["addr"]] = e["size"]
        elif e["action"] == "free_completed":
            assert live.pop(e["addr"], None) == e["size"], f"free_completed without its alloc {e}"
        elif e["action"] == "segment_alloc":
            segments.add(e["addr"])
        elif e["action"] == "segment_free":
            segments.remove(e["addr"])
    assert live == active, "blocks live after the last event must be the segments' active blocks"
    assert segments == segment_addresses, "segment events must lead to the snapshot's segments"
    assert ooms == 1, ooms
    notes = snap["offsim_metadata"]["provenance"]["notes"]
    assert "simulated by offsim" in notes and POLICY in notes, notes
    return len(snap["device_traces"][0])


def check_perfetto(path):
    with open(path, encoding="utf-8") as f:
        trace = json.load(f)
    events = trace["traceEvents"]
    last = {}
    counters = slices = ooms = 0
    for e in events:
        assert e["ph"] in ("M", "C", "X", "i"), e
        if e["ph"] == "C":
            assert is_int(e["args"]["bytes"]) and e["ts"] >= last.get(e["name"], 0), e
            last[e["name"]] = e["ts"]
            counters += 1
        elif e["ph"] == "X":
            assert e["dur"] >= 0 and e["cat"] == "stage", e
            slices += 1
        elif e["ph"] == "i" and e["name"] == "OOM":
            ooms += 1
    assert {"reserved", "allocated", "device capacity"} <= set(last), last
    assert counters > 10 and slices >= 1 and ooms == 1, (counters, slices, ooms)
    assert "allocator call" in trace["otherData"]["clock"]


def main():
    offsim, source, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    path = lambda name: os.path.join(work, name)
    common = ["eval", "--quiet", "--root", source, "--no-min-capacity", "--suite", SCENARIO]

    run(offsim, *common, "--policy", POLICY, "--export-snapshot", path("run.pickle"), "--export-perfetto", path("run.json"))
    events = check_snapshot(path("run.pickle"))
    check_perfetto(path("run.json"))

    # A folder holds one file per run; a file cannot hold several.
    folder = path("all") + "/"
    run(offsim, *common, "--policy", "invokeai", "--export-snapshot", folder)
    names = sorted(os.listdir(folder))
    assert len(names) >= 2 and all(n.endswith(".pickle") for n in names), names
    for n in names:
        with open(os.path.join(folder, n), "rb") as f:
            assert isinstance(pickle.load(f), dict), n
    check_snapshot(os.path.join(folder, next(n for n in names if POLICY in n)))
    out = run(offsim, *common, "--policy", "invokeai", "--export-perfetto", path("one.json"), expect=64)
    assert "a file holds one run" in out, out

    # --html without the pinned JavaScript: a clear error naming the command, before anything runs.
    with tempfile.TemporaryDirectory() as empty:
        with open(os.path.join(empty, "package.json"), "w") as f:
            f.write('{"dependencies": {"vega": "6.2.0", "vega-lite": "6.4.1", "vega-embed": "7.1.0"}}')
        env = dict(os.environ, OFFSIM_REPORT_WEB=empty)
        out = run(offsim, *common, "--html", path("none.html"), expect=2, env=env)
        assert "npm ci --prefix report/web" in out, out
        assert not os.path.exists(path("none.html"))
    print(f"eval_exports: snapshot of {events} events reads as memory_viz reads it; Perfetto trace, folder export and errors ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
