"""The offsim_gpu fixture fails a project's test with the violated property, the figures and replay commands."""
import os
import subprocess
import sys
import textwrap

import offsim

PROJECT_TEST = textwrap.dedent('''
    import pytest
    W7900 = "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json"

    def decide(gpu, estimate):
        log = gpu.open_log(policy_id="project-cache@pr", free_memory_formula="driver free", p1_slack_bytes=0)
        with gpu.stage("decode"):
            with log.decision(models=["vae"], estimate_passed=estimate) as d:
                d.set_estimate(estimate)
                d.set_free_memory(gpu.device.mem_get_info()[0])
                d.set_stop("satisfied")

    @pytest.mark.offsim_scenario(W7900)
    def test_small_estimate(offsim_gpu):
        decide(offsim_gpu, 3 * 2**30)         # below the published 10.06 GiB peak: P2 fails

    @pytest.mark.offsim_scenario(W7900)
    def test_enough_estimate(offsim_gpu):
        decide(offsim_gpu, 11 * 2**30)        # P1 then fails: F_P (about 9 GiB) < E, satisfied

    @pytest.mark.offsim_device(capacity="8GiB")
    def test_bare_device_without_a_log(offsim_gpu):
        assert offsim_gpu.device.mem_get_info() == (8 * 2**30, 8 * 2**30)

    def test_no_marker(offsim_gpu):
        pass
''')


def run_pytest(tmp_path, *args):
    (tmp_path / "test_project.py").write_text(PROJECT_TEST)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(offsim.__path__[0]), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "offsim.pytest_plugin", "-p", "no:cacheprovider",
                           str(tmp_path / "test_project.py"), *args], capture_output=True, text=True, env=env)


def test_a_failing_property_fails_the_test_with_the_report_and_replay_commands(tmp_path):
    out = run_pytest(tmp_path, "-k", "small_estimate")
    assert out.returncode == 1, out.stdout
    assert "offsim: a property failed on the decision log" in out.stdout
    assert "P2" in out.stdout and "FAIL" in out.stdout and "10.06 GiB" in out.stdout
    assert "-m pytest -p offsim.pytest_plugin" in out.stdout and "test_small_estimate" in out.stdout
    assert "offsim check --decisions" in out.stdout


def test_each_verdict_is_the_logs(tmp_path):
    out = run_pytest(tmp_path, "-k", "enough_estimate or bare_device")
    assert out.returncode == 1, out.stdout
    assert "1 failed, 1 passed" in out.stdout
    assert "P1" in out.stdout


def test_a_test_without_a_scenario_is_told_what_to_mark(tmp_path):
    out = run_pytest(tmp_path, "-k", "no_marker")
    assert out.returncode == 1
    assert "offsim_scenario(path)" in out.stdout
