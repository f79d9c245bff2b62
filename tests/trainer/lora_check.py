"""Torch-side checks for the trainer tests, run as ONE subprocess (each torch import costs seconds).

Usage: lora_check.py SPEC.json → prints one JSON line of results. SPEC:
{"roundtrip": [{"family": "sdxl", "ckpt": path}, ...],
 "loras": [{"family": "sdxl", "ckpt": path, "lora": path}, ...],
 "counts": true, "features": {"sd1": path, "sdxl": path}}

- roundtrip: the checkpoint loaded by the trainer's loader equals, tensor for tensor, the tiny model
  make_demo_checkpoint.py builds from the same seed.
- loras: the LoRA file loaded into a diffusers pipeline built from the same checkpoint through
  `load_lora_weights` (logs captured) vs the trainer's own network holding the same weights; plus the
  difference the LoRA makes against the base model.
- counts: module counts of our LoRA network on the full-size bundled configs (meta device), spec §5.2.4.
- lycoris: a LyCORIS file through our LyCORIS network and through diffusers.
- features: max_token_length windows and stitching through the trainer's own `_encode` on the tiny models,
  zero terminal SNR and input-perturbation noise.
"""
from __future__ import annotations

import json
import logging
import sys
import warnings
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


def roundtrip(family: str, ckpt: str) -> dict:
    from lora_trainer.demo_model import build_tiny_components
    from lora_trainer.models import load_model

    m = load_model(ckpt)
    comps, _ = build_tiny_components(family, seed=0)
    got = {"unet": m.unet, "vae": m.vae, "text_encoder": m.text_encoders[0]}
    if family == "sdxl":
        got["text_encoder_2"] = m.text_encoders[1]
    res = {"family": m.family, "components": {}}
    for name, mod in got.items():
        a, b = comps[name].state_dict(), mod.state_dict()
        res["components"][name] = {
            "n": len(a),
            "mismatched": [k for k in a if k not in b or a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])],
            "extra": [k for k in b if k not in a],
        }
    return res


