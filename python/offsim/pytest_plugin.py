"""pytest plugin: the `offsim_gpu` fixture, so that a project's own test drives its own cache through one of
offsim's scenarios on a simulated GPU and fails with the violated property, the figures and a replay command.

Enable it with `-p offsim.pytest_plugin` or `pytest_plugins = ["offsim.pytest_plugin"]` in a conftest.py, and
name the scenario with a marker:

    @pytest.mark.offsim_scenario("scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json")
    def test_decode_makes_room(offsim_gpu):
        cache = MyCache(offsim_gpu.models)              # the project's own cache, on stand-in models
        log = offsim_gpu.open_log(policy_id="mycache@dev", free_memory_formula="driver free", p1_slack_bytes=0)
        with offsim_gpu.stage("decode"):
            cache.lock("vae", working_mem_bytes=...)    # logs its decision (log.decision(...))
            offsim_gpu.run_stage("decode")               # the decode's working memory on the simulated GPU

or `@pytest.mark.offsim_device(capacity="24GiB", platform="cuda", alloc_conf="")` for a bare device. While the
test runs, torch.cuda answers from the simulated device. When it returns, P1-P5 are checked on the decision
log it wrote (if it opened one); a failing property fails the test with offsim's report, the log's path and the
commands that replay it. `offsim_gpu.check()` checks earlier and returns the report instead (for tests that
expect a failure).
"""
from __future__ import annotations

import os
import shlex
import sys

import pytest

from . import _core, paths
from .harness import OffsimGpu


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "offsim_scenario(path): the offsim scenario the offsim_gpu fixture simulates")
    config.addinivalue_line("markers", "offsim_device(**kwargs): an offsim.Device(**kwargs) for the offsim_gpu fixture")


def _replay(item: pytest.Item, log_path: str, root: str) -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return (f"  cd {shlex.quote(str(item.config.rootpath))} && PYTHONPATH={shlex.quote(here)} {sys.executable} "
            f"-m pytest -p offsim.pytest_plugin {shlex.quote(item.nodeid)}\n"
            f"  offsim check --decisions {shlex.quote(log_path)} --root {shlex.quote(root)}")


@pytest.fixture
def offsim_gpu(request: pytest.FixtureRequest, tmp_path):
    scenario = request.node.get_closest_marker("offsim_scenario")
    device = request.node.get_closest_marker("offsim_device")
    log_path = str(tmp_path / "decisions.jsonl")
    if scenario is not None:
        gpu = OffsimGpu(scenario.args[0], log_path=log_path)
    elif device is not None:
        gpu = OffsimGpu(device=_core.Device(*device.args, **device.kwargs), log_path=log_path)
    else:
        raise _core.UsageError("offsim_gpu: mark the test with @pytest.mark.offsim_scenario(path) or "
                               "@pytest.mark.offsim_device(capacity=...)")
    with gpu:
        yield gpu


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    outcome = yield
    gpu = getattr(item, "funcargs", {}).get("offsim_gpu")
    if not isinstance(gpu, OffsimGpu) or gpu.log is None or gpu.report is not None:
        return
    report = gpu.check()
    if outcome.excinfo is None and report.failed:
        pytest.fail(f"offsim: a property failed on the decision log {gpu.log_path}\n{report}\n"
                    f"replay:\n{_replay(item, gpu.log_path, gpu.root or paths.root())}", pytrace=False)
    item.add_report_section("call", "offsim", str(report))  # the verdicts, shown with -rA
