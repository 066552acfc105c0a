"""Tests of python/offsim_decisions with Debian's python3 and no GPU: torch.cuda's memory functions are a
stand-in (FakeTorch) over a small device model in which freed blocks stay reserved until empty_cache(),
as PyTorch's caching allocator keeps them, so driver-free memory behaves as InvokeAI's cache sees it.

When OFFSIM_BIN names the built `offsim` binary (the ctest sets it), logs written here are also checked
by `offsim check --decisions`, so the writer and offsim's reader are tested against each other.

Run: /usr/bin/python3 -m unittest discover -s python/tests
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import types
import unittest
import warnings
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from offsim_decisions import DecisionLog, SchemaError, vae_workload  # noqa: E402
from offsim_decisions import from_eval, invokeai  # noqa: E402

GiB = 2**30
MiB = 2**20
ROOT = os.environ.get("OFFSIM_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))

# Seed bug InvokeAI PR #9305 (docs/seed_facts.md section 1): the W7900 as PyTorch reports it and the model
# sizes of traces/models (Q8_0 transformer, Qwen2.5-VL text encoder, Qwen-Image VAE).
W7900_TOTAL = int(44.98 * GiB)
TRANSFORMER = 21_723_699_456
TEXT_ENCODER = 16_584_333_312
VAE = 253_785_062
# Published decode peak at 1248x832 on the W7900 (traces/published/qwen-image-vae-decode-rocm-w7900-1248x832.json):
# two live tensors, the second the 3x3x3 Conv3d column buffer 96*27*1248*832*2 B that failed in the report.
DECODE_OTHER = 5_419_040_768
DECODE_COLUMN_BUFFER = 96 * 27 * 1248 * 832 * 2
FIXED_ESTIMATE = 5500 * 1248 * 832 * 2  # PR #9305's ROCm decode constant x H x W x element size


class FakeOutOfMemoryError(RuntimeError):
    pass


FakeOutOfMemoryError.__name__ = "OutOfMemoryError"


class FakeDevice:
    """Reserved grows by whole allocations and shrinks only on empty_cache(); free = total - reserved."""

    def __init__(self, total: int):
        self.total = total
        self.allocated = 0
        self.reserved = 0
        self.max_reserved = 0
        self.max_allocated = 0
        self.inactive_split = 0

    def alloc(self, n: int) -> None:
        cached = self.reserved - self.allocated
        grow = max(0, n - cached)
        if self.reserved + grow > self.total:
            raise FakeOutOfMemoryError(f"HIP out of memory. Tried to allocate {n / GiB:.2f} GiB")
        self.reserved += grow
        self.allocated += n
        self.max_reserved = max(self.max_reserved, self.reserved)
        self.max_allocated = max(self.max_allocated, self.allocated)

    def free(self, n: int) -> None:
        self.allocated -= n

    def empty_cache(self) -> None:
        self.reserved = self.allocated


def fake_torch(device: FakeDevice, hip: str | None = "6.4", available: bool = True):
    cuda = types.SimpleNamespace(
        is_available=lambda: available,
        mem_get_info=lambda d=None: (device.total - device.reserved, device.total),
        memory_allocated=lambda d=None: device.allocated,
        memory_reserved=lambda d=None: device.reserved,
        max_memory_reserved=lambda d=None: device.max_reserved,
        max_memory_allocated=lambda d=None: device.max_allocated,
        memory_stats=lambda d=None: {"inactive_split_bytes.all.current": device.inactive_split},
        get_device_name=lambda d=None: "AMD Radeon PRO W7900 (fake)",
        empty_cache=device.empty_cache,
        OutOfMemoryError=FakeOutOfMemoryError,
    )

    def reset(d=None):
        device.max_reserved = device.reserved
        device.max_allocated = device.allocated

    cuda.reset_peak_memory_stats = reset
    return types.SimpleNamespace(cuda=cuda, version=types.SimpleNamespace(hip=hip), __version__="2.9.1+rocm6.4")


def read_log(path: str) -> list:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class LogTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.path = os.path.join(self.tmp.name, "decisions.jsonl")
        self.device = FakeDevice(W7900_TOTAL)
        self.torch = fake_torch(self.device)

    def open(self, **kwargs) -> DecisionLog:
        kwargs.setdefault("policy_id", "test@1")
        kwargs.setdefault("free_memory_formula", "driver_free")
        kwargs.setdefault("torch_module", self.torch)
        kwargs.setdefault("measured", False)
        return DecisionLog(self.path, **kwargs)


class HeaderAndFile(LogTestCase):
    def test_header_names_schema_policy_device_and_torch(self):
        with self.open(policy_family="fam", p1_slack_bytes=MiB, alloc_conf="expandable_segments:True"):
            self.assertTrue(os.path.exists(self.path + ".partial"))
            self.assertFalse(os.path.exists(self.path))
        self.assertFalse(os.path.exists(self.path + ".partial"))
        (header,) = read_log(self.path)
        self.assertEqual(header["schema"], "offsim-decision/1")
        self.assertEqual(header["record"], "header")
        self.assertEqual(header["policy"], {"id": "test@1", "family": "fam", "version": "",
                                            "free_memory_formula": "driver_free", "p1_slack_bytes": MiB})
        self.assertEqual(header["device"]["total_bytes"], W7900_TOTAL)
        self.assertEqual(header["device"]["backend"], "rocm")  # torch.version.hip is set
        self.assertEqual(header["device"]["memory_source"], "torch.cuda")
        self.assertFalse(header["device"]["measured"])
        self.assertEqual(header["torch"], {"version": "2.9.1+rocm6.4", "hip": "6.4"})
        self.assertEqual(header["alloc_conf"], "expandable_segments:True")

    def test_measured_defaults_to_whether_a_device_answers(self):
        with DecisionLog(self.path, policy_id="p", torch_module=self.torch):
            pass
        self.assertTrue(read_log(self.path)[0]["device"]["measured"])
        with DecisionLog(self.path, policy_id="p", torch_module=fake_torch(self.device, available=False)):
            pass
        device = read_log(self.path)[0]["device"]
        self.assertFalse(device["measured"])
        self.assertEqual(device["memory_source"], "none")
        self.assertIsNone(device["total_bytes"])

    def test_without_torch_every_figure_is_null(self):
        with mock.patch.dict(sys.modules, {"torch": None}):  # import torch raises ImportError
            with DecisionLog(self.path, policy_id="p") as log:
                with log.stage("decode", kind="vae_decode"):
                    log.record_decision(models=["vae"], estimate=3 * GiB, free_memory=8 * GiB, stop="satisfied")
        header, decision, stage = read_log(self.path)
        self.assertIsNone(header["torch"])
        self.assertIsNone(header["device"]["backend"])
        self.assertIsNone(decision["memory"])
        self.assertIsNone(stage["memory"]["before"])
        self.assertIsNone(stage["memory"]["peak_reserved_bytes"])

    def test_without_a_device_a_workload_must_name_its_backend(self):
        # offsim's reader refuses a workload with no backend when the header names none: the shim refuses it
        # where it is made (docs/decision_log.md), not in the log that `offsim check --decisions` reads later.
        with mock.patch.dict(sys.modules, {"torch": None}):
            with DecisionLog(self.path, policy_id="p") as log:
                for workload in (vae_workload("qwen_image", "decode", 832, 1248, "bf16"),
                                 {"denoise": {"model": "qwen-image", "noise_shape": [1, 16, 104, 156], "dtype": "bf16"}}):
                    with self.assertRaisesRegex(SchemaError, r"workload\.(vae|denoise)\.backend: missing"):
                        log.stage("decode", kind="vae_decode", workload=workload)
                with log.stage("decode", kind="vae_decode",
                               workload=vae_workload("qwen_image", "decode", 832, 1248, "bf16", backend="rocm")):
                    pass
            with DecisionLog(self.path, policy_id="p", backend="cuda") as log:
                with log.stage("decode", kind="vae_decode", workload=vae_workload("qwen_image", "decode", 832, 1248, "bf16")):
                    pass
        self.assertEqual(read_log(self.path)[1]["workload"]["vae"]["backend"], "cuda")

    def test_importing_the_package_does_not_import_torch(self):
        code = ("import sys; sys.path.insert(0, %r); import offsim_decisions, offsim_decisions.invokeai; "
                "sys.exit(1 if 'torch' in sys.modules else 0)") % os.path.dirname(HERE)
        self.assertEqual(subprocess.run([sys.executable, "-c", code]).returncode, 0)

    def test_a_closed_log_refuses_more_lines(self):
        log = self.open()
        log.close()
        with self.assertRaises(SchemaError):
            log.record_decision(models=["m"])


class Decisions(LogTestCase):
    def test_explicit_decision_fields(self):
        with self.open() as log:
            with log.stage("decode", kind="vae_decode", workload=vae_workload("qwen_image", "decode", 832, 1248, "torch.bfloat16")):
                with log.decision(models=["vae"], estimate_passed=FIXED_ESTIMATE) as d:
                    d.set_estimate(FIXED_ESTIMATE, "invokeai qwen-image estimator")
                    d.set_free_memory(-5, "driver_free")
                    d.set_stop("exhausted")
                    d.evicted("transformer", 7 * GiB)
                    d.loaded("vae", VAE)
        _, decision, stage = read_log(self.path)
        self.assertEqual(decision["seq"], 0)
        self.assertEqual(decision["stage"], {"name": "decode", "kind": "vae_decode", "call": 0, "step": 0})
        self.assertEqual(decision["estimate"], {"bytes": FIXED_ESTIMATE, "passed": True, "passed_bytes": FIXED_ESTIMATE,
                                                "source": "invokeai qwen-image estimator"})
        self.assertEqual(decision["free_memory"], {"bytes": -5, "formula": "driver_free"})
        self.assertEqual(decision["stop_reason"], "exhausted")
        self.assertEqual(decision["evictions"], [{"model": "transformer", "bytes": 7 * GiB}])
        self.assertEqual(decision["loads"], [{"model": "vae", "bytes": VAE}])
        self.assertEqual(decision["weights_loaded_bytes"], VAE)
        self.assertEqual(decision["memory"]["free_bytes"], W7900_TOTAL)
        self.assertEqual(stage["decisions"], [0])
        self.assertEqual(stage["seq"], 1)
        # The log's backend fills a workload that names none; dtype spelled as torch prints it.
        self.assertEqual(stage["workload"]["vae"]["backend"], "rocm")
        self.assertEqual(stage["workload"]["vae"]["dtype"], "bfloat16")

    def test_call_site_that_passes_nothing(self):
        with self.open() as log:
            log.record_decision(models=["vae"], estimate=3 * GiB, estimate_source="default")
        decision = read_log(self.path)[1]
        self.assertEqual(decision["estimate"], {"bytes": 3 * GiB, "passed": False, "passed_bytes": None, "source": "default"})
        self.assertIsNone(decision["stage"])

    def test_loads_not_itemized(self):
        with self.open() as log:
            log.record_decision(models=["a", "b"], loads=None, weights_loaded=5 * GiB)
        decision = read_log(self.path)[1]
        self.assertIsNone(decision["loads"])
        self.assertEqual(decision["weights_loaded_bytes"], 5 * GiB)

    def test_values_offsim_would_refuse_are_refused_where_they_are_made(self):
        with self.open() as log:
            with self.assertRaisesRegex(SchemaError, "estimate.bytes: must be an integer"):
                log.decision().set_estimate(3.5 * GiB)
            with self.assertRaisesRegex(SchemaError, "estimate.bytes: must be >= 0"):
                log.decision().set_estimate(-1)
            with self.assertRaisesRegex(SchemaError, "stop_reason"):
                log.decision().set_stop("done")
            with self.assertRaisesRegex(SchemaError, "stage.kind"):
                log.stage("decode", kind="decoder")
            with self.assertRaisesRegex(SchemaError, "unknown keys"):
                log.stage("decode", workload={"vae": {"family": "sdxl", "resolution": 1024}})
            with self.assertRaisesRegex(SchemaError, "not the sum of loads"):
                with log.decision() as d:
                    d.loaded("vae", 10)
                    d.weights_loaded = 11
            with self.assertRaisesRegex(SchemaError, "height"):
                vae_workload("sdxl", "decode", 0, 1024, "fp16")
        # Nothing half-written: the refused decision left no line.
        self.assertEqual([r["record"] for r in read_log(self.path)], ["header"])


class Stages(LogTestCase):
    def test_t_warm_is_the_peak_reserved_growth_during_the_stage(self):
        self.device.alloc(2 * GiB)
        self.device.free(2 * GiB)  # 2 GiB cached from before: the stage reuses it
        self.device.max_reserved = 30 * GiB  # an earlier, unrelated peak the reset must forget
        with self.open() as log:
            with log.stage("decode", kind="vae_decode"):
                self.device.alloc(DECODE_OTHER)
                self.device.alloc(DECODE_COLUMN_BUFFER)
                self.device.free(DECODE_COLUMN_BUFFER)
                self.device.free(DECODE_OTHER)
        stage = read_log(self.path)[1]
        before, after = stage["memory"]["before"], stage["memory"]["after"]
        self.assertTrue(stage["memory"]["peak_reset"])
        self.assertEqual(before["reserved_bytes"], 2 * GiB)
        self.assertEqual(before["allocated_bytes"], 0)
        self.assertEqual(stage["memory"]["peak_reserved_bytes"], DECODE_OTHER + DECODE_COLUMN_BUFFER)
        self.assertEqual(after["reserved_bytes"], DECODE_OTHER + DECODE_COLUMN_BUFFER)
        self.assertEqual(stage["outcome"], {"completed": True, "oom": None, "handled_ooms": 0})

    def test_without_reset_an_earlier_peak_is_not_the_stage_peak(self):
        self.device.max_reserved = 30 * GiB
        with self.open(reset_peak=False) as log:
            with log.stage("decode", kind="vae_decode"):
                self.device.alloc(GiB)
        stage = read_log(self.path)[1]
        self.assertFalse(stage["memory"]["peak_reset"])
        self.assertIsNone(stage["memory"]["peak_reserved_bytes"])

    def test_unhandled_oom_is_logged_and_reraised(self):
        self.device.alloc(W7900_TOTAL - 4 * GiB)
        with self.open() as log:
            with self.assertRaises(FakeOutOfMemoryError):
                with log.stage("decode", kind="vae_decode"):
                    self.device.alloc(DECODE_COLUMN_BUFFER)
        outcome = read_log(self.path)[1]["outcome"]
        self.assertFalse(outcome["completed"])
        self.assertIn("Tried to allocate 5.01 GiB", outcome["oom"]["message"])

    def test_other_errors_are_not_ooms_and_handled_ooms_are_counted(self):
        with self.open() as log:
            with self.assertRaises(KeyError):
                with log.stage("decode") as stage:
                    stage.handled_oom()
                    raise KeyError("x")
        outcome = read_log(self.path)[1]["outcome"]
        self.assertEqual(outcome, {"completed": False, "oom": None, "handled_ooms": 1})

    def test_steps_and_calls_count_and_residency_is_reported(self):
        with self.open() as log:
            for _ in range(2):
                with log.stage("denoise", kind="denoise"):
                    pass
            log.new_call()
            with log.stage("denoise", kind="denoise") as stage:
                stage.report_model("transformer", 0, offloaded=True)
                stage.report_model("vae", VAE, offloaded=False, resident_by_design=True)

            @log.staged("decode", kind="vae_decode", workload=lambda h, w: vae_workload("sdxl", "decode", h, w, "fp16"))
            def decode(h, w):
                return h * w

            self.assertEqual(decode(1024, 1024), 1024 * 1024)
        stages = [r for r in read_log(self.path) if r["record"] == "stage"]
        self.assertEqual([(s["stage"]["call"], s["stage"]["step"]) for s in stages], [(0, 0), (0, 1), (1, 0), (1, 0)])
        self.assertEqual(stages[2]["models"][0], {"model": "transformer", "device_bytes": 0, "offloaded": True,
                                                   "resident_by_design": False})
        self.assertEqual(stages[3]["workload"]["vae"]["height"], 1024)


# ---- InvokeAI: a stand-in ModelCache with upstream's method names and the legacy decision (fda7c42b /
# a6724695: reserve = max(passed or default, default); vram_available = mem_get_info free + allocated -
# reserve - allocated; smallest-first offload of unlocked entries, then empty_cache(); load up to
# vram_available + MB). Written from the description in docs/seed_facts.md and policies/invokeai_model_cache.cpp.

class FakeCachedModel:
    def __init__(self, device: FakeDevice, total: int, resident: bool):
        self.device, self.total, self.vram = device, total, 0
        if resident:
            self.load(total)

    def total_bytes(self) -> int:
        return self.total

    def cur_vram_bytes(self) -> int:
        return self.vram

    def load(self, n: int) -> int:
        n = min(n, self.total - self.vram)
        if n > 0:
            self.device.alloc(n)
            self.vram += n
        return max(n, 0)

    def unload(self, n: int) -> int:
        n = min(n, self.vram)
        self.device.free(n)
        self.vram -= n
        return n


class FakeEntry:
    def __init__(self, key: str, model: FakeCachedModel):
        self.key, self.cached_model, self.locks = key, model, 0

    @property
    def is_locked(self) -> bool:
        return self.locks > 0


class FakeModelCache:
    def __init__(self, torch, device: FakeDevice, entries):
        self._torch, self._device = torch, device
        self._execution_device = types.SimpleNamespace(type="cuda")
        self._execution_device_working_mem_gb = 3.0
        self._max_vram_cache_size_gb = None
        self._cached_models = {e.key: e for e in entries}

    def lock(self, entry: FakeEntry, working_mem_bytes):
        entry.locks += 1
        self._load_locked_model(entry, working_mem_bytes)

    def _get_vram_available(self, working_mem_bytes):
        default = int(self._execution_device_working_mem_gb * GiB)
        reserve = max(working_mem_bytes or default, default)
        free, _ = self._torch.cuda.mem_get_info()
        allocated = self._torch.cuda.memory_allocated()
        return free + allocated - reserve - allocated

    def _offload_unlocked_models(self, required, working_mem_bytes=None):
        freed = 0
        for entry in sorted(self._cached_models.values(), key=lambda e: e.cached_model.total_bytes()):
            to_free = required - self._get_vram_available(working_mem_bytes)
            if to_free <= 0:
                break
            if entry.is_locked:
                continue
            freed += self._move_model_to_ram(entry, to_free)
        self._device.empty_cache()
        return freed

    def _move_model_to_ram(self, entry, vram_bytes_to_free):
        return entry.cached_model.unload(vram_bytes_to_free)

    def _move_model_to_vram(self, entry, vram_available):
        return entry.cached_model.load(vram_available)

    def _load_locked_model(self, cache_entry, working_mem_bytes=None):
        needed = cache_entry.cached_model.total_bytes() - cache_entry.cached_model.cur_vram_bytes()
        self._offload_unlocked_models(needed, working_mem_bytes)
        available = self._get_vram_available(working_mem_bytes)
        if available < 0:
            self._move_model_to_ram(cache_entry, -available)
            available = self._get_vram_available(working_mem_bytes)
        self._move_model_to_vram(cache_entry, available + MiB)


def seed_cache(device: FakeDevice, torch):
    entries = [FakeEntry("transformer", FakeCachedModel(device, TRANSFORMER, True)),
               FakeEntry("text_encoder", FakeCachedModel(device, TEXT_ENCODER, True)),
               FakeEntry("vae", FakeCachedModel(device, VAE, True))]
    return FakeModelCache(torch, device, entries), {e.key: e for e in entries}


def run_seed_decode(log: DecisionLog, cache: FakeModelCache, entries: dict, working_mem_bytes):
    """The Qwen-Image l2i step of PR #9305: lock the VAE with the call site's estimate, then decode."""
    workload = vae_workload("qwen_image", "decode", 832, 1248, "bf16")
    with log.stage("decode", kind="vae_decode", workload=workload) as stage:
        cache.lock(entries["vae"], working_mem_bytes)
        log.memory.torch().cuda.empty_cache()
        log_device = cache._device
        log_device.alloc(DECODE_OTHER)
        log_device.alloc(DECODE_COLUMN_BUFFER)
        log_device.free(DECODE_COLUMN_BUFFER)
        log_device.free(DECODE_OTHER)
        for key, entry in entries.items():
            stage.report_model(key, entry.cached_model.cur_vram_bytes(), offloaded=entry.cached_model.cur_vram_bytes() == 0)


