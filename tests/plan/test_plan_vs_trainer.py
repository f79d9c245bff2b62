"""The step preview must equal what the bundled trainer runs: the plan's per-bucket counts and batches against the
trainer's own dataset builder (``sd-scripts/lora_trainer/dataset.py``, no torch needed) on the same folders."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from plan_helpers import make_cfg, write_images

from lora_tui.plan.dataset import scan_dataset
from lora_tui.plan.steps import plan_steps

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _trainer_counts(cfg):
    sys.path.insert(0, str(REPO / "sd-scripts"))
    try:
        from lora_trainer.dataset import build_dataset
    finally:
        sys.path.pop(0)
    args = SimpleNamespace(
        caption_extension=cfg.caption_extension, caption_extention=None, train_data_dir=cfg.train_data_dir,
        reg_data_dir=cfg.reg_data_dir or None, resolution=cfg.max_resolution, train_batch_size=cfg.train_batch_size,
        enable_bucket=cfg.enable_bucket, bucket_no_upscale=cfg.bucket_no_upscale, bucket_reso_steps=cfg.bucket_reso_steps,
        min_bucket_reso=cfg.min_bucket_reso, max_bucket_reso=cfg.max_bucket_reso)
    ds = build_dataset(args, lambda _msg: None)
    return len(ds), {k: len(v) for k, v in ds.buckets.items()}


def _plan_counts(cfg):
    s = plan_steps(cfg, scan_dataset(cfg))
    return s.batches_per_epoch, s.datasets[0].buckets


def _case(tmp_path, name):
    img, reg = tmp_path / "img", tmp_path / "reg"
    if name == "two_buckets":
        write_images(img / "1_x", 3, (512, 768))
        write_images(img / "1_x", 2, (768, 512), start=3)
        return make_cfg(train_data_dir=str(img), train_batch_size=2)
    if name == "ceil_per_bucket":
        write_images(img / "5_x", 6, (512, 768))
        write_images(img / "5_x", 5, (768, 512), start=6)
        return make_cfg(train_data_dir=str(img), train_batch_size=4)
    if name == "reg_cycling":
        write_images(img / "10_a", 7, (512, 512))
        write_images(reg / "1_r", 2, (512, 768))
        write_images(reg / "1_r", 1, (768, 512), start=2)
        return make_cfg(train_data_dir=str(img), reg_data_dir=str(reg), train_batch_size=3)
    if name == "reg_whole_repeats":
        # sd-scripts adds a reg image with all its repeats: 5 train samples, reg 3 images x 2 -> 2, 4, 6 = 6.
        write_images(img / "5_a", 1, (512, 512))
        write_images(reg / "2_r", 3, (512, 512))
        return make_cfg(train_data_dir=str(img), reg_data_dir=str(reg), train_batch_size=1)
    if name == "no_upscale_rounding":
        # sd-scripts compares the aspect error of the step-rounded sizes: 1100x900 at 512x512 -> bucket 512x448.
        write_images(img / "1_a", 1, (1100, 900))
        write_images(img / "1_a", 1, (1000, 1500), start=1)
        return make_cfg(train_data_dir=str(img), bucket_no_upscale=True)
    if name == "reg_folder_order":
        # Reg folders are taken in listing order (os.listdir, §2.2), not sorted; the train count (6) ends the
        # balancing part-way, so which sizes are used depends on that order.
        write_images(img / "6_a", 1, (512, 512))
        for i, size in enumerate([(512, 768), (768, 512), (640, 448), (448, 640), (832, 256), (256, 832)]):
            write_images(reg / f"3_r{5 - i}", 1, size)
        return make_cfg(train_data_dir=str(img), reg_data_dir=str(reg), train_batch_size=1)
    if name == "no_buckets":
        write_images(img / "2_a", 3, (512, 512))
        return make_cfg(train_data_dir=str(img), enable_bucket=False, train_batch_size=4)
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["two_buckets", "ceil_per_bucket", "reg_cycling", "no_buckets"])
def test_plan_equals_bundled_trainer(tmp_path, name):
    cfg = _case(tmp_path, name)
    assert _plan_counts(cfg) == _trainer_counts(cfg)


@pytest.mark.parametrize("name", ["reg_whole_repeats", "no_upscale_rounding", "reg_folder_order"])
def test_plan_equals_bundled_trainer_sd_scripts_edges(tmp_path, name):
    cfg = _case(tmp_path, name)
    assert _plan_counts(cfg) == _trainer_counts(cfg)


def test_sd_scripts_edges_by_hand(tmp_path):
    # The two edge cases above, with the numbers worked out from sd-scripts' rules.
    cfg = _case(tmp_path / "a", "reg_whole_repeats")
    s = plan_steps(cfg, scan_dataset(cfg))
    assert (s.repeats_images, s.reg_samples, s.batches_per_epoch) == (5, 6, 11)
    cfg = _case(tmp_path / "b", "no_upscale_rounding")
    assert set(plan_steps(cfg, scan_dataset(cfg)).datasets[0].buckets) == {(512, 448), (384, 576)}
