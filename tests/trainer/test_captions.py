"""Caption pipeline options of sd-scripts (spec sd_scripts_interface.md §2.5) through the trainer's own dataset
code: keep_tokens_separator, secondary_separator and enable_wildcard. Pure Python (no torch)."""
from __future__ import annotations

import random
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "sd-scripts"))
from lora_trainer.dataset import DatasetError, build_dataset, captions_are_static, process_caption  # noqa: E402

sys.path.pop(0)


def _opts(**kw):
    base = dict(caption_prefix=None, caption_suffix=None, caption_dropout_rate=0.0, caption_dropout_every_n_epochs=0,
                shuffle_caption=False, caption_tag_dropout_rate=0.0, keep_tokens=0, caption_separator=",",
                keep_tokens_separator="", secondary_separator=None, enable_wildcard=False)
    base.update(kw)
    return SimpleNamespace(**base)


def _many(caption, opts, n=60):
    return [process_caption(caption, opts, 1, random.Random(i)) for i in range(n)]


def test_keep_tokens_separator_fixes_head_and_tail():
    cap = "sks girl, red hair ||| smile, outdoors, tree, hat ||| masterpiece, best quality"
    outs = _many(cap, _opts(shuffle_caption=True, keep_tokens_separator="|||"))
    for o in outs:
        toks = o.split(", ")
        assert toks[:2] == ["sks girl", "red hair"] and toks[-2:] == ["masterpiece", "best quality"]
        assert sorted(toks[2:-2]) == ["hat", "outdoors", "smile", "tree"]
    assert len(set(outs)) > 5  # the middle is shuffled
    # as in sd-scripts: without shuffle or tag dropout the caption is left as written, separator included
    assert process_caption(cap, _opts(keep_tokens_separator="|||"), 1, random.Random(0)) == cap
    # tag dropout drops only flexible tokens
    for o in _many(cap, _opts(caption_tag_dropout_rate=0.99, keep_tokens_separator="|||")):
        assert o.split(", ")[:2] == ["sks girl", "red hair"] and o.split(", ")[-2:] == ["masterpiece", "best quality"]


def test_secondary_separator_keeps_a_group_together_then_becomes_the_separator():
    cap = "a, b;;;c, d, e"
    outs = _many(cap, _opts(shuffle_caption=True, secondary_separator=";;;"))
    assert all("b,c" in o for o in outs) and len(set(outs)) > 3
    assert process_caption(cap, _opts(secondary_separator=";;;"), 1, random.Random(0)) == "a, b,c, d, e"


def test_wildcards_pick_a_line_and_alternatives(tmp_path):
    sub = tmp_path / "img" / "2_person"
    sub.mkdir(parents=True)
    Image.new("RGB", (64, 64), (10, 20, 30)).save(sub / "a.png")
    (sub / "a.txt").write_text("a {red|blue} hat, {{literal}}\n\nplain line\n", encoding="utf-8")
    args = SimpleNamespace(**vars(_opts(enable_wildcard=True)), caption_extension=".txt", caption_extention=None,
                           train_data_dir=str(tmp_path / "img"), reg_data_dir=None, resolution="64",
                           train_batch_size=1, enable_bucket=False, bucket_no_upscale=False, bucket_reso_steps=64,
                           min_bucket_reso=64, max_bucket_reso=64)
    ds = build_dataset(args, lambda _m: None)
    caption = ds.samples[0].caption
    assert caption == "a {red|blue} hat, {{literal}}\nplain line"  # every non-empty line kept
    outs = set(_many(caption, args, n=80))
    assert outs == {"a red hat, {literal}", "a blue hat, {literal}", "plain line"}
    assert not captions_are_static(args)
    # without enable_wildcard: the first line, verbatim
    args.enable_wildcard = False
    ds = build_dataset(args, lambda _m: None)
    assert ds.samples[0].caption == "a {red|blue} hat, {{literal}}"
    assert process_caption(ds.samples[0].caption, args, 1, random.Random(0)) == "a {red|blue} hat, {{literal}}"


def test_dataset_config_subset_caption_options(tmp_path):
    sub = tmp_path / "imgs"
    sub.mkdir()
    Image.new("RGB", (64, 64)).save(sub / "a.png")
    (sub / "a.txt").write_text("x, y ||| p, q, r\nsecond {1|2}\n", encoding="utf-8")
    cfg = tmp_path / "ds.toml"
    cfg.write_text(f"""
[general]
caption_extension = ".txt"
[[datasets]]
resolution = 64
  [[datasets.subsets]]
  image_dir = "{sub}"
  shuffle_caption = true
  keep_tokens_separator = "|||"
  secondary_separator = ";"
  enable_wildcard = true
""")
    args = SimpleNamespace(**vars(_opts()), dataset_config=str(cfg), caption_extension=None, caption_extention=None,
                           train_data_dir=None, reg_data_dir=None, resolution=None, train_batch_size=1,
                           enable_bucket=False, bucket_no_upscale=False, bucket_reso_steps=64, min_bucket_reso=256,
                           max_bucket_reso=1024, flip_aug=False, random_crop=False, dataset_repeats=1)
    ds = build_dataset(args, lambda _m: None)
    it = ds.samples[0]
    assert it.caption == "x, y ||| p, q, r\nsecond {1|2}" and it.opts.keep_tokens_separator == "|||"
    outs = set(_many(it.caption, it.opts, n=80))
    assert {"second 1", "second 2"} <= outs
    assert all(o.startswith("x, y, ") for o in outs if not o.startswith("second"))
    assert args.enable_wildcard  # read globally: text-encoder outputs are not cached


def test_dataset_config_subsets_read_images_like_train_data_dir(tmp_path):
    sub = tmp_path / "imgs"
    sub.mkdir()
    Image.new("RGB", (64, 64)).save(sub / "a.png")
    Image.new("RGB", (64, 64)).save(sub / ".hidden.png")  # skipped, as in a train_data_dir folder
    cfg = tmp_path / "ds.toml"
    cfg.write_text(f'[[datasets]]\nresolution = 64\n  [[datasets.subsets]]\n  image_dir = "{sub}"\n')
    args = SimpleNamespace(**vars(_opts()), dataset_config=str(cfg), caption_extension=None, caption_extention=None,
                           train_data_dir=None, reg_data_dir=None, resolution=None, train_batch_size=1,
                           enable_bucket=False, bucket_no_upscale=False, bucket_reso_steps=64, min_bucket_reso=256,
                           max_bucket_reso=1024, flip_aug=False, random_crop=False, dataset_repeats=1)
    assert [it.path.name for it in build_dataset(args, lambda _m: None).samples] == ["a.png"]
    (sub / "b.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"cannot read image .*b\.png"):
        build_dataset(args, lambda _m: None)
