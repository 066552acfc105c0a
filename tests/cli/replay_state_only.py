"""`offsim replay` on the snapshots users bring that hold a state and little else (ctest replay_state_only;
Debian's /usr/bin/python3, standard library only). Issue 16, from replaying more public recordings:

* a state-only snapshot (no trace entries) whose segments include a private pool (segment_pool_id other than
  (0, 0), e.g. a CUDA graph's): the notes say offsim does not model it, nothing is labelled as a measured
  comparison, and --min-capacity answers (the smallest device holding the state) instead of exiting 2;
* a state-only snapshot of several devices where only device 1 (or devices 0 and 2) has segments: replay
  reports exactly the devices with segments, not an empty device 0;
* a pickle of torch.cuda.memory_snapshot() (a plain list of segment dicts): read as a state-only snapshot;
* allocator settings recorded only as allocator_settings' values (max_split_size 512 MiB, empty settings
  string): replayed with max_split_size_mb:512, under which the trace reproduces exactly while PyTorch's
  defaults do not.
Every input is generated here (no third-party data). Exits 0 or raises.
"""
import json
import os
import pickle
import subprocess
import sys

MIB = 1024 * 1024
BASE = 0x7F0000000000


def block(address, size, requested, state):
    return {"address": address, "size": size, "requested_size": requested, "state": state, "frames": []}


def segment(device, address, total, blocks, kind="large", pool=(0, 0)):
    active = sum(b["size"] for b in blocks if b["state"] != "inactive")
    return {"device": device, "address": address, "total_size": total, "allocated_size": active,
            "active_size": active, "requested_size": sum(b["requested_size"] for b in blocks if b["state"] != "inactive"),
            "stream": 0, "segment_type": kind, "segment_pool_id": pool, "is_expandable": False, "frames": [],
            "blocks": blocks}


def live_segment(device, address, total, live, pool=(0, 0)):
    """A large segment with one live block of `live` bytes at its start and the rest free."""
    blocks = [block(address, live, live, "active_allocated")]
    if total > live:
        blocks.append(block(address + live, total - live, 0, "inactive"))
    return segment(device, address, total, blocks, pool=pool)


def entry(action, addr, size, i):
    return {"action": action, "addr": addr, "size": size, "stream": 0, "time_us": 1_700_000_000_000_000 + i, "frames": []}


def run(offsim, *args, expect=0):
    result = subprocess.run([offsim, *args], capture_output=True, text=True, check=False)
    assert result.returncode == expect, (args, result.returncode, result.stdout, result.stderr)
    return result.stdout + result.stderr


def dump(path, value):
    with open(path, "wb") as f:
        pickle.dump(value, f)


def private_pool(offsim, path):
    """One default-pool segment and one of a CUDA graph's private pool, no trace entries (verl-style)."""
    dump(path("pool.pickle"), {
        "segments": [live_segment(0, BASE, 20 * MIB, 8 * MIB),
                     live_segment(0, BASE + 64 * MIB, 40 * MIB, 40 * MIB, pool=(1, 7))],
        "device_traces": [[]],
        "allocator_settings": {"PYTORCH_CUDA_ALLOC_CONF": ""}})
    out = run(offsim, "replay", "-q", path("pool.pickle"), "--min-capacity", "--json", path("pool.json"))
    assert "gpu-measured, nothing compared" in out, out
    assert "private pool" in out, out
    doc = json.load(open(path("pool.json")))
    assert doc["comparison"] == "state-only" and doc["events_total"] == 0, doc["comparison"]
    assert any("1 of 2 segments (40.00 MiB) belong to 1 private pool" in n for n in doc["notes"]), doc["notes"]
    assert doc["peak_reserved_bytes"] == 60 * MIB, doc["peak_reserved_bytes"]
    # Nothing was rewound: the start state is the dump-time state as recorded.
    assert "initial allocator state loaded from the trace" in doc["notes"], doc["notes"]
    assert not any("rewinding" in n for n in doc["notes"]), doc["notes"]
    # The smallest device that holds the state, verified (nothing smaller can even load it).
    assert doc["min_capacity_bytes"] == 60 * MIB and doc["min_capacity_verified"], doc["min_capacity_bytes"]
    run(offsim, "replay", "-q", path("pool.pickle"), "--capacity", str(60 * MIB))
    out = run(offsim, "replay", "-q", path("pool.pickle"), "--capacity", str(58 * MIB), expect=2)
    assert "cannot hold the state the trace starts from: 60.00 MiB reserved in 2 segments" in out, out
    assert "replay on a device of at least 60.00 MiB" in out, out
    # A pool-free state-only snapshot has no such note.
    dump(path("plain-state.pickle"), {"segments": [live_segment(0, BASE, 20 * MIB, 8 * MIB)], "device_traces": [[]]})
    run(offsim, "replay", "-q", path("plain-state.pickle"), "--json", path("plain-state.json"))
    assert not any("private pool" in n for n in json.load(open(path("plain-state.json")))["notes"])