class InvokeAIHook(LogTestCase):
    def open_invokeai(self):
        return invokeai.open_log(self.path, policy_version="test", torch_module=self.torch, measured=False)

    def test_pre_fix_decode_reserves_the_default_and_evicts_nothing(self):
        cache, entries = seed_cache(self.device, self.torch)
        with self.open_invokeai() as log:
            remove = invokeai.install_invokeai_hook(cache, log)
            with self.assertRaises(FakeOutOfMemoryError):
                run_seed_decode(log, cache, entries, None)
            remove()
        header, decision, stage = read_log(self.path)
        self.assertEqual(header["policy"]["id"], "invokeai@test")
        self.assertEqual(header["policy"]["p1_slack_bytes"], MiB)
        free = W7900_TOTAL - TRANSFORMER - TEXT_ENCODER - VAE
        self.assertEqual(decision["free_memory"]["bytes"], free)
        self.assertEqual(decision["estimate"]["bytes"], 3 * GiB)  # F_P - vram_available: the default reserve
        self.assertFalse(decision["estimate"]["passed"])
        self.assertIn("device_working_mem_gb = 3.0", decision["estimate"]["source"])
        self.assertEqual(decision["stop_reason"], "satisfied")  # the VAE is resident: needs nothing
        self.assertEqual(decision["evictions"], [])
        self.assertEqual(decision["loads"], [])
        self.assertEqual(stage["decisions"], [decision["seq"]])
        self.assertIn("Tried to allocate 5.01 GiB", stage["outcome"]["oom"]["message"])
        self.assertNotIn("_load_locked_model", cache.__dict__)  # removed

    def test_fixed_decode_evicts_smallest_first_and_fits(self):
        cache, entries = seed_cache(self.device, self.torch)
        with self.open_invokeai() as log:
            invokeai.install_invokeai_hook(cache, log)
            run_seed_decode(log, cache, entries, FIXED_ESTIMATE)
        _, decision, stage = read_log(self.path)
        self.assertEqual(decision["estimate"]["bytes"], FIXED_ESTIMATE)
        self.assertEqual(decision["estimate"]["passed_bytes"], FIXED_ESTIMATE)
        # Driver free does not grow until empty_cache() ends the pass: the text encoder (smaller) is unloaded
        # first and, the shortfall looking unchanged, the transformer by the same amount.
        self.assertEqual([e["model"] for e in decision["evictions"]], ["text_encoder", "transformer"])
        self.assertEqual(decision["evictions"][0]["bytes"], decision["evictions"][1]["bytes"])
        self.assertEqual(decision["stop_reason"], "satisfied")
        self.assertGreaterEqual(decision["free_memory"]["bytes"], FIXED_ESTIMATE)
        self.assertTrue(stage["outcome"]["completed"])
        self.assertEqual(stage["memory"]["peak_reserved_bytes"] - stage["memory"]["before"]["reserved_bytes"],
                         DECODE_OTHER + DECODE_COLUMN_BUFFER)

    def test_loading_a_model_that_does_not_fit_whole_is_exhausted(self):
        device = FakeDevice(16 * GiB)  # the 20.23 GiB transformer cannot fit whole
        torch = fake_torch(device)
        big = FakeEntry("transformer", FakeCachedModel(device, TRANSFORMER, False))
        cache = FakeModelCache(torch, device, [big])
        log = invokeai.open_log(self.path, policy_version="test", torch_module=torch, measured=False)
        with log:
            invokeai.install_invokeai_hook(cache, log)
            with log.stage("denoise", kind="denoise"):
                cache.lock(big, None)
        decision = read_log(self.path)[1]
        self.assertEqual(decision["stop_reason"], "exhausted")
        self.assertEqual(decision["loads"], [{"model": "transformer", "bytes": 13 * GiB + MiB}])
        self.assertEqual(decision["free_memory"]["bytes"] - decision["estimate"]["bytes"] + MiB,
                         decision["weights_loaded_bytes"])

    def test_class_level_hook_and_removal(self):
        cache, entries = seed_cache(self.device, self.torch)
        with self.open_invokeai() as log:
            remove = invokeai.install_invokeai_hook(FakeModelCache, log)
            self.assertIn("_load_locked_model", FakeModelCache.__dict__)
            run_seed_decode(log, cache, entries, FIXED_ESTIMATE)
            remove()
        self.assertIs(FakeModelCache.__dict__["_load_locked_model"].__name__, "_load_locked_model")
        self.assertEqual([r["record"] for r in read_log(self.path)], ["header", "decision", "stage"])

    def test_changed_internals_never_break_the_cache(self):
        with self.open_invokeai() as log:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                remove = invokeai.install_invokeai_hook(object(), log)
            remove()
            self.assertIn("no _load_locked_model", str(caught[0].message))

            class Renamed(FakeModelCache):
                _move_model_to_vram = None  # e.g. renamed upstream

                def _load_locked_model(self, cache_entry, working_mem_bytes=None):
                    self._offload_unlocked_models(0, working_mem_bytes)

            cache, entries = seed_cache(self.device, self.torch)
            renamed = Renamed(self.torch, self.device, list(entries.values()))
            invokeai.install_invokeai_hook(renamed, log)
            with log.stage("decode", kind="vae_decode"):
                renamed.lock(entries["vae"], None)
        decision = read_log(self.path)[1]
        self.assertIsNone(decision["free_memory"]["bytes"])
        self.assertEqual(decision["stop_reason"], "not_applicable")

    def test_a_log_that_cannot_be_written_never_breaks_the_cache(self):
        cache, entries = seed_cache(self.device, self.torch)
        log = self.open_invokeai()
        invokeai.install_invokeai_hook(cache, log)
        log.close()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cache.lock(entries["vae"], -1)  # a negative estimate and a closed log
            cache.lock(entries["vae"], FIXED_ESTIMATE)
        self.assertEqual(len(caught), 2, [str(w.message) for w in caught])
        self.assertTrue(all("not logged" in str(w.message) for w in caught))
        self.assertEqual(entries["vae"].cached_model.cur_vram_bytes(), VAE)


