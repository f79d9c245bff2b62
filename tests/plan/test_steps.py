"""Step counts as sd-scripts counts them. Expected numbers are worked out from the rules in
sd_scripts_interface.md §2.7/§2.8/§2.12 in the comments, not read from our code."""
from __future__ import annotations

from plan_helpers import make_cfg, write_images

from lora_tui.plan import make_plan
from lora_tui.plan.buckets import BucketChooser, bucket_resolutions
from lora_tui.plan.dataset import scan_dataset
from lora_tui.plan.steps import plan_steps


def test_two_buckets_batch_two(tmp_path, settings):
    # 1_x: 3 images 512x768 and 2 images 768x512 land in two buckets (portrait, landscape).
    # ceil(3/2) + ceil(2/2) = 2 + 1 = 3 batches per epoch; 10 epochs -> 30 steps.
    img = tmp_path / "img"
    write_images(img / "1_x", 3, (512, 768), caption_ext=".txt")
    write_images(img / "1_x", 2, (768, 512), start=3, caption_ext=".txt")
    cfg = make_cfg(train_data_dir=str(img), train_batch_size=2, epoch=10, output_dir=str(tmp_path / "out"))
    plan = make_plan(cfg, settings)
    s = plan.steps
    assert (s.images, s.repeats_images, s.batches_per_epoch, s.epochs, s.max_train_steps) == (5, 5, 3, 10, 30)
    assert len(s.datasets[0].buckets) == 2


def test_regularisation_balanced_to_train_count(tmp_path, settings):
    # 10_a: 20 images x 10 = 200 samples; reg 1_person: 200 images x 1 = 200 -> all 200 used (balance to 200).
    # One bucket (all the same size), batch 1: 400 batches per epoch; 2 epochs -> 800 steps.
    img, reg = tmp_path / "img", tmp_path / "reg"
    write_images(img / "10_a", 20, (64, 64), caption_ext=".txt")
    write_images(reg / "1_person", 200, (64, 64))
    cfg = make_cfg(train_data_dir=str(img), reg_data_dir=str(reg), train_batch_size=1, epoch=2,
                   output_dir=str(tmp_path / "out"), max_resolution="64,64", min_bucket_reso=64)
    s = make_plan(cfg, settings).steps
    assert (s.repeats_images, s.reg_images, s.reg_samples) == (200, 200, 200)
    assert (s.batches_per_epoch, s.max_train_steps) == (400, 800)


def test_ceil_per_bucket_not_per_total(tmp_path, settings):
    # 5_x: 6 images 512x768 (30 samples) and 5 images 768x512 (25 samples), batch 4, 1 epoch:
    # ceil(30/4) + ceil(25/4) = 8 + 7 = 15 steps (ceil(55/4) = 14 would be wrong).
    img = tmp_path / "img"
    write_images(img / "5_x", 6, (512, 768), caption_ext=".txt")
    write_images(img / "5_x", 5, (768, 512), start=6, caption_ext=".txt")
    cfg = make_cfg(train_data_dir=str(img), train_batch_size=4, epoch=1, output_dir=str(tmp_path / "out"))
    s = make_plan(cfg, settings).steps
    assert sorted(s.datasets[0].buckets.values()) == [25, 30]
    assert (s.batches_per_epoch, s.max_train_steps, s.epochs) == (15, 15, 1)


def test_reg_fewer_than_train_cycles_repeats(tmp_path):
    # train 10_a: 7 images x 10 = 70; reg 2_r: 4 images x 2 = 8 -> first pass 8, then +1 per image cycling
    # until 70: reg samples 70. Batch 3, one bucket: ceil(140/3) = 47 batches.
    img, reg = tmp_path / "img", tmp_path / "reg"
    write_images(img / "10_a", 7, (64, 64))
    write_images(reg / "2_r", 4, (64, 64))
    cfg = make_cfg(train_data_dir=str(img), reg_data_dir=str(reg), train_batch_size=3, epoch=1,
                   max_resolution="64,64", min_bucket_reso=64)
    s = plan_steps(cfg, scan_dataset(cfg))
    assert (s.repeats_images, s.reg_images, s.reg_samples, s.batches_per_epoch) == (70, 8, 70, 47)


