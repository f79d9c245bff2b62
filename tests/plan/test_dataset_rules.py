"""Folder layouts, captions, dataset TOML and checkpoint checks as a user meets them (issue 4 test list)."""
from __future__ import annotations

import json
import os

from PIL import Image
from plan_helpers import make_cfg, write_images, write_safetensors_header

from lora_tui.plan import make_plan
from lora_tui.plan.dataset import scan_dataset
from lora_tui.plan.model_family import detect_family


def _by(problems, field, severity=None):
    return [p for p in problems if p.field == field and (severity is None or p.severity == severity)]


def test_image_folder_picked_instead_of_parent(tmp_path, settings):
    img = tmp_path / "data" / "img"
    write_images(img / "6_xxx", 4, (64, 64), caption_ext=".txt")
    cfg = make_cfg(train_data_dir=str(img / "6_xxx"), output_dir=str(tmp_path / "out"))
    plan = make_plan(cfg, settings)
    errs = _by(plan.problems, "train_data_dir", "error")
    assert errs, plan.problems
    assert f"set it to '{img}'" in errs[0].message
    assert plan.steps.max_train_steps == 0


def test_unprefixed_sibling_is_a_warning(tmp_path, settings):
    img = tmp_path / "data" / "img"
    write_images(img / "10_girl", 3, (64, 64), caption_ext=".txt")
    write_images(img / "CROP", 2, (64, 64))
    write_images(img, 1, (64, 64))  # one picture straight in the parent: unused
    cfg = make_cfg(train_data_dir=str(img), output_dir=str(tmp_path / "out"), max_resolution="64,64",
                   min_bucket_reso=64, epoch=1)
    plan = make_plan(cfg, settings)
    warns = [p for p in _by(plan.problems, "train_data_dir") if "CROP" in p.message]
    assert len(warns) == 1 and warns[0].severity == "warning"
    assert "10_CROP" in warns[0].message and "holds 2 images but" in warns[0].message
    direct = [p.message for p in _by(plan.problems, "train_data_dir") if "directly" in p.message]
    assert len(direct) == 1 and direct[0].startswith(f"1 image lies directly in '{img}' and is not used"), direct
    assert direct[0].endswith("move it into one")
    assert plan.errors == []
    assert plan.steps.repeats_images == 30


def test_images_one_level_too_deep(tmp_path, settings):
    data = tmp_path / "data"
    write_images(data / "10_girl" / "images", 5, (64, 64))
    # Picking /data: the repeats folder holds only a sub-folder.
    plan = make_plan(make_cfg(train_data_dir=str(data), output_dir=str(tmp_path / "o")), settings)
    errs = _by(plan.problems, "train_data_dir", "error")
    assert any("10_girl/images/" in p.message and f"{data}{os.sep}10_girl{os.sep}<image>.png" in p.message
               for p in errs), errs
    # Picking /data/10_girl: told to pick /data and move the images up.
    plan = make_plan(make_cfg(train_data_dir=str(data / "10_girl"), output_dir=str(tmp_path / "o")), settings)
    errs = _by(plan.problems, "train_data_dir", "error")
    assert any(f"set it to '{data}'" in p.message and "<image>.png" in p.message for p in errs), errs


def test_folder_without_prefix_suggests_name(tmp_path, settings):
    img = tmp_path / "img"
    write_images(img / "goth", 3, (64, 64))
    write_images(img / "solo", 1, (64, 64))
    plan = make_plan(make_cfg(train_data_dir=str(img), output_dir=str(tmp_path / "o")), settings)
    errs = _by(plan.problems, "train_data_dir", "error")
    assert any("folder 'goth' (3 images) has no repeats prefix" in p.message and "'10_goth'" in p.message
               for p in errs), errs
    assert any("folder 'solo' (1 image) has no repeats prefix" in p.message for p in errs), errs


