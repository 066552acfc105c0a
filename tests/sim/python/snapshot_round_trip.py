"""Python side of tests/sim/python_round_trip_test.cpp (run with Debian's /usr/bin/python3).

usage: snapshot_round_trip.py OFFSIM_PICKLE OFFSIM_JSON OUT_PREFIX

1. Loads the snapshot pickle offsim wrote with pickle.load and the JSON offsim wrote with json.load, and
   checks they hold the same document, in the shape torch.cuda.memory._snapshot() has and PyTorch's
   memory_viz reads (device_traces entries with action/addr or device_free/size/stream/time_us/frames,
   segments whose blocks tile them, allocator_settings).
2. Checks that the pickle uses only opcodes that the JavaScript unpickler in
   torch/utils/viz/MemoryViz.js (unpickleData) implements, and a protocol it accepts (2..4).
3. Writes the document back as PyTorch's Python side would (frames as shared lists of frame dicts,
   segment_pool_id tuples) with pickle protocols 2, 4 and 5 and as JSON, for offsim to read:
   OUT_PREFIX.p2.pickle, OUT_PREFIX.p4.pickle, OUT_PREFIX.p5.pickle, OUT_PREFIX.json.
4. If torch is importable, runs torch.cuda._memory_viz.segments() over the segments (a formatter that
   returns its input stands in for flamegraph.pl).
Prints "ok" and exits 0, or raises.
"""
import json
import pickle
import pickletools
import sys

ACTIONS = {"alloc", "free_requested", "free_completed", "segment_alloc", "segment_free", "segment_map",
           "segment_unmap", "oom", "snapshot"}
STATES = {"active_allocated", "active_pending_free", "inactive"}
# Opcodes MemoryViz.js unpickleData() handles (by its constant names).
MEMORY_VIZ_OPCODES = {"PROTO", "FRAME", "STOP", "MARK", "APPEND", "APPENDS", "LIST", "TUPLE", "EMPTY_TUPLE",
                      "TUPLE1", "TUPLE2", "TUPLE3", "NEWFALSE", "NEWTRUE", "NONE", "BINGET", "LONG_BINGET",
                      "BININT", "BININT1", "BININT2", "EMPTY_DICT", "EMPTY_LIST", "LONG1", "MEMOIZE", "BINPUT",
                      "LONG_BINPUT", "SETITEMS", "SETITEM", "DICT", "SHORT_BINUNICODE", "BINUNICODE", "BINFLOAT"}


def as_json(value):
    if isinstance(value, tuple):
        return [as_json(v) for v in value]
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    return value


def check_shape(doc):
    assert set(doc) >= {"segments", "device_traces", "allocator_settings"}, sorted(doc)
    assert isinstance(doc["allocator_settings"]["PYTORCH_CUDA_ALLOC_CONF"], str)
    for trace in doc["device_traces"]:
        for entry in trace:
            assert entry["action"] in ACTIONS, entry
            assert ("device_free" in entry) == (entry["action"] == "oom"), entry
            assert ("addr" in entry) != (entry["action"] == "oom"), entry
            for key in ("size", "stream", "time_us"):
                assert isinstance(entry[key], int) and not isinstance(entry[key], bool), (key, entry)
            assert entry["frames"] == [], entry
    for segment in doc["segments"]:
        assert isinstance(segment["segment_pool_id"], tuple) and len(segment["segment_pool_id"]) == 2
        assert segment["segment_type"] in ("small", "large")
        assert isinstance(segment["is_expandable"], bool)
        address, total = segment["address"], 0
        active = allocated = 0
        for block in segment["blocks"]:
            assert block["address"] == address + total, (block, address, total)
            assert block["state"] in STATES
            total += block["size"]
            if block["state"] != "inactive":
                active += block["size"]
            if block["state"] == "active_allocated":
                allocated += block["size"]
        assert total == segment["total_size"], segment
        assert active == segment["active_size"] and allocated == segment["allocated_size"], segment


def as_pytorch_writes_it(doc):
    """Frames as shared objects, as torch's symbolizer produces them (one list per unique traceback)."""
    frames = [{"filename": "/src/train.py", "line": 12, "name": "forward"},
              {"filename": "/usr/lib/python3/dist-packages/torch/nn/modules/module.py", "line": 1501,
               "name": "_call_impl"}]
    out = dict(doc)
    out["device_traces"] = [[dict(entry, frames=frames) for entry in trace] for trace in doc["device_traces"]]
    out["segments"] = [dict(segment, frames=frames, blocks=[dict(b, frames=frames) for b in segment["blocks"]])
                       for segment in doc["segments"]]
    return out


def main():
    pickle_path, json_path, prefix = sys.argv[1:4]
    with open(pickle_path, "rb") as f:
        data = f.read()
    doc = pickle.loads(data)
    with open(json_path, "r", encoding="utf-8") as f:
        from_json = json.load(f)
    assert as_json(doc) == from_json, "pickle and JSON hold different documents"
    check_shape(doc)

    opcodes = {op.name for op, _, _ in pickletools.genops(data)}
    assert opcodes <= MEMORY_VIZ_OPCODES, sorted(opcodes - MEMORY_VIZ_OPCODES)
    assert data[:2] == b"\x80\x04", data[:2]

    native = as_pytorch_writes_it(doc)
    for protocol in (2, 4, 5):
        with open(f"{prefix}.p{protocol}.pickle", "wb") as f:
            pickle.dump(native, f, protocol=protocol)
    with open(f"{prefix}.json", "w", encoding="utf-8") as f:
        json.dump(as_json(native), f)

    try:
        from torch.cuda import _memory_viz
    except ImportError:
        pass
    else:
        lines = _memory_viz.segments(native["segments"], format_flamegraph=lambda text: text)
        assert lines.count("\n") == sum(len(s["blocks"]) for s in native["segments"])
    print("ok")


if __name__ == "__main__":
    main()
