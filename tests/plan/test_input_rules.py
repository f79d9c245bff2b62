"""Rules for values a form takes as free text that the trainer cannot use, found in a new user's trial:
an output name that is a path, an optimizer name that is no optimizer, a learning rate no run survives, and a
setting the model family ignores (clip_skip on SDXL). A file's unet_lr is no false alarm (issue 14)."""
from __future__ import annotations

import pytest

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.model import TrainingConfig
from lora_tui.plan.dataset import scan_dataset
from lora_tui.plan.rules import validate


def problems_of(**values):
    cfg = TrainingConfig.model_validate({**TrainingConfig(sdxl=True).model_dump(), **values})
    return [p for p in validate(cfg, scan_dataset(cfg), AppSettings())]


@pytest.mark.parametrize("name", ["sub/dir", "a\\b", ".."])
def test_output_name_that_is_a_path_is_an_error(name):
    found = [p for p in problems_of(output_name=name) if p.field == "output_name" and "is a path" in p.message]
    assert len(found) == 1 and found[0].severity == "error"


def test_plain_output_name_passes_the_path_rule():
    assert not [p for p in problems_of(output_name="кот_v1") if "is a path" in p.message]


@pytest.mark.parametrize("opt,bad", [("0.1", True), ("weight_decay=0.02", True), ("AdamW", False),
                                     ("prodigy", False), ("bitsandbytes.optim.AdEMAMix8bit", False),
                                     ("torch.optim.RAdam", False)])
def test_optimizer_name(opt, bad):
    found = [p for p in problems_of(optimizer=opt) if p.field == "optimizer" and "is not an optimizer" in p.message]
    assert bool(found) is bad


def test_a_unet_lr_in_force_is_no_false_alarm():
    # A kohya file that sets unet_lr (the usual practice) is shown as such (the Minimal row edits unet_lr, the
    # Advanced form says which rate is in force): no warning that it "overrides" learning_rate.
    for unet in (0.0001, None, 0.0003):
        assert not [p for p in problems_of(learning_rate=0.0003, unet_lr=unet)
                    if p.field in ("learning_rate", "unet_lr")], unet


def _lr_warnings(**kw):
    return {p.field: p.message for p in problems_of(**kw)
            if p.field in ("learning_rate", "unet_lr", "text_encoder_lr") and "far too high" in p.message}


def test_an_absurd_learning_rate_in_force_gets_a_sanity_warning():
    found = _lr_warnings(optimizer="AdamW", learning_rate=0.0001, unet_lr=None, text_encoder_lr=16.0)
    assert list(found) == ["text_encoder_lr"] and "text_encoder_lr 16 is far too high for AdamW" in \
        found["text_encoder_lr"] and "0.0001" in found["text_encoder_lr"]
    assert list(_lr_warnings(optimizer="AdamW8bit", learning_rate=1.0, unet_lr=None, text_encoder_lr=None)) == \
        ["learning_rate"]
    # not in force (both parts have their own rate): no warning about learning_rate
    assert not _lr_warnings(optimizer="AdamW", learning_rate=5.0, unet_lr=0.0001, text_encoder_lr=0.0001)
    # adaptive optimizers take 1.0 (real Prodigy/DAdapt/Adafactor presets); 16 is still absurd there
    for opt in ("Prodigy", "DAdaptAdam", "Adafactor"):
        assert not _lr_warnings(optimizer=opt, learning_rate=1.0, unet_lr=1.0, text_encoder_lr=1.0), opt
    assert list(_lr_warnings(optimizer="Prodigy", learning_rate=1.0, unet_lr=16.0, text_encoder_lr=1.0)) == \
        ["unet_lr"]


def test_clip_skip_on_sdxl_is_a_warning():
    def clip(**kw):
        return [p for p in problems_of(**kw) if p.field == "clip_skip"]
    found = clip(sdxl=True, clip_skip=2)
    assert len(found) == 1 and found[0].severity == "warning" and "does nothing on SDXL" in found[0].message
    assert not clip(sdxl=True, clip_skip=1) and not clip(sdxl=False, clip_skip=2)


