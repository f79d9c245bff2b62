"""Torch-side checks for the SD3 tests, each mode ONE subprocess (torch imports cost seconds).

- `sd3_check.py build DIR`: a tiny SD3.5 Medium-shaped model in DIR (one file with the text encoders inside) and
  DIR/split (text encoders as their own files) with its T5 tokenizer; prints {"roundtrip": {part: equal}, ...}:
  every part loaded by the trainer's loaders equals, tensor for tensor, the module it was written from.
- `sd3_check.py check DIR LORA`: the LoRA trained by sd3_train_network.py against kohya's key set for the tiny
  model (derived from the single file's own MMDiT layer names), loaded into diffusers' StableDiffusion3Pipeline
  (`load_lora_weights` after `kohya_sd3_to_diffusers`: diffusers reads no kohya SD3 names itself), compared with our
  network's output, and the networks.lora_sd3 options.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "sd-scripts"))

import torch  # noqa: E402

torch.set_num_threads(1)


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record):
        self.records.append(f"{record.name}: {record.getMessage()}")


def _equal(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def _args(folder: Path, split: bool) -> argparse.Namespace:
    d = folder / "split" if split else folder
    return argparse.Namespace(
        pretrained_model_name_or_path=str(d / "sd3_tiny.safetensors"), vae=None, tokenizer_cache_dir=str(folder / "tokenizers"),
        t5xxl_max_token_length=16, **{w: (str(d / n) if split else None) for w, n in (
            ("clip_l", "clip_l.safetensors"), ("clip_g", "clip_g.safetensors"), ("t5xxl", "t5xxl_tiny.safetensors"))})


def build(folder: Path) -> dict:
    from lora_trainer import sd3_models as sm
    from lora_trainer.flux_models import save_tiny_t5_tokenizer

    comps, cfgs = sm.build_tiny_sd3(seed=0)
    res = {}
    save_tiny_t5_tokenizer(folder / "tokenizers", cfgs["t5xxl"]["vocab_size"])
    for split in (False, True):
        paths = sm.save_tiny_sd3(folder / "split" if split else folder, comps, cfgs, include_text_encoders=not split)
        m = sm.load_sd3(_args(folder, split))
        loaded = {"transformer": m.transformer, "vae": m.vae, "clip_l": m.text_encoders[0],
                  "clip_g": m.text_encoders[1], "t5xxl": m.text_encoders[2]}
        res["split_roundtrip" if split else "roundtrip"] = {
            k: _equal({n: t for n, t in comps[k].state_dict().items() if not n.endswith("position_ids")},
                      {n: t for n, t in loaded[k].state_dict().items() if not n.endswith("position_ids")})
            for k in loaded}
        res["split_kinds" if split else "kinds"] = {k: sm.file_kind(v) for k, v in paths.items()}
        res["model_type"] = m.model_type
        res["included" if not split else "split_included"] = sorted(sm.included(paths["checkpoint"]))
    return res


def _kohya_unet_names(keys) -> set[str]:
    """kohya's lora_sd3 module names for an SD3 file: every 2-D weight of a joint block's context/x block
    (SingleDiTBlock's Linear children: qkv, proj, mlp, adaLN_modulation.1; not the ln_q/ln_k norms)."""
    names = set()
    for k in keys:
        k = k[len("model.diffusion_model."):] if k.startswith("model.diffusion_model.") else None
        if k and k.startswith("joint_blocks.") and k.endswith(".weight") and ".ln_" not in k:
            names.add("lora_unet_" + k[: -len(".weight")].replace(".", "_"))
    return names


def check(folder: Path, lora: Path) -> dict:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from lora_trainer import sd3_models as sm
    from lora_trainer.sd3_network import SD3LoRANetwork, kohya_sd3_to_diffusers, sd3_network_options

    res = {}
    ck = folder / "sd3_tiny.safetensors"
    with safe_open(str(ck), "pt") as f:
        keys = list(f.keys())
    sd = load_file(str(lora))
    with safe_open(str(lora), "pt") as f:
        meta = f.metadata()
    names = {k.split(".")[0] for k in sd}
    m = sm.load_sd3(_args(folder, False))
    tr = m.transformer
    res["unet_names_equal"] = {n for n in names if n.startswith("lora_unet_")} == _kohya_unet_names(keys)
    res["unet_names"] = len({n for n in names if n.startswith("lora_unet_")})
    te = {p: {n for n in names if n.startswith(p)} for p in ("lora_te1_", "lora_te2_")}
    res["te_names"] = [len(te["lora_te1_"]), len(te["lora_te2_"])]
    res["te_pattern"] = all(n.startswith(p + "text_model_encoder_layers_") for p in te for n in te[p])
    res["other_names"] = sorted(n for n in names if not n.startswith(("lora_unet_", "lora_te1_", "lora_te2_")))
    res["per_module_keys"] = all({f"{n}.lora_down.weight", f"{n}.lora_up.weight", f"{n}.alpha"} <= set(sd)
                                 for n in names) and len(sd) == 3 * len(names)
    q = sd["lora_unet_joint_blocks_0_x_block_attn_qkv.lora_up.weight"]
    res["qkv_up_shape"] = list(q.shape)
    res["up_nonzero"] = bool(q.abs().sum() > 0)
    res["meta"] = {k: meta.get(k) for k in ("ss_network_module", "ss_base_model_version", "modelspec.architecture",
                                            "ss_weighting_scheme", "ss_apply_t5_attn_mask", "ss_network_dim",
                                            "ss_network_alpha")}

    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    cap = _Capture()
    for name in ("diffusers", "peft", "transformers"):
        logging.getLogger(name).addHandler(cap)
        logging.getLogger(name).setLevel(logging.DEBUG)
    pipe = StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=m.vae, text_encoder=m.text_encoders[0],
        tokenizer=m.tokenizers[0], text_encoder_2=m.text_encoders[1], tokenizer_2=m.tokenizers[1],
        text_encoder_3=m.text_encoders[2], tokenizer_3=m.tokenizers[2], transformer=tr)
    torch.manual_seed(0)
    kw = dict(hidden_states=torch.randn(1, 16, 8, 8), encoder_hidden_states=torch.randn(1, 20, 32),
              pooled_projections=torch.randn(1, 32), timestep=torch.tensor([500.0]), return_dict=False)
    ids = torch.tensor([[49406, 320, 1125, 49407] + [49407] * 73])
    with torch.no_grad():
        base = tr(**kw)[0].clone()
        base_te = [te(ids).text_embeds.clone() for te in m.text_encoders[:2]]
    # the trained LoRA's ups on the last block's context adaLN are still small; random ones test the row order too
    sd2 = dict(sd)
    g = torch.Generator().manual_seed(1)
    for n in ("lora_unet_joint_blocks_1_context_block_adaLN_modulation_1", "lora_unet_joint_blocks_0_x_block_attn2_qkv"):
        sd2[f"{n}.lora_up.weight"] = torch.randn(sd2[f"{n}.lora_up.weight"].shape, generator=g)
    conv = kohya_sd3_to_diffusers(sd2, tr, m.text_encoders[:2])
    pipe.load_lora_weights(conv)
    with torch.no_grad():
        withl = tr(**kw)[0].clone()
        withl_te = [te(ids).text_embeds.clone() for te in (pipe.text_encoder, pipe.text_encoder_2)]
    res["diffusers_problems"] = [r for r in cap.records if not r.startswith("diffusers.configuration_utils")
                                 and any(w in r.lower() for w in ("unexpected", "missing", "incompatible",
                                                                  "not found"))]
    res["diffusers_changes"] = float((withl - base).abs().max())
    res["diffusers_te_changes"] = [float((a - b).abs().max()) for a, b in zip(withl_te, base_te)]
    res["diffusers_layers"] = len([k for k in conv if k.startswith("transformer.")]) // 2
    pipe.unload_lora_weights()
    net = SD3LoRANetwork(tr, m.text_encoders, 4, None, sd3_network_options({}))
    net.apply_to()
    missing, unexpected = net.load_weights(sd2)
    net.eval()
    with torch.no_grad():
        ours = tr(**kw)[0].clone()
        ours_te = [te(ids).text_embeds.clone() for te in m.text_encoders[:2]]
    net.remove()
    res["ours_vs_diffusers"] = float((ours - withl).abs().max())
    res["ours_vs_diffusers_te"] = max(float((a - b).abs().max()) for a, b in zip(ours_te, withl_te))
    res["load_missing_unexpected"] = [len(missing), len(unexpected)]

    def keys_of(**kv):
        n = SD3LoRANetwork(tr, m.text_encoders, 4, 2.0, sd3_network_options({k: str(v) for k, v in kv.items()}))
        return n, n.state_dict()

    opts = {}
    n, _ = keys_of(split_qkv="True")
    for mod in n.unet_modules:
        for u in (mod.lora_up if mod.split else [mod.lora_up]):
            torch.nn.init.normal_(u.weight)
    s = n.state_dict()
    up = s["lora_unet_joint_blocks_0_x_block_attn_qkv.lora_up.weight"]
    opts["split_qkv"] = [list(s["lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight"].shape), list(up.shape),
                         bool(up[:16, 4:].abs().sum() == 0)]
    n2, _ = keys_of(split_qkv="True")
    n2.load_weights(s)
    opts["split_roundtrip"] = _equal(s, n2.state_dict())
    opts["t5"] = sum(k.startswith("lora_te3_encoder_block_0_layer_0_SelfAttention_q.") for k in
                     keys_of(train_t5xxl="True")[1])
    opts["x_attn_dim0"] = sorted({k.split(".")[0] for k in keys_of(x_attn_dim=0)[1] if "x_block_attn" in k})
    opts["context_mlp_dim8"] = list(keys_of(context_mlp_dim=8)[1][
        "lora_unet_joint_blocks_0_context_block_mlp_fc1.lora_down.weight"].shape)
    opts["emb"] = sorted({k.split(".")[0] for k in keys_of(emb_dims="[2,2,0,2,2,2]")[1]
                          if k.startswith("lora_unet_") and "joint_blocks" not in k})
    opts["block_idx"] = sorted({k.split("_")[4] for k in keys_of(train_block_indices="1")[1]
                                if k.startswith("lora_unet_joint")})
    opts["alpha"] = float(keys_of()[1]["lora_unet_joint_blocks_0_x_block_mlp_fc1.alpha"])
    res["options"] = opts
    return res


if __name__ == "__main__":
    mode = sys.argv[1]
    out = build(Path(sys.argv[2])) if mode == "build" else check(Path(sys.argv[2]), Path(sys.argv[3]))
    print("SD3_CHECK " + json.dumps(out))
