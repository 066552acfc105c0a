"""Checks every model weight manifest in traces/models/: schema, totals, the 1% bound.

Run:  /usr/bin/python3 -m unittest discover -s traces/models -p 'test_*.py'
 or:  cd traces/models && /usr/bin/python3 -m unittest test_manifests
Standard library only.
"""

import glob
import json
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
FORMAT = "offsim-model-manifest/1"
ELEM_BYTES = {"bf16": 2, "fp16": 2, "f32": 4, "i64": 8}
TOP_KEYS = {"format", "name", "pipeline", "component", "dtype", "naming", "source", "derivation",
            "parameter_count", "tensor_count", "total_bytes", "relative_error_vs_published", "blocks", "tensors"}
SOURCE_KEYS = {"config", "config_file", "checkpoint", "published_size_bytes", "published_size_exact",
               "published_size_source"}
# components the issue asks for (at least)
REQUIRED = [
    "sd15-unet", "sd15-text-encoder", "sd15-vae",
    "sdxl-unet", "sdxl-text-encoder", "sdxl-text-encoder-2", "sdxl-vae",
    "flux1-dev-transformer", "flux1-dev-t5xxl", "flux1-dev-clip-l", "flux1-dev-vae",
    "flux2-klein-9b-transformer", "flux2-klein-9b-text-encoder", "flux2-vae",
    "qwen-image-transformer", "qwen-image-text-encoder", "qwen-image-vae",
    "qwen-image-edit-2511-transformer-q8_0",
    "wan21-t2v-14b-transformer", "wan21-t2v-1.3b-transformer", "wan21-umt5-xxl", "wan21-vae",
]
DIT = ["flux1-dev-transformer", "flux2-klein-9b-transformer", "qwen-image-transformer",
       "qwen-image-edit-2511-transformer-q8_0", "wan21-t2v-14b-transformer", "wan21-t2v-1.3b-transformer"]


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def load_all():
    out = {}
    for path in sorted(glob.glob(os.path.join(HERE, "*.json"))):
        with open(path, encoding="utf-8") as f:
            out[os.path.basename(path)[:-5]] = json.load(f)
    return out


class ManifestTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.manifests = load_all()

    def test_required_components_present(self):
        for name in REQUIRED:
            self.assertIn(name, self.manifests, "missing manifest %s.json" % name)

    def test_schema(self):
        for name, m in self.manifests.items():
            with self.subTest(name=name):
                self.assertEqual(m["format"], FORMAT)
                self.assertEqual(m["name"], name, "file name must equal manifest name")
                self.assertTrue(TOP_KEYS <= set(m), "missing keys %s" % (TOP_KEYS - set(m)))
                self.assertTrue(SOURCE_KEYS <= set(m["source"]))
                for k in ("pipeline", "component", "dtype", "naming", "derivation"):
                    self.assertIsInstance(m[k], str)
                    self.assertTrue(m[k])
                self.assertTrue(os.path.exists(os.path.join(HERE, "..", "..", m["source"]["config_file"])))
                self.assertIsInstance(m["tensors"], list)
                self.assertEqual(m["tensor_count"], len(m["tensors"]))
                names = [t["name"] for t in m["tensors"]]
                self.assertEqual(len(names), len(set(names)), "duplicate tensor names")

    def test_tensor_bytes_and_totals(self):
        for name, m in self.manifests.items():
            with self.subTest(name=name):
                total = 0
                params = 0
                for t in m["tensors"]:
                    self.assertTrue({"name", "shape", "dtype", "bytes"} <= set(t), t)
                    self.assertTrue(all(isinstance(d, int) and d > 0 for d in t["shape"]), t)
                    n = numel(t["shape"])
                    if t["dtype"] == "q8_0":
                        self.assertEqual(t["shape"][-1] % 32, 0, t)
                        self.assertEqual(t["bytes"], n // 32 * 34, t)
                    else:
                        self.assertIn(t["dtype"], ELEM_BYTES, t)
                        self.assertEqual(t["bytes"], n * ELEM_BYTES[t["dtype"]], t)
                    if t["dtype"] != "i64":
                        params += n
                    total += t["bytes"]
                self.assertEqual(total, m["total_bytes"])
                self.assertEqual(params, m["parameter_count"])

    def test_within_one_percent_of_published(self):
        for name, m in self.manifests.items():
            with self.subTest(name=name):
                pub = m["source"]["published_size_bytes"]
                self.assertIsInstance(pub, int, "no published size for %s" % name)
                self.assertTrue(m["source"]["published_size_source"])
                err = (m["total_bytes"] - pub) / pub
                self.assertAlmostEqual(err, m["relative_error_vs_published"], places=5)
                self.assertLess(abs(err), 0.01, "%s: %.4f%% off the published size" % (name, 100 * err))

    def test_exact_sizes_where_the_index_total_is_known(self):
        # safetensors index total_size is exactly the sum of tensor bytes: no tolerance
        for name, m in self.manifests.items():
            if m["source"]["published_size_exact"]:
                with self.subTest(name=name):
                    self.assertEqual(m["total_bytes"], m["source"]["published_size_bytes"])

    def test_blocks_and_phases(self):
        for name, m in self.manifests.items():
            with self.subTest(name=name):
                groups = {g["prefix"]: g for g in m["blocks"]}
                seen = {}
                for t in m["tensors"]:
                    if "block" not in t:
                        self.assertNotIn("phase", t)
                        self.assertFalse(any(t["name"].startswith(p + ".") for p in groups),
                                         "%s looks like a block tensor but has no block" % t["name"])
                        continue
                    g = groups[t["group"]]
                    self.assertTrue(t["name"].startswith("%s.%d." % (g["prefix"], t["block"])), t["name"])
                    self.assertLess(t["block"], g["count"])
                    if g["phases"]:
                        self.assertIn(t.get("phase"), g["phases"], t["name"])
                    seen.setdefault(g["prefix"], set()).add(t["block"])
                for p, g in groups.items():
                    self.assertEqual(seen.get(p), set(range(g["count"])), "%s: not every block has tensors" % p)
                if name in DIT:
                    self.assertTrue(m["blocks"], "DiT transformer without block annotation")
                    for g in m["blocks"]:
                        self.assertTrue(g["phases"])

    def test_blocks_are_identical_within_a_group(self):
        # LightX2V block/phase offload requires identical block structure (same shapes, dtypes)
        for name in DIT:
            m = self.manifests[name]
            for g in m["blocks"]:
                with self.subTest(name=name, group=g["prefix"]):
                    sig = {}
                    for t in m["tensors"]:
                        if t.get("group") == g["prefix"]:
                            local = t["name"][len("%s.%d." % (g["prefix"], t["block"])):]
                            sig.setdefault(t["block"], []).append((local, tuple(t["shape"]), t["dtype"], t.get("phase")))
                    first = sig[0]
                    for b, s in sig.items():
                        self.assertEqual(s, first, "block %d differs" % b)

    def test_q8_0_manifest_rule(self):
        m = self.manifests["qwen-image-edit-2511-transformer-q8_0"]
        for t in m["tensors"]:
            if len(t["shape"]) == 1 or numel(t["shape"]) <= 1024:
                self.assertEqual(t["dtype"], "f32", t["name"])
            else:
                self.assertEqual(t["dtype"], "q8_0", t["name"])
        # same tensor list as the bf16 Qwen-Image transformer (2511 = same dims)
        bf = self.manifests["qwen-image-transformer"]
        self.assertEqual([t["name"] for t in m["tensors"]], [t["name"] for t in bf["tensors"]])

    def test_generator_reproduces_files(self):
        gen = os.path.join(HERE, "generate_manifests.py")
        r = subprocess.run([sys.executable, gen, "--check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