def test_captions_in_another_extension(tmp_path, settings):
    img = tmp_path / "img"
    write_images(img / "10_a", 1, (64, 64), caption_ext=".txt")
    (img / "10_a" / "0000.npz").write_bytes(b"latent cache, not a caption")
    cfg = make_cfg(train_data_dir=str(img), caption_extension=".caption", output_dir=str(tmp_path / "o"))
    plan = make_plan(cfg, settings)
    warns = _by(plan.problems, "caption_extension", "warning")
    assert len(warns) == 1
    assert "0 of 1 image in '10_a' have .caption captions, 1 has .txt" in warns[0].message
    # Setting the extension it suggests clears it, without a re-scan.
    cfg.caption_extension = ".txt"
    plan2 = make_plan(cfg, settings, scan=plan.scan)
    assert plan2.scan is plan.scan
    assert _by(plan2.problems, "caption_extension") == []


def test_missing_and_empty_captions(tmp_path, settings):
    img = tmp_path / "img"
    write_images(img / "10_a", 3, (64, 64))
    (img / "10_a" / "0000.txt").write_text("", encoding="utf-8")
    (img / "10_a" / "0001.txt").write_text("a photo", encoding="utf-8")
    (img / "10_a" / "notes.doc").write_text("x", encoding="utf-8")
    (img / "10_a" / "odd.Jpg").write_bytes(b"")
    plan = make_plan(make_cfg(train_data_dir=str(img), output_dir=str(tmp_path / "o")), settings)
    msgs = [p.message for p in _by(plan.problems, "train_data_dir")]
    assert any("1 caption file in '10_a' is empty (0000.txt)" in m for m in msgs), msgs
    assert any("1 of 3 images in '10_a' has no .txt caption (0002.png); it is trained with the class token 'a'"
               in m for m in msgs), msgs
    assert any("1 file in '10_a' is neither images nor their captions ('notes.doc'); the trainer ignores it" in m
               for m in msgs), msgs
    assert any("1 picture in '10_a' is not used by the trainer ('odd.Jpg')" in m and m.endswith("rename it")
               for m in msgs), msgs


def test_spaces_and_non_ascii_path(tmp_path, settings):
    root = tmp_path / "Lora Training Data" / "训练"
    write_images(root / "10_my person", 3, (512, 512), caption_ext=".txt")
    write_images(root / "10_my person", 2, (512, 768), start=3, caption_ext=".txt")
    cfg = make_cfg(train_data_dir=str(root), train_batch_size=2, epoch=3, output_dir=str(tmp_path / "out dir"))
    plan = make_plan(cfg, settings)
    # 3 square x 10 = 30 -> 15 batches; 2 portrait x 10 = 20 -> 10 batches; 25 x 3 = 75 steps.
    assert plan.errors == []
    assert plan.scan.subsets[0].class_tokens == "my person"
    assert (plan.steps.repeats_images, plan.steps.batches_per_epoch, plan.steps.max_train_steps) == (50, 25, 75)


def test_dataset_config_unknown_key_names_key_and_line(tmp_path, settings):
    img = tmp_path / "imgs"
    write_images(img, 2, (64, 64), caption_ext=".txt")
    toml = tmp_path / "dataset.toml"
    toml.write_text(
        "[general]\nenable_bucket = true\n\n[[datasets]]\nresolution = 512\n\n"
        f"[[datasets.subsets]]\nimage_dir = '{img}'\nnum_repeat = 10\n",  # line 9: misspelled key
        encoding="utf-8")
    plan = make_plan(make_cfg(dataset_config=str(toml), output_dir=str(tmp_path / "o")), settings)
    errs = _by(plan.problems, "dataset_config", "error")
    assert any("'num_repeat'" in p.message and "line 9" in p.message and "num_repeats" in p.message
               for p in errs), errs