def test_reg_balancing_puts_samples_in_the_right_buckets(tmp_path):
    # train 1_a: 3 square images -> 3 samples. reg 1_r: images sorted 0000-0003, sizes: 0000/0001 portrait,
    # 0002/0003 landscape. Only the first 3 reg images are used (0000, 0001 portrait; 0002 landscape):
    # buckets square 3, portrait 2, landscape 1.
    img, reg = tmp_path / "img", tmp_path / "reg"
    write_images(img / "1_a", 3, (512, 512))
    write_images(reg / "1_r", 2, (512, 768))
    write_images(reg / "1_r", 2, (768, 512), start=2)
    cfg = make_cfg(train_data_dir=str(img), reg_data_dir=str(reg), train_batch_size=1, epoch=1)
    s = plan_steps(cfg, scan_dataset(cfg))
    counts = s.datasets[0].buckets
    assert counts[(512, 512)] == 3
    assert sorted(counts.values()) == [1, 2, 3]
    assert s.reg_samples == 3


def test_epochs_processes_and_accumulation(tmp_path):
    # §2.12 worked example: 15 images x 10 = 150 samples, batch 4, one bucket -> L = 38.
    # max_train_epochs 10, G = 2, P = 1: 10 x ceil(38/1/2) = 190 steps. With P = 2: 10 x ceil(38/2/2) = 100.
    img = tmp_path / "img"
    write_images(img / "10_sks dog", 15, (512, 512))
    cfg = make_cfg(train_data_dir=str(img), train_batch_size=4, gradient_accumulation_steps=2, max_train_epochs=10,
                   max_train_steps=5000)
    scan = scan_dataset(cfg)
    s = plan_steps(cfg, scan)
    assert (s.batches_per_epoch, s.max_train_steps, s.epochs, s.source) == (38, 190, 10, "max_train_epochs")
    assert any("overrides max_train_steps" in n for n in s.notes)
    s2 = plan_steps(cfg, scan, num_processes=2)
    assert (s2.max_train_steps, s2.steps_per_epoch, s2.epochs) == (100, 10, 10)


def test_max_train_steps_sets_epochs_and_warmup_ratio(tmp_path):
    # 20 images x 10 / batch 2 = 100 batches; max_train_steps 250 -> ceil(250/100) = 3 epochs.
    # lr_warmup 10 % -> ratio 0.1 -> int(0.1 x 250 x 1) = 25; with lr_warmup_steps 7 the steps win.
    img = tmp_path / "img"
    write_images(img / "10_a", 20, (512, 512))
    cfg = make_cfg(train_data_dir=str(img), train_batch_size=2, max_train_steps=250, epoch=0, lr_warmup=10,
                   lr_scheduler="cosine")
    scan = scan_dataset(cfg)
    s = plan_steps(cfg, scan)
    assert (s.batches_per_epoch, s.epochs, s.max_train_steps, s.lr_warmup_steps) == (100, 3, 250, 25)
    cfg.lr_warmup_steps = 7
    assert plan_steps(cfg, scan).lr_warmup_steps == 7


def test_trainer_default_is_said(tmp_path, settings):
    img = tmp_path / "img"
    write_images(img / "10_a", 4, (512, 512), caption_ext=".txt")
    cfg = make_cfg(train_data_dir=str(img), epoch=0, max_train_steps=None, output_dir=str(tmp_path / "o"))
    plan = make_plan(cfg, settings)
    assert plan.steps.max_train_steps == 1600 and plan.steps.source == "trainer_default"
    assert "1600" in plan.steps.notes[0]
    assert any(p.field == "epoch" and "1600" in p.message for p in plan.problems)


def test_summary_sentence(tmp_path):
    # 3 images x 10 repeats = 30 samples, batch 2, all square: 15 batches x 6 epochs = 90 steps.
    img = tmp_path / "img"
    write_images(img / "10_a", 3, (512, 512))
    cfg = make_cfg(train_data_dir=str(img), train_batch_size=2, epoch=6)
    s = plan_steps(cfg, scan_dataset(cfg))
    assert s.summary == "3 images × 10 repeats = 30 per epoch → 15 batches × 6 epochs = 90 steps"


