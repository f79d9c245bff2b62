"""Torch-side checks for the Flux tests, each mode ONE subprocess (torch imports cost seconds).

- `flux_check.py build DIR`: a tiny Flux.1 in DIR (BFL layout) and DIR/comfy (ComfyUI layout) with its T5 tokenizer;
  prints {"paths", "roundtrip": {kind: equal}, "comfy_roundtrip"}: every file loaded by the trainer's loaders
  equals, tensor for tensor, the module it was written from.
- `flux_check.py check DIR LORA`: the LoRA trained by flux_train_network.py against kohya's key set for the tiny
  model (derived from the BFL file's own layer names), loaded into diffusers' FluxPipeline.load_lora_weights
  (double blocks + CLIP-L; diffusers' converter hard-codes Flux.1's 3072 width for single-block linear1), compared
  with our network's output, and the networks.lora_flux options (split_qkv, train_blocks, train_t5xxl,
  per-type dims, in_dims, block indices).
"""
from __future__ import annotations

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


def build(folder: Path) -> dict:
    from lora_trainer import flux_models as fm

    comps, cfgs = fm.build_tiny_flux(seed=0)
    res = {}
    for sub, comfy in (("", False), ("comfy", True)):
        d = folder / sub if sub else folder
        paths = fm.save_tiny_flux(d, comps, cfgs, comfy=comfy)
        loaded = {"transformer": fm.load_transformer(paths["transformer"])[0], "ae": fm.load_ae(paths["ae"]),
                  "clip_l": fm.load_clip_l(paths["clip_l"]), "t5xxl": fm.load_t5xxl(paths["t5xxl"])}
        res["comfy_roundtrip" if comfy else "roundtrip"] = {
            k: _equal(comps[k].state_dict(), loaded[k].state_dict()) for k in loaded}
        if not comfy:
            res["paths"] = {k: str(v) for k, v in paths.items()}
            res["kinds"] = {k: fm.file_kind(v) for k, v in paths.items()}
    fm.save_tiny_t5_tokenizer(folder / "tokenizers", cfgs["t5xxl"]["vocab_size"])
    try:
        fm.t5_tokenizer(str(folder / "nothing-here"))
        res["missing_tokenizer_error"] = None
    except fm.ModelError as e:
        res["missing_tokenizer_error"] = str(e)
    return res


def _kohya_unet_names(bfl_keys) -> set[str]:
    """kohya's lora_flux module names for a BFL transformer: every 2-D weight inside double/single blocks."""
    names = set()
    for k in bfl_keys:
        if (k.startswith("double_blocks.") or k.startswith("single_blocks.")) and k.endswith(".weight") \
                and "norm" not in k:
            names.add("lora_unet_" + k[: -len(".weight")].replace(".", "_"))
    return names


