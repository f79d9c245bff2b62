"""pretrained_model_name_or_path: a .safetensors file that holds no base model (a LoRA, a VAE, an embedding, no
tensors at all, an unknown layout) is an error naming the field and the fix, read from the header alone. Real
checkpoints, Diffusers folders and .ckpt files are unaffected."""
from __future__ import annotations

import json
import struct

import pytest
from plan_helpers import make_cfg, write_images, write_safetensors_header

from lora_tui.plan import make_plan
from lora_tui.plan.model_family import detect_family

FIELD = "pretrained_model_name_or_path"


def _model_problems(tmp_path, settings, model, **kw):
    img = tmp_path / "img"
    write_images(img / "10_a", 2, (64, 64), caption_ext=".txt")
    cfg = make_cfg(pretrained_model_name_or_path=str(model), train_data_dir=str(img),
                   output_dir=str(tmp_path / "out"), **kw)
    return [p for p in make_plan(cfg, settings).problems if p.field == FIELD]


def _one_error(problems):
    errs = [p for p in problems if p.severity == "error"]
    assert len(errs) == 1, problems
    return errs[0].message


@pytest.mark.parametrize("keys", [
    ["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", "lora_te1_text_model_x.alpha"],
    ["lora_unet_input_blocks_1_1_proj_in.hada_w1_a"],  # LyCORIS LoHa
    ["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k.lora.down.weight"],  # Diffusers/PEFT
], ids=["kohya", "lycoris", "peft"])
def test_lora_file_as_base_model(tmp_path, settings, keys):
    f = write_safetensors_header(tmp_path / "my_style.safetensors", keys)
    msg = _one_error(_model_problems(tmp_path, settings, f))
    assert "LoRA" in msg and "not a base model" in msg and "pick the checkpoint" in msg
    assert "network_weights" in msg  # where a LoRA to continue from goes


@pytest.mark.parametrize("keys", [
    ["encoder.conv_in.weight", "decoder.conv_out.weight", "quant_conv.weight", "post_quant_conv.weight"],
    ["encoder.down_blocks.0.resnets.0.conv1.weight", "decoder.up_blocks.0.resnets.0.conv1.weight"],
    ["first_stage_model.encoder.conv_in.weight", "first_stage_model.decoder.conv_out.weight"],
], ids=["ldm", "diffusers", "prefixed"])
def test_vae_file_as_base_model(tmp_path, settings, keys):
    f = write_safetensors_header(tmp_path / "sdxl_vae.safetensors", keys)
    assert detect_family(str(f)).kind == "vae"
    msg = _one_error(_model_problems(tmp_path, settings, f))
    assert "VAE" in msg and "not a base model" in msg and "'vae'" in msg and "pick the checkpoint" in msg


def test_embedding_file_as_base_model(tmp_path, settings):
    f = write_safetensors_header(tmp_path / "badhands.safetensors", ["clip_l", "clip_g"])
    msg = _one_error(_model_problems(tmp_path, settings, f))
    assert "embedding" in msg and "pick the checkpoint" in msg


def test_file_without_tensors(tmp_path, settings):
    f = write_safetensors_header(tmp_path / "empty.safetensors", [])
    msg = _one_error(_model_problems(tmp_path, settings, f))
    assert "no tensors" in msg and "pick the checkpoint" in msg
    only_meta = tmp_path / "meta.safetensors"
    blob = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    only_meta.write_bytes(struct.pack("<Q", len(blob)) + blob)
    assert "no tensors" in _one_error(_model_problems(tmp_path, settings, only_meta))


def test_unknown_layout_names_some_keys(tmp_path, settings):
    f = write_safetensors_header(tmp_path / "te.safetensors", [
        "text_model.encoder.layers.0.mlp.fc1.weight", "text_model.final_layer_norm.weight"])
    msg = _one_error(_model_problems(tmp_path, settings, f))
    assert "no Stable Diffusion" in msg and "text_model.encoder.layers.0.mlp.fc1.weight" in msg
    assert "pick the checkpoint" in msg


def test_real_tiny_checkpoints_stay_accepted(tmp_path, settings, tiny_sdxl_ckpt, tiny_sd15_ckpt):
    assert _model_problems(tmp_path, settings, tiny_sdxl_ckpt, sdxl=True) == []
    assert _model_problems(tmp_path, settings, tiny_sd15_ckpt) == []


def test_diffusers_folder_and_ckpt_are_unaffected(tmp_path, settings):
    pipe = tmp_path / "pipe"
    (pipe / "unet").mkdir(parents=True)
    (pipe / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    (pipe / "unet" / "config.json").write_text(json.dumps({"addition_embed_type": "text_time"}))
    assert _model_problems(tmp_path, settings, pipe, sdxl=True) == []
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 not inspected: a pickle we never open")
    assert _model_problems(tmp_path, settings, ckpt) == []
