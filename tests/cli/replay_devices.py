"""`offsim replay` and `offsim convert` on snapshots shaped like real ones (ctest replay_devices; Debian's
/usr/bin/python3, standard library only). Issue 16 items 5 and 6, issue 20 item 14.

usage: replay_devices.py OFFSIM_BINARY WORK_DIRECTORY

* A snapshot with two devices that have trace entries and a third with none: replay replays both by
  default, one column and one JSON object per device (the top level holds the totals), --device N narrows
  it to one (the top level is then that device's, as before); convert says which device it kept and which
  it dropped.
* A snapshot recorded with backend:cudaMallocAsync, and --alloc-conf backend:cudaMallocAsync on a native one:
  replayed on the coarse pool model and labelled so.
* Convert never writes what replay refuses: entries that contradict the recorded segments, read with
  --no-rewind, are refused as a snapshot output (replay rewinds it) and accepted as an .otrace (it does not).
* Entries that stand on their own from an empty allocator while the dump-time segments cannot be rewound
  through them (history recording stopped before the dump): replayed from empty, with a note saying why.
Exits 0 or raises.
"""
import json
import os
import pickle
import subprocess
import sys

MIB = 1024 * 1024


def entry(action, addr, size, i):
    key = "device_free" if action == "oom" else "addr"
    return {"action": action, key: addr, "size": size, "stream": 0, "time_us": 1_700_000_000_000_000 + i, "frames": []}


def segment(device, address, total, kind):
    return {"device": device, "address": address, "total_size": total, "allocated_size": 0, "active_size": 0,
            "requested_size": 0, "stream": 0, "segment_type": kind, "segment_pool_id": (0, 0),
            "is_expandable": False, "frames": [],
            "blocks": [{"address": address, "size": total, "requested_size": 0, "state": "inactive", "frames": []}]}


def two_devices(conf=""):
    """Device 0: a small segment and one request; device 1: a large one and two; device 2: nothing."""
    a, b = 0x7F0000000000, 0x7F8000000000
    dev0 = [entry("segment_alloc", a, 2 * MIB, 0), entry("alloc", a, 1000, 1),
            entry("free_requested", a, 1000, 2), entry("free_completed", a, 1000, 3)]
    dev1 = [entry("segment_alloc", b, 20 * MIB, 0), entry("alloc", b, 8 * MIB, 1), entry("alloc", b + 8 * MIB, 4 * MIB, 2),
            entry("free_requested", b, 8 * MIB, 3), entry("free_completed", b, 8 * MIB, 4),
            entry("free_requested", b + 8 * MIB, 4 * MIB, 5), entry("free_completed", b + 8 * MIB, 4 * MIB, 6)]
    return {"segments": [segment(0, a, 2 * MIB, "small"), segment(1, b, 20 * MIB, "large")],
            "device_traces": [dev0, dev1, []],
            "allocator_settings": {"PYTORCH_CUDA_ALLOC_CONF": conf}}


def contradicting():
    """Frees of a block that lies in no recorded segment: the entries do not lead to the dump-time state."""
    a = 0x7F0000000000
    trace = [entry("free_requested", a + 64 * MIB, 4096, 0), entry("free_completed", a + 64 * MIB, 4096, 1)]
    return {"segments": [segment(0, a, 2 * MIB, "small")], "device_traces": [trace]}


def stopped_before_dump():
    """History recording stopped before the dump (transformer_nuggets' mini_snapshot): the entries allocate and
    free on their own, and the segment's blocks, live when recording stopped, were freed before the dump."""
    b = 0x7F8000000000
    trace = [entry("segment_alloc", b, 20 * MIB, 0), entry("alloc", b, 8 * MIB, 1), entry("alloc", b + 8 * MIB, 4 * MIB, 2),
             entry("free_requested", b, 8 * MIB, 3), entry("free_completed", b, 8 * MIB, 4)]
    return {"segments": [segment(0, b, 20 * MIB, "large")], "device_traces": [trace]}


def run(offsim, *args, expect=0):
    result = subprocess.run([offsim, *args], capture_output=True, text=True, check=False)
    assert result.returncode == expect, (args, result.returncode, result.stdout, result.stderr)
    return result.stdout + result.stderr