def test_dataset_config_wrong_types(tmp_path, settings):
    toml = tmp_path / "dataset.toml"
    toml.write_text("[general]\nflip_aug = 1\n\n[[datasets]]\nbatch_size = \"2\"\nnetwork_multiplier = 1\n\n"
                    "[[datasets.subsets]]\nimage_dir = 'x'\n", encoding="utf-8")
    scan = scan_dataset(make_cfg(dataset_config=str(toml)))
    msgs = [p.message for p in scan.problems]
    assert any("line 2" in m and "flip_aug" in m and "bool" in m for m in msgs), msgs
    assert any("line 5" in m and "batch_size" in m and "int" in m for m in msgs), msgs
    assert any("line 6" in m and "network_multiplier" in m and "1.0" in m for m in msgs), msgs
    assert any("image_dir 'x' does not exist" in m for m in msgs), msgs


def test_flux_checkpoint_with_sdxl_family_is_an_error(tmp_path, settings):
    ckpt = write_safetensors_header(tmp_path / "flux1-dev.safetensors", [
        "double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight", "img_in.weight"])
    img = tmp_path / "img"
    write_images(img / "10_a", 2, (64, 64), caption_ext=".txt")
    cfg = make_cfg(pretrained_model_name_or_path=str(ckpt), sdxl=True, train_data_dir=str(img),
                   output_dir=str(tmp_path / "o"))
    errs = _by(make_plan(cfg, settings).problems, "pretrained_model_name_or_path", "error")
    assert len(errs) == 1 and "Flux.1" in errs[0].message and "SDXL" in errs[0].message


def test_family_detection_from_headers_and_diffusers(tmp_path):
    sd1 = write_safetensors_header(tmp_path / "a.safetensors", [
        "model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.transformer.text_model.x"])
    sd2 = write_safetensors_header(tmp_path / "b.safetensors", [
        "model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.model.ln_final.weight"])
    xl = write_safetensors_header(tmp_path / "c.safetensors", [
        "model.diffusion_model.label_emb.0.0.weight", "conditioner.embedders.1.model.ln_final.weight"])
    sd3 = write_safetensors_header(tmp_path / "d.safetensors", ["model.diffusion_model.joint_blocks.0.x.weight"])
    lora = write_safetensors_header(tmp_path / "e.safetensors", ["lora_unet_down_blocks_0.lora_down.weight"])
    assert [detect_family(str(p)).family for p in (sd1, sd2, xl, sd3)] == ["sd1", "sd2", "sdxl", "sd3"]
    assert detect_family(str(lora)).kind == "lora"
    pipe = tmp_path / "pipe"
    (pipe / "unet").mkdir(parents=True)
    (pipe / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (pipe / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 1024}))
    assert detect_family(str(pipe)).family == "sd2"


def test_bundled_demo_checkpoint_is_sdxl(tiny_sdxl_ckpt):
    assert detect_family(str(tiny_sdxl_ckpt)).family == "sdxl"


def test_scheduler_and_argument_rules(tmp_path, settings):
    img = tmp_path / "img"
    write_images(img / "10_a", 2, (64, 64), caption_ext=".txt")
    base = dict(train_data_dir=str(img), output_dir=str(tmp_path / "o"))
    # constant scheduler + a warm-up percentage: sd-scripts would raise ValueError, so the launch leaves the
    # warm-up out; the user is told it is not used.
    plan = make_plan(make_cfg(lr_scheduler="constant", lr_warmup=10, **base), settings)
    assert any(x.field == "lr_warmup" and x.severity == "warning" and "constant" in x.message for x in plan.problems)
    assert plan.steps.lr_warmup_steps == 0
    # adafactor scheduler with a non-Adafactor optimizer.
    p = make_plan(make_cfg(lr_scheduler="adafactor", optimizer="AdamW", **base), settings).problems
    assert any(x.field == "lr_scheduler" and "Adafactor" in x.message for x in p)
    # Adafactor's default relative_step replaces the scheduler: warm-up refused.
    p = make_plan(make_cfg(optimizer="Adafactor", lr_scheduler="cosine", lr_warmup_steps=50, **base),
                  settings).problems
    assert any(x.field == "lr_warmup_steps" and "relative_step" in x.message for x in p)
    # Argument strings: an open quote, and a token without '='.
    p = make_plan(make_cfg(optimizer_args='weight_decay=0.1 "betas=0.9,0.99', **base), settings).problems
    assert any(x.field == "optimizer_args" and "does not parse" in x.message for x in p)
    p = make_plan(make_cfg(lr_scheduler_args="min_lr", **base), settings).problems
    assert any(x.field == "lr_scheduler_args" and "'min_lr' is not key=value" in x.message for x in p)
    ok = make_plan(make_cfg(optimizer_args="weight_decay=0.1 betas=0.9,0.99", lr_scheduler="cosine", lr_warmup=5,
                            **base), settings)
    assert ok.errors == [], ok.errors


