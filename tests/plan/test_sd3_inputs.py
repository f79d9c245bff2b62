"""SD3 inputs before Start: each text encoder set (existing, the right component by header) or inside the
checkpoint, and the 32-px bucket step sd-scripts' SD3 trainer requires. Headers only, no torch."""
from __future__ import annotations

from plan_helpers import make_cfg, write_safetensors_header

from lora_tui.plan import make_plan

MMDIT = ["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", "model.diffusion_model.pos_embed",
         "first_stage_model.encoder.conv_in.weight"]
TES = ["text_encoders.clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
       "text_encoders.clip_g.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
       "text_encoders.t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.weight"]
T5_KEYS = ["encoder.block.0.layer.0.SelfAttention.q.weight", "shared.weight"]
FIELDS = ("sd3_clip_l", "clip_g", "sd3_t5xxl", "bucket_reso_steps")


def _errors(cfg, settings):
    return {p.field: p.message for p in make_plan(cfg, settings).problems if p.severity == "error" and p.field in FIELDS}


def _sd3(path, **kw):
    return make_cfg(pretrained_model_name_or_path=str(path), sd3_checkbox=True, **kw)


def test_checkpoint_with_text_encoders_inside_passes(tmp_path, settings):
    ck = write_safetensors_header(tmp_path / "sd3_incl.safetensors", MMDIT + TES)
    assert _errors(_sd3(ck), settings) == {}


def test_missing_wrong_and_bucket_step_are_named(tmp_path, settings):
    ck = write_safetensors_header(tmp_path / "sd3_medium.safetensors", MMDIT)
    t5 = write_safetensors_header(tmp_path / "t5xxl.safetensors", T5_KEYS)
    errs = _errors(_sd3(ck, clip_g=str(t5), sd3_t5xxl=str(tmp_path / "nowhere.safetensors"), bucket_reso_steps=48),
                   settings)
    assert "clip_l is not set and the checkpoint does not include it" in errs["sd3_clip_l"]
    assert "is a T5-XXL text encoder" in errs["clip_g"] and "not a CLIP-G" in errs["clip_g"]
    assert "does not exist" in errs["sd3_t5xxl"]
    assert "multiple of 32" in errs["bucket_reso_steps"]
    errs = _errors(_sd3(ck, sd3_clip_l=str(ck), clip_g="", sd3_t5xxl=str(t5), bucket_reso_steps=32), settings)
    assert "is an SD3 checkpoint" in errs["sd3_clip_l"] and "clip_g is not set" in errs["clip_g"]
    assert "sd3_t5xxl" not in errs and "bucket_reso_steps" not in errs