def check(folder: Path, lora: Path) -> dict:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from lora_trainer import flux_models as fm
    from lora_trainer.flux_network import FluxLoRANetwork, flux_network_options

    res = {}
    paths = {k: folder / n for k, n in (("transformer", "flux1-tiny.safetensors"), ("ae", "ae.safetensors"),
                                        ("clip_l", "clip_l.safetensors"), ("t5xxl", "t5xxl_tiny.safetensors"))}
    with safe_open(str(paths["transformer"]), "pt") as f:
        bfl = list(f.keys())
    sd = load_file(str(lora))
    with safe_open(str(lora), "pt") as f:
        meta = f.metadata()
    names = {k.split(".")[0] for k in sd}
    tr, _, _ = fm.load_transformer(paths["transformer"])
    clip, t5 = fm.load_clip_l(paths["clip_l"]), fm.load_t5xxl(paths["t5xxl"])
    te1 = {n for n in names if n.startswith("lora_te1_")}
    res["unet_names_equal"] = {n for n in names if n.startswith("lora_unet_")} == _kohya_unet_names(bfl)
    res["te1_names"] = len(te1)
    res["te1_pattern"] = all(n.startswith("lora_te1_text_model_encoder_layers_") for n in te1)
    res["other_names"] = sorted(n for n in names if not n.startswith(("lora_unet_", "lora_te1_")))
    res["per_module_keys"] = all({f"{n}.lora_down.weight", f"{n}.lora_up.weight", f"{n}.alpha"} <= set(sd)
                                 for n in names) and len(sd) == 3 * len(names)
    q = sd["lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight"]
    res["qkv_up_shape"] = list(q.shape)
    res["linear1_up_shape"] = list(sd["lora_unet_single_blocks_0_linear1.lora_up.weight"].shape)
    res["meta"] = {k: meta.get(k) for k in ("ss_network_module", "ss_base_model_version", "modelspec.architecture",
                                            "ss_timestep_sampling", "ss_model_prediction_type", "ss_guidance_scale",
                                            "ss_network_dim", "ss_network_alpha")}
    res["up_nonzero"] = bool(q.abs().sum() > 0)

    # diffusers: double blocks + CLIP-L (see the module docstring for single blocks)
    sub = {k: v for k, v in sd.items() if not k.startswith("lora_unet_single_blocks_")}
    sub_path = lora.with_name("double_only.safetensors")
    save_file(sub, str(sub_path))
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    cap = _Capture()
    for name in ("diffusers", "peft", "transformers"):
        logging.getLogger(name).addHandler(cap)
        logging.getLogger(name).setLevel(logging.DEBUG)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=fm.load_ae(paths["ae"]), text_encoder=clip,
                        tokenizer=fm.clip_l_tokenizer(), text_encoder_2=t5,
                        tokenizer_2=fm.t5_tokenizer(str(folder / "tokenizers")), transformer=tr)
    torch.manual_seed(0)
    x = torch.randn(1, 16, 64)
    ctx = torch.randn(1, 8, 32)
    pooled = torch.randn(1, 32)
    kw = dict(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled, timestep=torch.tensor([0.5]),
              img_ids=torch.zeros(16, 3), txt_ids=torch.zeros(8, 3), guidance=torch.tensor([3.5]), return_dict=False)
    ids = torch.tensor([[49406, 320, 1125, 49407] + [49407] * 73])
    with torch.no_grad():
        base = tr(**kw)[0].clone()
        base_te = clip(ids).pooler_output.clone()
    pipe.load_lora_weights(str(sub_path))
    with torch.no_grad():
        withl = tr(**kw)[0].clone()
        withl_te = pipe.text_encoder(ids).pooler_output.clone()
    res["diffusers_problems"] = [r for r in cap.records if not r.startswith("diffusers.configuration_utils")
                                 and any(w in r.lower() for w in ("unexpected", "missing", "incompatible",
                                                                  "not found"))]
    res["diffusers_changes"] = float((withl - base).abs().max())
    res["diffusers_te_changes"] = float((withl_te - base_te).abs().max())
    pipe.unload_lora_weights()
    # our network with the same weights gives what diffusers gives
    net = FluxLoRANetwork(tr, [clip, t5], 4, None, flux_network_options({"train_blocks": "double"}))
    net.apply_to()
    missing, unexpected = net.load_weights(sub)
    with torch.no_grad():
        ours = tr(**kw)[0].clone()
        ours_te = clip(ids).pooler_output.clone()
    net.remove()
    res["ours_vs_diffusers"] = float((ours - withl).abs().max())
    res["ours_vs_diffusers_te"] = float((ours_te - withl_te).abs().max())
    res["load_missing_unexpected"] = [len(missing), len([k for k in unexpected if "single" not in k])]

    # networks.lora_flux options
    def keys(**kv):
        n = FluxLoRANetwork(tr, [clip, t5], 4, 2.0, flux_network_options({k: str(v) for k, v in kv.items()}))
        return n, n.state_dict()

    opts = {}
    n, s = keys(split_qkv="True")
    for m in n.unet_modules:  # non-zero ups, so the merged form is checked with values
        for u in (m.lora_up if m.split else [m.lora_up]):
            torch.nn.init.normal_(u.weight)
    s = n.state_dict()
    up, down = s["lora_unet_single_blocks_0_linear1.lora_up.weight"], s["lora_unet_single_blocks_0_linear1.lora_down.weight"]
    opts["split_linear1"] = [list(down.shape), list(up.shape), bool(up[:32, 4:].abs().sum() == 0)]
    n2, _ = keys(split_qkv="True")
    n2.load_weights(s)
    opts["split_roundtrip"] = _equal(s, n2.state_dict())
    opts["single_only"] = sorted({k.split("_")[2] for k in keys(train_blocks="single")[1]})
    opts["t5"] = sum(k.startswith("lora_te3_encoder_block_0_layer_0_SelfAttention_q.") for k in
                     keys(train_t5xxl="True")[1])
    opts["img_attn_dim0"] = any("img_attn" in k for k in keys(img_attn_dim=0)[1])
    opts["single_dim8"] = list(keys(single_dim=8)[1]["lora_unet_single_blocks_1_linear2.lora_down.weight"].shape)
    opts["in_dims"] = sorted({k.split(".")[0] for k in keys(in_dims="[2,2,0,0,2]")[1]
                             if k.startswith("lora_unet_") and "blocks" not in k})
    opts["double_idx"] = sorted({k.split("_")[4] for k in keys(train_double_block_indices="1",
                                                              train_single_block_indices="none")[1]
                                 if k.startswith("lora_unet_double")})
    opts["alpha"] = float(keys()[1]["lora_unet_double_blocks_0_img_mlp_0.alpha"])
    res["options"] = opts
    return res


if __name__ == "__main__":
    mode = sys.argv[1]
    out = build(Path(sys.argv[2])) if mode == "build" else check(Path(sys.argv[2]), Path(sys.argv[3]))
    print("FLUX_CHECK " + json.dumps(out))
