"""A Python policy object run by offsim's runner over scenarios and generated cases, called back per decision."""
import os
import subprocess
import sys

import pytest

import offsim

W7900 = "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json"
GiB = 2**30


class KeepEverything:
    """Loads what a stage needs and never evicts; reserves a fixed 3 GiB of working memory (it asks for none)."""
    id = "keep-everything@test"
    free_memory_formula = "driver free (mem_get_info)"
    virtual_cuda = False

    def prepare(self, run, step):
        d = run.decision
        d.estimate, d.estimate_source = 3 * GiB, "fixed 3 GiB"
        d.free_memory = run.cuda.mem_get_info()[0]
        d.stop = "satisfied"
        for mid in step.models:
            d.loaded(mid, run.models[mid].full_load_to_vram())

    def residency(self, run):
        return {"resident_by_design": list(run.models)}


class EvictOthersFirst(KeepEverything):
    """Evicts every model the stage does not use, empties the cache, then loads the stage's models."""
    id = "evict-others-first@test"

    def prepare(self, run, step):
        d = run.decision
        for mid, model in run.models.items():
            if mid not in step.models and model.cur_vram_bytes():
                d.evicted(mid, model.full_unload_from_vram())
        run.cuda.empty_cache()
        super().prepare(run, step)


def test_a_python_policy_is_evaluated_like_a_transcribed_one(root):
    bad = offsim.evaluate(KeepEverything, W7900, root=root, min_capacity=False)
    good = offsim.evaluate(EvictOthersFirst, W7900, root=root, min_capacity=False)
    assert bad["policy"]["id"] == "keep-everything@test"
    assert not bad["completed"] and bad["properties"]["P3"]["verdict"] == "FAIL"
    assert bad["stages"][0]["estimate_bytes"] == 3 * GiB and bad["stages"][0]["evictions"] == []
    assert bad["stages"][0]["oom"]["message"].startswith("CUDA out of memory. Tried to allocate 5.01 GiB")
    assert good["completed"] and good["properties"]["P3"]["verdict"] == "pass"
    assert {e["model"] for e in good["stages"][0]["evictions"]} == {"text_encoder", "transformer"}
    assert good["properties"]["P2"]["verdict"] == "FAIL"  # 3 GiB < the published 10.06 GiB
    assert "keep-everything@test" not in offsim._core.policy_ids()  # registered only while it ran


@pytest.mark.needs_torch
def test_torch_cuda_answers_from_the_runs_device_while_the_policy_decides(root):
    pytest.importorskip("torch")
    import torch
    seen = []

    class AsksTorch(EvictOthersFirst):
        id = "asks-torch@test"
        virtual_cuda = True

        def prepare(self, run, step):
            seen.append((torch.cuda.is_available(), torch.cuda.mem_get_info(), run.cuda.mem_get_info(),
                         torch.version.hip))
            super().prepare(run, step)

    offsim.evaluate(AsksTorch, W7900, root=root, min_capacity=False)
    assert seen and all(available and a == b and hip for available, a, b, hip in seen)
    assert not torch.cuda.is_available()


def test_a_scenario_may_hold_settings_for_a_python_policys_family(root, tmp_path):
    """policy_settings is keyed by policy family: the family of a Python policy is a known one while its policy
    is registered (the scenario reader consults the registry, run-time registrations included), and its
    settings reach the policy; once the policy is unregistered the family is unknown again."""
    import json
    with open(os.path.join(root, W7900)) as f:
        scenario = json.load(f)
    scenario["policy_settings"] = {"my-cache": {"working_memory_gib": 11}}
    path = tmp_path / "with-settings.json"
    path.write_text(json.dumps(scenario))
    seen = []

    class ReadsItsSettings(EvictOthersFirst):
        id = "my-cache@dev"
        family = "my-cache"

        def prepare(self, run, step):
            seen.append(run.settings("my-cache"))
            super().prepare(run, step)
            run.decision.estimate = run.settings("my-cache")["working_memory_gib"] * GiB

    r = offsim.evaluate(ReadsItsSettings, str(path), root=root, min_capacity=False)
    assert seen and all(s == {"working_memory_gib": 11} for s in seen)
    assert r["stages"][0]["estimate_bytes"] == 11 * GiB
    with pytest.raises(offsim.ParseError, match="my-cache.*unknown policy family"):
        offsim.evaluate("invokeai@a6724695", str(path), root=root, min_capacity=False)


def test_the_suite_runs_every_scenario(root):
    results = offsim.run_suite(EvictOthersFirst, "scenarios/default", root=root, min_capacity=False)
    assert len(results) == len([f for f in os.listdir(os.path.join(root, "scenarios/default")) if f.endswith(".json")])
    assert all(r["policy"]["id"] == "evict-others-first@test" for r in results)


def test_generated_cases_find_the_missing_estimate_and_replay_it(root, tmp_path):
    found = offsim.check_generated(KeepEverything, properties=["P3"], cases=30, out=str(tmp_path), root=root)
    assert found["failed"]
    (p3,) = found["checks"]
    assert p3["violated"] and p3["blocks_gate"] and p3["counterexample"]["stages"]
    assert os.path.exists(p3["counterexample_file"])
    assert p3["replay_command"].startswith("PYTHONPATH=") and "-m offsim check --policy test_policy:KeepEverything" in p3["replay_command"]
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(offsim.__path__[0]), here]))
    replay = subprocess.run([sys.executable, "-m", "offsim", "--root", root, "check", "--policy",
                             "test_policy:KeepEverything", "--property", "P3", "--replay", p3["counterexample_file"]],
                            capture_output=True, text=True, env=env)
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert "FAIL" in replay.stdout
    again = offsim.check_counterexample(EvictOthersFirst, "P3", p3["counterexample_file"], root=root)
    assert again["holds"]


