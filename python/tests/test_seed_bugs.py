"""The two seed bugs through the Python route, with no C++ transcription: this project's own small caches
(tests/seed_caches/, written to follow the decision structure of InvokeAI's ModelCache and LightX2V's
cpu_offload) run on stand-in models under the virtual CUDA on the seed scenarios. The buggy ones fail with the
OOM text offsim's C++ runs of the transcriptions print, and their decision logs fail P1-P5; the fixed ones pass
(the offsim_gpu fixture checks their logs when the test returns)."""
import json
import os
import subprocess

import pytest

import offsim

torch = pytest.importorskip("torch")
from seed_caches.model_cache import ModelCache, decode  # noqa: E402
from seed_caches.offload_runner import OffloadRunner  # noqa: E402

pytestmark = pytest.mark.needs_torch

W7900 = "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json"       # 44.98 GiB, ROCm
BLACKWELL_3_CALLS = "scenarios/default/lightx2v-1051-flux2-klein-9b-3-calls.json"  # 31.35 GiB, 3 calls
MiB = 2**20


def cpp_oom_message(policy_id: str, scenario: str, root: str, tmp_path) -> str:
    """The OOM text of offsim's C++ run of a transcribed policy on the scenario: offsim.evaluate (the runner
    through the module) and, where the ctest names the built binary (OFFSIM_BIN), what `offsim eval` prints and
    writes to its JSON; all must be the same text."""
    run = offsim.evaluate(policy_id, scenario, root=root, min_capacity=False)
    assert not run["completed"]
    message = run["stages"][-1]["oom"]["message"]
    binary = os.environ.get("OFFSIM_BIN")
    if binary:
        out = tmp_path / "eval.json"
        cli = subprocess.run([binary, "eval", "-s", os.path.join(root, scenario), "-p", policy_id, "--no-min-capacity",
                              "--root", root, "--json", str(out)], capture_output=True, text=True)
        assert cli.returncode == 0, cli.stderr
        assert message in cli.stdout
        (result,) = json.loads(out.read_text())["results"]
        assert result["stages"][-1]["oom"]["message"] == message
    return message


def check_as_the_cli_does(gpu, root: str):
    """P1-P5 on the test's decision log, by offsim.check and (where the ctest names the built binary) by
    `offsim check --decisions` on the same file: the same report text and the exit code that goes with it."""
    report = gpu.check()
    binary = os.environ.get("OFFSIM_BIN")
    if binary:
        cli = subprocess.run([binary, "check", "--decisions", gpu.log_path, "--root", root], capture_output=True,
                             text=True)
        assert cli.stdout == str(report)
        assert cli.returncode == (1 if report.failed else 0), cli.stderr
    return report


def verdicts(report) -> dict:
    return {p.id: p.verdict for p in report.results}


def open_cache_log(gpu, version: str):
    return gpu.open_log(policy_id=f"seed-model-cache@{version}", policy_family="seed-model-cache",
                        free_memory_formula="driver free (mem_get_info) minus working memory", p1_slack_bytes=MiB)


@pytest.mark.offsim_scenario(W7900)
def test_cache_passing_no_decode_estimate_ooms_as_invokeai_before_9305(offsim_gpu, root, tmp_path):
    cache = ModelCache(offsim_gpu.models, log=open_cache_log(offsim_gpu, "no-estimate"))
    with pytest.raises(torch.cuda.OutOfMemoryError) as oom:
        with offsim_gpu.stage("decode"):
            decode(cache, lambda: offsim_gpu.run_stage("decode"), 832, 1248, element_size=2, estimate=False)
    assert str(oom.value) == cpp_oom_message("invokeai@fda7c42b", W7900, root, tmp_path)
    assert str(oom.value).startswith("CUDA out of memory. Tried to allocate 5.01 GiB. GPU 0 has a total capacity of "
                                     "44.98 GiB")
    report = check_as_the_cli_does(offsim_gpu, root)
    assert report.failed
    assert verdicts(report)["P2"] == "FAIL" and verdicts(report)["P3"] == "FAIL"
    assert "estimator fault" in report.diagnosis
    assert all(offsim_gpu.models[m].is_in_vram() for m in ("transformer", "text_encoder"))  # nothing evicted


@pytest.mark.offsim_scenario(W7900)
def test_cache_passing_the_estimate_evicts_and_decodes_as_after_9305(offsim_gpu):
    cache = ModelCache(offsim_gpu.models, log=open_cache_log(offsim_gpu, "rocm-estimate"))
    with offsim_gpu.stage("decode"):
        decode(cache, lambda: offsim_gpu.run_stage("decode"), 832, 1248, element_size=2, estimate=True)
    # Freed bytes stay cached until empty_cache(), so driver free does not move while it unloads: both big
    # models are partly unloaded (what offsim's C++ run of invokeai@a6724695 shows too).
    assert not offsim_gpu.models["text_encoder"].is_in_vram()
    assert not offsim_gpu.models["transformer"].is_in_vram()
    # When the test returns, the offsim_gpu fixture checks the log: P1-P5 must hold.


def open_runner_log(gpu, version: str):
    return gpu.open_log(policy_id=f"seed-offload-runner@{version}", policy_family="seed-offload-runner",
                        free_memory_formula="")


@pytest.mark.offsim_scenario(BLACKWELL_3_CALLS)
def test_runner_leaving_the_transformer_on_the_gpu_ooms_as_lightx2v_before_1051(offsim_gpu, root, tmp_path):
    runner = OffloadRunner(offsim_gpu.models, offsim_gpu.run_stage, log=open_runner_log(offsim_gpu, "no-offload"))
    runner()  # call 1 works: the text encoder was on the CPU while the transformer loaded
    with pytest.raises(torch.cuda.OutOfMemoryError) as oom:
        runner()  # call 2: text_encoder.to("cuda") with the transformer still there
    assert str(oom.value) == cpp_oom_message("lightx2v@c177fd82^", BLACKWELL_3_CALLS, root, tmp_path)
    assert "Tried to allocate 32.00 MiB. GPU 0 has a total capacity of 31.35 GiB" in str(oom.value)
    assert "Including non-PyTorch memory, this process has 30.96 GiB memory in use." in str(oom.value)
    report = check_as_the_cli_does(offsim_gpu, root)
    assert verdicts(report)["P4"] == "FAIL" and verdicts(report)["P3"] == "FAIL"
    assert "transformer" in next(p.detail for p in report.results if p.id == "P4")


@pytest.mark.offsim_scenario(BLACKWELL_3_CALLS)
def test_runner_offloading_after_the_last_step_runs_three_calls_as_after_1051(offsim_gpu):
    runner = OffloadRunner(offsim_gpu.models, offsim_gpu.run_stage, log=open_runner_log(offsim_gpu, "offload"),
                           offload_transformer=True)
    for _ in range(3):
        runner()
    assert offsim_gpu.models["transformer"].cur_vram_bytes() == 0
