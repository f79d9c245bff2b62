"""Training features and fidelity points of the bundled trainer (issue 13) against numbers worked out from
sd-scripts' rules (its `get_crop_ltrb`, `resize_image`, `networks/lora.py` block rules), not by running sd-scripts.

Cheap in-process checks of the rules (numpy/OpenCV/PIL only), then two shared SDXL runs of the real trainer on
the tiny model: run A (block-wise ranks and LR weights, LoRA+, alpha-mask masked loss, fp8 base weights,
scale_weight_norms, latents cached to disk, TensorBoard) and run B on A's file (base_weights, dim_from_weights,
a dataset_config with conditioning images, colour and face-crop augmentation, resize_interpolation).
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SD = REPO / "sd-scripts"
sys.path.insert(0, str(SD))
PHOTOS = REPO / "lora_tui" / "demo" / "photos"
ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")

from lora_trainer.augment import face_crop  # noqa: E402
from lora_trainer.network_blocks import block_index, block_plan, lr_weights  # noqa: E402
from lora_trainer.resize import crop_ltrb, crop_top_left, resize_array, trim_and_resize  # noqa: E402


def _header(path: Path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    return header, header.pop("__metadata__", {})


# ------------------------------------------------------------------ rules, in process
def test_crop_ltrb_is_the_image_fitted_inside_the_bucket():
    # bucket wider than the image: heights match, 1000x1000 in 1024x768 is 768 wide, centred: (1024-768)//2 = 128
    assert crop_ltrb((1024, 768), (1000, 1000)) == (128.0, 0.0, 896.0, 768.0)
    # bucket taller: widths match, 3000x2000 in 832x1216 is 832x554.67, top = 661.33 // 2 = 330.0
    left, top, right, bottom = crop_ltrb((832, 1216), (3000, 2000))
    assert (left, top, right) == (0, 330.0, 832)
    assert bottom == pytest.approx(330 + 832 / 1.5)
    # SDXL time ids: truncated; flipped, left = target width - right
    assert crop_top_left((128.0, 0.0, 896.0, 768.0), 1024, False) == (0, 128)
    assert crop_top_left((128.0, 0.0, 896.0, 768.0), 1024, True) == (0, 128)
    assert crop_top_left((10.0, 3.0, 50.5, 61.0), 64, True) == (3, 13)  # 64 - 50.5 = 13.5 -> 13


def test_resize_filter_is_area_when_shrinking_and_lanczos_when_growing():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    # INTER_AREA at an integer factor is the mean of each 2x2 block, rounded
    small = resize_array(img, (6, 4))
    blocks = img.reshape(4, 2, 6, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(small.astype(np.float64) - blocks).max() <= 0.5 + 1e-9
    # one side grows: PIL LANCZOS (sd-scripts' rule is "area only when neither side grows")
    from PIL import Image
    grown = resize_array(img, (24, 6))
    assert np.array_equal(grown, np.asarray(Image.fromarray(img).resize((24, 6), Image.Resampling.LANCZOS)))
    # an explicit box filter goes through PIL's BOX
    boxed = resize_array(img, (6, 4), "box")
    assert np.array_equal(boxed, np.asarray(Image.fromarray(img).resize((6, 4), Image.Resampling.BOX)))
    # trim after resize: overflow cut centrally (floor of half)
    tall = rng.integers(0, 256, (10, 4, 3), dtype=np.uint8)
    out = trim_and_resize(tall, (4, 6), (4, 10), None, False, random.Random(0))
    assert np.array_equal(out, tall[2:8])


def test_block_rules_match_networks_lora():
    # SDXL names: input_blocks.i -> 1 + i, middle_block.i -> 10 + i, output_blocks.i -> 13 + i
    assert block_index("lora_unet_input_blocks_4_1_proj_in", True) == 5
    assert block_index("lora_unet_middle_block_1_transformer_blocks_0_attn1_to_q", True) == 11
    assert block_index("lora_unet_output_blocks_8_0_skip_connection", True) == 21
    # SD1/2 diffusers names: down i,j -> 1 + 3i + j, downsamplers 3i + 2, mid 12, up -> 13 + 3i + j
    assert block_index("lora_unet_down_blocks_1_attentions_1_proj_in", False) == 5
    assert block_index("lora_unet_down_blocks_2_downsamplers_0_conv", False) == 9
    assert block_index("lora_unet_mid_block_attentions_0_proj_in", False) == 12
    assert block_index("lora_unet_up_blocks_3_attentions_2_proj_out", False) == 24
    # presets: sine over 12 SD blocks is sin(pi/2 * i/11); "+0.5" adds a base; threshold zeroes small weights
    w = lr_weights({"down_lr_weight": "sine+0.5", "block_lr_zero_threshold": "0.6"}, False)
    assert len(w) == 25
    assert w[:12] == [0] + [pytest.approx(math.sin(math.pi * i / 11 / 2) + 0.5) for i in range(1, 12)]
    assert w[12:] == [1.0] * 13  # mid and up unset: all 1.0
    # short lists are filled with 1.0, empty items are 0; SDXL adds 1.0 for blocks 0 and 22
    w = lr_weights({"mid_lr_weight": ",0.5"}, True)
    assert len(w) == 23 and w[10:13] == [0.0, 0.5, 1.0] and w[0] == w[22] == 1.0
    # a block whose weight is 0 gets rank 0; block_alphas default to network_alpha
    plan = block_plan({"down_lr_weight": "0,1", "conv_block_dims": ",".join(["2"] * 23)}, True, 8, 4.0, None, None)
    assert plan.dims[1] == 0 and plan.dims[2] == 8 and plan.conv_dims[1] == 0 and plan.alphas == [4.0] * 23
    assert plan.conv_alphas == [1.0] * 23  # conv_block_alphas unset, conv_alpha unset: 1.0
    from lora_trainer.args import OptionError
    with pytest.raises(OptionError, match="block_dims has 3 values; this model needs 25"):
        block_plan({"block_dims": "1,2,3"}, False, 4, 1.0, None, None)


def test_face_crop_scales_into_range_and_centres_the_face():
    img = np.zeros((128, 128, 3), np.uint8)
    img[44:84, 44:84] = 255  # the 40x40 face at (64, 64)
    out = face_crop(img, (64, 64, 40, 40), (64, 64), (2.0, 2.0), False, None, random.Random(0))
    # range (2, 2): scale = 64 / (40 * 2) = 0.8 -> 102x102, face centre 51 -> window 19..83 holds it centred
    assert out.shape == (64, 64, 3)
    ys, xs = np.nonzero(out[:, :, 0] > 127)
    assert abs((ys.min() + ys.max()) / 2 - 31.5) <= 1 and abs((xs.min() + xs.max()) / 2 - 31.5) <= 1
    assert 30 <= ys.max() - ys.min() + 1 <= 34  # the face is 32 px: 1/2 of the 64 px side


# ------------------------------------------------------------------ the real trainer
def _run(argv, timeout=300):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=ENV, timeout=timeout)


def _write_toml(path: Path, values: dict) -> Path:
    import tomli_w
    path.write_text(tomli_w.dumps(values))
    return path


@pytest.fixture(scope="module")
def rgba_data(tmp_path_factory) -> Path:
    """3 photos as RGBA PNGs whose left half is transparent (alpha 0), in `img/2_demo person/`."""
    from PIL import Image
    root = tmp_path_factory.mktemp("feat") / "img"
    sub = root / "2_demo person"
    sub.mkdir(parents=True)
    for i, p in enumerate(sorted(PHOTOS.glob("*.jpg"))[:3]):
        a = np.array(Image.open(p).convert("RGBA"))
        a[:, : a.shape[1] // 2, 3] = 0
        Image.fromarray(a, "RGBA").save(sub / f"p{i}.png")
        (sub / f"p{i}.txt").write_text(f"(demo person:1.3), photo {i}\n")
    return root


BLOCK_DIMS = ",".join(["2"] * 23)
CONV_BLOCK_DIMS = ",".join(["1"] * 23)


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, tiny_sdxl_ckpt, rgba_data):
    d = tmp_path_factory.mktemp("run_a")
    toml = _write_toml(d / "a.toml", {
        "pretrained_model_name_or_path": str(tiny_sdxl_ckpt), "train_data_dir": str(rgba_data),
        "resolution": "64,64", "caption_extension": ".txt", "cache_latents": True, "cache_latents_to_disk": True,
        "enable_bucket": True, "min_bucket_reso": 32, "max_bucket_reso": 128, "bucket_reso_steps": 32,
        "output_dir": str(d / "out"), "output_name": "a", "max_train_steps": 2, "learning_rate": 0.01,
        "mixed_precision": "bf16", "seed": 1, "network_module": "networks.lora", "network_dim": 4,
        "network_alpha": 2, "network_train_unet_only": True, "flip_aug": True,
        "network_args": [f"block_dims={BLOCK_DIMS}", "down_lr_weight=1,0", "up_lr_weight=sine",
                         "loraplus_lr_ratio=4", f"conv_block_dims={CONV_BLOCK_DIMS}"],
        "masked_loss": True, "alpha_mask": True, "fp8_base": True, "scale_weight_norms": 0.001,
        "logging_dir": str(d / "logs"), "weighted_captions": True, "cache_text_encoder_outputs_to_disk": True})
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--config_file", toml])
    return r, d


def test_run_a_block_ranks_lr_weights_and_loraplus(run_a):
    r, d = run_a
    assert r.returncode == 0, r.stderr[-3000:]
    header, meta = _header(d / "out" / "a.safetensors")
    downs = {k: v["shape"] for k, v in header.items() if k.endswith(".lora_down.weight")}
    # down_lr_weight "1,0": block 2 (input_blocks.1) has LR weight 0, so rank 0: no module at all
    assert downs and not any(k.startswith("lora_unet_input_blocks_1_") for k in downs)
    assert any(k.startswith("lora_unet_input_blocks_2_") for k in downs)
    # block_dims 2 for Linear / 1x1, conv_block_dims 1 for the 3x3 convs
    assert {s[0] for k, s in downs.items() if len(s) == 2} == {2}
    assert {s[0] for s in downs.values() if len(s) == 4 and s[2] == 3} == {1}
    assert json.loads(meta["ss_network_args"])["loraplus_lr_ratio"] == "4"
    # one optimizer group per block, LoRA+ "plus" groups for lora_up (names as sd-scripts' lr descriptions)
    events = b"".join(p.read_bytes() for p in (d / "logs").rglob("events.out.tfevents*"))
    assert b"lr/unet_block14 plus" in events and b"lr/unet_block14" in events and b"lr/unet_block2" not in events


def test_run_a_mask_fp8_and_weight_norms(run_a):
    r, d = run_a
    assert r.returncode == 0, r.stderr[-3000:]
    assert "enable fp8 training for U-Net and Text Encoder" in r.stdout
    assert "Keys Scaled" in r.stderr
    _, meta = _header(d / "out" / "a.safetensors")
    assert meta["ss_scale_weight_norms"] == "0.001"


def test_run_a_metadata_hashes_and_bucket_info_by_sd_scripts_rules(run_a, tiny_sdxl_ckpt):
    import hashlib
    r, d = run_a
    assert r.returncode == 0, r.stderr[-3000:]
    _, meta = _header(d / "out" / "a.safetensors")
    raw = Path(tiny_sdxl_ckpt).read_bytes()
    # the legacy A1111 hash: SHA-256 of the 64 KiB at 1 MiB, 8 hex digits; the new one: SHA-256 of the file
    assert meta["ss_sd_model_hash"] == hashlib.sha256(raw[0x100000:0x110000]).hexdigest()[:8]
    assert meta["ss_new_sd_model_hash"] == hashlib.sha256(raw).hexdigest()
    assert meta["ss_sd_model_name"] == Path(tiny_sdxl_ckpt).name and "ss_vae_name" not in meta
    assert meta["ss_resolution"] == "(64, 64)" and "ss_datasets" not in meta
    # buckets of 64x64 in 32..128 by 32: (32,96) (32,128) (64,64) (96,32) (128,32); all three images land in
    # (64,64), index 2, 3 images x 2 repeats; aspect errors 0, 0 and |1 - 256/170|
    info = json.loads(meta["ss_bucket_info"])
    assert info["buckets"] == {"2": {"resolution": [64, 64], "count": 6}}
    assert info["mean_img_ar_error"] == pytest.approx(abs(1 - 256 / 170) / 3)
    assert json.loads(meta["ss_tag_frequency"])["2_demo person"]["photo 0"] == 1


def test_run_a_text_encoder_outputs_cached_to_disk_with_sd_scripts_keys(run_a, rgba_data):
    r, _ = run_a
    assert r.returncode == 0, r.stderr[-3000:]
    assert "text encoder outputs cached to disk: 3 encoded" in r.stderr
    z = np.load(rgba_data / "2_demo person" / "p0_te_outputs.npz")
    assert {"hidden_state1", "hidden_state2", "pool2"} <= set(z.files)
    assert z["hidden_state1"].shape[0] == 77 and z["hidden_state2"].shape[0] == 77 and z["pool2"].ndim == 1
    assert str(z["caption"]) == "(demo person:1.3), photo 0"  # weighted: the brackets are read, not tokenised


def test_attention_weights_follow_sd_scripts_parse_prompt_attention():
    from lora_trainer.weighted_captions import parse_attention
    # the example of sd-scripts' own docstring: nested brackets multiply (1.1^3 * 1.3 / 1.1 ... as listed there)
    got = parse_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")
    assert [p for p, _ in got] == ["a ", "house", " ", "on", " a ", "hill", ", sun, ", "sky", "."]
    assert [w for _, w in got] == pytest.approx([1.0, 1.1 * 1.1 * 1.3, 1.1, 1.0, 1.1, 0.55, 1.1, 1.1 ** 4, 1.1])
    assert parse_attention("\\(literal\\]") == [["(literal]", 1.0]]
    assert parse_attention("(unnecessary)(parens)") == [["unnecessaryparens", pytest.approx(1.1)]]
    assert parse_attention("[low]") == [["low", pytest.approx(1 / 1.1)]]


def test_run_a_cached_latents_hold_sd_scripts_crop_and_alpha_mask(run_a, rgba_data):
    r, _ = run_a
    assert r.returncode == 0, r.stderr[-3000:]
    # p2 is 256x170 (aspect 1.506) in the 64x64 bucket: fitted 64 x 42.5, top = 21.5 // 2 = 10.0
    z = np.load(rgba_data / "2_demo person" / "p2_0256x0170_sdxl.npz")
    assert z["crop_ltrb"].tolist() == [0.0, 10.0, 64.0, 52.5]
    assert z["original_size"].tolist() == [256, 170]
    assert set(z.files) >= {"latents", "latents_flipped", "alpha_mask"}
    # alpha mask at bucket size: the left half transparent -> mean 0.5
    assert z["alpha_mask"].shape == (64, 64) and abs(float(z["alpha_mask"].mean()) - 0.5) < 0.02


@pytest.fixture(scope="module")
def run_b(tmp_path_factory, tiny_sdxl_ckpt, run_a):
    from PIL import Image
    ra, da = run_a
    assert ra.returncode == 0, ra.stderr[-3000:]
    d = tmp_path_factory.mktemp("run_b")
    imgs, cond = d / "imgs", d / "cond"
    imgs.mkdir()
    cond.mkdir()
    photo = sorted(PHOTOS.glob("*.jpg"))[0]
    Image.open(photo).convert("RGB").resize((128, 128)).save(imgs / "face_64_64_40_40.png")
    shutil.copy(sorted(PHOTOS.glob("*.jpg"))[1], imgs / "other.jpg")
    Image.open(imgs / "other.jpg").convert("RGB").resize((128, 128)).save(imgs / "other.jpg")
    for stem in ("face_64_64_40_40", "other"):
        m = np.zeros((128, 128, 3), np.uint8)
        m[:, 64:] = 255
        Image.fromarray(m).save(cond / f"{stem}.png")
    ds = _write_toml(d / "dataset.toml", {
        "general": {"caption_extension": ".txt", "resolution": 64, "enable_bucket": False},
        "datasets": [{"batch_size": 2, "resize_interpolation": "bicubic", "validation_split": 0.5,
                      "validation_seed": 3, "subsets": [{
            "image_dir": str(imgs), "class_tokens": "demo person", "num_repeats": 2, "color_aug": True,
            "face_crop_aug_range": [2.0, 4.0], "conditioning_data_dir": str(cond)}]}]})
    prompts = _write_toml(d / "prompts.toml", {"prompt": {"width": 64, "height": 64, "sample_steps": 2,
                                                           "subset": [{"prompt": "demo person", "seed": 1}]}})
    a = da / "out" / "a.safetensors"
    r = _run([sys.executable, SD / "sdxl_train_network.py", "--pretrained_model_name_or_path", tiny_sdxl_ckpt,
              "--dataset_config", ds, "--output_dir", d / "out", "--output_name", "b", "--max_train_steps", "2",
              "--network_module", "networks.lora", "--network_train_unet_only", "--masked_loss",
              "--base_weights", a, "--base_weights_multiplier", "0.5", "--network_weights", a,
              "--dim_from_weights", "--seed", "2", "--validate_every_n_steps", "1", "--max_validation_steps", "1",
              "--initial_step", "1", "--skip_until_initial_step", "--sample_prompts", prompts,
              "--sample_every_n_steps", "2"])
    return r, d, a


def test_run_b_base_weights_dim_from_weights_and_conditioning_masks(run_b):
    r, d, a = run_b
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"merging module: {a} with multiplier 0.5" in r.stderr + r.stdout
    ha, _ = _header(a)
    hb, meta = _header(d / "out" / "b.safetensors")
    shapes = {k: v["shape"] for k, v in hb.items()}
    # dim_from_weights: exactly the file's modules, with the file's ranks (network_dim not given: "None")
    assert shapes == {k: v["shape"] for k, v in ha.items()}
    assert meta["ss_network_dim"] == "None"
    assert "ss_datasets" in meta


def test_run_b_validation_initial_step_and_toml_prompts(run_b):
    r, d, _ = run_b
    assert r.returncode == 0, r.stderr[-3000:]
    # 2 images, validation_split 0.5: training keeps ceil(2 * 0.5) = 1, validation the last round(1) = 1;
    # batch 2 of 1 image x 2 repeats = 1 batch per epoch, max_train_steps 2 -> 2 epochs; initial_step 1 with
    # skip_until_initial_step starts epoch 2 at step 1
    assert "starting at epoch 2, step 1" in r.stdout
    assert "validation loss (step 2)" in r.stdout and "validation loss (epoch 2)" in r.stdout
    _, meta = _header(d / "out" / "b.safetensors")
    assert meta["ss_num_validation_images"] == "2" and meta["ss_num_train_images"] == "2"
    assert meta["ss_steps"] == "2" and meta["ss_validation_split"] == "0.0"  # the CLI value; the split is per dataset
    ds = json.loads(meta["ss_datasets"])
    assert ds[0]["resolution"] == [64, 64] and ds[0]["enable_bucket"] is False and ds[0]["bucket_info"] is None
    assert ds[0]["subsets"][0]["img_count"] == 1 and ds[0]["subsets"][0]["color_aug"] is True
    samples = list((d / "out" / "sample").glob("b_*.png"))
    assert len(samples) == 1  # the .toml prompt, drawn at step 2


def test_token_warmup_keeps_the_first_tags_until_the_warmup_step():
    from types import SimpleNamespace
    from lora_trainer.dataset import process_caption
    a = SimpleNamespace(caption_prefix=None, caption_suffix=None, caption_dropout_rate=0,
                        caption_dropout_every_n_epochs=0, caption_separator=",", shuffle_caption=False,
                        caption_tag_dropout_rate=0, keep_tokens=1, token_warmup_step=0.5, token_warmup_min=1)
    # warm-up 0.5 of 10 steps = 5 steps over 5 flexible tags from 1: step s keeps floor(s * 4 / 5) + 1 of them
    got = [process_caption("a, b, c, d, e, f", a, 1, random.Random(0), s, 10) for s in range(6)]
    assert got == ["a, b", "a, b", "a, b, c", "a, b, c, d", "a, b, c, d, e", "a, b, c, d, e, f"]
