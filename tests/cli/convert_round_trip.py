"""`offsim convert` end to end (ctest convert_round_trip; Debian's /usr/bin/python3, standard library only).

usage: convert_round_trip.py OFFSIM_BINARY WORK_DIRECTORY

Writes a snapshot pickle shaped like torch.cuda.memory._snapshot() (default pickle protocol, shared frame
lists, a partial ring buffer: the first entry frees a block allocated before recording started), converts
it pickle -> .otrace -> .json -> .pkl with the offsim binary, loads the results with pickle / json, and
checks that bad input fails with exit code 2 and a FILE:OFFSET message. Exits 0 or raises.
"""
import json
import os
import pickle
import re
import subprocess
import sys

MIB = 1024 * 1024


def snapshot():
    frames = [{"filename": "/src/train.py", "line": 7, "name": "step"}]
    base = 0x7F0000000000
    blocks = [
        {"address": base, "size": 1024, "requested_size": 1000, "state": "active_allocated", "frames": frames},
        {"address": base + 1024, "size": 2 * MIB - 1024, "requested_size": 512, "state": "inactive", "frames": frames},
    ]
    segment = {"device": 0, "address": base, "total_size": 2 * MIB, "allocated_size": 1024, "active_size": 1024,
               "requested_size": 1000, "stream": 0, "segment_type": "small", "segment_pool_id": (0, 0),
               "is_expandable": False, "frames": frames, "blocks": blocks}
    entries = [
        # The block at base + 1024 was allocated before the ring buffer's window: only its free is recorded.
        ("free_requested", base + 1024, 512), ("free_completed", base + 1024, 512),
        ("alloc", base, 1000),
    ]
    trace = [{"action": a, "addr": addr, "size": size, "stream": 0, "time_us": 1_700_000_000_000_000 + i,
              "frames": frames} for i, (a, addr, size) in enumerate(entries)]
    trace.append({"action": "oom", "device_free": 3 * MIB, "size": 64 * MIB, "stream": 0,
                  "time_us": 1_700_000_000_000_100, "frames": frames})
    return {"segments": [segment], "device_traces": [trace],
            "allocator_settings": {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:False",
                                   "trace_alloc_max_entries": 4, "trace_alloc_overflowed": True}}


def tiled_decode_snapshot():
    """A 1 GiB weight, then diffusers' tiled-decode retry allocating 3 GiB (its stack names tiled_decode)."""
    gib = 1 << 30
    weight, tile = 0x7F0000000000, 0x7F1000000000
    load = [{"filename": "/app/pipeline.py", "line": 40, "name": "load_weights"}]
    tiled = [{"filename": "/usr/lib/python3/dist-packages/diffusers/models/autoencoders/autoencoder_kl.py",
              "line": 290, "name": "tiled_decode"}] + load
    steps = [("segment_alloc", weight, gib, load), ("alloc", weight, gib, load),
             ("segment_alloc", tile, 3 * gib, tiled), ("alloc", tile, 3 * gib, tiled),
             ("free_requested", tile, 3 * gib, tiled), ("free_completed", tile, 3 * gib, tiled)]
    trace = [{"action": a, "addr": addr, "size": size, "stream": 0, "time_us": i, "frames": frames}
             for i, (a, addr, size, frames) in enumerate(steps)]
    segments = [{"device": 0, "address": weight, "total_size": gib, "stream": 0, "segment_type": "large",
                 "allocated_size": gib, "active_size": gib, "requested_size": gib,
                 "blocks": [{"address": weight, "size": gib, "requested_size": gib, "state": "active_allocated",
                             "frames": load}]},
                {"device": 0, "address": tile, "total_size": 3 * gib, "stream": 0, "segment_type": "large",
                 "allocated_size": 0, "active_size": 0, "requested_size": 0,
                 "blocks": [{"address": tile, "size": 3 * gib, "requested_size": 3 * gib, "state": "inactive",
                             "frames": []}]}]
    return {"segments": segments, "device_traces": [trace]}


