"""additional_parameters cannot move the LoRA out of output_dir or past the overwrite check (issue 19, item 4):
every way argparse reads an option (a unique prefix, ``=``, a repeat where the last wins) is seen; the options
the launch decides are moved into their field on load, refused by validation when typed later, and the
overwrite check looks where the trainer would write. Checked against the bundled trainer's real parser."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from plan_helpers import make_cfg, write_safetensors_header

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.kohya_json import config_from_dict
from lora_tui.plan.outputs import existing_outputs
from lora_tui.plan.rules import validate

REPO = Path(__file__).resolve().parents[2]

# (argv text, the option the trainer's argparse sets, the field named in the error)
OWNED = [
    ("--output_nam ../../x", "output_name", "output_name"),
    ("--output_name=x", "output_name", "output_name"),
    ("--output_name a --output_name b", "output_name", "output_name"),
    ("--output_dir /tmp/x --output_dir /tmp/x", "output_dir", "output_dir"),
    ("--output_d=/tmp/elsewhere", "output_dir", "output_dir"),
    ("--save_model_as ckpt", "save_model_as", "save_model_as"),
    ("--config_file other.toml", "config_file", "config file"),
    ("--sample_prompts /etc/passwd", "sample_prompts", "sample_prompts"),
    ("--dataset_conf data.toml", "dataset_config", "dataset_config"),
    ("--train_data_dir /data", "train_data_dir", "train_data_dir"),
    ("--pretrained_model_name_or_path other.safetensors", "pretrained_model_name_or_path",
     "pretrained_model_name_or_path"),
    ("--seed 1 --network_weights=w.safetensors", "network_weights", "network_weights"),
]


def _trainer_reads(text: str, option: str):
    """What the bundled trainer's own argparse parser sets ``option`` to from ``text``."""
    sys.path.insert(0, str(REPO / "sd-scripts"))
    try:
        from lora_trainer.args import build_parser
    finally:
        sys.path.pop(0)
    return getattr(build_parser("sdxl_train_network").parse_args(shlex.split(text)), option)


@pytest.mark.parametrize("text, option, field", OWNED)
def test_an_option_the_form_owns_is_an_error_however_it_is_spelled(text, option, field):
    assert _trainer_reads(text, option) not in (None, False)  # the trainer would take it
    cfg = make_cfg(sdxl=True, additional_parameters=text)
    errors = [p.message for p in validate(cfg, None, AppSettings())
              if p.field == "additional_parameters" and p.severity == "error"]
    mine = [m for m in errors if f"--{option} " in m]
    assert len(mine) == 1, errors  # one error per option, also when it is given twice
    assert field in mine[0] and "remove" in mine[0]


def test_loading_moves_owned_options_into_their_fields_as_argparse_reads_them():
    r = config_from_dict({"output_name": "a", "output_dir": "/o",
                          "additional_parameters": "--output_nam b --log_prefix=x --output_dir /p --output_dir=/q"})
    assert (r.config.output_name, r.config.output_dir) == ("b", "/q")  # the prefix; the last of a repeat
    assert r.config.additional_parameters == "--log_prefix=x"
    note = next(n for n in r.notes if n.startswith("output_dir:"))
    assert "given 2 times" in note and "keeps the last" in note and "replacing the file's '/o'" in note
    assert any(n.startswith("output_name: 'b' moved in from additional_parameters ('--output_nam b')")
               for n in r.notes), r.notes
    # one with no field stays, and validation refuses it
    r = config_from_dict({"additional_parameters": "--config_file x.toml"})
    assert r.config.additional_parameters == "--config_file x.toml"


def test_the_overwrite_check_looks_where_the_trainer_writes(tmp_path):
    form_dir, other = tmp_path / "form", tmp_path / "other"
    form_dir.mkdir()
    other.mkdir()
    (other / "face.safetensors").write_bytes(b"x")
    (other / "face-000001.safetensors").write_bytes(b"x")
    cfg = make_cfg(output_dir=str(form_dir), output_name="new",
                   additional_parameters=f"--output_d={other} --output_nam face")
    assert existing_outputs(cfg) == [str(other / "face.safetensors"), str(other / "face-000001.safetensors")]


