"""CPU checks of real/gpu (run.sh and the offsim_gpu package): everything except the CUDA calls.

Run: /usr/bin/python3 -m unittest discover -s real/gpu/tests   (ctest: gpu_script_cpu_checks)
Needs torch (Debian's 1.13 CPU build is enough). Sizes stay tiny (64x64) because the CI machine has two
shared cores: a full-size CPU decode takes minutes (shared/ENVIRONMENT.md).
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
GPU_DIR = os.path.dirname(HERE)
sys.path.insert(0, GPU_DIR)

try:
    import torch  # noqa: F401
    HAVE_TORCH = True
except ImportError:  # pragma: no cover - the ctest registration skips before this
    HAVE_TORCH = False

if HAVE_TORCH:
    torch.set_num_threads(1)
    from offsim_gpu import (allocdiff, attention, ballast, common, manifests, pack, scenarios, twins,  # noqa: E402
                            vae_points)

MiB = 1 << 20
GiB = 1 << 30


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = GPU_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHON"] = sys.executable
    env["OMP_NUM_THREADS"] = "1"
    return env


_BUILT: dict = {}


def built(model: str, dtype: str):
    """Each CPU twin is built once per test run: building is most of the cost on two shared cores."""
    if (model, dtype) not in _BUILT:
        _BUILT[(model, dtype)] = twins.build(model, "cpu", twins.DTYPES[dtype])
    return _BUILT[(model, dtype)]


@unittest.skipUnless(HAVE_TORCH, "torch is not importable")
class TwinTests(unittest.TestCase):
    def test_parameter_counts_match_the_checkpoints(self):
        for model, expected in twins.EXPECTED_PARAMS.items():
            with self.subTest(model=model):
                self.assertEqual(twins.count_params(twins.construct(model)), expected)
        # The brief's numbers, spelled out (vae_architectures.md 5.1).
        self.assertEqual(twins.EXPECTED_PARAMS["sd"], 83_653_863)
        self.assertEqual(twins.EXPECTED_PARAMS["flux1"], 83_819_683)

    def test_encoder_decoder_split_matches_the_spec(self):
        m = twins.construct("qwen")
        enc = sum(p.numel() for n, p in m.named_parameters() if n.startswith("encoder."))
        dec = sum(p.numel() for n, p in m.named_parameters() if n.startswith("decoder."))
        self.assertAlmostEqual(enc / 1e6, 53.596, places=3)
        self.assertAlmostEqual(dec / 1e6, 73.295, places=3)
        sd = twins.construct("sd")
        self.assertAlmostEqual(sum(p.numel() for n, p in sd.named_parameters() if n.startswith("decoder.")) / 1e6, 49.490, places=2)

    def test_state_dicts_match_the_project_manifests(self):
        d = manifests.traces_models_dir()
        files = {"sd": "sd15-vae.json", "flux1": "flux1-dev-vae.json", "flux2": "flux2-vae.json", "qwen": "qwen-image-vae.json"}
        for model, f in files.items():
            path = os.path.join(d, f)
            if not os.path.isfile(path):
                self.skipTest(f"{path} not present")
            with self.subTest(model=model), open(path, encoding="utf-8") as fh:
                ref = json.load(fh)
                dt = {"fp16": torch.float16, "bf16": torch.bfloat16}[ref["dtype"]]
                m = twins.construct(model, dtype=dt)
                mine = {k: list(v.shape) for k, v in m.state_dict().items()}
                self.assertEqual(mine, {t["name"]: t["shape"] for t in ref["tensors"]})
                self.assertEqual(twins.weight_bytes(m), ref["total_bytes"])

    def test_diffusers_state_dict_names(self):
        names = {n for n, _ in twins.construct("sd").named_parameters()}
        for key in ("decoder.up_blocks.3.resnets.0.conv_shortcut.weight", "decoder.mid_block.attentions.0.to_out.0.weight",
                    "decoder.up_blocks.0.upsamplers.0.conv.weight", "encoder.down_blocks.0.downsamplers.0.conv.weight",
                    "quant_conv.weight", "post_quant_conv.bias"):
            self.assertIn(key, names)
        q = {n for n, _ in twins.construct("qwen").named_parameters()}
        for key in ("decoder.up_blocks.0.upsamplers.0.time_conv.weight", "decoder.mid_block.attentions.0.to_qkv.weight",
                    "encoder.down_blocks.5.time_conv.weight", "decoder.norm_out.gamma"):
            self.assertIn(key, q)

    def _forward(self, model, dtype, size):
        m = built(model, dtype)
        with torch.inference_mode(), attention.backend("math"):
            z = torch.randn(m.latent_shape(size, size), dtype=twins.DTYPES[dtype])
            y = m.decode_latents(z)
        self.assertEqual(tuple(y.shape), (1, 3, size, size))
        self.assertTrue(bool(torch.isfinite(y).all()))
        return m

    def test_tiny_decode_fp32_and_bf16(self):
        for model in ("sd", "flux1", "flux2"):
            for dt in ("fp32", "bf16"):
                with self.subTest(model=model, dtype=dt):
                    self._forward(model, dt, 64)
        with self.subTest(model="qwen", dtype="bf16"):
            self._forward("qwen", "bf16", 64)
        with self.subTest(model="qwen", dtype="fp32"):  # Debian's CPU Conv3d fp32 path is slow: 32x32
            self._forward("qwen", "fp32", 32)

    def test_tiny_encode_bf16(self):
        expected = {"sd": (1, 4, 8, 8), "flux1": (1, 16, 8, 8), "flux2": (1, 128, 4, 4), "qwen": (1, 16, 1, 8, 8)}
        for model, shape in expected.items():
            with self.subTest(model=model):
                m = built(model, "bf16")
                with torch.inference_mode(), attention.backend("math"):
                    z = m.encode_image(torch.rand(m.image_shape(64, 64), dtype=torch.bfloat16) * 2 - 1)
                self.assertEqual(tuple(z.shape), shape)

    def test_qwen_feature_cache_is_released_after_decode(self):
        m = built("qwen", "bf16")
        with torch.inference_mode():
            m.decode_latents(torch.randn(m.latent_shape(32, 32), dtype=torch.bfloat16))
        self.assertTrue(all(x is None for x in m._feat_map))
        self.assertEqual(len(m._feat_map), m._dec_conv_num)

    def test_attention_modes(self):
        m = built("sd", "fp32")
        z = torch.randn(m.latent_shape(64, 64))
        with torch.inference_mode():
            outs = {}
            for mode in ("math", "legacy-fp32-softmax", "auto", "efficient"):
                with attention.backend(mode):
                    outs[mode] = m.decode_latents(z)
        for mode in outs:
            self.assertLess(float((outs[mode] - outs["math"]).abs().max()), 1e-4, mode)
        with self.assertRaises(ValueError):
            with attention.backend("flash"):
                pass
        self.assertEqual(attention.current_mode(), "auto")
        q = built("qwen", "bf16")
        with self.assertRaises(ValueError), torch.inference_mode(), attention.backend("legacy-fp32-softmax"):
            q.decode_latents(torch.randn(q.latent_shape(32, 32), dtype=torch.bfloat16))


@unittest.skipUnless(HAVE_TORCH, "torch is not importable")
class AllocDiffTests(unittest.TestCase):
    def test_generator_is_deterministic_and_well_formed(self):
        a = allocdiff.generate_ops(7, 2000)
        self.assertEqual(a, allocdiff.generate_ops(7, 2000))
        self.assertNotEqual(a, allocdiff.generate_ops(8, 2000))
        kinds = {op[0] for op in a}
        self.assertTrue({"alloc", "free", "talloc", "tfree", "record", "sleep", "sync", "empty_cache", "mark"} <= kinds, kinds)
        live, peak, ever = {}, 0, set()
        for op in a:
            if op[0] in ("alloc", "talloc"):
                self.assertNotIn(op[1], ever)
                self.assertGreater(op[2], 0)
                self.assertIn(op[3], (0, 1))
                live[op[1]] = (op[0], op[2])
                ever.add(op[1])
                peak = max(peak, sum(n for _, n in live.values()))
            elif op[0] in ("free", "tfree"):
                kind, _ = live.pop(op[1])
                self.assertEqual(kind, "alloc" if op[0] == "free" else "talloc")
            elif op[0] == "record":
                self.assertEqual(live[op[1]][0], "talloc")
        self.assertEqual(live, {}, "tear-down frees everything")
        self.assertEqual(a[-3:], [["sync"], ["empty_cache"], ["mark", "end"]])
        self.assertGreater(peak, allocdiff.DEFAULT_LIMIT, "pressure phases must exceed the fraction limit")
        sizes = {op[2] for op in a if op[0] in ("alloc", "talloc")}
        self.assertTrue(sizes & set(allocdiff.BOUNDARY_SIZES))
        self.assertTrue(any(s <= MiB for s in sizes) and any(MiB < s <= 10 * MiB for s in sizes) and any(s > 10 * MiB for s in sizes))

    def test_execute_skips_ops_on_failed_requests(self):
        class Oom(Exception):
            pass

        class Failing(allocdiff.NullBackend):
            def alloc(self, n, stream):
                if n == 3:
                    raise Oom("CUDA out of memory. Tried to allocate 3 bytes")
                return super().alloc(n, stream)

        ops = [["alloc", 0, 3, 0], ["alloc", 1, 5, 0], ["free", 0], ["free", 1], ["mark", "m"], ["sync"]]
        out, marks = allocdiff.execute(ops, Failing(), (Oom,))
        self.assertEqual(len(out), len(ops))
        self.assertIn("oom", out[0])
        self.assertIsInstance(out[1], int)
        self.assertEqual(out[2], "skip")
        self.assertIsNone(out[3])
        self.assertEqual(marks[0]["op_index"], 4)

    def test_worker_dry_run_writes_the_ops_format(self):
        with tempfile.TemporaryDirectory() as d:
            allocdiff.worker("gc_0.6", "garbage_collection_threshold:0.6", True, [3], 200, allocdiff.DEFAULT_LIMIT, d, True)
            rec = allocdiff.load_ops(os.path.join(d, "gc_0.6", "seed3.ops.json"))
            self.assertEqual(rec["PYTORCH_CUDA_ALLOC_CONF"], "garbage_collection_threshold:0.6")
            self.assertEqual(len(rec["ops"]), len(rec["outcomes"]))
            self.assertTrue(rec["dry_run"])
            self.assertIsNone(rec["snapshot"])
            with self.assertRaises(ValueError):
                bad = os.path.join(d, "bad.json")
                common.atomic_write_json(bad, {"format": "x"})
                allocdiff.load_ops(bad)

    def test_configs_cover_the_brief(self):
        confs = {c for _, c, _ in allocdiff.CONFIGS}
        self.assertEqual(confs, {"", "expandable_segments:True", "max_split_size_mb:64", "roundup_power2_divisions:4",
                                 "garbage_collection_threshold:0.6"})
        self.assertTrue(all(f for n, c, f in allocdiff.CONFIGS if c.startswith("garbage")))


@unittest.skipUnless(HAVE_TORCH, "torch is not importable")
class VaeGridTests(unittest.TestCase):
    def test_grid_order_and_coverage(self):
        g = vae_points.grid()
        ids = [p.id for p in g]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual([p.tier for p in g], sorted(p.tier for p in g))
        first = [p for p in g if p.tier == 0]
        self.assertTrue(all(p.model == "qwen" for p in first))
        self.assertIn("qwen-decode-1248x832-bf16-efficient-default", ids[:2])
        self.assertIn("qwen-decode-1024x1024-fp16-efficient-default", ids[:5])
        self.assertLess(sum(vae_points.estimate_s(p) for p in first), 70, "tier 0 must fit the vae0 budget")
        for model in vae_points.MODELS:
            for (w, h) in vae_points.RESOLUTIONS:
                for dt in vae_points.DTYPE_NAMES:
                    for cd in vae_points.CUDNN:
                        self.assertIn(f"{model}-decode-{w}x{h}-{dt}-efficient-{cd}", ids)
        self.assertFalse(any(p.memfmt == "channels_last" and p.model == "qwen" for p in g))
        self.assertTrue(any(p.attn == "legacy-fp32-softmax" for p in g))
        self.assertTrue(all(vae_points.timeout_s(p) >= 30 for p in g))

    def test_point_dry_run_in_process(self):
        with tempfile.TemporaryDirectory() as d:
            p = vae_points.Point("sd", "decode", 64, 64, "fp32", attn="math", trace=True, warm=True)
            res = vae_points.run_point(p.to_dict(), d, dry_run=True)
            self.assertEqual(res["status"], "ok", res)
            self.assertEqual(res["param_count"], twins.EXPECTED_PARAMS["sd"])
            self.assertEqual(res["cold"]["output_shape"], [1, 3, 64, 64])
            self.assertIn("warm", res)
            marks = common.read_json(os.path.join(d, "marks", f"{p.id}.marks.json"))
            names = {r[0] for r in marks["rows"]}
            self.assertIn("decoder.up_blocks.3.resnets.0", names)
            self.assertIn("decoder.mid_block.attentions.0", names)

    def test_growth_arithmetic(self):
        before = {"reserved": 100, "allocated": 50, "num_ooms": 0, "num_alloc_retries": 0, "num_device_alloc": 1,
                  "driver_free": 1000}
        after = {"reserved": 300, "allocated": 60, "max_reserved": 500, "max_allocated": 400, "num_ooms": 1,
                 "num_alloc_retries": 2, "num_device_alloc": 4, "driver_free": 750}
        g = vae_points._growth(before, after)
        self.assertEqual(g["peak_reserved_growth"], 400)
        self.assertEqual(g["peak_allocated_growth"], 350)
        self.assertEqual(g["handled_ooms"], 1)
        self.assertEqual(g["outside_allocator_growth"], 250 - 200)

    def test_launchers_fork_spawn_and_timeout(self):
        with tempfile.TemporaryDirectory() as d:
            p = vae_points.Point("flux2", "decode", 64, 64, "bf16", attn="math")
            res = vae_points.Launcher(d, True, "fork").run(p, timeout=120)
            self.assertEqual((res["status"], res["launcher"]), ("ok", "fork"), res)
            self.assertNotEqual(res["pid"], os.getpid())
            old = os.environ.get("PYTHONPATH")
            os.environ["PYTHONPATH"] = _env()["PYTHONPATH"]
            try:
                res = vae_points.Launcher(d, True, "spawn").run(p, timeout=120)
            finally:
                if old is None:
                    os.environ.pop("PYTHONPATH")
                else:
                    os.environ["PYTHONPATH"] = old
            self.assertEqual((res["status"], res["launcher"]), ("ok", "spawn"), res)
            res = vae_points.Launcher(d, True, "fork").run(vae_points.Point("qwen", "decode", 64, 64, "fp32"), timeout=0.05)
            self.assertEqual(res["status"], "timeout")

    def test_planner_rescales(self):
        pl = vae_points.Planner()
        self.assertEqual(pl.scale(), 1.0)
        p = vae_points.Point("sd", "decode", 512, 512, "fp16")
        pl.observe(p, vae_points.estimate_s(p) * 2)
        self.assertAlmostEqual(pl.scale(), 2.0)


@unittest.skipUnless(HAVE_TORCH, "torch is not importable")
class ManifestAndScenarioTests(unittest.TestCase):
    def test_manifest_totals(self):
        for name, (fn, params) in manifests.MANIFESTS.items():
            with self.subTest(name=name):
                t = fn()
                self.assertEqual(sum(x.numel for x in t), params)
                self.assertEqual(len({x.name for x in t}), len(t))
        # B11: "fails allocating a 32 MiB text-encoder weight": Qwen3-8B's 4096 x 4096 bf16 projections.
        self.assertIn(32 * MiB, {x.nbytes for x in manifests.qwen3_8b()})
        # B1: "~20.7 GB" Q8_0 transformer and "~15.8 GB" text encoder, as InvokeAI logs them (MiB).
        self.assertAlmostEqual(manifests.summary(manifests.qwen_image_transformer())["bytes"] / MiB / 1000, 20.7, delta=0.05)
        self.assertAlmostEqual(manifests.summary(manifests.qwen25_vl_7b())["bytes"] / MiB / 1000, 15.8, delta=0.05)
        self.assertEqual(manifests.Tensor("w", (64, 32), "q8_0").nbytes, 64 * 34)

    def test_committed_manifests_agree_with_the_builtin_derivation(self):
        d = manifests.traces_models_dir()
        if not os.path.isdir(d):
            self.skipTest(f"{d} not present")
        for name, (fn, params) in manifests.MANIFESTS.items():
            with self.subTest(name=name):
                committed = manifests.load_committed(name)
                self.assertIsNotNone(committed, name)
                mine = fn()
                self.assertEqual(sum(x.nbytes for x in committed), sum(x.nbytes for x in mine))
                self.assertEqual(sum(x.numel for x in committed), params)
                self.assertEqual(manifests.get_with_source(name)[1], "traces/models/" + manifests.COMMITTED[name])
        with tempfile.TemporaryDirectory() as empty:
            self.assertIsNone(manifests.load_committed("qwen3_8b_bf16", empty))

    def test_lightx2v_dry_run_flow(self):
        with tempfile.TemporaryDirectory() as d:
            pre = scenarios.run_variant("lightx2v_klein9b_pre_fix", d, dry_run=True)
            self.assertEqual(pre["status"], "oom")  # the OOM ends the run, as in the field report
            self.assertEqual([c["status"] for c in pre["calls"]], ["ok", "oom"])
            self.assertTrue(any(s["stage"] == "call1.end" for s in pre["stages"]))
            self.assertFalse(any(s["stage"] == "call2.end" for s in pre["stages"]))
            post = scenarios.run_variant("lightx2v_klein9b_post_fix", d, dry_run=True)
            self.assertEqual(post["status"], "ok")
            self.assertEqual([c["status"] for c in post["calls"]], ["ok", "ok", "ok"])

    def test_invokeai_dry_run_decisions(self):
        with tempfile.TemporaryDirectory() as d:
            none = scenarios.run_variant("invokeai_qwen_decode_no_estimate", d, dry_run=True)
            rocm = scenarios.run_variant("invokeai_qwen_decode_rocm_estimate", d, dry_run=True)
        self.assertEqual(none["decision"]["working_memory"], 3 * GiB)
        self.assertEqual(none["decision"]["te_bytes_unloaded"], 0)
        self.assertEqual(rocm["decision"]["working_memory"], 5500 * 1248 * 832 * 2)
        self.assertGreaterEqual(rocm["decision"]["te_bytes_unloaded"], rocm["decision"]["to_free"])

    def test_ballast_method_fallback_and_verification(self):
        class FakeCuda:
            def __init__(self):
                self.used = 0

            def synchronize(self):
                pass

            def mem_get_info(self):
                return (80 * GiB - self.used, 80 * GiB)

            def memory_reserved(self):
                return 0

        class FakeTorch:
            cuda = FakeCuda()

        fake = FakeTorch()

        class Broken:
            name = "broken"

            def __init__(self):
                raise OSError("no library")

        class Lying:
            name = "lying"  # allocation "succeeds" but the driver free memory does not move

            def malloc(self, n):
                return 1

            def free(self, p):
                pass

        class Good:
            name = "good"

            def malloc(self, n):
                fake.cuda.used += n
                return 2

            def free(self, p):
                fake.cuda.used = 0

        saved = ballast.METHODS
        ballast.METHODS = (Broken, Lying, Good)
        try:
            b = ballast.Ballast()
            rep = b.allocate(fake, ballast.ballast_for_capacity(80 * GiB, int(31.35 * GiB)))
            self.assertEqual(rep["method"], "good")
            self.assertEqual([a["method"] for a in rep["attempts"]], ["broken", "lying", "good"])
            self.assertFalse(rep["attempts"][1]["verified"])
            self.assertEqual(fake.cuda.mem_get_info()[0], int(31.35 * GiB))
            b.release()
            self.assertEqual(fake.cuda.used, 0)
            ballast.METHODS = (Broken,)
            with self.assertRaises(RuntimeError):
                ballast.Ballast().allocate(fake, GiB)
        finally:
            ballast.METHODS = saved
        self.assertEqual(ballast.ballast_for_capacity(10, 20), 0)


@unittest.skipUnless(HAVE_TORCH, "torch is not importable")
class PackTests(unittest.TestCase):
    def test_pack_respects_the_cap_and_says_what_it_dropped(self):
        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as out:
            os.makedirs(os.path.join(src, "traces"))
            common.atomic_write_json(os.path.join(src, "result.json"), {"a": 1})
            with open(os.path.join(src, "traces", "big.snapshot.pickle"), "wb") as f:
                f.write(os.urandom(300_000))
            with open(os.path.join(src, "traces", "small.snapshot.pickle"), "wb") as f:
                f.write(os.urandom(1000))
            info = pack.pack_part(src, os.path.join(out, "x.tar.gz"), "part", cap=100_000)
            self.assertEqual([d["file"] for d in info["dropped"]], [os.path.join("traces", "big.snapshot.pickle")])
            with tarfile.open(os.path.join(out, "x.tar.gz")) as tar:
                names = tar.getnames()
                dropped = json.load(tar.extractfile("part/DROPPED.json"))
            self.assertIn("part/result.json", names)
            self.assertIn("part/traces/small.snapshot.pickle", names)
            self.assertEqual(dropped["dropped"][0]["bytes"], 300_000)

    def test_check_out_dir(self):
        with tempfile.TemporaryDirectory() as out:
            for f in common.OUT_FILES:
                open(os.path.join(out, f), "w").close()
            self.assertEqual(pack.check_out_dir(out)["problems"], [])
            self.assertLessEqual(len(common.OUT_FILES), common.OUT_MAX_FILES - 1, "room for one temp file")
            open(os.path.join(out, "stray.txt"), "w").close()
            os.mkdir(os.path.join(out, "sub"))
            probs = pack.check_out_dir(out)["problems"]
            self.assertTrue(any("stray.txt" in p for p in probs))
            self.assertTrue(any("folders" in p for p in probs))

    def test_commit_layout(self):
        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as root:
            common.update_metadata(src, "torch", {"torch": "2.11.0", "device_properties": {"name": "NVIDIA H100 80GB HBM3"}})
            common.update_metadata(src, "started", "2026-11-20T10:00:00+00:00")
            part = os.path.join(src, "_p")
            os.makedirs(part)
            common.atomic_write_json(os.path.join(part, "r.json"), {"x": 1})
            pack.pack_part(part, os.path.join(src, "allocdiff.tar.gz"), "allocdiff")
            shutil.rmtree(part)
            dest = pack.commit_layout(src, root)
            self.assertEqual(os.path.basename(dest), "2026-11-20-nvidia-h100-80gb-hbm3")
            self.assertTrue(os.path.isfile(os.path.join(dest, "allocdiff", "r.json")))
            meta = common.read_json(os.path.join(dest, "metadata.json"))
            self.assertEqual(meta["kind"], "real GPU measurement")
            self.assertTrue(os.path.isfile(os.path.join(dest, "run_metadata.json")))
            with self.assertRaises(FileExistsError):
                pack.commit_layout(src, root)
            evil = os.path.join(src, "evil.tar.gz")
            with tarfile.open(evil, "w:gz") as tar:
                info = tarfile.TarInfo("../escape.txt")
                info.size = 1
                tar.addfile(info, io.BytesIO(b"x"))
            with self.assertRaises(ValueError):
                pack.commit_layout(src, root, date="2026-11-21")


@unittest.skipUnless(HAVE_TORCH, "torch is not importable")
class RunScriptTests(unittest.TestCase):
    """run.sh itself, in --dry-run: argument handling, part order, skips, failure isolation, limits."""

    def run_sh(self, out, *args, **env):
        e = _env()
        e.update(env)
        e.pop("OUT", None)
        return subprocess.run(["bash", os.path.join(GPU_DIR, "run.sh"), out, "--dry-run", *args], env=e,
                              capture_output=True, text=True, timeout=600)

    def test_needs_an_output_folder(self):
        e = _env()
        e.pop("OUT", None)
        p = subprocess.run(["bash", os.path.join(GPU_DIR, "run.sh"), "--dry-run"], env=e, capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("output folder", p.stderr)

    def test_dry_run_end_to_end_with_an_injected_failure(self):
        with tempfile.TemporaryDirectory() as out:
            p = self.run_sh(out, "--skip", "vae,scenarios", OFFSIM_VAE_LIMIT="1", OFFSIM_INJECT_FAILURE="allocdiff")
            self.assertNotEqual(p.returncode, 0, "a failed part makes the exit status non-zero")
            log = p.stdout
            self.assertLess(log.index("== meta"), log.index("== vae0"))
            self.assertLess(log.index("== vae0"), log.index("== allocdiff"))
            self.assertIn("allocdiff: exit status 1 (earlier results are kept", log)
            meta = common.read_json(os.path.join(out, "metadata.json"))
            parts = meta["parts"]
            self.assertEqual(parts["meta"]["status"], "ok")
            self.assertEqual(parts["vae0"]["status"], "done")
            self.assertEqual(parts["allocdiff"]["status"], "failed")
            self.assertEqual(parts["scenarios"]["status"], "skipped")
            self.assertEqual(parts["vae"]["status"], "skipped")
            self.assertEqual(parts["finalize"]["problems"], [])
            self.assertTrue(meta["dry_run"])
            with open(os.path.join(out, "vae_peaks.jsonl"), encoding="utf-8") as f:
                lines = f.read().splitlines()
            self.assertEqual(len(lines), 1)
            self.assertEqual(json.loads(lines[0])["status"], "ok")
            self.assertTrue(os.path.isfile(os.path.join(out, "run.log")))
            self.assertEqual(pack.check_out_dir(out)["problems"], [])

    def test_only_runs_the_selected_parts(self):
        with tempfile.TemporaryDirectory() as out:
            p = self.run_sh(out, "--only", "allocdiff")
            self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
            meta = common.read_json(os.path.join(out, "metadata.json"))
            self.assertEqual(meta["parts"]["allocdiff"]["status"], "done")
            self.assertEqual(meta["parts"]["meta"]["status"], "skipped")
            with tarfile.open(os.path.join(out, "allocdiff.tar.gz")) as tar:
                names = tar.getnames()
            self.assertIn("allocdiff/expandable_segments/seed1.ops.json", names)
            self.assertIn("allocdiff/summary.json", names)


if __name__ == "__main__":
    unittest.main()