def main():
    offsim, work = sys.argv[1:3]
    os.makedirs(work, exist_ok=True)
    path = lambda name: os.path.join(work, name)

    with open(path("two.pickle"), "wb") as f:
        pickle.dump(two_devices(), f)
    out = run(offsim, "replay", "-q", path("two.pickle"), "--json", path("two.json"), "--min-capacity")
    assert "device 0" in out and "device 1" in out and "on 2 devices" in out, out
    assert "device 2" not in out, out  # no trace entries, no segments: nothing of it to replay
    doc = json.load(open(path("two.json")))
    assert doc["device"] is None and [d["device"] for d in doc["devices"]] == [0, 1], doc.keys()
    assert doc["events_total"] == 11 and doc["events_matched"] == 11, (doc["events_total"], doc["events_matched"])
    for device in doc["devices"]:
        assert device["events_matched"] == device["events_total"] > 0, device
        assert device["comparison"] == "segments", device["comparison"]
        assert device["min_capacity_bytes"] > 0 and device["min_capacity_verified"], device
    assert doc["devices"][1]["compared"]["addresses"] == {"total": 2, "matched": 2}, doc["devices"][1]["compared"]
    assert doc["devices"][1]["compared"]["segment_events"] == {"total": 1, "matched": 1}

    out = run(offsim, "replay", "-q", path("two.pickle"), "--device", "1", "--json", path("one.json"))
    one = json.load(open(path("one.json")))
    assert one["device"] == 1 and one["events_total"] == 7 and len(one["devices"]) == 1, one.keys()
    assert one["peak_reserved_bytes"] == 20 * MIB and one["devices"][0]["peak_reserved_bytes"] == 20 * MIB
    assert "device 1" not in out.split("\n")[1], out  # one device: the table keeps its single value column

    out = run(offsim, "convert", path("two.pickle"), path("two.otrace"))
    assert "kept device 0 (4 events); dropped device 1 (7 events, 1 segments)" in out, out
    out = run(offsim, "convert", path("two.pickle"), path("dev1.otrace"), "--device", "1")
    assert "kept device" not in out, out
    out = run(offsim, "replay", "-q", path("dev1.otrace"), "--device", "0", expect=64)
    assert "holds the trace of device 1 only" in out, out

    # cudaMallocAsync: recorded with it, and as a what-if.
    with open(path("async.pickle"), "wb") as f:
        pickle.dump(two_devices("backend:cudaMallocAsync"), f)
    out = run(offsim, "replay", "-q", path("async.pickle"), "--device", "1", "--json", path("async.json"), "--min-capacity")
    assert "cudaMallocAsync (coarse pool model)" in out and "approximate" in out, out
    doc = json.load(open(path("async.json")))
    assert doc["allocator_model"] == "cudaMallocAsync (coarse pool model)" and doc["comparison"] == "none", doc
    assert doc["events_total"] == 0 and doc["peak_allocated_bytes"] == 12 * MIB, doc["peak_allocated_bytes"]
    assert doc["peak_reserved_bytes"] == 12 * MIB and doc["min_capacity_bytes"] == 12 * MIB, doc
    out = run(offsim, "replay", "-q", path("two.pickle"), "--device", "1", "--alloc-conf", "backend:cudaMallocAsync")
    assert "coarse pool model" in out, out
    run(offsim, "convert", path("async.pickle"), path("async.otrace"), "--device", "1")  # replay accepts it now

    # Convert never writes what replay refuses.
    with open(path("bad.pickle"), "wb") as f:
        pickle.dump(contradicting(), f)
    out = run(offsim, "replay", "-q", path("bad.pickle"), expect=2)
    assert "do not lead to the recorded segments" in out, out
    out = run(offsim, "convert", path("bad.pickle"), path("bad-out.pickle"), "--no-rewind", expect=2)
    assert "not converted: `offsim replay` would refuse the output" in out, out
    assert not os.path.exists(path("bad-out.pickle")), os.listdir(work)
    assert not any(name.startswith(".bad-out") for name in os.listdir(work)), os.listdir(work)
    # Entries that stand on their own from an empty allocator, but that the dump-time segments cannot be
    # rewound through: recording stopped before the dump. Replayed from empty, and the notes say why.
    with open(path("stopped.pickle"), "wb") as f:
        pickle.dump(stopped_before_dump(), f)
    out = run(offsim, "replay", path("stopped.pickle"), "--json", path("stopped.json"), "--min-capacity")
    assert "history recording was stopped before the snapshot was taken" in out, out
    doc = json.load(open(path("stopped.json")))
    assert doc["events_total"] == doc["events_matched"] == 5 and doc["min_capacity_verified"], doc
    run(offsim, "convert", path("bad.pickle"), path("bad-out.otrace"), "--no-rewind")
    run(offsim, "replay", "-q", path("bad-out.otrace"))
    print("replay_devices: ok")


if __name__ == "__main__":
    main()