def run(offsim, *args, expect=0):
    result = subprocess.run([offsim, *args], capture_output=True, text=True, check=False)
    assert result.returncode == expect, (args, result.returncode, result.stdout, result.stderr)
    return result.stdout + result.stderr


def main():
    offsim, work = sys.argv[1:3]
    os.makedirs(work, exist_ok=True)
    path = lambda name: os.path.join(work, name)
    with open(path("in.pickle"), "wb") as f:
        pickle.dump(snapshot(), f)

    out = run(offsim, "convert", path("in.pickle"), path("a.otrace"))
    assert "reconstructed" in out and "4 events" in out, out
    run(offsim, "convert", path("a.otrace"), path("b.json"))
    run(offsim, "convert", path("b.json"), path("c.pkl"))
    with open(path("c.pkl"), "rb") as f:
        back = pickle.load(f)
    with open(path("b.json"), encoding="utf-8") as f:
        as_json = json.load(f)
    original = snapshot()
    for doc in (back, as_json):
        entries = doc["device_traces"][0]
        assert [e["action"] for e in entries] == ["free_requested", "free_completed", "alloc", "oom"], entries
        assert entries[3]["device_free"] == 3 * MIB and "addr" not in entries[3]
        assert [e["time_us"] for e in entries] == [e["time_us"] for e in original["device_traces"][0]]
        assert doc["allocator_settings"]["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:False"
        assert doc["segments"][0]["blocks"][0]["requested_size"] == 1000
        notes = doc["offsim_metadata"]["provenance"]["notes"]
        assert "overflowed" in notes and "reconstructed" in notes, notes
        assert doc["offsim_metadata"]["reconstructed_initial_state"] is True
    assert back["segments"][0]["segment_pool_id"] == (0, 0)

    # --fallible-frame: the alloc whose stack names tiled_decode is flagged, the flag survives conversion, and
    # a replay on a device too small for it counts its failure as a handled OOM.
    with open(path("tiled.pickle"), "wb") as f:
        pickle.dump(tiled_decode_snapshot(), f)
    out = run(offsim, "convert", path("tiled.pickle"), path("tiled.json"), "--fallible-frame", "tiled_decode")
    assert "1 of 2 allocations" in out, out
    with open(path("tiled.json"), encoding="utf-8") as f:
        entries = json.load(f)["device_traces"][0]
    assert [e.get("offsim_flags", 0) for e in entries if e["action"] == "alloc"] == [0, 1], entries
    for source, extra in ((path("tiled.pickle"), ["--fallible-frame", "tiled_decode"]), (path("tiled.json"), [])):
        run(offsim, "replay", source, "--capacity", "2GiB", "-q", "--json", path("tiled_replay.json"), *extra)
        with open(path("tiled_replay.json"), encoding="utf-8") as f:
            result = json.load(f)
        assert result["unhandled_ooms"] == 0 and [o["handled"] for o in result["oom_events"]] == [True], result
    run(offsim, "replay", path("tiled.pickle"), "--capacity", "2GiB", "-q", "--json", path("tiled_replay.json"))
    with open(path("tiled_replay.json"), encoding="utf-8") as f:
        assert json.load(f)["unhandled_ooms"] == 1
    out = run(offsim, "replay", path("a.otrace"), "--fallible-frame", "step", expect=2)
    assert "keeps no stack frames" in out, out

    # Bad input: exit code 2, FILE:OFFSET: message; no output file left behind.
    with open(path("truncated.pickle"), "wb") as f:
        f.write(pickle.dumps(snapshot())[:100])
    out = run(offsim, "convert", path("truncated.pickle"), path("never.otrace"), expect=2)
    assert re.search(r"truncated\.pickle:\d+: ", out), out
    assert not os.path.exists(path("never.otrace"))
    out = run(offsim, "convert", path("in.pickle"), path("x.csv"), expect=64)
    assert "extension" in out, out
    out = run(offsim, "convert", path("in.pickle"), path("d.json"), "--device", "1", expect=2)
    assert "devices with data: 0" in out, out
    print("ok")


if __name__ == "__main__":
    main()