def test_no_upscale_bucket_with_a_zero_side_is_an_error(tmp_path):
    from PIL import Image

    sub = tmp_path / "img" / "10_x"
    sub.mkdir(parents=True)
    Image.new("RGB", (256, 170)).save(sub / "a.png")
    (sub / "a.txt").write_text("x")
    values = dict(train_data_dir=str(tmp_path / "img"), max_resolution="64,64", enable_bucket=True,
                  bucket_no_upscale=True, bucket_reso_steps=64, min_bucket_reso=64, max_bucket_reso=128)
    found = [p for p in problems_of(**values) if p.field == "bucket_reso_steps" and "side of 0" in p.message]
    assert len(found) == 1 and found[0].severity == "error"
    values["bucket_reso_steps"] = 32  # 78x52 → 64x32: every side at least one step
    assert not [p for p in problems_of(**values) if "side of 0" in p.message]


def test_additional_parameter_that_contradicts_the_toml_is_a_warning_naming_both():
    found = [p for p in problems_of(additional_parameters="--max_grad_norm=0", max_grad_norm=1.0)
             if p.field == "additional_parameters"]
    assert len(found) == 1 and found[0].severity == "warning"
    msg = found[0].message
    assert "'--max_grad_norm=0'" in msg and "max_grad_norm = 1.0" in msg and "uses the command line's 0" in msg
    # the same value, an option the TOML does not hold and a resolution spelt the short way say nothing
    for text in ("--max_grad_norm=1", "--log_prefix=x", "--resolution=1024"):
        assert not [p for p in problems_of(additional_parameters=text, max_grad_norm=1.0, max_resolution="1024,1024")
                    if p.field == "additional_parameters"], text


def test_an_invalid_value_gets_only_its_error(tmp_path):
    """The trial's noise: placeholder paths got 'does not exist' and 'is relative'; epoch -3 also got 'neither
    epoch ... is set'; a placeholder 'models/x.safetensors' was taken for a Hub repo id."""
    from plan_helpers import write_images

    write_images(tmp_path / "img" / "10_cat", 3, (64, 64), caption_ext=".txt")
    found = problems_of(epoch=-3, max_train_steps=None, max_train_epochs=None, train_data_dir=str(tmp_path / "img"),
                        caption_extension=".txt", reg_data_dir="reg/placeholder", vae="vae/placeholder.safetensors",
                        pretrained_model_name_or_path="models/placeholder.safetensors", output_dir="out_not_yet")
    by_field: dict = {}
    for p in found:
        by_field.setdefault(p.field, []).append(p)
    for field in ("epoch", "reg_data_dir", "vae", "pretrained_model_name_or_path"):
        assert [p.severity for p in by_field[field]] == ["error"], by_field[field]
    assert "does not exist" in by_field["pretrained_model_name_or_path"][0].message
    # an output folder the run will create is not an error: its relative-path warning stays
    out_dir = by_field["output_dir"]
    assert [p.severity for p in out_dir] == ["warning"] and "relative" in out_dir[0].message
    # with a valid epoch the step warning comes back once the value is fixed (here: unset, so the default runs)
    fixed = problems_of(epoch=0, max_train_steps=None, max_train_epochs=None, train_data_dir=str(tmp_path / "img"),
                        caption_extension=".txt")
    assert [p.severity for p in fixed if p.field == "epoch"] == ["warning"]


def test_an_unset_image_folder_is_called_not_set():
    [p] = [p for p in problems_of(train_data_dir="", dataset_config="") if p.field == "train_data_dir"]
    assert p.severity == "error" and "train_data_dir" in p.message and "is not set" in p.message
    assert "empty" not in p.message


def test_the_resolved_path_is_shown_only_when_it_differs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nope"
    for given, shown in ((str(missing), False), (str(missing) + "/", False), ("nope", True), ("./nope", True)):
        msgs = [p.message for p in problems_of(train_data_dir=given, vae=given, dataset_config=given,
                                               pretrained_model_name_or_path=given)
                if p.severity == "error" and "does not exist" in p.message]
        assert len(msgs) == 4, (given, msgs)
        for m in msgs:
            assert (f"(resolved: '{missing}')" in m) == shown, (given, m)
            assert m.count(str(missing)) == 1 or not shown, m