def test_output_exists_relative_paths_and_unsupported_options(tmp_path, settings, monkeypatch):
    img = tmp_path / "img"
    write_images(img / "10_a", 2, (64, 64), caption_ext=".txt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mylora.safetensors").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    cfg = make_cfg(train_data_dir="img", output_dir=str(out), output_name="mylora", color_aug=True,
                   cache_latents=False)
    p = make_plan(cfg, settings).problems
    assert any(x.field == "output_name" and "already exists" in x.message for x in p)
    assert any(x.field == "train_data_dir" and x.severity == "warning" and str(img) in x.message for x in p)
    assert not any(x.field == "color_aug" for x in p)
    # The bundled trainer's list of refused options applies once it exists in sd_scripts_dir.
    (settings.sd_scripts_dir / "lora_trainer").mkdir()
    (settings.sd_scripts_dir / "lora_trainer" / "unsupported_options.json").write_text(
        json.dumps({"color_aug": "augmentation is not implemented"}))
    p = make_plan(cfg, settings).problems
    assert any(x.field == "color_aug" and x.severity == "error" and "augmentation" in x.message for x in p)


def test_rescan_picks_up_changed_image(tmp_path):
    img = tmp_path / "img"
    paths = write_images(img / "1_a", 1, (512, 512))
    cfg = make_cfg(train_data_dir=str(img))
    assert scan_dataset(cfg).subsets[0].images[0].width == 512
    Image.new("RGB", (320, 640)).save(paths[0])
    os.utime(paths[0], ns=(1, 1))  # a different mtime even on coarse-clock file systems
    im = scan_dataset(cfg).subsets[0].images[0]
    assert (im.width, im.height) == (320, 640)


def test_make_plan_reuses_a_fresh_scan_and_sees_new_files(tmp_path, settings):
    img = tmp_path / "img"
    write_images(img / "2_a", 2, (64, 64), caption_ext=".txt")
    cfg = make_cfg(train_data_dir=str(img), output_dir=str(tmp_path / "o"), max_resolution="64,64",
                   min_bucket_reso=64)
    first = make_plan(cfg, settings)
    cfg.train_batch_size = 2  # a field edit: same data paths, nothing changed on disk
    again = make_plan(cfg, settings)
    assert again.scan is first.scan and again.steps.batches_per_epoch == 2
    write_images(img / "2_a", 1, (64, 64), start=2, caption_ext=".txt")  # the folder changes
    later = make_plan(cfg, settings)
    assert later.scan is not first.scan
    assert later.steps.repeats_images == 6