def _unet_out(pipe, family: str, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, generator=g)
    t = torch.tensor([500])
    with torch.no_grad():
        if family == "sdxl":
            emb, _, pooled, _ = pipe.encode_prompt(prompt, device="cpu", num_images_per_prompt=1,
                                                   do_classifier_free_guidance=False)
            time_ids = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]])
            out = pipe.unet(sample, t, emb, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
        else:
            emb, _ = pipe.encode_prompt(prompt, device="cpu", num_images_per_prompt=1,
                                        do_classifier_free_guidance=False)
            out = pipe.unet(sample, t, emb).sample
    return out, emb


def check_lora(family: str, ckpt: str, lora: str) -> dict:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from lora_trainer.models import load_model
    from lora_trainer.network import LoRANetwork

    prompt = "demo person, photo"
    sd = load_file(lora)
    with safe_open(lora, "pt") as f:
        meta = dict(f.metadata() or {})

    # the trained model: our own network on a fresh load, holding the file's weights
    ours = load_model(ckpt)
    has_te = any(k.startswith("lora_te") for k in sd)
    downs = {k: v for k, v in sd.items() if k.endswith("lora_down.weight")}
    dims = {v.shape[0] for v in downs.values() if v.dim() == 2 or v.shape[2] == 1}
    conv_dims = {v.shape[0] for v in downs.values() if v.dim() == 4 and v.shape[2] > 1}
    net = LoRANetwork(ours.unet, ours.text_encoders, family, max(dims), None, train_te=has_te,
                      conv_dim=max(conv_dims) if conv_dims else None)
    net.apply_to()
    missing, unexpected = net.load_weights(sd)
    for m in net.te_modules + net.unet_modules:  # alpha comes from the file, not from the constructor
        a = float(sd[m.lora_name + ".alpha"])
        m.scale = a / m.rank
    net.eval()
    out_ours, emb_ours = _unet_out(ours.pipeline, family, prompt)
    (out_base, emb_base), (out_diff, emb_diff), logs = _diffusers_outputs(family, ckpt, lora, prompt)
    return {
        "our_missing": missing, "our_unexpected": unexpected, "logs": logs,
        "max_abs_ours_vs_diffusers": float((out_ours - out_diff).abs().max()),
        "max_abs_emb_ours_vs_diffusers": float((emb_ours - emb_diff).abs().max()),
        "max_abs_lora_effect": float((out_diff - out_base).abs().max()),
        "max_abs_emb_lora_effect": float((emb_diff - emb_base).abs().max()),
        "metadata": meta,
    }


def _diffusers_outputs(family: str, ckpt: str, lora: str, prompt: str):
    """(UNet output, text embedding) of a fresh model from `ckpt` before and after diffusers'
    `load_lora_weights(lora)`, and the log records and warnings that loading emitted."""
    from lora_trainer.models import load_model

    base = load_model(ckpt)
    before = _unet_out(base.pipeline, family, prompt)
    cap = _Capture()
    for name in ("diffusers", "peft", "transformers"):
        logging.getLogger(name).addHandler(cap)
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            base.pipeline.load_lora_weights(lora)
    finally:
        for name in ("diffusers", "peft", "transformers"):
            logging.getLogger(name).removeHandler(cap)
    after = _unet_out(base.pipeline, family, prompt)
    return before, after, cap.records + [str(x.message) for x in w]


def check_lycoris(family: str, ckpt: str, lora: str, network_args: dict, dim: int, alpha: float) -> dict:
    """A LyCORIS file (sd-scripts' names) read back into the trainer's LyCORIS network on a fresh model, against
    diffusers' `load_lora_weights` of the same file (logs captured) and the base model."""
    from safetensors.torch import load_file

    from lora_trainer.lycoris_network import LycorisNetwork
    from lora_trainer.models import load_model

    prompt = "demo person, photo"
    sd = load_file(lora)
    ours = load_model(ckpt)
    net = LycorisNetwork(ours.unet, ours.text_encoders, family, dim, alpha, True, True, network_args)
    net.apply_to()
    missing, unexpected = net.load_weights(sd)
    net.eval()
    out_ours, emb_ours = _unet_out(ours.pipeline, family, prompt)
    (out_base, emb_base), (out_diff, emb_diff), logs = _diffusers_outputs(family, ckpt, lora, prompt)
    return {"our_missing": missing, "our_unexpected": unexpected, "logs": logs,
            "max_abs_ours_vs_diffusers": float((out_ours - out_diff).abs().max()),
            "max_abs_emb_ours_vs_diffusers": float((emb_ours - emb_diff).abs().max()),
            "max_abs_lora_effect": float((out_ours - out_base).abs().max()),
            "max_abs_emb_lora_effect": float((emb_ours - emb_base).abs().max())}


def counts() -> dict:
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from lora_trainer.models import CONFIG_ROOT
    from lora_trainer.network import LoRANetwork

    res = {}
    for fam, folder in (("sdxl", "sdxl"), ("sd1", "sd15"), ("sd2", "sd2")):
        d = CONFIG_ROOT / folder
        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(json.loads((d / "unet/config.json").read_text()))
            tes = [CLIPTextModel(CLIPTextConfig(**json.loads((d / "text_encoder/config.json").read_text())))]
            if fam == "sdxl":
                tes.append(CLIPTextModelWithProjection(
                    CLIPTextConfig(**json.loads((d / "text_encoder_2/config.json").read_text()))))
            lier = LoRANetwork(unet, tes, fam, 4, 1)
            c3 = LoRANetwork(unet, tes, fam, 4, 1, conv_dim=4, train_te=False)
        res[fam] = {"te": len(lier.te_modules), "unet": len(lier.unet_modules), "unet_conv": len(c3.unet_modules),
                    "unet_params": sum(p.numel() for p in unet.parameters()),
                    "te_params": [sum(p.numel() for p in t.parameters()) for t in tes]}
    return res


def optimizers(cases: list[list[str]]) -> list[dict]:
    """Build optimizer + LR scheduler through the trainer's own code from command-line options, take 4 steps
    on a small LoRA-shaped parameter set; report the classes, the LRs seen and whether the weights moved."""
    from types import SimpleNamespace

    from lora_trainer.args import parse_args
    from lora_trainer.train import OptionError, Trainer

    res = []
    for argv in cases:
        args = parse_args("sdxl_train_network", argv + ["--learning_rate", "0.01"])
        t = Trainer(args, "sdxl", None)
        t.acc = SimpleNamespace(num_processes=1)
        t.max_train_steps = 4
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(8, 4))
        before = w.detach().clone()
        row = {"argv": argv}
        try:
            opt, name = t._make_optimizer([{"params": [w], "lr": 0.01, "name": "unet"}])
            sched = t._make_scheduler(opt)
            lrs = []
            for _ in range(4):
                (w ** 2).sum().backward()
                opt.step()
                sched.step()
                opt.zero_grad()
                lrs.append(float(sched.get_last_lr()[0]) if hasattr(sched, "get_last_lr") else None)
            row.update(ok=True, optimizer=name, scheduler=type(sched).__name__, lrs=lrs,
                       moved=float((w.detach() - before).abs().max()))
        except OptionError as e:
            row.update(ok=False, error=str(e))
        res.append(row)
    return res


def _encoder(family: str, ckpt: str, argv: list[str], model=None):
    from types import SimpleNamespace

    from lora_trainer.args import parse_args
    from lora_trainer.models import load_model
    from lora_trainer.train import Trainer

    script = "sdxl_train_network" if family == "sdxl" else "train_network"
    t = Trainer(parse_args(script, argv), family, None)
    t.model = model or load_model(ckpt)
    t.acc = SimpleNamespace(device=torch.device("cpu"))
    t.cond_cache, t.te_trained = None, False
    return t