def test_policy_misuse_raises_a_typed_error_naming_the_call(root):
    class WrongDevice(KeepEverything):
        id = "wrong-device@test"

        def prepare(self, run, step):
            run.models[step.models[0]].to("cuda:1")

    class BadStop(KeepEverything):
        id = "bad-stop@test"

        def prepare(self, run, step):
            run.decision.stop = "done"

    with pytest.raises(offsim.WrongDeviceError, match=r"vae.to\(device='cuda:1'\)"):
        offsim.evaluate(WrongDevice, W7900, root=root, min_capacity=False)
    with pytest.raises(offsim.UsageError, match="Decision.stop = 'done'"):
        offsim.evaluate(BadStop, W7900, root=root, min_capacity=False)

    class NoId:
        def prepare(self, run, step):
            pass

    with pytest.raises(offsim.UsageError, match="needs an `id`"):
        offsim.evaluate(NoId, W7900, root=root)
    with pytest.raises(offsim.ConfigError, match='unknown policy "nope"'):
        offsim.evaluate("nope", W7900, root=root)


def test_a_runs_objects_kept_past_its_callbacks_raise_instead_of_crashing(root):
    """The run, its models and its device point into the runner's frame: used after their callback returned
    (after the run, or in a later run) they raise offsim.UsageError naming the call, never read freed memory."""
    kept = {}

    class Keeps(EvictOthersFirst):
        id = "keeps@test"

        def prepare(self, run, step):
            kept.setdefault("run", run)
            kept.setdefault("vae", run.models["vae"])
            kept.setdefault("cuda", run.cuda)
            super().prepare(run, step)

    assert offsim.evaluate(Keeps, W7900, root=root, min_capacity=False)["completed"]
    with pytest.raises(offsim.UsageError, match=r"vae\.load_all\(\): .*only inside the policy's callbacks"):
        kept["vae"].weights.load_all()
    with pytest.raises(offsim.UsageError, match=r"vae\.\w+.*only inside the policy's callbacks"):
        kept["vae"].full_load_to_vram()
    with pytest.raises(offsim.UsageError, match=r"run\.cuda\.mem_get_info\(\)"):
        kept["cuda"].mem_get_info()
    with pytest.raises(offsim.UsageError, match=r"run\.allocate_buffer\(\"x\", bytes=1\)"):
        kept["run"].allocate_buffer("x", 1)

    class UsesAnEarlierRunsModel(EvictOthersFirst):
        id = "uses-an-earlier-runs-model@test"

        def prepare(self, run, step):
            kept["vae"].cur_vram_bytes()  # a model of the Keeps run, not of this one

    with pytest.raises(offsim.UsageError, match=r"vae\.device_bytes: .*only inside the policy's callbacks of that run"):
        offsim.evaluate(UsesAnEarlierRunsModel, W7900, root=root, min_capacity=False)


def test_residency_may_not_move_weights_and_buffers_take_sizes(root):
    class MovesInResidency(EvictOthersFirst):
        id = "moves-in-residency@test"

        def residency(self, run):
            run.models["vae"].full_unload_from_vram()
            return {}

    class NegativeBuffer(KeepEverything):
        id = "negative-buffer@test"

        def prepare(self, run, step):
            run.allocate_buffer("scratch", -5)

    class HugeBuffer(KeepEverything):
        id = "huge-buffer@test"

        def prepare(self, run, step):
            run.allocate_buffer("scratch", 2**61)

    with pytest.raises(offsim.UsageError, match=r"vae\.unload_all\(\): residency\(\) reports what is on the device"):
        offsim.evaluate(MovesInResidency, W7900, root=root, min_capacity=False)
    with pytest.raises(offsim.InvalidSizeError, match=r'run\.allocate_buffer\("scratch", bytes=-5\): bytes = -5 cannot be negative'):
        offsim.evaluate(NegativeBuffer, W7900, root=root, min_capacity=False)
    with pytest.raises(offsim.InvalidSizeError, match=r'run\.allocate_buffer\("scratch", bytes=2305843009213693952\): .*1EB'):
        offsim.evaluate(HugeBuffer, W7900, root=root, min_capacity=False)


def test_the_module_cli_exit_codes(root, tmp_path):
    """0 / 1 / 2 / 64 as offsim's own commands (docs/exit_codes.md)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(offsim.__path__[0]),
                                                        os.path.dirname(os.path.abspath(__file__))]))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "offsim", "--root", root, *args], capture_output=True, text=True,
                              env=env).returncode

    evict = ("eval", "--policy", "test_policy:EvictOthersFirst", "-s", W7900, "--no-min-capacity")
    assert run(*evict) == 0                 # eval reports
    assert run(*evict, "--strict") == 1     # P2 fails
    assert run("eval", "--policy", "invokeai@a6724695", "-s", W7900, "--no-min-capacity", "--strict") == 0
    assert run("check", "--decisions", os.path.join(root, "tests/corpus/decision_logs/invokeai-9305-fda7c42b-w7900-rocm.jsonl")) == 1
    header_only = tmp_path / "header.jsonl"
    with open(os.path.join(root, "tests/corpus/decision_logs/invokeai-9305-a6724695-w7900-rocm.jsonl")) as log:
        header_only.write_text(log.readline())
    assert run("check", "--decisions", str(header_only)) == 1  # nothing checked is no pass
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert run("eval", "--policy", "test_policy:EvictOthersFirst", "-s", str(bad)) == 2
    assert run("eval", "--policy", "no_such_module:X", "-s", W7900) == 64
    assert run("eval", "--policy", "nosuch", "-s", W7900) == 64
    assert run("check", "--bogus") == 64
    assert run("check", "--policy", "test_policy:KeepEverything", "--cases", "0") == 64
