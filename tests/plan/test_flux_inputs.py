"""Flux.1 inputs before Start: the three extra files set, existing and of the right component (header only), the
bucket step sd-scripts' Flux trainer requires, and fp8_base's need for mixed precision."""
from __future__ import annotations

from pathlib import Path

from plan_helpers import make_cfg, write_safetensors_header

from lora_tui.config.app_settings import AppSettings
from lora_tui.plan import make_plan

REPO = Path(__file__).resolve().parents[2]
FLUX_KEYS = ["double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight", "img_in.weight"]
AE_KEYS = ["encoder.conv_in.weight", "decoder.conv_in.weight"]
CLIP_KEYS = ["text_model.encoder.layers.0.self_attn.q_proj.weight", "text_model.final_layer_norm.weight"]
T5_KEYS = ["encoder.block.0.layer.0.SelfAttention.q.weight", "shared.weight"]
SDXL_KEYS = ["conditioner.embedders.1.model.ln_final.weight", "model.diffusion_model.input_blocks.0.0.weight"]


def _errors(cfg, settings, fields=("ae", "clip_l", "t5xxl", "bucket_reso_steps", "fp8_base")):
    return {p.field: p.message for p in make_plan(cfg, settings).problems if p.severity == "error" and p.field in fields}


def _flux(tmp_path, **kw):
    files = {"transformer": FLUX_KEYS, "ae": AE_KEYS, "clip_l": CLIP_KEYS, "t5xxl": T5_KEYS}
    paths = {k: str(write_safetensors_header(tmp_path / f"{k}.safetensors", v)) for k, v in files.items()}
    base = dict(pretrained_model_name_or_path=paths["transformer"], flux1_checkbox=True, LoRA_type="Flux1",
                ae=paths["ae"], clip_l=paths["clip_l"], t5xxl=paths["t5xxl"])
    base.update(kw)
    return make_cfg(**base)


def test_right_flux_files_pass(tmp_path, settings):
    assert _errors(_flux(tmp_path), settings) == {}


def test_missing_wrong_and_other_family_files_are_named(tmp_path, settings):
    sdxl = write_safetensors_header(tmp_path / "sdxl.safetensors", SDXL_KEYS)
    cfg = _flux(tmp_path, ae="", clip_l=str(tmp_path / "ae.safetensors"), t5xxl=str(sdxl), bucket_reso_steps=32)
    errs = _errors(cfg, settings)
    assert "ae is not set" in errs["ae"]
    assert "is the Flux.1 autoencoder" in errs["clip_l"] and "not a CLIP-L" in errs["clip_l"]
    assert "Stable Diffusion checkpoint" in errs["t5xxl"]
    assert "multiple of 64" in errs["bucket_reso_steps"]
    cfg = _flux(tmp_path, t5xxl=str(tmp_path / "nowhere.safetensors"))
    assert "does not exist" in _errors(cfg, settings)["t5xxl"]


def test_fp8_base_is_accepted_for_flux_and_sd_in_the_bundled_trainer(tmp_path):
    bundled = AppSettings(sd_scripts_dir=REPO / "sd-scripts")
    assert "fp8_base" not in _errors(_flux(tmp_path, fp8_base=True), bundled)
    # the SD/SDXL trainer stores frozen weights in fp8 too (fp8.py); only mixed precision is required
    assert "fp8_base" not in _errors(make_cfg(fp8_base=True, mixed_precision="bf16"), bundled)
    assert "mixed precision" in _errors(make_cfg(fp8_base=True, mixed_precision="no"), bundled)["fp8_base"]


def test_the_tokenizer_folder_is_checked(tmp_path, settings):
    def problems(cfg):
        return {p.severity: p.message for p in make_plan(cfg, settings).problems if p.field == "tokenizer_cache_dir"}

    assert problems(_flux(tmp_path)) == {}  # empty: the Hugging Face cache
    assert "is not a folder" in problems(_flux(tmp_path, tokenizer_cache_dir=str(tmp_path / "nowhere")))["error"]
    (tmp_path / "toks").mkdir()
    warned = problems(_flux(tmp_path, tokenizer_cache_dir=str(tmp_path / "toks")))
    assert list(warned) == ["warning"] and "no google_t5-v1_1-xxl folder" in warned["warning"]
    (tmp_path / "toks" / "google_t5-v1_1-xxl").mkdir()
    assert problems(_flux(tmp_path, tokenizer_cache_dir=str(tmp_path / "toks"))) == {}
