"""What the shim would have logged for a run of one of offsim's transcribed policies: converts one result of
`offsim eval --json` (offsim-eval/1, docs/eval_json.md) and its scenario file into an offsim-decision/1
log. Used to make the committed example logs (tests/corpus/decision_logs/) reproducible:

    offsim eval --suite scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json \
        --policy invokeai@fda7c42b --json /tmp/eval.json --no-min-capacity -q
    PYTHONPATH=python python3 -m offsim_decisions.from_eval /tmp/eval.json \
        --out tests/corpus/decision_logs/invokeai-9305-fda7c42b-w7900-rocm.jsonl

The figures are the simulator's (device.memory_source "offsim-simulator", measured false). Fields the
eval JSON does not hold are null, never guessed: the memory figures at the stop, memory after a stage,
the value a call site passed (only whether it passed one, read from the estimate source), per-model loads
of a stage that loads several models, and device bytes of models kept resident by design.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any, Optional

from . import schema
from .invokeai import P1_SLACK_BYTES as INVOKEAI_P1_SLACK_BYTES

# Documented P1 slack per policy family (offsim's PolicyInfo::p1_slack; only InvokeAI declares one).
P1_SLACK_BY_FAMILY = {"invokeai": INVOKEAI_P1_SLACK_BYTES}
_STOP = {"satisfied": "satisfied", "exhausted": "exhausted", "n/a": "not_applicable"}


class EvalFormatError(ValueError):
    pass


def _passed_estimate(source: str) -> bool:
    # offsim's InvokeAI transcription writes "... (passes no estimate)" / "no estimate passed" when the
    # call site passes none (policies/invokeai_model_cache.cpp, call_site_estimate).
    return not ("passes no estimate" in source or source.startswith("no estimate passed"))


def _memory_before(stage: dict, device_total: int) -> dict:
    # releasable = reserved - allocated - stranded must hold for the reader's accounting diagnosis to
    # match offsim's (policies/properties.cpp uses driver free + releasable).
    reserved, allocated = stage["reserved_before_bytes"], stage["allocated_before_bytes"]
    stranded = stage["stranded_before_bytes"]
    if stage["oom"] is None or stage.get("working_memory") is not None:
        if reserved - allocated - stranded != stage["releasable_before_bytes"]:
            raise EvalFormatError(f"stage {stage['stage']!r}: reserved - allocated - stranded != releasable")
    out = dict.fromkeys(schema.MEMORY_KEYS)
    out.update({"free_bytes": stage["driver_free_before_bytes"], "total_bytes": device_total,
                "allocated_bytes": allocated, "reserved_bytes": reserved, "inactive_split_bytes": stranded})
    return out


def convert(result: dict, scenario: dict, eval_path: str, scenario_path: str) -> list:
    """The log's records (header first) for one offsim-eval/1 result."""
    policy = result["policy"]
    family = policy.get("family", "")
    sc = result["scenario"]
    stages_by_name = {s["name"]: s for s in scenario["stages"]}
    header = {
        "schema": schema.SCHEMA,
        "record": schema.RECORD_HEADER,
        "shim": {"name": schema.SHIM_NAME, "version": schema.SHIM_VERSION},
        "policy": {"id": policy["id"], "family": family, "version": policy.get("upstream", ""),
                   "free_memory_formula": policy.get("free_memory", ""),
                   "p1_slack_bytes": P1_SLACK_BY_FAMILY.get(family, 0)},
        "device": {"name": scenario["device"]["name"], "total_bytes": sc["device_total_bytes"],
                   "backend": sc["platform"], "measured": False, "memory_source": "offsim-simulator"},
        "torch": {"version": sc["torch"], "hip": None},
        "alloc_conf": sc.get("alloc_conf", ""),
        "created": None,
        "source": {"generator": "offsim_decisions.from_eval", "eval": eval_path, "scenario": scenario_path,
                   "note": "what the shim would have logged for offsim's transcription of this policy, run on "
                           "the simulator (figures are the simulator's)"},
    }
    records = [header]
    seq = 0
    last_stage_of_call: dict = {}
    for st in result["stages"]:
        sdef = stages_by_name.get(st["stage"])
        if sdef is None:
            raise EvalFormatError(f"stage {st['stage']!r} is not in {scenario_path}")
        key = {"name": st["stage"], "kind": sdef.get("kind", "other"), "call": st["call"], "step": st["step"]}
        models = list(sdef.get("models", []))
        oom = st["oom"]
        oom_record = {"message": oom["message"], "requested_bytes": oom["requested_bytes"]} if oom else None
        # The runner records a failed weight load as the stage's OOM with no working memory run
        # (policies/runner.cpp: decision.load_oom); the working-memory label is then null.
        load_oom = oom is not None and st.get("working_memory") is None and "working_memory" in sdef
        source = st["estimate_source"]
        passed = _passed_estimate(source)
        evictions = [{"model": e["model"], "bytes": e["bytes"]} for e in st["evictions"]]

        def decision_record(decision_models, free_memory, estimate, w_load, loads, stop, made, failed):
            return {
                "schema": schema.SCHEMA, "record": schema.RECORD_DECISION, "seq": seq, "stage": key,
                "models": decision_models,
                "estimate": {"bytes": estimate, "passed": passed, "passed_bytes": None, "source": source},
                "free_memory": {"bytes": free_memory, "formula": policy.get("free_memory", "")},
                "weights_loaded_bytes": w_load,
                "stop_reason": _STOP[stop],
                "evictions": made,
                "loads": loads,
                "memory": None,
                "oom": oom_record if failed else None,
            }

        decision_seqs = []
        per_model = st.get("loads") or []
        if len(models) > 1 and per_model:
            # The policy decided model by model (InvokeAI locks each model on its own): one decision each,
            # as the shim logs one per model_on_device call. A load that failed made no entry in loads[];
            # it is the stage's last decision (the stage-level fields are that decision's).
            used = 0
            for load in per_model:
                made = evictions[used:used + load["evictions"]]
                used += load["evictions"]
                w = load["weights_loaded_bytes"]
                records.append(decision_record([load["model"]], load["free_memory_bytes"], load["estimate_bytes"], w,
                                               [{"model": load["model"], "bytes": w}] if w else [],
                                               load["stop_reason"], made, False))
                decision_seqs.append(seq)
                seq += 1
            if load_oom:
                failed_model = models[len(per_model)] if len(per_model) < len(models) else models[-1]
                records.append(decision_record([failed_model], st["free_memory_bytes"], st["estimate_bytes"], 0, [],
                                               st["stop_reason"], evictions[used:], True))
                decision_seqs.append(seq)
                seq += 1
        else:
            w_load = st["weights_loaded_bytes"]
            if w_load == 0:
                loads: Optional[list] = []
            elif len(models) == 1:
                loads = [{"model": models[0], "bytes": w_load}]
            else:
                loads = None  # the eval JSON has only the stage's total
            records.append(decision_record(models, st["free_memory_bytes"], st["estimate_bytes"], w_load, loads,
                                           st["stop_reason"], evictions, load_oom))
            decision_seqs.append(seq)
            seq += 1
        working_memory = sdef.get("working_memory")
        stage = {
            "schema": schema.SCHEMA, "record": schema.RECORD_STAGE, "seq": seq, "stage": key,
            "workload": sdef.get("workload"),
            "working_memory": working_memory if isinstance(working_memory, str) else None,
            "decisions": decision_seqs,
            "memory": {"before": None if load_oom else _memory_before(st, sc["device_total_bytes"]), "after": None,
                       "peak_reserved_bytes": (st["reserved_before_bytes"] + st["t_warm_bytes"]
                                               if st["t_warm_bytes"] is not None and not load_oom else None),
                       "peak_reset": True},
            "outcome": {"completed": oom is None, "oom": oom_record, "handled_ooms": st["handled_ooms"]},
            "models": None,
        }
        records.append(stage)
        seq += 1
        last_stage_of_call[st["call"]] = stage
    # P4: what the policy claimed after each completed call, on that call's last stage line. Only claims
    # of offloading carry device bytes in the eval JSON (0, or what is left: claimed_offloaded_but_resident).
    for call in result["calls"]:
        stage = last_stage_of_call.get(call["call"])
        if stage is None or not call["completed"]:
            continue
        left = {e["model"]: e["bytes"] for e in call["claimed_offloaded_but_resident"]}
        stage["models"] = [{"model": m, "device_bytes": left.get(m, 0), "offloaded": True, "resident_by_design": False}
                           for m in call["offloaded"]]
    return records


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m offsim_decisions.from_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_json", help="output of offsim eval --json")
    parser.add_argument("--out", required=True, help="decision log to write (.jsonl)")
    parser.add_argument("--policy", help="policy id of the result to convert (needed when the file holds several)")
    parser.add_argument("--scenario", help="scenario file (default: the result's scenario.source)")
    parser.add_argument("--root", default=".", help="offsim checkout the scenario path is relative to")
    args = parser.parse_args(argv)
    try:
        with open(args.eval_json, encoding="utf-8") as f:
            doc = json.load(f)
        if doc.get("format") != "offsim-eval/1":
            raise EvalFormatError(f"{args.eval_json}: format {doc.get('format')!r}, expected offsim-eval/1")
        results = [r for r in doc["results"] if args.policy is None or r["policy"]["id"] == args.policy]
        if len(results) != 1:
            raise EvalFormatError(f"{args.eval_json}: {len(results)} results match; pick one with --policy")
        result = results[0]
        scenario_path = args.scenario or result["scenario"]["source"]
        full = scenario_path if os.path.isabs(scenario_path) else os.path.join(args.root, scenario_path)
        with open(full, encoding="utf-8") as f:
            scenario = json.load(f)
        records = convert(result, scenario, os.path.basename(args.eval_json), os.path.relpath(full, args.root))
    except (OSError, KeyError, EvalFormatError, json.JSONDecodeError) as e:
        print(f"from_eval: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    text = "".join(json.dumps(r, allow_nan=False, separators=(",", ":")) + "\n" for r in records)
    directory = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