def devices_with_segments(offsim, path):
    """Several devices, no trace entries: the devices that have segments are the ones reported."""
    dump(path("dev1.pickle"), {"segments": [live_segment(1, BASE, 20 * MIB, 2 * MIB)], "device_traces": [[], [], []]})
    out = run(offsim, "replay", "-q", path("dev1.pickle"), "--min-capacity", "--json", path("dev1.json"))
    doc = json.load(open(path("dev1.json")))
    assert doc["device"] == 1 and [d["device"] for d in doc["devices"]] == [1], (doc["device"], out)
    assert doc["peak_reserved_bytes"] == 20 * MIB and doc["min_capacity_bytes"] == 20 * MIB, doc["peak_reserved_bytes"]
    assert "0 B" not in out, out

    dump(path("dev02.pickle"), {"segments": [live_segment(0, BASE, 20 * MIB, 2 * MIB),
                                             live_segment(2, BASE + 256 * MIB, 40 * MIB, 30 * MIB)],
                                "device_traces": [[], [], []]})
    out = run(offsim, "replay", "-q", path("dev02.pickle"), "--min-capacity", "--json", path("dev02.json"))
    doc = json.load(open(path("dev02.json")))
    assert [d["device"] for d in doc["devices"]] == [0, 2], [d["device"] for d in doc["devices"]]
    assert [d["peak_reserved_bytes"] for d in doc["devices"]] == [20 * MIB, 40 * MIB]
    assert all(d["comparison"] == "state-only" and d["min_capacity_verified"] for d in doc["devices"])
    assert "device 0" in out and "device 2" in out and "device 1" not in out, out


def segment_list(offsim, path):
    """pickle.dump(torch.cuda.memory_snapshot()): a list of segment dicts, no top-level dict."""
    dump(path("list.pickle"), [live_segment(0, BASE, 20 * MIB, 8 * MIB), live_segment(0, BASE + 32 * MIB, 2 * MIB, 2 * MIB)])
    out = run(offsim, "replay", "-q", path("list.pickle"), "--min-capacity", "--json", path("list.json"))
    doc = json.load(open(path("list.json")))
    assert doc["comparison"] == "state-only" and doc["peak_reserved_bytes"] == 22 * MIB, (doc["comparison"], out)
    assert doc["min_capacity_bytes"] == 22 * MIB and doc["min_capacity_verified"], doc["min_capacity_bytes"]
    out = run(offsim, "convert", path("list.pickle"), path("list.otrace"))
    run(offsim, "replay", "-q", path("list.otrace"))
    # What is neither a snapshot dict nor a list of segments is still refused, naming the input.
    dump(path("bad-list.pickle"), [1, 2])
    out = run(offsim, "replay", "-q", path("bad-list.pickle"), expect=2)
    assert "bad-list.pickle" in out and "expected a dict" in out, out


def max_split_size(offsim, path):
    """Recorded with max_split_size_mb:512: a 600 MiB request takes a cached 610 MiB block whole (an oversize
    block is not split), so the next 8 MiB request needs a new 20 MiB segment. Under PyTorch's defaults the
    610 MiB block would be split and serve it."""
    a, b = BASE, BASE + 1024 * MIB
    events = [("segment_alloc", a, 610 * MIB), ("alloc", a, 610 * MIB), ("free_requested", a, 610 * MIB),
              ("free_completed", a, 610 * MIB), ("alloc", a, 600 * MIB), ("segment_alloc", b, 20 * MIB),
              ("alloc", b, 8 * MIB), ("free_requested", b, 8 * MIB), ("free_completed", b, 8 * MIB),
              ("free_requested", a, 600 * MIB), ("free_completed", a, 600 * MIB)]
    segments = [segment(0, a, 610 * MIB, [block(a, 610 * MIB, 0, "inactive")]),
                segment(0, b, 20 * MIB, [block(b, 20 * MIB, 0, "inactive")])]
    fields = {"PYTORCH_CUDA_ALLOC_CONF": "", "max_split_size": 512 * MIB, "garbage_collection_threshold": 0.0,
              "expandable_segments": False, "roundup_power2_divisions": {"1": 0}}
    for name, settings in (("split-fields", fields), ("split-string", {"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:512"})):
        dump(path(name + ".pickle"), {"segments": segments, "allocator_settings": settings,
                                      "device_traces": [[entry(k, x, n, i) for i, (k, x, n) in enumerate(events)]]})
        run(offsim, "replay", "-q", path(name + ".pickle"), "--json", path(name + ".json"))
        doc = json.load(open(path(name + ".json")))
        assert doc["recorded_alloc_conf"] == "max_split_size_mb:512" == doc["alloc_conf"], doc["recorded_alloc_conf"]
        assert doc["events_matched"] == doc["events_total"] == len(events), (doc["events_matched"], doc["first_divergence"])
    # The same trace under PyTorch's defaults does not reproduce: the setting is what makes it exact.
    run(offsim, "replay", "-q", path("split-fields.pickle"), "--alloc-conf", "", "--json", path("split-default.json"))
    doc = json.load(open(path("split-default.json")))
    assert doc["events_matched"] < doc["events_total"], doc["events_matched"]
    # An unset max_split_size (SIZE_MAX, which the snapshot writes as -1) adds nothing.
    dump(path("split-unset.pickle"), {"segments": segments, "device_traces": [[]],
                                      "allocator_settings": dict(fields, max_split_size=-1)})
    run(offsim, "replay", "-q", path("split-unset.pickle"), "--json", path("split-unset.json"))
    assert json.load(open(path("split-unset.json")))["recorded_alloc_conf"] == ""


def main():
    offsim, work = sys.argv[1:3]
    os.makedirs(work, exist_ok=True)
    path = lambda name: os.path.join(work, name)
    private_pool(offsim, path)
    devices_with_segments(offsim, path)
    segment_list(offsim, path)
    max_split_size(offsim, path)
    print("replay_state_only: ok")


if __name__ == "__main__":
    main()