def test_bucket_list_matches_sd_scripts_example():
    # sd_scripts_interface.md §2.8.1: 512x512 with 256/1024/64.
    expected = [(256, 832), (256, 896), (256, 960), (256, 1024), (320, 704), (320, 768), (384, 640), (448, 576),
                (512, 512), (576, 448), (640, 384), (704, 320), (768, 320), (832, 256), (896, 256), (960, 256),
                (1024, 256)]
    assert bucket_resolutions((512, 512), 256, 1024, 64) == expected


def test_bucket_choice_and_no_upscale():
    up = BucketChooser((512, 512), True, 256, 1024, 64, False)
    # 512x768 (ratio 0.667): nearest predefined ratio is 384x640 (0.6) vs 448x576 (0.778).
    assert up.bucket(512, 768) == (384, 640)
    assert up.bucket(448, 576) == (448, 576)  # an exact bucket is kept
    no = BucketChooser((512, 512), True, 256, 1024, 64, True)
    # Small images keep their size, floored to 64: 300x200 -> 256x192.
    assert no.bucket(300, 200) == (256, 192)
    # 1024x1024 > max area -> scaled to 512x512.
    assert no.bucket(1024, 1024) == (512, 512)
    # 1024x1536 (ratio 2/3) > max area: sqrt(262144 x 2/3) = 418.0 -> 384 wide, 384 / (2/3) = 576 high; both
    # roundings give 384x576 exactly, so the height-rounded branch is taken: 384x576.
    assert no.bucket(1024, 1536) == (384, 576)
    off = BucketChooser((512, 512), False)
    assert off.bucket(300, 900) == (512, 512)


def test_dataset_config_two_datasets(tmp_path):
    # Dataset 0 (batch 2, 512): subset num_repeats 3 over 4 square images -> 12 samples -> 6 batches.
    # Dataset 1 (batch 4 from [general], resolution 768): same folder, repeats 1 -> 4 samples -> 1 batch.
    # L = 7; epoch 2 -> 14 steps.
    img = tmp_path / "imgs"
    write_images(img, 4, (512, 512), caption_ext=".txt")
    toml = tmp_path / "ds.toml"
    toml.write_text(
        "[general]\nbatch_size = 4\ncaption_extension = \".txt\"\n\n"
        f"[[datasets]]\nbatch_size = 2\nresolution = 512\n\n[[datasets.subsets]]\nimage_dir = '{img}'\n"
        "num_repeats = 3\n\n"
        f"[[datasets]]\nresolution = [768, 768]\n\n[[datasets.subsets]]\nimage_dir = '{img}'\n",
        encoding="utf-8")
    cfg = make_cfg(dataset_config=str(toml), epoch=2)
    scan = scan_dataset(cfg)
    assert scan.problems == []
    s = plan_steps(cfg, scan)
    assert [d.batches for d in s.datasets] == [6, 1]
    assert (s.repeats_images, s.batches_per_epoch, s.max_train_steps) == (16, 7, 14)


def test_summary_with_accumulation_and_processes(tmp_path):
    # 2 images x 3 and 4 images x 5 = 26 samples, one bucket, batch 1: L = 26. P = 2, G = 2:
    # per epoch ceil(ceil(26/2)/2) = 7 steps; max_train_epochs 3 -> 3 x ceil(26/2/2) = 21 steps.
    img = tmp_path / "img"
    write_images(img / "3_a", 2, (512, 512))
    write_images(img / "5_b", 4, (512, 512))
    cfg = make_cfg(train_data_dir=str(img), gradient_accumulation_steps=2, num_processes=2, max_train_epochs=3)
    s = plan_steps(cfg, scan_dataset(cfg))
    assert (s.batches_per_epoch, s.steps_per_epoch, s.max_train_steps, s.epochs) == (26, 7, 21, 3)
    assert s.summary == ("6 images × 3–5 repeats = 26 per epoch → 26 batches (2 processes, accumulating 2: 7 steps "
                         "each) × 3 epochs = 21 steps")