def test_network_weights_that_are_not_lora_weights(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("these are my notes, not weights\n")
    other = tmp_path / "weights.txt"
    other.write_text("x")
    base = write_safetensors_header(tmp_path / "base.safetensors",
                                    ["conditioner.embedders.1.model.ln_final.weight", "model.diffusion_model.x"])
    lora = write_safetensors_header(tmp_path / "lora.safetensors", ["lora_unet_x.lora_down.weight"])
    for path, words in ((text, "not a safetensors file"), (other, "not a weights file"), (base, "base model")):
        probs = [p for p in validate(make_cfg(network_weights=str(path)), None, AppSettings())
                 if p.field == "network_weights"]
        assert [p.severity for p in probs] == ["error"] and words in probs[0].message, probs
    assert not [p for p in validate(make_cfg(network_weights=str(lora)), None, AppSettings())
                if p.field == "network_weights"]


def test_sample_prompts_that_are_a_file_or_binary(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a cat --w 512\n")
    [p] = [p for p in validate(make_cfg(sample_prompts=str(prompts)), None, AppSettings())
           if p.field == "sample_prompts"]
    assert p.severity == "warning" and "path of a file" in p.message
    binary = (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256))).decode("latin-1")
    [p] = [p for p in validate(make_cfg(sample_prompts=binary), None, AppSettings()) if p.field == "sample_prompts"]
    assert p.severity == "error" and "control characters" in p.message
    assert not [p for p in validate(make_cfg(sample_prompts="a cat\na dog --n blurry\n"), None, AppSettings())
                if p.field == "sample_prompts"]


def test_lora_tui_train_refuses_to_overwrite_where_the_argv_points(tmp_path):
    """The issue's case end to end, through the real command line: a kohya_ss file whose argv repeats
    --output_dir and abbreviates --output_name. Loading moves both into their fields, so the overwrite check
    sees the LoRA the trainer would replace and `lora-tui train` refuses, writing nothing (before: the trainer
    started and replaced it)."""
    import json
    import os
    import subprocess

    from PIL import Image

    ckpt = write_safetensors_header(tmp_path / "sdxl.safetensors",
                                    ["conditioner.embedders.1.model.ln_final.weight",
                                     "model.diffusion_model.input_blocks.0.0.weight"])
    sub = tmp_path / "img" / "10_face"
    sub.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (64, 64)).save(sub / f"{i}.png")
        (sub / f"{i}.txt").write_text("a face")
    form_out, other = tmp_path / "out", tmp_path / "other"
    form_out.mkdir()
    other.mkdir()
    precious = other / "face.safetensors"
    precious.write_bytes(b"someone's finished LoRA")
    cfg = tmp_path / "kohya.json"
    cfg.write_text(json.dumps({
        "LoRA_type": "Standard", "sdxl": True, "pretrained_model_name_or_path": str(ckpt),
        "train_data_dir": str(tmp_path / "img"), "output_dir": str(form_out), "output_name": "new",
        "max_resolution": "64,64", "network_dim": 4, "network_alpha": 4,
        "additional_parameters": f"--output_dir {other} --output_dir {other} --output_nam face"}))
    env = {**os.environ, **{v: str(tmp_path / v.lower()) for v in ("XDG_CONFIG_HOME", "XDG_STATE_HOME",
                                                                   "XDG_CACHE_HOME", "XDG_DATA_HOME")}}
    r = subprocess.run([sys.executable, "-m", "lora_tui", "train", str(cfg)], capture_output=True, env=env,
                       cwd=REPO, timeout=120)
    said = (r.stdout + r.stderr).decode()
    assert r.returncode == 1 and f"{precious} already exists" in said, said
    assert precious.read_bytes() == b"someone's finished LoRA"
    assert not list(other.glob("config_lora-*")) and not list(form_out.iterdir())
