"""offsim.check(log) is `offsim check --decisions` (the same C++ function and text), and the decision-log shim
records the simulated device's figures under the virtual CUDA."""
import json
import os
import subprocess

import pytest

import offsim

LOGS = "tests/corpus/decision_logs"


@pytest.mark.parametrize("name,failed", [("invokeai-9305-fda7c42b-w7900-rocm.jsonl", True),
                                         ("invokeai-9305-a6724695-w7900-rocm.jsonl", False)])
def test_check_judges_the_committed_logs_as_the_cli_does(root, name, failed):
    log = os.path.join(root, LOGS, name)
    report = offsim.check(log, root=root)
    assert report.failed is failed
    assert [p.id for p in report.results] == ["P1", "P2", "P3", "P4", "P5"]
    binary = os.environ.get("OFFSIM_BIN")
    if not binary:
        pytest.skip("OFFSIM_BIN is not set (the ctest sets it to the built offsim)")
    cli = subprocess.run([binary, "check", "--decisions", log, "--root", root], capture_output=True, text=True)
    assert cli.stdout == str(report)
    assert cli.returncode == (1 if failed else 0)


def test_a_malformed_log_is_a_parse_error_naming_the_line(tmp_path, root):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"schema": "offsim-decision/1", "record": "header"}\n')
    with pytest.raises(offsim.ParseError, match=r"bad.jsonl:1"):
        offsim.check(str(bad), root=root)


@pytest.mark.needs_torch
def test_the_shim_logs_simulated_figures_under_the_virtual_cuda(tmp_path, root):
    pytest.importorskip("torch")
    from offsim_decisions import DecisionLog

    gpu = offsim.Device("44.98GiB", platform="rocm", torch="2.9", alloc_conf="max_split_size_mb:512")
    path = tmp_path / "d.jsonl"
    with offsim.virtual_cuda(gpu):
        with DecisionLog(str(path), policy_id="probe@1", free_memory_formula="driver free") as log:
            with log.stage("decode", kind="vae_decode"):
                with log.decision(models=["vae"]) as d:
                    d.set_free_memory(gpu.mem_get_info()[0])
                ptr = gpu.malloc(2**30)
                gpu.free(ptr)
    header, decision, stage = (json.loads(line) for line in path.read_text().splitlines())
    assert header["device"] == {"name": "simulated GPU", "total_bytes": gpu.capacity, "backend": "rocm",
                                "measured": False, "memory_source": "offsim-simulator"}
    assert header["torch"]["version"] == "2.9" and header["alloc_conf"] == "max_split_size_mb:512"
    assert decision["memory"]["total_bytes"] == gpu.capacity
    assert stage["memory"]["peak_reserved_bytes"] == 2**30  # the stage's own peak, reset at its start
    assert stage["memory"]["after"]["reserved_bytes"] == 2**30  # freed, still cached