def features(sd1: str, sdxl: str) -> dict:
    """Long captions (max_token_length) through the trainer's `_encode`; ZT-SNR and ip-noise helpers."""
    from diffusers import DDPMScheduler

    from lora_trainer.long_prompts import token_windows
    from lora_trainer.noise_schedule import perturbed_noise, rescale_zero_terminal_snr

    short = "demo person, photo"
    words = ", ".join(f"tag{i}" for i in range(40))  # 150 tokens: past 75, within 225
    long_a, long_b = words + ", red hat", words + ", blue shoes"
    res = {}
    for family, ckpt in (("sd1", sd1), ("sdxl", sdxl)):
        t75 = _encoder(family, ckpt, [])
        t225 = _encoder(family, ckpt, ["--max_token_length", "225"], model=t75.model)
        t150 = _encoder(family, ckpt, ["--max_token_length", "150"], model=t75.model)
        with torch.no_grad():
            c75, p75 = t75._encode([short, long_a, long_b])
            c225, p225 = t225._encode([short, long_a, long_b])
            c150, _ = t150._encode([short])
        row = {"shape75": list(c75.shape), "shape150": list(c150.shape), "shape225": list(c225.shape),
               # causal text encoders: the first 76 positions of window 1 are the ordinary encoding's
               "head_equal": bool(torch.allclose(c225[0, :76], c75[0, :76], atol=1e-5)),
               "tail_ignored_at_75": bool(torch.equal(c75[1], c75[2])),
               "tail_seen_at_225": float((c225[1] - c225[2]).abs().max())}
        if family == "sdxl":
            row["pooled_first_window"] = bool(torch.allclose(p225[0], p75[0], atol=1e-5))
            tok2 = t75.model.tokenizers[1]
            ids = token_windows(tok2, [short, ", ".join(["tag"] * 80)], 150).view(2, 2, 77)
            row["tok2_empty_window_gets_eos"] = int(ids[0, 1, 1]) == tok2.eos_token_id
            row["tok2_cut_window_ends_eos"] = int(ids[1, 0, -1]) == tok2.eos_token_id
            row["tok2_pad_is_not_eos"] = tok2.pad_token_id != tok2.eos_token_id
        res[family] = row
    sched = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          num_train_timesteps=1000, clip_sample=False)
    before = sched.alphas_cumprod.clone()
    rescale_zero_terminal_snr(sched)
    ac = sched.alphas_cumprod
    res["ztsnr"] = {"last_before": float(before[-1]), "last_after": float(ac[-1]),
                    "first_rel_change": float(abs(ac[0] - before[0]) / before[0]),
                    "decreasing": bool((ac[1:] <= ac[:-1]).all()),
                    "cumprod_consistent": float((torch.cumprod(sched.alphas, 0) - ac).abs().max())}
    torch.manual_seed(0)
    noise = torch.zeros(4, 4, 32, 32)
    res["ip_noise"] = {"std": float(perturbed_noise(noise, 0.5, False).std()),
                       "std_random": [float(perturbed_noise(noise, 0.5, True).std()) for _ in range(5)]}
    res["fp16_unscale"] = {"plain": _fp16_step(False), "patched": _fp16_step(True)}
    return res


def _fp16_step(patch: bool) -> dict:
    """One grad-scaled AdamW step on an fp16 parameter (what full_fp16 gives the optimizer), with and without
    the trainer's scaler patch; torch's CPU GradScaler behaves as the CUDA one here."""
    from types import SimpleNamespace

    from lora_trainer.precision import allow_fp16_unscale

    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    w = torch.nn.Parameter(torch.ones(4, dtype=torch.float16))
    opt = torch.optim.AdamW([w], lr=0.1)
    if patch:
        allow_fp16_unscale(SimpleNamespace(scaler=scaler))
    scaler.scale((w.float() ** 2).sum()).backward()
    try:
        scaler.unscale_(opt)
        grad = w.grad.float().tolist()
        scaler.step(opt)
        scaler.update()
    except ValueError as e:
        return {"ok": False, "error": str(e)}
    return {"ok": True, "grad": grad, "w": w.float().tolist(), "dtype": str(w.dtype)}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    res = {"roundtrip": [roundtrip(**r) for r in spec.get("roundtrip", [])],
           "loras": [check_lora(**r) for r in spec.get("loras", [])]}
    if spec.get("optimizers"):
        res["optimizers"] = optimizers(spec["optimizers"])
    if spec.get("counts"):
        res["counts"] = counts()
    if spec.get("lycoris"):
        res["lycoris"] = [check_lycoris(**r) for r in spec["lycoris"]]
    if spec.get("features"):
        res["features"] = features(**spec["features"])
    print("RESULT " + json.dumps(res))


if __name__ == "__main__":
    main()