@unittest.skipUnless(importlib.util.find_spec("torch"), "torch is not installed (Debian: python3-torch)")
class RealTorchWithoutGpu(LogTestCase):
    """Debian's CPU torch, imported lazily by the shim itself: no device answers, so no figure is logged."""

    def test_lazy_import_of_a_cpu_torch(self):
        import torch

        if torch.cuda.is_available():
            self.skipTest("a GPU answers torch.cuda: this test is about a CPU-only torch")
        with DecisionLog(self.path, policy_id="p") as log:
            self.assertIs(log.memory.torch(), torch)
            with log.stage("decode", kind="vae_decode",
                           workload=vae_workload("sdxl", "decode", 1024, 1024, torch.bfloat16, backend="cuda")):
                log.record_decision(models=["vae"], estimate=torch.tensor(3 * GiB).item())
            self.assertTrue(log.memory.is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory.")))
            self.assertFalse(log.memory.is_oom(RuntimeError("shape mismatch")))
        header, decision, stage = read_log(self.path)
        self.assertEqual(header["torch"]["version"], str(torch.__version__))
        self.assertFalse(header["device"]["measured"])
        self.assertEqual(header["device"]["memory_source"], "none")
        self.assertIsNone(decision["memory"])
        self.assertEqual(stage["workload"]["vae"]["dtype"], "bfloat16")


class FromEval(unittest.TestCase):
    SCENARIO = {"device": {"name": "GPU"}, "stages": [
        {"name": "decode", "kind": "vae_decode", "models": ["vae"], "working_memory": "traces/x.json",
         "workload": {"vae": {"family": "sdxl", "op": "decode", "height": 1024, "width": 1024, "dtype": "fp16"}}}]}

    @staticmethod
    def stage(**over):
        st = {"stage": "decode", "call": 0, "step": 0, "estimate_bytes": 3 * GiB,
              "estimate_source": "invokeai/qwen-image@fda7c42b (passes no estimate); cache default device_working_mem_gb = 3.00 GiB",
              "free_memory_bytes": 8 * GiB, "weights_loaded_bytes": 0, "stop_reason": "satisfied", "evictions": [],
              "driver_free_before_bytes": 8 * GiB, "reserved_before_bytes": 10 * GiB, "allocated_before_bytes": 9 * GiB,
              "releasable_before_bytes": GiB - 4096, "stranded_before_bytes": 4096, "t_warm_bytes": 2 * GiB,
              "working_memory": "published: x", "handled_ooms": 0, "oom": None}
        st.update(over)
        return st

    def result(self, stages, calls):
        return {"policy": {"id": "invokeai@fda7c42b", "family": "invokeai", "upstream": "u", "free_memory": "driver_free"},
                "scenario": {"device_total_bytes": 24 * GiB, "platform": "cuda", "torch": "2.9", "alloc_conf": ""},
                "stages": stages, "calls": calls}

    def test_converts_a_completed_stage(self):
        calls = [{"call": 0, "completed": True, "offloaded": ["te"],
                  "claimed_offloaded_but_resident": [{"model": "te", "bytes": 5}]}]
        header, decision, stage = from_eval.convert(self.result([self.stage()], calls), self.SCENARIO, "e.json", "s.json")
        self.assertEqual(header["policy"]["p1_slack_bytes"], MiB)
        self.assertIsNone(header["created"])  # regenerating gives the same bytes
        self.assertFalse(decision["estimate"]["passed"])
        self.assertEqual(stage["memory"]["before"]["inactive_split_bytes"], 4096)
        self.assertEqual(stage["memory"]["peak_reserved_bytes"], 12 * GiB)
        self.assertEqual(stage["working_memory"], "traces/x.json")
        self.assertEqual(stage["models"], [{"model": "te", "device_bytes": 5, "offloaded": True, "resident_by_design": False}])

    def test_a_failed_weight_load_is_the_decisions_oom(self):
        oom = {"requested_bytes": GiB, "message": "OOM"}
        st = self.stage(oom=oom, working_memory=None, t_warm_bytes=None)
        _, decision, stage = from_eval.convert(self.result([st], [{"call": 0, "completed": False}]), self.SCENARIO, "e", "s")
        self.assertEqual(decision["oom"], {"message": "OOM", "requested_bytes": GiB})
        self.assertIsNone(stage["memory"]["before"])
        self.assertFalse(stage["outcome"]["completed"])

    def test_a_stage_decided_model_by_model_becomes_one_decision_per_model(self):
        scenario = {"device": {"name": "GPU"}, "stages": [
            {"name": "encode", "kind": "text_encode", "models": ["te1", "te2"]}]}
        loads = [{"model": "te1", "free_memory_bytes": 6 * GiB, "estimate_bytes": 3 * GiB,
                  "weights_loaded_bytes": GiB, "stop_reason": "satisfied", "evictions": 1},
                 {"model": "te2", "free_memory_bytes": 5 * GiB, "estimate_bytes": 3 * GiB,
                  "weights_loaded_bytes": GiB, "stop_reason": "satisfied", "evictions": 0}]
        st = self.stage(stage="encode", free_memory_bytes=5 * GiB, weights_loaded_bytes=2 * GiB, loads=loads,
                        evictions=[{"model": "vae", "bytes": 4096}], working_memory=None, t_warm_bytes=None)
        records = from_eval.convert(self.result([st], [{"call": 0, "completed": False}]), scenario, "e", "s")
        first, second, stage = records[1], records[2], records[3]
        self.assertEqual((first["models"], second["models"]), (["te1"], ["te2"]))
        # Each decision carries its own F_P and only its own weights: P1 compares 5 GiB with 3 + 1, not 3 + 2.
        self.assertEqual(second["free_memory"]["bytes"], 5 * GiB)
        self.assertEqual(second["weights_loaded_bytes"], GiB)
        self.assertEqual(second["loads"], [{"model": "te2", "bytes": GiB}])
        self.assertEqual(first["evictions"], [{"model": "vae", "bytes": 4096}])
        self.assertEqual(second["evictions"], [])
        self.assertEqual(stage["decisions"], [first["seq"], second["seq"]])

    def test_inconsistent_allocator_figures_are_refused(self):
        with self.assertRaises(from_eval.EvalFormatError):
            from_eval.convert(self.result([self.stage(stranded_before_bytes=0)], []), self.SCENARIO, "e", "s")


@unittest.skipUnless(os.environ.get("OFFSIM_BIN"), "OFFSIM_BIN not set: the offsim binary is not checked against the shim")
class OffsimReadsTheShim(LogTestCase):
    """The seed bug through the shim and the stand-in cache, checked by the real `offsim check --decisions`."""

    def check(self) -> subprocess.CompletedProcess:
        return subprocess.run([os.environ["OFFSIM_BIN"], "check", "--decisions", self.path, "--root", ROOT],
                              capture_output=True, text=True, timeout=120)

    def write_seed(self, working_mem_bytes):
        cache, entries = seed_cache(self.device, self.torch)
        with invokeai.open_log(self.path, policy_version="test", torch_module=self.torch, measured=False) as log:
            invokeai.install_invokeai_hook(cache, log)
            try:
                run_seed_decode(log, cache, entries, working_mem_bytes)
            except FakeOutOfMemoryError:
                pass

    def test_pre_fix_log_is_rejected_with_an_estimator_fault(self):
        self.write_seed(None)
        r = self.check()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("P2 FAIL", r.stdout)
        self.assertIn("P3 FAIL", r.stdout)
        self.assertIn("estimator fault", r.stdout)
        self.assertIn("published", r.stdout)

    def test_fixed_log_is_accepted(self):
        self.write_seed(FIXED_ESTIMATE)
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("P1 pass", r.stdout)
        self.assertIn("P2 pass", r.stdout)
        self.assertIn("P4 pass", r.stdout)

    def test_a_log_written_without_torch_is_read(self):
        # docs/decision_log.md's example runs without a GPU: what the shim accepts, offsim must judge (exit 0
        # or 1), never refuse as malformed.
        with mock.patch.dict(sys.modules, {"torch": None}):
            with DecisionLog(self.path, policy_id="mycache@1", free_memory_formula="driver free") as log:
                with log.stage("decode", kind="vae_decode",
                               workload=vae_workload("qwen_image", "decode", 832, 1248, "bf16", backend="rocm")):
                    log.record_decision(models=["vae"], estimate=3 * GiB, free_memory=40 * GiB, stop="satisfied")
        r = self.check()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("P2 FAIL", r.stdout)

    def test_malformed_log_exits_2_naming_line_and_field(self):
        self.write_seed(FIXED_ESTIMATE)
        with open(self.path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        decision = json.loads(lines[1])
        decision["estimate"]["bytes"] = "3GiB"
        lines[1] = json.dumps(decision)
        with open(self.path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        r = self.check()
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(self.path + ":2:", r.stderr)
        self.assertIn('"estimate.bytes"', r.stderr)


if __name__ == "__main__":
    unittest.main()