def test_dataset_config_parse_error_and_values(tmp_path, settings):
    bad = tmp_path / "bad.toml"
    bad.write_text("[general]\nshuffle_caption = true\n[[datasets]\nbatch_size = 1\n", encoding="utf-8")
    msgs = [p.message for p in scan_dataset(make_cfg(dataset_config=str(bad))).problems]
    assert len(msgs) == 1 and "line 3" in msgs[0] and "not valid TOML" in msgs[0]
    zero = tmp_path / "zero.toml"
    zero.write_text("[[datasets]]\nbatch_size = 0\n[[datasets.subsets]]\nimage_dir = 7\n", encoding="utf-8")
    msgs = [p.message for p in scan_dataset(make_cfg(dataset_config=str(zero))).problems]
    assert any("line 2" in m and "batch_size" in m and "at least 1" in m for m in msgs), msgs
    assert any("line 4" in m and "image_dir" in m and "must be str" in m for m in msgs), msgs
    assert len(msgs) == 2, msgs
    js = tmp_path / "ds.json"
    img = tmp_path / "imgs"
    write_images(img, 3, (64, 64))
    js.write_text(json.dumps({"datasets": [{"resolution": [64, 64], "min_bucket_reso": 64,
                                            "subsets": [{"image_dir": str(img), "num_repeats": 4}]}]}))
    cfg = make_cfg(dataset_config=str(js), epoch=2)
    plan = make_plan(cfg, settings)
    assert [p for p in plan.problems if p.field == "dataset_config" and "line" in p.message] == []
    # 3 images x 4 repeats = 12 samples, batch 1 -> 12 batches x 2 epochs = 24 steps.
    assert (plan.steps.repeats_images, plan.steps.max_train_steps) == (12, 24)


def test_lora_file_is_not_a_base_model(tmp_path, settings):
    lora = write_safetensors_header(tmp_path / "mylora.safetensors", ["lora_unet_mid_block.lora_down.weight"])
    cfg = make_cfg(pretrained_model_name_or_path=str(lora), output_dir=str(tmp_path / "o"))
    errs = _by(make_plan(cfg, settings).problems, "pretrained_model_name_or_path", "error")
    assert len(errs) == 1 and "LoRA file" in errs[0].message and "network_weights" in errs[0].message
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    cfg = make_cfg(pretrained_model_name_or_path=str(broken), output_dir=str(tmp_path / "o"))
    errs = _by(make_plan(cfg, settings).problems, "pretrained_model_name_or_path", "error")
    assert len(errs) == 1 and "not a readable safetensors" in errs[0].message


def test_reg_folder_layout_and_surplus(tmp_path, settings):
    img, reg = tmp_path / "img", tmp_path / "reg"
    write_images(img / "2_a", 3, (64, 64), caption_ext=".txt")
    write_images(reg / "1_person", 10, (64, 64))
    write_images(reg / "extra", 2, (64, 64))
    cfg = make_cfg(train_data_dir=str(img), reg_data_dir=str(reg), output_dir=str(tmp_path / "o"),
                   max_resolution="64,64", min_bucket_reso=64)
    plan = make_plan(cfg, settings)
    reg_msgs = [p.message for p in plan.problems if p.field == "reg_data_dir"]
    # 6 train samples; 10 reg samples found, 6 used (one repeat each, in name order).
    assert any("'extra'" in m and "10_extra" in m for m in reg_msgs), reg_msgs
    assert any("10 regularisation samples but 6 training samples: only 6" in m for m in reg_msgs), reg_msgs
    assert (plan.steps.reg_images, plan.steps.reg_samples, plan.steps.batches_per_epoch) == (10, 6, 12)
    assert plan.errors == []


def test_caption_counts_agree_with_the_images_counted(tmp_path, settings):
    img = tmp_path / "img"
    write_images(img / "10_a", 1, (64, 64))
    write_images(img / "10_b", 2, (64, 64))
    plan = make_plan(make_cfg(train_data_dir=str(img), output_dir=str(tmp_path / "o")), settings)
    msgs = [p.message for p in _by(plan.problems, "train_data_dir", "warning")]
    assert any("1 of 1 image in '10_a' has no .txt caption (0000.png); it is trained with" in m for m in msgs), msgs
    assert any("2 of 2 images in '10_b' have no .txt caption (0000.png, 0001.png); they are trained with" in m
               for m in msgs), msgs
