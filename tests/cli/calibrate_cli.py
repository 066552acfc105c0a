"""`offsim calibrate` end to end (ctest calibrate_cli; Debian's /usr/bin/python3, standard library only).

usage: calibrate_cli.py OFFSIM_BINARY SOURCE_DIR WORK_DIRECTORY

On the published Qwen-Image grids: the terminal table and --json; the --emit invokeai / comfyui code run by
this Python with stand-ins for torch and ComfyUI's model_management, equal to offsim's own fitted estimate at
every calibration point on both backends; a user's points file refused with exit 2 and its line named; the
calibrate JSON and a bare override file accepted by `offsim eval` and `offsim check --estimator-override`
(a constant that is too small must make P2 fail there); --strict. Exits 0 or raises.
"""
import json
import os
import subprocess
import sys
import types

EXIT_FAILED = 1
EXIT_ERROR = 2   # a bad input file (docs/exit_codes.md)
EXIT_USAGE = 64  # a wrong command line


def run(offsim, *args, expect=0):
    result = subprocess.run([offsim, *args], capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == expect, (args, result.returncode, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout, result.stderr


def fit_of(group, form):
    for f in group["fits"]:
        if f["form"] == form:
            return f
    raise AssertionError(f"no {form} fit in {group['model']} {group['op']} {group['backend']}")


class FakeTensor:
    def __init__(self, shape):
        self.shape = shape


class FakeParameter:
    def __init__(self, size):
        self.size = size

    def element_size(self):
        return self.size


class FakeVae:
    def __init__(self, size):
        self.size = size

    def parameters(self):
        return iter([FakeParameter(self.size)])


def invokeai_namespace(code, hip):
    """Runs emitted InvokeAI code with what vae_working_memory.py imports, torch.version.hip set as asked."""
    from typing import Literal
    torch = types.SimpleNamespace(Tensor=object, nn=types.SimpleNamespace(Module=object),
                                  version=types.SimpleNamespace(hip=hip))
    namespace = {"torch": torch, "Literal": Literal, "LATENT_SCALE_FACTOR": 8, "AutoencoderKLQwenImage": object}
    exec(compile(code, "<emitted invokeai>", "exec"), namespace)  # noqa: S102 - the code under test
    return namespace


def comfyui_namespace(code, amd):
    sizes = {"float16": 2, "bfloat16": 2, "float32": 4}
    model_management = types.SimpleNamespace(is_amd=lambda: amd, dtype_size=lambda dtype: sizes[dtype])
    namespace = {"model_management": model_management}
    exec(compile(code, "<emitted comfyui>", "exec"), namespace)  # noqa: S102
    return namespace


ES = {"fp16": 2, "bf16": 2, "fp32": 4}
TORCH_DTYPE = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def check_invokeai_code(code, doc, form):
    checked = 0
    for group in doc["groups"]:
        ns = invokeai_namespace(code, "6.2" if group["backend"] == "rocm" else None)
        fn = ns["estimate_vae_working_memory_qwen_image"]
        fit = fit_of(group, form)
        for judgement in fit["calibration"]:
            p = group["points"][judgement["point"]]
            h, w = p["height"], p["width"]
            shape = (1, 16, 1, h // 8, w // 8) if p["op"] == "decode" else (1, 3, 1, h, w)
            got = fn(p["op"], FakeTensor(shape), FakeVae(ES[p["dtype"]]))
            assert got == judgement["estimate_bytes"], (form, p, got, judgement["estimate_bytes"])
            assert got >= p["peak_reserved_growth_bytes"], ("the emitted estimate does not bound", p)
            checked += 1
    return checked


def check_comfyui_code(code, doc):
    checked = 0
    for group in doc["groups"]:
        ns = comfyui_namespace(code, group["backend"] == "rocm")
        fit = fit_of(group, "comfyui")
        for judgement in fit["calibration"]:
            p = group["points"][judgement["point"]]
            h, w = p["height"], p["width"]
            if p["op"] == "decode":
                got = ns["qwen_image_vae_memory_used_decode"]((1, 16, 1, h // 8, w // 8), TORCH_DTYPE[p["dtype"]])
            else:
                got = ns["qwen_image_vae_memory_used_encode"]((1, 3, 1, h, w), TORCH_DTYPE[p["dtype"]])
            assert got == judgement["estimate_bytes"], (p, got, judgement["estimate_bytes"])
            checked += 1
    return checked


def main():
    offsim, source, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    root = ["--root", source]
    calib = os.path.join(work, "qwen-calibration.json")

    # Terminal table and JSON on the published grids.
    out, _ = run(offsim, "calibrate", *root, "--model", "qwen_image", "--json", calib)
    for text in ("== qwen_image decode rocm", "== qwen_image encode cuda", "Linear in pixels?", "leave-one-out",
                 "invokeai/qwen-image@a6724695", "cuda-rtx4090-grid"):
        assert text in out, (text, out[-4000:])
    with open(calib) as f:
        doc = json.load(f)
    assert doc["format"] == "offsim-calibration/1"
    assert [(g["op"], g["backend"]) for g in doc["groups"]] == [("decode", "cuda"), ("decode", "rocm"),
                                                                  ("encode", "cuda"), ("encode", "rocm")], doc["groups"]
    assert [o["estimator"] for o in doc["overrides"]] == ["invokeai/qwen-image@8e71a8a5", "comfyui/vae-wan21@033046cc"]
    # JSON on stdout is the same document.
    stdout_doc, _ = run(offsim, "calibrate", *root, "--model", "qwen_image", "--json", "-")
    assert json.loads(stdout_doc)["groups"] == doc["groups"]

    # --emit: the code computes exactly offsim's fitted estimates.
    for form in ("invokeai", "invokeai_fixed", "piecewise"):
        code, warnings = run(offsim, "calibrate", *root, "--model", "qwen_image", "--emit", "invokeai", "--use-form", form,
                             "--date", "2026-12-07")
        assert "2026-12-07" in code and "cuda-rtx4090-grid" in code, code[:2000]
        assert warnings == "", warnings
        assert check_invokeai_code(code, doc, form) == sum(len(g["points"]) for g in doc["groups"])
    code, _ = run(offsim, "calibrate", *root, "--model", "qwen_image", "--emit", "comfyui", "--date", "2026-12-07")
    assert "model_management.is_amd()" in code
    assert check_comfyui_code(code, doc) == sum(len(g["points"]) for g in doc["groups"])
    # One backend only: the function still runs, and the tool warns that the other backend was not measured.
    emitted = os.path.join(work, "cuda-only.py")
    _, warnings = run(offsim, "calibrate", *root, "--model", "qwen_image", "--backend", "cuda", "--emit", "invokeai",
                      "--emit-out", emitted, "-q")
    assert "no rocm point" in warnings, warnings
    with open(emitted) as f:
        assert "is_rocm" not in f.read()
    _, err = run(offsim, "calibrate", *root, "--emit", "invokeai", expect=EXIT_USAGE)
    assert "--model" in err, err

    # A user's points file: refused with the line named.
    bad = os.path.join(work, "bad-points.csv")
    with open(bad, "w") as f:
        f.write("model,op,width,height,dtype,backend,peak_reserved_growth_bytes,source\n"
                "qwen_image,decode,512,512,fp16,cuda,1394606080,mine\n"
                "qwen_image,decode,768,768,fp16,,2971533312,mine\n")
    _, err = run(offsim, "calibrate", bad, expect=EXIT_ERROR)
    assert f"{bad}:3:" in err and "no backend" in err, err
    example = os.path.join(source, "docs/examples/calibration-points.csv")
    out, _ = run(offsim, "calibrate", example)
    assert "points selected" in out, out

    # A real/gpu/run.sh output folder, written by the run's own code (offsim_gpu.common / vae_points: the
    # record and metadata layout a GPU run leaves), with synthetic allocator statistics: no GPU run exists yet.
    sys.path.insert(0, os.path.join(source, "real/gpu"))
    from offsim_gpu import common, vae_points  # noqa: E402 - the writer under test's counterpart
    run_dir = os.path.join(work, "gpu-run")
    if os.path.isdir(run_dir):
        for name in os.listdir(run_dir):
            os.remove(os.path.join(run_dir, name))
    os.makedirs(run_dir, exist_ok=True)
    common.update_metadata(run_dir, "started", "2026-12-08T10:00:00+00:00")
    common.update_metadata(run_dir, "dry_run", False)
    common.update_metadata(run_dir, "torch", {"torch": "2.11.0", "torch_cuda": "13.0", "torch_hip": None,
                                              "device_properties": {"name": "NVIDIA H100 80GB HBM3"}})
    synthetic = {(1024, 1024): 5 << 30, (512, 512): 1 << 30}
    for (w, h), growth in synthetic.items():
        point = vae_points.Point("qwen", "decode", w, h, "fp16")
        keys = ("allocated", "reserved", "active", "requested", "max_allocated", "max_reserved", "max_active", "segments",
                "num_ooms", "num_alloc_retries", "num_device_alloc", "num_device_free", "driver_free", "driver_total")
        before = dict.fromkeys(keys, 0) | {"reserved": 300 << 20, "driver_free": 70 << 30, "driver_total": 80 << 30}
        after = dict(before) | {"max_reserved": before["reserved"] + growth}
        cold = {"label": "cold", "status": "ok", "before": before, "after": after, **vae_points._growth(before, after)}
        common.append_jsonl(os.path.join(run_dir, "vae_peaks.jsonl"),
                            {"id": point.id, "spec": point.to_dict(), "dry_run": False, "status": "ok", "cold": cold})
    oom = vae_points.Point("qwen", "decode", 2048, 2048, "fp32")
    common.append_jsonl(os.path.join(run_dir, "vae_peaks.jsonl"),
                        {"id": oom.id, "spec": oom.to_dict(), "dry_run": False, "status": "oom", "cold": {"status": "oom"}})
    gpu_doc = json.loads(run(offsim, "calibrate", run_dir, "--json", "-", "-q")[0])
    [gpu_group] = gpu_doc["groups"]
    assert (gpu_group["op"], gpu_group["backend"]) == ("decode", "cuda"), gpu_group
    got = {(p["width"], p["height"]): p["peak_reserved_growth_bytes"] for p in gpu_group["points"]}
    assert got == synthetic, got
    assert {p["provenance"] for p in gpu_group["points"]} == {"real GPU measurement"}
    assert gpu_group["points"][0]["source"] == "NVIDIA H100 80GB HBM3 2026-12-08", gpu_group["points"][0]
    assert any("1 records left out" in n for n in gpu_doc["notes"]), gpu_doc["notes"]

    # Overrides: the calibrate JSON, and a bare file with a decode constant far too small.
    scenario = os.path.join(source, "scenarios/default/qwen-image-1024-rtx4090.json")
    eval_args = ["eval", *root, "-s", scenario, "-p", "invokeai@8e71a8a5", "--no-min-capacity", "-q"]
    out, _ = run(offsim, *eval_args)
    assert "estimator override" not in out
    baseline_p2 = [line for line in out.splitlines() if "invokeai@8e71a8a5" in line]
    assert baseline_p2 and " FAIL" not in baseline_p2[0], out
    out, _ = run(offsim, *eval_args, "--estimator-override", calib)
    assert "estimator override: " in out and "constants overridden" in out, out
    tiny = os.path.join(work, "tiny-override.json")
    with open(tiny, "w") as f:
        json.dump({"format": "offsim-estimator-override/1", "estimator": "invokeai/qwen-image@8e71a8a5",
                   "constants": {"decode": {"cuda": 100, "rocm": 100}}, "provenance": "test: far too small"}, f)
    out, _ = run(offsim, *eval_args, "--estimator-override", tiny)
    assert "P2" in out and "FAIL" in out, out
    # The gate on the Qwen-Image pipelines only (this profile passes no FLUX.2 decode estimate: corpus entry B3).
    check_args = ["check", *root, "-p", "invokeai@8e71a8a5", "--property", "P2", "--cases", "30", "-q",
                  "--pipeline", "qwen-image-edit-2511-q8", "--pipeline", "qwen-image-bf16",
                  "--out", os.path.join(work, "check-out")]
    run(offsim, *check_args)
    run(offsim, *check_args, "--estimator-override", calib)
    out, _ = run(offsim, *check_args, "--estimator-override", tiny, expect=EXIT_FAILED)
    assert "FAIL" in out, out
    broken = os.path.join(work, "broken-override.json")
    with open(broken, "w") as f:
        json.dump({"format": "offsim-estimator-override/1", "estimator": "invokeai/qwen-image@00000000",
                   "constants": {"decode": {"cuda": 3000}}}, f)
    _, err = run(offsim, *eval_args, "--estimator-override", broken, expect=EXIT_ERROR)
    assert "unknown estimator" in err, err

    # --strict: ComfyUI's later Qwen-Image factors under-estimate the held-out RTX 4090 decodes (finding F2);
    # the merged InvokeAI constants bound every point.
    _, err = run(offsim, "calibrate", *root, "--model", "qwen_image", "--judge", "comfyui/vae-wan21@033046cc", "--strict",
                 "-q", expect=EXIT_FAILED)
    assert "P2 FAIL comfyui/vae-wan21@033046cc" in err, err
    run(offsim, "calibrate", *root, "--model", "qwen_image", "--judge", "invokeai/qwen-image@a6724695", "--strict", "-q")
    print("calibrate_cli: ok")


if __name__ == "__main__":
    main()
