#!/usr/bin/env python3
"""Generate offsim model weight manifests (one JSON per component) from published configs.

Standard library only. Run from anywhere:

    /usr/bin/python3 traces/models/generate_manifests.py          # (re)write traces/models/*.json
    /usr/bin/python3 traces/models/generate_manifests.py --check  # exit 1 if a file on disk differs

Every tensor list is rebuilt from the architecture config values stored in configs/*.json
(each with its "_source") and the module structure of the upstream class that loads the
checkpoint (diffusers / transformers / Wan-Video reference code, read, not imported). Each
manifest records the published checkpoint size it is checked against and the relative error.
Parameter names follow the state-dict naming of the checkpoint named in "naming".
"""

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_DIR = os.path.join(HERE, "configs")
FORMAT = "offsim-model-manifest/1"

# bytes per element for the plain dtypes; Q8_0 handled separately (blocks of 32 elems = 34 bytes)
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "f32": 4}
Q8_0_BLOCK_ELEMS = 32
Q8_0_BLOCK_BYTES = 34  # 32 int8 quants + one fp16 scale


def load_config(name):
    with open(os.path.join(CONFIG_DIR, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class TensorList:
    """Collects (name, shape, block group, block index, phase) in state-dict order."""

    def __init__(self):
        self.items = []
        self._ctx = None  # (group prefix, index, phase)

    def at(self, group=None, index=None, phase=None):
        self._ctx = (group, index, phase) if group is not None else None
        return self

    def add(self, name, shape, phase=None):
        entry = {"name": name, "shape": list(shape)}
        if self._ctx is not None:
            group, index, ctx_phase = self._ctx
            entry["_group"] = group
            entry["block"] = index
            ph = phase if phase is not None else ctx_phase
            if ph is not None:
                entry["phase"] = ph
        self.items.append(entry)

    # common module shapes -------------------------------------------------------------
    def linear(self, name, out_f, in_f, bias=True, phase=None):
        self.add(name + ".weight", (out_f, in_f), phase)
        if bias:
            self.add(name + ".bias", (out_f,), phase)

    def conv(self, name, out_c, in_c, kernel, bias=True, phase=None):
        self.add(name + ".weight", (out_c, in_c) + tuple(kernel), phase)
        if bias:
            self.add(name + ".bias", (out_c,), phase)

    def norm(self, name, dim, bias=True, phase=None):
        self.add(name + ".weight", (dim,), phase)
        if bias:
            self.add(name + ".bias", (dim,), phase)


# =========================================================================================
# diffusers UNet2DConditionModel (SD1.5, SDXL)
# =========================================================================================

def _unet_resnet(t, p, cin, cout, temb):
    t.norm(p + ".norm1", cin)
    t.conv(p + ".conv1", cout, cin, (3, 3))
    t.linear(p + ".time_emb_proj", cout, temb)
    t.norm(p + ".norm2", cout)
    t.conv(p + ".conv2", cout, cout, (3, 3))
    if cin != cout:
        t.conv(p + ".conv_shortcut", cout, cin, (1, 1))


def _unet_transformer2d(t, p, c, layers, cross_dim, linear_proj):
    t.norm(p + ".norm", c)
    if linear_proj:
        t.linear(p + ".proj_in", c, c)
    else:
        t.conv(p + ".proj_in", c, c, (1, 1))
    for k in range(layers):
        b = "%s.transformer_blocks.%d" % (p, k)
        t.norm(b + ".norm1", c)
        t.linear(b + ".attn1.to_q", c, c, bias=False)
        t.linear(b + ".attn1.to_k", c, c, bias=False)
        t.linear(b + ".attn1.to_v", c, c, bias=False)
        t.linear(b + ".attn1.to_out.0", c, c)
        t.norm(b + ".norm2", c)
        t.linear(b + ".attn2.to_q", c, c, bias=False)
        t.linear(b + ".attn2.to_k", c, cross_dim, bias=False)
        t.linear(b + ".attn2.to_v", c, cross_dim, bias=False)
        t.linear(b + ".attn2.to_out.0", c, c)
        t.norm(b + ".norm3", c)
        t.linear(b + ".ff.net.0.proj", c * 4 * 2, c)  # GEGLU
        t.linear(b + ".ff.net.2", c, c * 4)
    if linear_proj:
        t.linear(p + ".proj_out", c, c)
    else:
        t.conv(p + ".proj_out", c, c, (1, 1))


def build_unet(cfg):
    t = TensorList()
    boc = cfg["block_out_channels"]
    n = len(boc)
    temb = boc[0] * 4
    tl = cfg["transformer_layers_per_block"]
    tl = tl if isinstance(tl, list) else [tl] * n
    lin = cfg["use_linear_projection"]
    xdim = cfg["cross_attention_dim"]
    L = cfg["layers_per_block"]

    t.conv("conv_in", boc[0], cfg["in_channels"], (3, 3))
    t.linear("time_embedding.linear_1", temb, boc[0])
    t.linear("time_embedding.linear_2", temb, temb)
    if cfg.get("addition_embed_type") == "text_time":
        t.linear("add_embedding.linear_1", temb, cfg["projection_class_embeddings_input_dim"])
        t.linear("add_embedding.linear_2", temb, temb)

    cout = boc[0]
    for i, btype in enumerate(cfg["down_block_types"]):
        t.at("down_blocks", i)
        cin, cout = cout, boc[i]
        for j in range(L):
            _unet_resnet(t, "down_blocks.%d.resnets.%d" % (i, j), cin if j == 0 else cout, cout, temb)
            if btype.startswith("CrossAttn"):
                _unet_transformer2d(t, "down_blocks.%d.attentions.%d" % (i, j), cout, tl[i], xdim, lin)
        if i != n - 1:
            t.conv("down_blocks.%d.downsamplers.0.conv" % i, cout, cout, (3, 3))
    t.at(None)  # mid_block is a single module (no index): listed as non-block
    c = boc[-1]
    _unet_resnet(t, "mid_block.resnets.0", c, c, temb)
    _unet_transformer2d(t, "mid_block.attentions.0", c, tl[-1], xdim, lin)
    _unet_resnet(t, "mid_block.resnets.1", c, c, temb)

    rev = list(reversed(boc))
    rtl = list(reversed(tl))
    out_c = rev[0]
    for i, btype in enumerate(cfg["up_block_types"]):
        t.at("up_blocks", i)
        prev_out = out_c
        out_c = rev[i]
        in_c = rev[min(i + 1, n - 1)]
        for j in range(L + 1):
            skip = in_c if j == L else out_c
            rin = prev_out if j == 0 else out_c
            _unet_resnet(t, "up_blocks.%d.resnets.%d" % (i, j), rin + skip, out_c, temb)
            if btype.startswith("CrossAttn"):
                _unet_transformer2d(t, "up_blocks.%d.attentions.%d" % (i, j), out_c, rtl[i], xdim, lin)
        if i != n - 1:
            t.conv("up_blocks.%d.upsamplers.0.conv" % i, out_c, out_c, (3, 3))
    t.at(None)
    t.norm("conv_norm_out", boc[0])
    t.conv("conv_out", cfg["out_channels"], boc[0], (3, 3))
    groups = [{"prefix": "down_blocks", "count": n, "phases": []},
              {"prefix": "up_blocks", "count": n, "phases": []}]
    return t, groups


# =========================================================================================
# diffusers AutoencoderKL / AutoencoderKLFlux2 (2-D VAE, Encoder/Decoder in vae.py)
# =========================================================================================

def _vae_resnet(t, p, cin, cout):
    t.norm(p + ".norm1", cin)
    t.conv(p + ".conv1", cout, cin, (3, 3))
    t.norm(p + ".norm2", cout)
    t.conv(p + ".conv2", cout, cout, (3, 3))
    if cin != cout:
        t.conv(p + ".conv_shortcut", cout, cin, (1, 1))


def _vae_mid(t, p, c):
    _vae_resnet(t, p + ".resnets.0", c, c)
    t.norm(p + ".attentions.0.group_norm", c)
    for q in ("to_q", "to_k", "to_v", "to_out.0"):
        t.linear(p + ".attentions.0." + q, c, c)
    _vae_resnet(t, p + ".resnets.1", c, c)


def build_vae2d(cfg):
    t = TensorList()
    boc = cfg["block_out_channels"]
    n = len(boc)
    L = cfg["layers_per_block"]
    lat = cfg["latent_channels"]
    # encoder
    t.conv("encoder.conv_in", boc[0], cfg["in_channels"], (3, 3))
    cout = boc[0]
    for i in range(n):
        cin, cout = cout, boc[i]
        for j in range(L):
            _vae_resnet(t, "encoder.down_blocks.%d.resnets.%d" % (i, j), cin if j == 0 else cout, cout)
        if i != n - 1:
            t.conv("encoder.down_blocks.%d.downsamplers.0.conv" % i, cout, cout, (3, 3))
    _vae_mid(t, "encoder.mid_block", boc[-1])
    t.norm("encoder.conv_norm_out", boc[-1])
    t.conv("encoder.conv_out", 2 * lat, boc[-1], (3, 3))
    # decoder
    t.conv("decoder.conv_in", boc[-1], lat, (3, 3))
    _vae_mid(t, "decoder.mid_block", boc[-1])
    rev = list(reversed(boc))
    out_c = rev[0]
    for i in range(n):
        prev, out_c = out_c, rev[i]
        for j in range(L + 1):
            _vae_resnet(t, "decoder.up_blocks.%d.resnets.%d" % (i, j), prev if j == 0 else out_c, out_c)
        if i != n - 1:
            t.conv("decoder.up_blocks.%d.upsamplers.0.conv" % i, out_c, out_c, (3, 3))
    t.norm("decoder.conv_norm_out", boc[0])
    t.conv("decoder.conv_out", cfg["out_channels"], boc[0], (3, 3))
    if cfg.get("use_quant_conv"):
        t.conv("quant_conv", 2 * lat, 2 * lat, (1, 1))
    if cfg.get("use_post_quant_conv"):
        t.conv("post_quant_conv", lat, lat, (1, 1))
    extra_f32 = []
    if cfg.get("batch_norm_running_stats"):
        c = numel(cfg["patch_size"]) * lat
        t.add("bn.running_mean", (c,))
        t.add("bn.running_var", (c,))
        t.add("bn.num_batches_tracked", ())
        extra_f32 = ["bn.num_batches_tracked"]
    return t, [], extra_f32


# =========================================================================================
# diffusers AutoencoderKLQwenImage / AutoencoderKLWan (Wan 2.1 causal 3-D VAE)
# =========================================================================================

def _c3(t, name, cout, cin, k):
    t.conv(name, cout, cin, (k, k, k) if isinstance(k, int) else k)


def _rms(t, name, dim, images):
    t.add(name + ".gamma", (dim, 1, 1) if images else (dim, 1, 1, 1))


def _w_resblock(t, p, cin, cout):
    _rms(t, p + ".norm1", cin, False)
    _c3(t, p + ".conv1", cout, cin, 3)
    _rms(t, p + ".norm2", cout, False)
    _c3(t, p + ".conv2", cout, cout, 3)
    if cin != cout:
        _c3(t, p + ".conv_shortcut", cout, cin, 1)


def _w_mid(t, p, c):
    _w_resblock(t, p + ".resnets.0", c, c)
    _rms(t, p + ".attentions.0.norm", c, True)
    t.conv(p + ".attentions.0.to_qkv", 3 * c, c, (1, 1))
    t.conv(p + ".attentions.0.proj", c, c, (1, 1))
    _w_resblock(t, p + ".resnets.1", c, c)


def _w_resample(t, p, dim, mode):
    if mode in ("upsample2d", "upsample3d"):
        t.conv(p + ".resample.1", dim // 2, dim, (3, 3))
        if mode == "upsample3d":
            _c3(t, p + ".time_conv", dim * 2, dim, (3, 1, 1))
    else:
        t.conv(p + ".resample.1", dim, dim, (3, 3))
        if mode == "downsample3d":
            _c3(t, p + ".time_conv", dim, dim, (3, 1, 1))


def build_vae3d(cfg):
    t = TensorList()
    dim, z = cfg["base_dim"], cfg["z_dim"]
    mult, nres = cfg["dim_mult"], cfg["num_res_blocks"]
    tdown = cfg["temperal_downsample"]
    tup = list(reversed(tdown))
    # encoder (z_dim * 2 output channels)
    dims = [dim * u for u in [1] + mult]
    _c3(t, "encoder.conv_in", dims[0], cfg["input_channels"], 3)
    k = 0
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
        for _ in range(nres):
            _w_resblock(t, "encoder.down_blocks.%d" % k, cin, cout)
            k += 1
            cin = cout
        if i != len(mult) - 1:
            _w_resample(t, "encoder.down_blocks.%d" % k, cout, "downsample3d" if tdown[i] else "downsample2d")
            k += 1
    _w_mid(t, "encoder.mid_block", dims[-1])
    _rms(t, "encoder.norm_out", dims[-1], False)
    _c3(t, "encoder.conv_out", 2 * z, dims[-1], 3)
    _c3(t, "quant_conv", 2 * z, 2 * z, 1)
    _c3(t, "post_quant_conv", z, z, 1)
    # decoder
    dims = [dim * u for u in [mult[-1]] + mult[::-1]]
    _c3(t, "decoder.conv_in", dims[0], z, 3)
    _w_mid(t, "decoder.mid_block", dims[0])
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
        if i > 0:
            cin = cin // 2
        cur = cin
        for j in range(nres + 1):
            _w_resblock(t, "decoder.up_blocks.%d.resnets.%d" % (i, j), cur, cout)
            cur = cout
        if i != len(mult) - 1:
            _w_resample(t, "decoder.up_blocks.%d.upsamplers.0" % i, cout, "upsample3d" if tup[i] else "upsample2d")
    _rms(t, "decoder.norm_out", dims[-1], False)
    _c3(t, "decoder.conv_out", cfg["input_channels"], dims[-1], 3)
    # reorder: diffusers state dict order is encoder, quant_conv, post_quant_conv, decoder (already)
    return t, []


# =========================================================================================
# Text encoders: CLIP (transformers), T5 / UMT5 encoder (transformers), Qwen3, Qwen2.5-VL
# =========================================================================================

def build_clip(cfg):
    t = TensorList()
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    t.add("text_model.embeddings.token_embedding.weight", (V, H))
    t.add("text_model.embeddings.position_embedding.weight", (cfg["max_position_embeddings"], H))
    for i in range(cfg["num_hidden_layers"]):
        p = "text_model.encoder.layers.%d" % i
        t.at("text_model.encoder.layers", i, "attn")
        for q in ("k_proj", "v_proj", "q_proj", "out_proj"):
            t.linear(p + ".self_attn." + q, H, H)
        t.norm(p + ".layer_norm1", H)
        t.at("text_model.encoder.layers", i, "mlp")
        t.linear(p + ".mlp.fc1", I, H)
        t.linear(p + ".mlp.fc2", H, I)
        t.norm(p + ".layer_norm2", H)
    t.at(None)
    t.norm("text_model.final_layer_norm", H)
    if cfg.get("projection_dim"):
        t.linear("text_projection", cfg["projection_dim"], H, bias=False)
    return t, [{"prefix": "text_model.encoder.layers", "count": cfg["num_hidden_layers"], "phases": ["attn", "mlp"]}]


def build_t5_encoder(cfg):
    t = TensorList()
    D, F, V = cfg["d_model"], cfg["d_ff"], cfg["vocab_size"]
    inner = cfg["d_kv"] * cfg["num_heads"]
    t.add("shared.weight", (V, D))
    for i in range(cfg["num_layers"]):
        p = "encoder.block.%d" % i
        t.at("encoder.block", i, "attn")
        for q in ("q", "k", "v"):
            t.linear(p + ".layer.0.SelfAttention." + q, inner, D, bias=False)
        t.linear(p + ".layer.0.SelfAttention.o", D, inner, bias=False)
        if i == 0 or cfg["per_layer_relative_bias"]:
            t.add(p + ".layer.0.SelfAttention.relative_attention_bias.weight",
                  (cfg["relative_attention_num_buckets"], cfg["num_heads"]))
        t.norm(p + ".layer.0.layer_norm", D, bias=False)
        t.at("encoder.block", i, "mlp")
        t.linear(p + ".layer.1.DenseReluDense.wi_0", F, D, bias=False)
        t.linear(p + ".layer.1.DenseReluDense.wi_1", F, D, bias=False)
        t.linear(p + ".layer.1.DenseReluDense.wo", D, F, bias=False)
        t.norm(p + ".layer.1.layer_norm", D, bias=False)
    t.at(None)
    t.norm("encoder.final_layer_norm", D, bias=False)
    return t, [{"prefix": "encoder.block", "count": cfg["num_layers"], "phases": ["attn", "mlp"]}]


def _decoder_lm_layers(t, prefix, cfg, qkv_bias, qk_norm):
    H, I = cfg["hidden_size"], cfg["intermediate_size"]
    hd = cfg.get("head_dim") or H // cfg["num_attention_heads"]
    q_dim = cfg["num_attention_heads"] * hd
    kv_dim = cfg["num_key_value_heads"] * hd
    for i in range(cfg["num_hidden_layers"]):
        p = "%s.%d" % (prefix, i)
        t.at(prefix, i, "attn")
        t.norm(p + ".input_layernorm", H, bias=False)
        t.linear(p + ".self_attn.q_proj", q_dim, H, bias=qkv_bias)
        t.linear(p + ".self_attn.k_proj", kv_dim, H, bias=qkv_bias)
        t.linear(p + ".self_attn.v_proj", kv_dim, H, bias=qkv_bias)
        t.linear(p + ".self_attn.o_proj", H, q_dim, bias=False)
        if qk_norm:
            t.norm(p + ".self_attn.q_norm", hd, bias=False)
            t.norm(p + ".self_attn.k_norm", hd, bias=False)
        t.at(prefix, i, "mlp")
        t.norm(p + ".post_attention_layernorm", H, bias=False)
        t.linear(p + ".mlp.gate_proj", I, H, bias=False)
        t.linear(p + ".mlp.up_proj", I, H, bias=False)
        t.linear(p + ".mlp.down_proj", H, I, bias=False)
    t.at(None)


def build_qwen3(cfg):
    t = TensorList()
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    t.add("model.embed_tokens.weight", (V, H))
    _decoder_lm_layers(t, "model.layers", cfg, qkv_bias=cfg.get("attention_bias", False), qk_norm=True)
    t.norm("model.norm", H, bias=False)
    if not cfg["tie_word_embeddings"]:
        t.add("lm_head.weight", (V, H))
    return t, [{"prefix": "model.layers", "count": cfg["num_hidden_layers"], "phases": ["attn", "mlp"]}]


def build_qwen25_vl(cfg):
    t = TensorList()
    v = cfg["vision_config"]
    vh, vi = v["hidden_size"], v["intermediate_size"]
    t.add("visual.patch_embed.proj.weight",
          (vh, v["in_chans"], v["temporal_patch_size"], v["patch_size"], v["patch_size"]))
    for i in range(v["depth"]):
        p = "visual.blocks.%d" % i
        t.at("visual.blocks", i, "attn")
        t.norm(p + ".norm1", vh, bias=False)
        t.linear(p + ".attn.qkv", 3 * vh, vh)
        t.linear(p + ".attn.proj", vh, vh)
        t.at("visual.blocks", i, "mlp")
        t.norm(p + ".norm2", vh, bias=False)
        t.linear(p + ".mlp.gate_proj", vi, vh)
        t.linear(p + ".mlp.up_proj", vi, vh)
        t.linear(p + ".mlp.down_proj", vh, vi)
    t.at(None)
    merged = vh * v["spatial_merge_size"] ** 2
    t.norm("visual.merger.ln_q", vh, bias=False)
    t.linear("visual.merger.mlp.0", merged, merged)
    t.linear("visual.merger.mlp.2", v["out_hidden_size"], merged)
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    t.add("model.embed_tokens.weight", (V, H))
    _decoder_lm_layers(t, "model.layers", cfg, qkv_bias=True, qk_norm=False)
    t.norm("model.norm", H, bias=False)
    if not cfg["tie_word_embeddings"]:
        t.add("lm_head.weight", (V, H))
    return t, [{"prefix": "visual.blocks", "count": v["depth"], "phases": ["attn", "mlp"]},
               {"prefix": "model.layers", "count": cfg["num_hidden_layers"], "phases": ["attn", "mlp"]}]


# =========================================================================================
# DiT transformers
# =========================================================================================

def build_flux1(cfg):
    t = TensorList()
    D = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    hd = cfg["attention_head_dim"]
    mlp = 4 * D
    t.linear("time_text_embed.timestep_embedder.linear_1", D, 256)
    t.linear("time_text_embed.timestep_embedder.linear_2", D, D)
    if cfg["guidance_embeds"]:
        t.linear("time_text_embed.guidance_embedder.linear_1", D, 256)
        t.linear("time_text_embed.guidance_embedder.linear_2", D, D)
    t.linear("time_text_embed.text_embedder.linear_1", D, cfg["pooled_projection_dim"])
    t.linear("time_text_embed.text_embedder.linear_2", D, D)
    t.linear("context_embedder", D, cfg["joint_attention_dim"])
    t.linear("x_embedder", D, cfg["in_channels"])
    for i in range(cfg["num_layers"]):
        p = "transformer_blocks.%d" % i
        t.at("transformer_blocks", i, "attn")
        t.linear(p + ".norm1.linear", 6 * D, D)
        t.linear(p + ".norm1_context.linear", 6 * D, D)
        for q in ("to_q", "to_k", "to_v"):
            t.linear(p + ".attn." + q, D, D)
        t.norm(p + ".attn.norm_q", hd, bias=False)
        t.norm(p + ".attn.norm_k", hd, bias=False)
        for q in ("add_q_proj", "add_k_proj", "add_v_proj"):
            t.linear(p + ".attn." + q, D, D)
        t.norm(p + ".attn.norm_added_q", hd, bias=False)
        t.norm(p + ".attn.norm_added_k", hd, bias=False)
        t.linear(p + ".attn.to_out.0", D, D)
        t.linear(p + ".attn.to_add_out", D, D)
        t.at("transformer_blocks", i, "mlp")
        t.linear(p + ".ff.net.0.proj", mlp, D)
        t.linear(p + ".ff.net.2", D, mlp)
        t.linear(p + ".ff_context.net.0.proj", mlp, D)
        t.linear(p + ".ff_context.net.2", D, mlp)
    for i in range(cfg["num_single_layers"]):
        p = "single_transformer_blocks.%d" % i
        t.at("single_transformer_blocks", i, "attn")
        t.linear(p + ".norm.linear", 3 * D, D)
        for q in ("to_q", "to_k", "to_v"):
            t.linear(p + ".attn." + q, D, D)
        t.norm(p + ".attn.norm_q", hd, bias=False)
        t.norm(p + ".attn.norm_k", hd, bias=False)
        t.at("single_transformer_blocks", i, "mlp")
        t.linear(p + ".proj_mlp", mlp, D)
        t.linear(p + ".proj_out", D, D + mlp)  # consumes concat(attn, mlp): labelled mlp (runs last)
    t.at(None)
    t.linear("norm_out.linear", 2 * D, D)
    t.linear("proj_out", cfg["patch_size"] ** 2 * cfg["in_channels"], D)
    return t, [{"prefix": "transformer_blocks", "count": cfg["num_layers"], "phases": ["attn", "mlp"]},
               {"prefix": "single_transformer_blocks", "count": cfg["num_single_layers"], "phases": ["attn", "mlp"]}]


def build_flux2(cfg):
    t = TensorList()
    hd = cfg["attention_head_dim"]
    D = cfg["num_attention_heads"] * hd
    mlp = int(D * cfg["mlp_ratio"])
    tg = cfg["timestep_guidance_channels"]
    t.linear("time_guidance_embed.timestep_embedder.linear_1", D, tg, bias=False)
    t.linear("time_guidance_embed.timestep_embedder.linear_2", D, D, bias=False)
    if cfg["guidance_embeds"]:
        t.linear("time_guidance_embed.guidance_embedder.linear_1", D, tg, bias=False)
        t.linear("time_guidance_embed.guidance_embedder.linear_2", D, D, bias=False)
    t.linear("double_stream_modulation_img.linear", D * 6, D, bias=False)
    t.linear("double_stream_modulation_txt.linear", D * 6, D, bias=False)
    t.linear("single_stream_modulation.linear", D * 3, D, bias=False)
    t.linear("x_embedder", D, cfg["in_channels"], bias=False)
    t.linear("context_embedder", D, cfg["joint_attention_dim"], bias=False)
    for i in range(cfg["num_layers"]):
        p = "transformer_blocks.%d" % i
        t.at("transformer_blocks", i, "attn")
        for q in ("to_q", "to_k", "to_v"):
            t.linear(p + ".attn." + q, D, D, bias=False)
        t.norm(p + ".attn.norm_q", hd, bias=False)
        t.norm(p + ".attn.norm_k", hd, bias=False)
        t.linear(p + ".attn.to_out.0", D, D, bias=False)
        t.norm(p + ".attn.norm_added_q", hd, bias=False)
        t.norm(p + ".attn.norm_added_k", hd, bias=False)
        for q in ("add_q_proj", "add_k_proj", "add_v_proj"):
            t.linear(p + ".attn." + q, D, D, bias=False)
        t.linear(p + ".attn.to_add_out", D, D, bias=False)
        t.at("transformer_blocks", i, "mlp")
        t.linear(p + ".ff.linear_in", 2 * mlp, D, bias=False)
        t.linear(p + ".ff.linear_out", D, mlp, bias=False)
        t.linear(p + ".ff_context.linear_in", 2 * mlp, D, bias=False)
        t.linear(p + ".ff_context.linear_out", D, mlp, bias=False)
    for i in range(cfg["num_single_layers"]):
        p = "single_transformer_blocks.%d" % i
        t.at("single_transformer_blocks", i, "fused")
        t.linear(p + ".attn.to_qkv_mlp_proj", 3 * D + 2 * mlp, D, bias=False)
        t.norm(p + ".attn.norm_q", hd, bias=False)
        t.norm(p + ".attn.norm_k", hd, bias=False)
        t.linear(p + ".attn.to_out", D, D + mlp, bias=False)
    t.at(None)
    t.linear("norm_out.linear", 2 * D, D, bias=False)
    t.linear("proj_out", cfg["patch_size"] ** 2 * cfg["in_channels"], D, bias=False)
    return t, [{"prefix": "transformer_blocks", "count": cfg["num_layers"], "phases": ["attn", "mlp"]},
               {"prefix": "single_transformer_blocks", "count": cfg["num_single_layers"], "phases": ["fused"]}]


def build_qwen_image(cfg):
    t = TensorList()
    hd = cfg["attention_head_dim"]
    D = cfg["num_attention_heads"] * hd
    J = cfg["joint_attention_dim"]
    t.linear("time_text_embed.timestep_embedder.linear_1", D, 256)
    t.linear("time_text_embed.timestep_embedder.linear_2", D, D)
    if cfg.get("use_additional_t_cond"):
        t.add("time_text_embed.addition_t_embedding.weight", (2, D))
    t.norm("txt_norm", J, bias=False)
    t.linear("img_in", D, cfg["in_channels"])
    t.linear("txt_in", D, J)
    for i in range(cfg["num_layers"]):
        p = "transformer_blocks.%d" % i
        t.at("transformer_blocks", i, "attn")
        t.linear(p + ".img_mod.1", 6 * D, D)
        for q in ("to_q", "to_k", "to_v"):
            t.linear(p + ".attn." + q, D, D)
        t.norm(p + ".attn.norm_q", hd, bias=False)
        t.norm(p + ".attn.norm_k", hd, bias=False)
        for q in ("add_q_proj", "add_k_proj", "add_v_proj"):
            t.linear(p + ".attn." + q, D, D)
        t.norm(p + ".attn.norm_added_q", hd, bias=False)
        t.norm(p + ".attn.norm_added_k", hd, bias=False)
        t.linear(p + ".attn.to_out.0", D, D)
        t.linear(p + ".attn.to_add_out", D, D)
        t.linear(p + ".txt_mod.1", 6 * D, D)
        t.at("transformer_blocks", i, "mlp")
        t.linear(p + ".img_mlp.net.0.proj", 4 * D, D)
        t.linear(p + ".img_mlp.net.2", D, 4 * D)
        t.linear(p + ".txt_mlp.net.0.proj", 4 * D, D)
        t.linear(p + ".txt_mlp.net.2", D, 4 * D)
    t.at(None)
    t.linear("norm_out.linear", 2 * D, D)
    t.linear("proj_out", cfg["patch_size"] ** 2 * cfg["out_channels"], D)
    return t, [{"prefix": "transformer_blocks", "count": cfg["num_layers"], "phases": ["attn", "mlp"]}]


def build_wan(cfg):
    """Wan 2.1 reference naming (Wan-Video/Wan2.1 wan/modules/model.py), as in the Wan-AI
    checkpoints, the ComfyUI repackaged files and LightX2V's weight modules ("blocks.N")."""
    t = TensorList()
    D, F = cfg["dim"], cfg["ffn_dim"]
    pt, ph, pw = cfg["patch_size"]
    t.conv("patch_embedding", D, cfg["in_dim"], (pt, ph, pw))
    t.linear("text_embedding.0", D, cfg["text_dim"])
    t.linear("text_embedding.2", D, D)
    t.linear("time_embedding.0", D, cfg["freq_dim"])
    t.linear("time_embedding.2", D, D)
    t.linear("time_projection.1", 6 * D, D)
    for i in range(cfg["num_layers"]):
        p = "blocks.%d" % i
        t.at("blocks", i, "self_attn")
        t.add(p + ".modulation", (1, 6, D))
        for q in ("q", "k", "v", "o"):
            t.linear(p + ".self_attn." + q, D, D)
        t.norm(p + ".self_attn.norm_q", D, bias=False)
        t.norm(p + ".self_attn.norm_k", D, bias=False)
        t.at("blocks", i, "cross_attn")
        t.norm(p + ".norm3", D)  # cross_attn_norm=True: affine LayerNorm
        for q in ("q", "k", "v", "o"):
            t.linear(p + ".cross_attn." + q, D, D)
        t.norm(p + ".cross_attn.norm_q", D, bias=False)
        t.norm(p + ".cross_attn.norm_k", D, bias=False)
        t.at("blocks", i, "ffn")
        t.linear(p + ".ffn.0", F, D)
        t.linear(p + ".ffn.2", D, F)
    t.at(None)
    t.linear("head.head", cfg["out_dim"] * pt * ph * pw, D)
    t.add("head.modulation", (1, 2, D))
    return t, [{"prefix": "blocks", "count": cfg["num_layers"], "phases": ["self_attn", "cross_attn", "ffn"]}]


# =========================================================================================
# dtype assignment, including the Q8_0 GGUF rule
# =========================================================================================

def q8_0_bytes(shape):
    n = numel(shape)
    assert shape[-1] % Q8_0_BLOCK_ELEMS == 0, shape
    return n // Q8_0_BLOCK_ELEMS * Q8_0_BLOCK_BYTES


def gguf_q8_0_type(entry):
    """city96/ComfyUI-GGUF tools/convert.py@795e451 handle_tensors(): from a bf16 source,
    1-D tensors and tensors with <= 1024 elements are written F32 (QUANTIZATION_THRESHOLD),
    the rest BF16, then llama-quantize (tools/lcpp.patch) turns every remaining >=2-D tensor into
    the target type (Q8_0 here). No per-name keep-list exists for Qwen-Image in that patch."""
    shape = entry["shape"]
    if len(shape) <= 1 or numel(shape) <= 1024:
        return "f32"
    return "q8_0"


def finish_tensors(tlist, dtype, f32_names=(), int64_names=()):
    out = []
    for e in tlist.items:
        e = dict(e)
        group = e.pop("_group", None)
        name = e["name"]
        if dtype == "q8_0":
            dt = gguf_q8_0_type(e)
        elif name in int64_names:
            dt = "i64"
        elif name in f32_names:
            dt = "f32"
        else:
            dt = dtype
        if dt == "q8_0":
            nbytes = q8_0_bytes(e["shape"])
        elif dt == "i64":
            nbytes = 8 * numel(e["shape"])
        else:
            nbytes = DTYPE_BYTES[dt] * numel(e["shape"])
        rec = {"name": name, "shape": e["shape"], "dtype": dt, "bytes": nbytes}
        if "block" in e:
            rec["group"] = group
            rec["block"] = e["block"]
            if "phase" in e:
                rec["phase"] = e["phase"]
        out.append(rec)
    return out


# =========================================================================================
# The component catalogue: what each manifest is checked against
# =========================================================================================

DIFFUSERS = "huggingface/diffusers@58eb52c0803ea9af3abec60841c2a093bdf1f951"
HF_NAMING = "transformers state-dict naming as stored in the HF checkpoint"

COMPONENTS = [
    # ---------------------------------------------------------------- SD1.5
    dict(name="sd15-unet", pipeline="SD1.5", component="unet", config="sd15_unet", build=build_unet, dtype="fp16",
         naming="diffusers (UNet2DConditionModel state dict)",
         checkpoint="stable-diffusion-v1-5/stable-diffusion-v1-5 unet/diffusion_pytorch_model.fp16.safetensors",
         published=1720000000, published_exact=False,
         published_source="HF file listing '1.72 GB' (huggingface.co/vladmandic/sd15-diffusers/tree/main/unet, 'Duplicate from stable-diffusion-v1-5/stable-diffusion-v1-5'); cross-check: runwayml fp32 unet/diffusion_pytorch_model.non_ema.safetensors LFS size 3438167536 B (huggingface.co/runwayml/stable-diffusion-v1-5/discussions/161/files) = 4 B x 859,520,964 params + 83,680 B header",
         expected_params=859520964),
    dict(name="sd15-text-encoder", pipeline="SD1.5", component="text_encoder", config="clip_l", build=build_clip, dtype="fp16",
         naming=HF_NAMING + " (CLIPTextModel); the position_ids buffer that old checkpoints also carry (77 x int64 = 616 B) is omitted",
         checkpoint="stable-diffusion-v1-5 text_encoder/model.fp16.safetensors",
         published=246000000, published_exact=False,
         published_source="HF file listing '246 MB' for the SD1.5 fp16 text encoder (huggingface.co/andraniksargsyan/stable-diffusion-v1-5 text-encoder-sd-v1-5-fp16.pt, 'Stable Diffusion 1.5 FP16 artifacts')",
         expected_params=123060480),
    dict(name="sd15-vae", pipeline="SD1.5", component="vae", config="sd_vae", build=build_vae2d, dtype="fp16",
         naming="diffusers (AutoencoderKL state dict)",
         checkpoint="stable-diffusion-v1-5 vae/diffusion_pytorch_model.fp16.safetensors",
         published=167000000, published_exact=False,
         published_source="HF file listing '167 MB' (huggingface.co/andraniksargsyan/stable-diffusion-v1-5 vae-sd-v1-5-fp16.pt)",
         expected_params=83653863),
    # ---------------------------------------------------------------- SDXL
    dict(name="sdxl-unet", pipeline="SDXL", component="unet", config="sdxl_unet", build=build_unet, dtype="fp16",
         naming="diffusers (UNet2DConditionModel state dict)",
         checkpoint="stabilityai/stable-diffusion-xl-base-1.0 unet/diffusion_pytorch_model.fp16.safetensors",
         published=5140000000, published_exact=False,
         published_source="HF file page '5.14 GB' for stabilityai/stable-diffusion-xl-base-1.0 unet/diffusion_pytorch_model.fp16.safetensors (huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/refs%2Fpr%2F229/unet/diffusion_pytorch_model.fp16.safetensors, SHA256 83e012a8...)", expected_params=2567463684),
    dict(name="sdxl-text-encoder", pipeline="SDXL", component="text_encoder", config="clip_l", build=build_clip, dtype="fp16",
         naming=HF_NAMING + " (CLIPTextModel); position_ids buffer omitted",
         checkpoint="stabilityai/stable-diffusion-xl-base-1.0 text_encoder/model.fp16.safetensors",
         published=246000000, published_exact=False,
         published_source="HF file page 'Size of remote file: 246 MB' for text_encoder/model.fp16.safetensors of an SDXL base 1.0 copy (huggingface.co/YuCollection/sdxl-1.0-base-diffusers/blob/main/text_encoder/model.fp16.safetensors)",
         expected_params=123060480),
    dict(name="sdxl-text-encoder-2", pipeline="SDXL", component="text_encoder_2", config="clip_bigg", build=build_clip, dtype="fp16",
         naming=HF_NAMING + " (CLIPTextModelWithProjection); position_ids buffer omitted",
         checkpoint="stabilityai/stable-diffusion-xl-base-1.0 text_encoder_2/model.fp16.safetensors",
         published=1390000000, published_exact=False,
         published_source="HF tree listing 'model.fp16.safetensors 1.39 GB' (huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/tree/refs%2Fpr%2F2/text_encoder_2)", expected_params=694659840),
    dict(name="sdxl-vae", pipeline="SDXL", component="vae", config="sd_vae", build=build_vae2d, dtype="fp16",
         naming="diffusers (AutoencoderKL state dict)",
         checkpoint="stabilityai/stable-diffusion-xl-base-1.0 vae/diffusion_pytorch_model.fp16.safetensors",
         published=167000000, published_exact=False,
         published_source="HF tree listing 'diffusion_pytorch_model.fp16.safetensors 167 MB' (huggingface.co/Pie31415/stable-diffusion-xl-base-1.0/tree/main/vae, 'Duplicate from stabilityai/stable-diffusion-xl-base-1.0')",
         expected_params=83653863),
    # ---------------------------------------------------------------- FLUX.1-dev
    dict(name="flux1-dev-transformer", pipeline="FLUX.1-dev", component="transformer", config="flux1_dev_transformer",
         build=build_flux1, dtype="bf16", naming="diffusers (FluxTransformer2DModel state dict)",
         checkpoint="black-forest-labs/FLUX.1-dev transformer/diffusion_pytorch_model-0000{1,2,3}-of-00003.safetensors",
         published=23802816640, published_exact=True,
         published_source="transformer/diffusion_pytorch_model.safetensors.index.json metadata.total_size, as recorded in exo-explore/exo:src/exo/shared/models/model_cards.py (flux1-dev transformer storage_size=Memory.from_bytes(23802816640), 'safetensors_index_filename=diffusion_pytorch_model.safetensors.index.json')",
         expected_params=11901408320),
    dict(name="flux1-dev-t5xxl", pipeline="FLUX.1-dev", component="text_encoder_2", config="t5_xxl", build=build_t5_encoder,
         dtype="bf16", naming=HF_NAMING + " (T5EncoderModel; tied encoder.embed_tokens not stored separately)",
         checkpoint="black-forest-labs/FLUX.1-dev text_encoder_2/model-0000{1,2}-of-00002.safetensors",
         published=9524621312, published_exact=True,
         published_source="text_encoder_2/model.safetensors.index.json total_size as recorded in exo-explore/exo:src/exo/shared/models/model_cards.py (text_encoder_2 storage_size=Memory.from_bytes(9524621312))",
         expected_params=4762310656),
    dict(name="flux1-dev-clip-l", pipeline="FLUX.1-dev", component="text_encoder", config="clip_l", build=build_clip, dtype="bf16",
         naming=HF_NAMING + " (CLIPTextModel); position_ids buffer omitted",
         checkpoint="black-forest-labs/FLUX.1-dev text_encoder/model.safetensors",
         published=246000000, published_exact=False,
         published_source="CLIP ViT-L/14 text tower at 2 B/param; HF listing '246 MB' for the 16-bit file (SD1.5 copy); the FLUX.1-dev repo's own listing was not retrieved",
         expected_params=123060480),
    dict(name="flux1-dev-vae", pipeline="FLUX.1-dev", component="vae", config="flux1_vae", build=build_vae2d, dtype="bf16",
         naming="diffusers (AutoencoderKL state dict)",
         checkpoint="black-forest-labs/FLUX.1-dev vae/diffusion_pytorch_model.safetensors",
         published=168000000, published_exact=False,
         published_source="HF file page 'Size of remote file: 168 MB' for a FLUX.1 vae/diffusion_pytorch_model.safetensors (huggingface.co/Djrango/Qwen2vl-Flux flux/vae/diffusion_pytorch_model.safetensors)",
         expected_params=83819683),
    # ---------------------------------------------------------------- FLUX.2-klein-9B
    dict(name="flux2-klein-9b-transformer", pipeline="FLUX.2-klein-9B", component="transformer",
         config="flux2_klein_9b_transformer", build=build_flux2, dtype="bf16",
         naming="diffusers (Flux2Transformer2DModel state dict; LightX2V flux2 weight modules use the same names)",
         checkpoint="black-forest-labs/FLUX.2-klein-9B flux-2-klein-9b.safetensors (BFL single file; same tensors, BFL key names)",
         published=18200000000, published_exact=False,
         published_source="HF file page '18.2 GB' for flux-2-klein-9b.safetensors (huggingface.co/Kiro930/flux-2-klein-9b, SHA256 0975d6b7...); LightX2V PR #1051 text: 'DiT is 17 GB bf16' (GiB)",
         expected_params=None),
    dict(name="flux2-klein-9b-text-encoder", pipeline="FLUX.2-klein-9B", component="text_encoder", config="qwen3_8b",
         build=build_qwen3, dtype="bf16", naming=HF_NAMING + " (Qwen3ForCausalLM, incl. lm_head)",
         checkpoint="FLUX.2-klein-9B text encoder = Qwen3-8B bf16 (Comfy-Org/Flux-2-Klein-9B split_files/text_encoders/qwen_3_8b.safetensors)",
         published=16400000000, published_exact=False,
         published_source="HF file page 'Download file 16.4 GB' (huggingface.co/Comfy-Org/Flux-2-Klein-9B/blob/main/split_files/text_encoders/qwen_3_8b.safetensors); LightX2V PR #1051: 'Text encoder is 16 GB bf16'",
         expected_params=None),
    dict(name="flux2-vae", pipeline="FLUX.2-klein-9B", component="vae", config="flux2_vae", build=build_vae2d, dtype="bf16",
         naming="diffusers (AutoencoderKLFlux2 state dict; bn.* are BatchNorm running-stat buffers)",
         checkpoint="FLUX.2-klein vae/diffusion_pytorch_model.safetensors",
         published=168000000, published_exact=False,
         published_source="HF file page 'Size of remote file: 168 MB' (huggingface.co/ModelsLab/FLUX.2-klein-9B vae/diffusion_pytorch_model.safetensors, SHA256 ca70d220..., same file as FLUX.2-klein-4B-Diffusers)",
         expected_params=None),
    # ---------------------------------------------------------------- Qwen-Image
    dict(name="qwen-image-transformer", pipeline="Qwen-Image", component="transformer", config="qwen_image_transformer",
         build=build_qwen_image, dtype="bf16", naming="diffusers (QwenImageTransformer2DModel state dict)",
         checkpoint="Qwen/Qwen-Image transformer/diffusion_pytorch_model-0000{1..9}-of-00009.safetensors",
         published=40860802176, published_exact=True,
         published_source="transformer/diffusion_pytorch_model.safetensors.index.json total_size as recorded in exo-explore/exo:src/exo/shared/models/model_cards.py (qwen-image transformer storage_size=Memory.from_bytes(40860802176))",
         expected_params=None),
    dict(name="qwen-image-text-encoder", pipeline="Qwen-Image", component="text_encoder", config="qwen25_vl_7b",
         build=build_qwen25_vl, dtype="bf16",
         naming="checkpoint naming of Qwen/Qwen-Image text_encoder (visual.*, model.*, lm_head; transformers >= 4.50 remaps to model.visual.* / model.language_model.* at load)",
         checkpoint="Qwen/Qwen-Image text_encoder/model-0000{1..4}-of-00004.safetensors (Qwen2.5-VL-7B-Instruct incl. vision tower)",
         published=16584333312, published_exact=True,
         published_source="text_encoder total size as recorded in exo-explore/exo:src/exo/shared/models/model_cards.py (qwen-image text_encoder storage_size=Memory.from_bytes(16584333312))",
         expected_params=None),
    dict(name="qwen-image-vae", pipeline="Qwen-Image", component="vae", config="qwen_image_vae", build=build_vae3d,
         dtype="bf16", naming="diffusers (AutoencoderKLQwenImage state dict)",
         checkpoint="Qwen/Qwen-Image vae/diffusion_pytorch_model.safetensors",
         published=254000000, published_exact=False,
         published_source="HF tree listing 'qwen_image_vae.safetensors 254 MB' (huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/tree/main/split_files/vae; same SHA256 a70580f0... as Comfy-Org/Krea-2 vae/qwen_image_vae.safetensors). InvokeAI PR #9305 text: 'The VAE is tiny (~242 MB)' = 253,785,062 B / 2^20 = 242.03 MiB", expected_params=None),
    # ---------------------------------------------------------------- Qwen Image Edit 2511 Q8_0 GGUF
    dict(name="qwen-image-edit-2511-transformer-q8_0", pipeline="Qwen-Image-Edit-2511 (GGUF Q8_0)", component="transformer",
         config="qwen_image_edit_2511_transformer", build=build_qwen_image, dtype="q8_0",
         naming="GGUF tensor names = diffusers QwenImageTransformer2DModel names (torch shape order; GGUF stores dims reversed)",
         checkpoint="Qwen-Image-Edit-2511 Q8_0 GGUF (unsloth/Qwen-Image-Edit-2511-GGUF, QuantStack; city96 tooling)",
         published=21800000000, published_exact=False,
         published_source="HF file page 'Size of remote file: 21.8 GB' for calcuis/qwen-image-edit-gguf qwen-image-edit-q8_0.gguf (same QwenImageTransformer2DModel dims as 2511; the exact 2511 Q8_0 file size was not retrieved). Cross-check of the F32 rule: city96/Qwen-Image-gguf qwen-image-BF16.gguf is 40,872,114,720 B (huggingface.co/api/models/city96/Qwen-Image-gguf/tree/main) = 40,860,802,176 B bf16 + 5,582,420 1-D elements x 2 B upcast to F32 (11,164,840 B) + 147,704 B GGUF header/padding. InvokeAI PR #9305 text: 'transformer (~20.7 GB)' resident", expected_params=None),
    # ---------------------------------------------------------------- Wan 2.1
    dict(name="wan21-t2v-14b-transformer", pipeline="Wan2.1-T2V-14B", component="transformer", config="wan21_t2v_14b",
         build=build_wan, dtype="bf16", naming="Wan reference naming (Wan-Video/Wan2.1 wan/modules/model.py; LightX2V 'blocks.N')",
         checkpoint="Comfy-Org/Wan_2.1_ComfyUI_repackaged split_files/diffusion_models/wan2.1_t2v_14B_bf16.safetensors (the Wan-AI/Wan2.1-T2V-14B release shards are fp32)",
         published=28600000000, published_exact=False,
         published_source="HF listing 'wan2.1_t2v_14B_bf16.safetensors 28.6 GB' (huggingface.co/navyfighter12/wan2.1/tree/main/models/diffusion_models/Wan2.1, a copy of the Comfy-Org repackaged file name; the Comfy-Org page itself not retrieved)", expected_params=None),
    dict(name="wan21-t2v-1.3b-transformer", pipeline="Wan2.1-T2V-1.3B", component="transformer", config="wan21_t2v_1_3b",
         build=build_wan, dtype="bf16", naming="Wan reference naming (Wan-Video/Wan2.1 wan/modules/model.py; LightX2V 'blocks.N')",
         checkpoint="Comfy-Org/Wan_2.1_ComfyUI_repackaged split_files/diffusion_models/wan2.1_t2v_1.3B_bf16.safetensors",
         published=2840000000, published_exact=False,
         published_source="HF file page 'Download file 2.84 GB' for Comfy-Org/Wan_2.1_ComfyUI_repackaged split_files/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors (fp16 and bf16 have equal size)", expected_params=None),
    dict(name="wan21-umt5-xxl", pipeline="Wan2.1", component="text_encoder", config="umt5_xxl", build=build_t5_encoder,
         dtype="bf16", naming=HF_NAMING + " (UMT5EncoderModel: every layer has its own relative_attention_bias)",
         checkpoint="Wan-AI/Wan2.1-T2V-14B models_t5_umt5-xxl-enc-bf16.pth (Wan naming) / Comfy umt5_xxl_fp16.safetensors (HF naming)",
         published=11400000000, published_exact=False,
         published_source="HF tree listing 'umt5_xxl_fp16.safetensors 11.4 GB' (huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/tree/main/split_files/text_encoders); Kijai/WanVideo_comfy umt5-xxl-enc-bf16.safetensors also 11.4 GB", expected_params=None),
    dict(name="wan21-vae", pipeline="Wan2.1", component="vae", config="wan21_vae", build=build_vae3d, dtype="bf16",
         naming="diffusers (AutoencoderKLWan state dict)",
         checkpoint="Comfy-Org/Wan_2.1_ComfyUI_repackaged split_files/vae/wan_2.1_vae.safetensors (bf16); Wan2.1_VAE.pth is fp32",
         published=254000000, published_exact=False,
         published_source="HF tree listing 'wan_2.1_vae.safetensors 254 MB' (huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/tree/main/split_files/vae); Kijai/WanVideo_comfy Wan2_1_VAE_bf16.safetensors 254 MB, Wan2_1_VAE_fp32.safetensors 508 MB", expected_params=None),
]

# Published sizes filled in from PUBLISHED (kept separate so the catalogue above stays readable)
PUBLISHED = {}


def derivation_text(spec, cfg):
    d = ("Tensor list rebuilt from configs/%s.json (source: %s) by walking the module structure of %s "
         "in state-dict order; every parameter (and persistent buffer, if any) is its own allocation. "
         "bytes = numel x element size" % (spec["config"], cfg.get("_source", "?"), cfg.get("_class_name", "?")))
    if spec["dtype"] == "q8_0":
        d += ("; GGUF Q8_0: 32 elements per 34-byte block. Tensor types follow city96/ComfyUI-GGUF@795e451 "
              "tools/convert.py (1-D or <=1024-element tensors F32) + tools/lcpp.patch (all other tensors "
              "quantized; the patch has no keep-list for Qwen-Image). GGUF header/metadata/alignment padding "
              "is not a tensor and is not counted")
    else:
        d += ". Safetensors header (tens of KB) is not counted"
    return d + "."


def build_manifest(spec):
    cfg = load_config(spec["config"])
    res = spec["build"](cfg)
    tlist, groups = res[0], res[1]
    extra_i64 = res[2] if len(res) > 2 else []
    tensors = finish_tensors(tlist, spec["dtype"], int64_names=set(extra_i64))
    params = sum(numel(t["shape"]) for t in tensors if t["dtype"] != "i64")
    total = sum(t["bytes"] for t in tensors)
    pub = PUBLISHED.get(spec["name"], {})
    published = pub.get("bytes", spec.get("published"))
    src = {
        "config": cfg.get("_source"),
        "config_file": "traces/models/configs/%s.json" % spec["config"],
        "checkpoint": pub.get("checkpoint", spec["checkpoint"]),
        "published_size_bytes": published,
        "published_size_exact": pub.get("exact", spec.get("published_exact", False)),
        "published_size_source": pub.get("source", spec.get("published_source")),
    }
    if pub.get("cross_checks"):
        src["cross_checks"] = pub["cross_checks"]
    err = None if not published else round((total - published) / published, 6)
    man = {
        "format": FORMAT,
        "name": spec["name"],
        "pipeline": spec["pipeline"],
        "component": spec["component"],
        "dtype": spec["dtype"],
        "naming": spec["naming"],
        "source": src,
        "derivation": derivation_text(spec, cfg) + (" " + pub["note"] if pub.get("note") else ""),
        "parameter_count": params,
        "tensor_count": len(tensors),
        "total_bytes": total,
        "relative_error_vs_published": err,
        "blocks": groups,
        "tensors": tensors,
    }
    return man


def dumps(man):
    """Readable header, one tensor per line (keeps diffs small and files compact)."""
    head = {k: v for k, v in man.items() if k != "tensors"}
    s = json.dumps(head, indent=1, ensure_ascii=True)
    assert s.endswith("}")
    lines = [json.dumps(t, separators=(",", ":"), ensure_ascii=True) for t in man["tensors"]]
    return s[:-1].rstrip() + ',\n "tensors": [\n' + ",\n".join(lines) + "\n ]\n}\n"


def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def load_published():
    path = os.path.join(HERE, "configs", "published_sizes.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        PUBLISHED.update({k: v for k, v in data.items() if not k.startswith("_")})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="verify files on disk match; write nothing")
    ap.add_argument("--summary", action="store_true", help="print a table only")
    args = ap.parse_args(argv)
    load_published()
    bad = 0
    rows = []
    for spec in COMPONENTS:
        man = build_manifest(spec)
        exp = spec.get("expected_params")
        if exp is not None and exp != man["parameter_count"]:
            print("PARAM MISMATCH %s: %d != expected %d" % (spec["name"], man["parameter_count"], exp), file=sys.stderr)
            bad += 1
        text = dumps(man)
        path = os.path.join(HERE, spec["name"] + ".json")
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text:
                        print("stale: %s" % path, file=sys.stderr)
                        bad += 1
            except FileNotFoundError:
                print("missing: %s" % path, file=sys.stderr)
                bad += 1
        elif not args.summary:
            write_atomic(path, text)
        rows.append((man["name"], man["parameter_count"], man["total_bytes"],
                     man["source"]["published_size_bytes"], man["relative_error_vs_published"]))
    for r in rows:
        print("%-40s %15d %15d %15s %s" % (r[0], r[1], r[2], r[3], r[4]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
