"""Weight manifests (tensor lists) of the models in the seed scenarios, built from their published
architectures. A scenario loads a model as its real list of tensors, one allocation per tensor in
state-dict order (that is what `model.to("cuda")` / a checkpoint load does), so the allocator sees the
real size mix (many 32 MiB projections, a few 1 GiB embeddings, tiny norms), not one blob.

Sources read (architecture descriptions; nothing copied):
* FLUX.2-klein-9B transformer: black-forest-labs/flux2 src/flux2/model.py (Flux2, DoubleStreamBlock,
  SingleStreamBlock, Modulation, LastLayer, MLPEmbedder, QKNorm) with the Klein9BParams seen in copies of
  that file (hidden 4096, 32 heads, 8 double + 24 single blocks, context_in_dim 12288, mlp_ratio 3,
  in_channels 128, no guidance embedder). BFL state-dict names. 9,078,581,248 parameters.
* Qwen3-8B (FLUX.2-klein-9B text encoder): Qwen3ForCausalLM with hidden 4096, 36 layers, 32 query / 8 KV
  heads of 128, intermediate 12288, vocab 151936, untied lm_head, q/k RMS norms. 8,190,735,360 parameters
  (the published 8.2 B).
* Qwen-Image transformer: huggingface/diffusers src/diffusers/models/transformers/transformer_qwenimage.py
  (60 dual-stream blocks, 24 heads of 128, joint_attention_dim 3584, in 64, out 16, patch 2).
  20,430,401,088 parameters (published ~20.4 B). The B1 report ran "Qwen Image Edit 2511", whose
  transformer is this architecture.
* Qwen2.5-VL-7B (Qwen-Image text encoder): HF Qwen2_5_VLForConditionalGeneration, text hidden 3584, 28
  layers, 28 query / 4 KV heads, intermediate 18944, vocab 152064, untied lm_head, q/k/v biases; vision
  tower 32 blocks of 1280 (gated MLP 3420), patch 14, temporal patch 2, merger to 3584.
  8,292,166,656 parameters (published 8.29 B).

GGUF Q8_0 (B1's transformer): llama.cpp's Q8_0 block is 32 int8 values + one fp16 scale = 34 bytes per
32 elements; InvokeAI keeps GGUF tensors quantized on the device. Which tensors a GGUF file keeps
unquantized is the converter's choice and was not read from the actual file: here matrices are Q8_0 and
1-D tensors F32 (the llama.cpp convention). Stated as an assumption in every scenario result.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

BYTES = {"bf16": 2, "fp16": 2, "f32": 4, "i64": 8}


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple
    dtype: str  # bf16 | fp16 | f32 | q8_0

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        if self.dtype == "q8_0":
            assert self.numel % 32 == 0, self
            return self.numel // 32 * 34
        return self.numel * BYTES[self.dtype]


def _lin(out: list, name: str, fan_in: int, fan_out: int, bias: bool, dt: str):
    out.append(Tensor(f"{name}.weight", (fan_out, fan_in), dt))
    if bias:
        out.append(Tensor(f"{name}.bias", (fan_out,), dt))


def flux2_klein_9b_transformer(dt: str = "bf16") -> list[Tensor]:
    H, heads, depth, single, ctx, mlp, cin = 4096, 32, 8, 24, 12288, 3.0, 128
    hd = H // heads
    mh = int(H * mlp)
    t: list[Tensor] = []
    _lin(t, "img_in", cin, H, False, dt)
    _lin(t, "time_in.in_layer", 256, H, False, dt)
    _lin(t, "time_in.out_layer", H, H, False, dt)
    _lin(t, "txt_in", ctx, H, False, dt)
    for i in range(depth):
        for s in ("img", "txt"):
            p = f"double_blocks.{i}.{s}"
            _lin(t, f"{p}_attn.qkv", H, 3 * H, False, dt)
            t.append(Tensor(f"{p}_attn.norm.query_norm.scale", (hd,), dt))
            t.append(Tensor(f"{p}_attn.norm.key_norm.scale", (hd,), dt))
            _lin(t, f"{p}_attn.proj", H, H, False, dt)
            _lin(t, f"{p}_mlp.0", H, 2 * mh, False, dt)
            _lin(t, f"{p}_mlp.2", mh, H, False, dt)
    for i in range(single):
        p = f"single_blocks.{i}"
        _lin(t, f"{p}.linear1", H, 3 * H + 2 * mh, False, dt)
        _lin(t, f"{p}.linear2", H + mh, H, False, dt)
        t.append(Tensor(f"{p}.norm.query_norm.scale", (hd,), dt))
        t.append(Tensor(f"{p}.norm.key_norm.scale", (hd,), dt))
    _lin(t, "double_stream_modulation_img.lin", H, 6 * H, False, dt)
    _lin(t, "double_stream_modulation_txt.lin", H, 6 * H, False, dt)
    _lin(t, "single_stream_modulation.lin", H, 3 * H, False, dt)
    _lin(t, "final_layer.linear", H, cin, False, dt)
    _lin(t, "final_layer.adaLN_modulation.1", H, 2 * H, False, dt)
    return t


def qwen3_8b(dt: str = "bf16") -> list[Tensor]:
    H, L, nq, nkv, hd, inter, vocab = 4096, 36, 32, 8, 128, 12288, 151936
    t: list[Tensor] = [Tensor("model.embed_tokens.weight", (vocab, H), dt)]
    for i in range(L):
        p = f"model.layers.{i}"
        t.append(Tensor(f"{p}.input_layernorm.weight", (H,), dt))
        _lin(t, f"{p}.self_attn.q_proj", H, nq * hd, False, dt)
        _lin(t, f"{p}.self_attn.k_proj", H, nkv * hd, False, dt)
        _lin(t, f"{p}.self_attn.v_proj", H, nkv * hd, False, dt)
        _lin(t, f"{p}.self_attn.o_proj", nq * hd, H, False, dt)
        t.append(Tensor(f"{p}.self_attn.q_norm.weight", (hd,), dt))
        t.append(Tensor(f"{p}.self_attn.k_norm.weight", (hd,), dt))
        t.append(Tensor(f"{p}.post_attention_layernorm.weight", (H,), dt))
        _lin(t, f"{p}.mlp.gate_proj", H, inter, False, dt)
        _lin(t, f"{p}.mlp.up_proj", H, inter, False, dt)
        _lin(t, f"{p}.mlp.down_proj", inter, H, False, dt)
    t.append(Tensor("model.norm.weight", (H,), dt))
    t.append(Tensor("lm_head.weight", (vocab, H), dt))
    return t


def qwen_image_transformer(matrix_dt: str = "q8_0", vector_dt: str = "f32") -> list[Tensor]:
    D, L, hd, ctx, cin, cout, patch = 3072, 60, 128, 3584, 64, 16, 2
    ff = 4 * D
    t: list[Tensor] = []

    def lin(name, fi, fo, bias=True):
        t.append(Tensor(f"{name}.weight", (fo, fi), matrix_dt))
        if bias:
            t.append(Tensor(f"{name}.bias", (fo,), vector_dt))

    lin("time_text_embed.timestep_embedder.linear_1", 256, D)
    lin("time_text_embed.timestep_embedder.linear_2", D, D)
    t.append(Tensor("txt_norm.weight", (ctx,), vector_dt))
    lin("img_in", cin, D)
    lin("txt_in", ctx, D)
    for i in range(L):
        p = f"transformer_blocks.{i}"
        lin(f"{p}.img_mod.1", D, 6 * D)
        for n in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj"):
            lin(f"{p}.attn.{n}", D, D)
        lin(f"{p}.attn.to_out.0", D, D)
        lin(f"{p}.attn.to_add_out", D, D)
        for n in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
            t.append(Tensor(f"{p}.attn.{n}.weight", (hd,), vector_dt))
        lin(f"{p}.img_mlp.net.0.proj", D, ff)
        lin(f"{p}.img_mlp.net.2", ff, D)
        lin(f"{p}.txt_mod.1", D, 6 * D)
        lin(f"{p}.txt_mlp.net.0.proj", D, ff)
        lin(f"{p}.txt_mlp.net.2", ff, D)
    lin("norm_out.linear", D, 2 * D)
    lin("proj_out", D, patch * patch * cout)
    return t


def qwen25_vl_7b(dt: str = "bf16") -> list[Tensor]:
    H, L, nq, nkv, hd, inter, vocab = 3584, 28, 28, 4, 128, 18944, 152064
    V, VL, vinter, vheads = 1280, 32, 3420, 16
    t: list[Tensor] = [Tensor("visual.patch_embed.proj.weight", (V, 3, 2, 14, 14), dt)]
    for i in range(VL):
        p = f"visual.blocks.{i}"
        t.append(Tensor(f"{p}.norm1.weight", (V,), dt))
        t.append(Tensor(f"{p}.norm2.weight", (V,), dt))
        _lin(t, f"{p}.attn.qkv", V, 3 * V, True, dt)
        _lin(t, f"{p}.attn.proj", V, V, True, dt)
        _lin(t, f"{p}.mlp.gate_proj", V, vinter, True, dt)
        _lin(t, f"{p}.mlp.up_proj", V, vinter, True, dt)
        _lin(t, f"{p}.mlp.down_proj", vinter, V, True, dt)
    t.append(Tensor("visual.merger.ln_q.weight", (V,), dt))
    _lin(t, "visual.merger.mlp.0", 4 * V, 4 * V, True, dt)
    _lin(t, "visual.merger.mlp.2", 4 * V, H, True, dt)
    t.append(Tensor("model.embed_tokens.weight", (vocab, H), dt))
    for i in range(L):
        p = f"model.layers.{i}"
        t.append(Tensor(f"{p}.input_layernorm.weight", (H,), dt))
        _lin(t, f"{p}.self_attn.q_proj", H, nq * hd, True, dt)
        _lin(t, f"{p}.self_attn.k_proj", H, nkv * hd, True, dt)
        _lin(t, f"{p}.self_attn.v_proj", H, nkv * hd, True, dt)
        _lin(t, f"{p}.self_attn.o_proj", nq * hd, H, False, dt)
        t.append(Tensor(f"{p}.post_attention_layernorm.weight", (H,), dt))
        _lin(t, f"{p}.mlp.gate_proj", H, inter, False, dt)
        _lin(t, f"{p}.mlp.up_proj", H, inter, False, dt)
        _lin(t, f"{p}.mlp.down_proj", inter, H, False, dt)
    t.append(Tensor("model.norm.weight", (H,), dt))
    t.append(Tensor("lm_head.weight", (vocab, H), dt))
    return t


MANIFESTS = {
    "flux2_klein_9b_transformer_bf16": (flux2_klein_9b_transformer, 9_078_581_248),
    "qwen3_8b_bf16": (qwen3_8b, 8_190_735_360),
    "qwen_image_transformer_q8_0": (qwen_image_transformer, 20_430_401_088),
    "qwen25_vl_7b_bf16": (qwen25_vl_7b, 8_292_166_656),
}

# The project's committed manifests (traces/models/*.json, format offsim-model-manifest/1, written by
# traces/models/generate_manifests.py) are what the simulator's scenarios load, so the GPU run uses the
# same tensor lists when they are there (they travel with the working tree); the lists above are an
# independent derivation, used when the files are absent and cross-checked against them in the tests
# (same totals; the FLUX.2-klein transformer file uses diffusers names, where q/k/v are three tensors
# instead of BFL's fused qkv).
COMMITTED = {
    "flux2_klein_9b_transformer_bf16": "flux2-klein-9b-transformer.json",
    "qwen3_8b_bf16": "flux2-klein-9b-text-encoder.json",
    "qwen_image_transformer_q8_0": "qwen-image-edit-2511-transformer-q8_0.json",
    "qwen25_vl_7b_bf16": "qwen-image-text-encoder.json",
}
COMMITTED_FORMAT = "offsim-model-manifest/1"


def traces_models_dir() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("OFFSIM_MODELS_DIR") or os.path.normpath(os.path.join(here, "..", "..", "..", "traces", "models"))


def load_committed(name: str, models_dir: str | None = None) -> list[Tensor] | None:
    path = os.path.join(models_dir or traces_models_dir(), COMMITTED[name])
    if not os.path.isfile(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        d = json.load(f)
    if d.get("format") != COMMITTED_FORMAT:
        raise ValueError(f"{path}: format {d.get('format')!r}, expected {COMMITTED_FORMAT!r}")
    out = []
    for i, t in enumerate(d["tensors"]):
        x = Tensor(t["name"], tuple(t["shape"]), t["dtype"])
        if x.nbytes != t["bytes"]:
            raise ValueError(f"{path}: tensor {i} ({t['name']}): {t['bytes']} bytes, expected {x.nbytes} for "
                             f"{t['dtype']} {t['shape']}")
        out.append(x)
    if sum(x.nbytes for x in out) != d["total_bytes"]:
        raise ValueError(f"{path}: tensors sum to {sum(x.nbytes for x in out)}, total_bytes says {d['total_bytes']}")
    return out


def get(name: str) -> list[Tensor]:
    return get_with_source(name)[0]


def get_with_source(name: str) -> tuple[list[Tensor], str]:
    committed = load_committed(name)
    if committed is not None:
        return committed, "traces/models/" + COMMITTED[name]
    fn, _ = MANIFESTS[name]
    return fn(), "offsim_gpu.manifests (built-in derivation)"


def summary(tensors: list[Tensor]) -> dict:
    return {"tensors": len(tensors), "params": sum(x.numel for x in tensors), "bytes": sum(x.nbytes for x in tensors),
            "largest": max(x.nbytes for x in tensors), "dtypes": sorted({x.dtype for x in tensors})}
