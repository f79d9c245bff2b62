"""The dataset part of sd-scripts' `ss_*` metadata (`train_network.py`): `ss_bucket_info`, `ss_tag_frequency`,
`ss_dataset_dirs` / `ss_reg_dataset_dirs` for folder datasets, `ss_datasets` for a dataset_config (spec
sd_scripts_interface.md §5.8.2). Values are JSON strings as sd-scripts writes them (`json.dumps`, default
separators).
"""
from __future__ import annotations

import json
from pathlib import Path

from .dataset import ar_error


def bucket_info(ds) -> dict | None:
    """sd-scripts' `bucket_info` of one dataset: {"buckets": {i: {"resolution": [w, h], "count": n}},
    "mean_img_ar_error": x}, i the bucket's index in the full sorted bucket list (predefined buckets; the used
    ones with bucket_no_upscale), only non-empty buckets listed; None without enable_bucket."""
    opts = ds.bucket_opts
    if opts is None or not opts.enable_bucket:
        return None
    resos = list(ds.bucket_list) if ds.bucket_list is not None else sorted(ds.buckets)
    info: dict = {"buckets": {}}
    for i, reso in enumerate(resos):
        n = len(ds.buckets.get(tuple(reso), []))
        if n:
            info["buckets"][i] = {"resolution": list(reso), "count": n}
    items = list({id(it): it for it in ds.samples}.values())
    info["mean_img_ar_error"] = sum(abs(ar_error(it)) for it in items) / len(items) if items else 0
    return info


def tag_frequency(subsets) -> dict[str, dict[str, int]]:
    """{folder name: {tag: count}} over each subset's captions (lower-cased, comma-split, stripped), counted once
    per image, reg folders included (sd-scripts' `set_tag_frequency`)."""
    tags: dict[str, dict[str, int]] = {}
    for s in subsets:
        freq = tags.setdefault(s.dir.name, {})
        for it in s.items:
            for t in it.caption.split(","):
                t = t.strip().lower()
                if t:
                    freq[t] = freq.get(t, 0) + 1
    return tags


def folder_metadata(ds) -> dict[str, str]:
    """The folder-dataset keys (train_data_dir / reg_data_dir): dirs, reg dirs, tag frequency, bucket info."""
    dirs = {s.dir.name: {"n_repeats": s.repeats, "img_count": len(s.items)} for s in ds.subsets if not s.is_reg}
    reg = {s.dir.name: {"n_repeats": s.repeats, "img_count": len(s.items)} for s in ds.subsets if s.is_reg}
    return {"ss_dataset_dirs": json.dumps(dirs), "ss_reg_dataset_dirs": json.dumps(reg),
            "ss_tag_frequency": json.dumps(tag_frequency(ds.subsets)), "ss_bucket_info": json.dumps(bucket_info(ds))}


def _subset_entry(s) -> dict:
    o = s.opts
    get = (lambda k, d=None: d if o is None or getattr(o, k, None) is None else getattr(o, k))
    return {"img_count": len(s.items), "num_repeats": s.repeats, "color_aug": bool(get("color_aug", False)),
            "flip_aug": bool(get("flip_aug", False)), "random_crop": bool(get("random_crop", False)),
            "shuffle_caption": bool(get("shuffle_caption", False)), "keep_tokens": get("keep_tokens", 0),
            "keep_tokens_separator": get("keep_tokens_separator", ""),
            "secondary_separator": get("secondary_separator"), "enable_wildcard": bool(get("enable_wildcard", False)),
            "caption_prefix": get("caption_prefix"), "caption_suffix": get("caption_suffix"),
            "resize_interpolation": get("resize_interpolation"), "image_dir": Path(s.dir).name,
            "class_tokens": s.class_tokens, "is_reg": s.is_reg}


def config_metadata(parts) -> dict[str, str]:
    """The dataset_config keys: `ss_datasets` (one object per dataset), `ss_tag_frequency` merged over datasets
    (a folder counted once), `ss_dataset_dirs` of the non-reg subsets (a repeated name gets " (2)", " (3)")."""
    datasets, tags, dirs = [], {}, {}
    for ds in parts:
        o = ds.bucket_opts
        freq = tag_frequency(ds.subsets)
        datasets.append({
            "is_dreambooth": True, "batch_size_per_device": ds.batch_size, "num_train_images": ds.num_train_images,
            "num_reg_images": ds.num_reg_images, "resolution": list(ds.resolution),
            "enable_bucket": bool(o.enable_bucket), "min_bucket_reso": o.min_bucket_reso,
            "max_bucket_reso": o.max_bucket_reso, "tag_frequency": freq, "bucket_info": bucket_info(ds),
            "resize_interpolation": ds.resize_interpolation,
            "subsets": [_subset_entry(s) for s in ds.subsets]})
        for name, f in freq.items():
            tags.setdefault(name, f)
        for s in ds.subsets:
            if s.is_reg:
                continue
            name, i = s.dir.name, 2
            while name in dirs:
                name = f"{s.dir.name} ({i})"
                i += 1
            dirs[name] = {"n_repeats": s.repeats, "img_count": len(s.items)}
    return {"ss_datasets": json.dumps(datasets), "ss_tag_frequency": json.dumps(tags),
            "ss_dataset_dirs": json.dumps(dirs)}
