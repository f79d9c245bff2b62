"""`--dataset_config` (TOML or JSON): `[general]`, `[[datasets]]`, `[[datasets.subsets]]`, spec
sd_scripts_interface.md §2.10, DreamBooth-style subsets only.

Values resolve subset → dataset → `[general]` → command line/config_file (`train_batch_size` → `batch_size`,
`dataset_repeats` → `num_repeats`) → default. Unknown keys are an error naming the key (sd-scripts' schema
forbids extra keys); keys of the schema that this trainer does not implement are an error when set.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from types import SimpleNamespace

from .dataset import DatasetError, DatasetGroup, _assemble, parse_resolution, scan_subset

DATASET_KEYS = {"batch_size", "resolution", "enable_bucket", "min_bucket_reso", "max_bucket_reso",
                "bucket_reso_steps", "bucket_no_upscale", "network_multiplier", "validation_split",
                "validation_seed", "resize_interpolation"}
SUBSET_KEYS = {"num_repeats", "shuffle_caption", "caption_separator", "keep_tokens", "keep_tokens_separator",
               "secondary_separator", "enable_wildcard", "color_aug", "flip_aug", "random_crop",
               "face_crop_aug_range", "caption_prefix", "caption_suffix", "token_warmup_min", "token_warmup_step",
               "custom_attributes", "resize_interpolation", "caption_dropout_rate",
               "caption_dropout_every_n_epochs", "caption_tag_dropout_rate", "caption_extension", "class_tokens",
               "cache_info"}
SUBSET_ONLY = {"image_dir", "is_reg", "alpha_mask", "metadata_file", "conditioning_data_dir"}
# schema keys we refuse when set to anything but their default
NOT_IMPLEMENTED = {"custom_attributes": {}, "metadata_file": None}
_CLI_NAME = {"batch_size": "train_batch_size", "num_repeats": "dataset_repeats"}


def _load(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"dataset_config: {path} not found")
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text(encoding="utf-8"))
        if path.suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"dataset_config: {path} cannot be read: {e}") from e
    raise DatasetError(f"dataset_config: {path} must be a .toml or .json file")


def _check_keys(table: dict, allowed: set, where: str) -> None:
    for k in table:
        if k not in allowed:
            raise DatasetError(f"dataset_config: unknown key {k!r} in {where}")
        if k in NOT_IMPLEMENTED and table[k] not in (NOT_IMPLEMENTED[k], None):
            raise DatasetError(f"dataset_config: {k} in {where} is not supported by this trainer; remove it")


def build_from_config(args, warn):
    """Datasets from `args.dataset_config`; a `Dataset` for one `[[datasets]]`, else a `DatasetGroup`."""
    path = Path(args.dataset_config)
    cfg = _load(path)
    for k in cfg:
        if k not in ("general", "datasets"):
            raise DatasetError(f"dataset_config: unknown top-level key {k!r} (only [general] and [[datasets]])")
    general = cfg.get("general", {})
    _check_keys(general, DATASET_KEYS | SUBSET_KEYS, "[general]")
    datasets = cfg.get("datasets") or []
    if not datasets:
        raise DatasetError(f"dataset_config: {path} has no [[datasets]]")
    if args.train_data_dir or args.reg_data_dir:
        warn("dataset_config is given: train_data_dir / reg_data_dir are ignored")

    def pick(key, *tables, default=None):
        for t in tables:
            if t.get(key) is not None:
                return t[key]
        v = getattr(args, _CLI_NAME.get(key, key), None)
        return default if v is None else v

    parts = []
    for di, ds in enumerate(datasets):
        where = f"[[datasets]] #{di + 1}"
        _check_keys({k: v for k, v in ds.items() if k != "subsets"}, DATASET_KEYS | SUBSET_KEYS, where)
        reso = pick("resolution", ds, general)
        if isinstance(reso, list):
            reso = ",".join(str(x) for x in reso)
        reso = parse_resolution(reso)
        bucket = SimpleNamespace(**{k: pick(k, ds, general) for k in (
            "enable_bucket", "bucket_no_upscale", "min_bucket_reso", "max_bucket_reso", "bucket_reso_steps",
            "resize_interpolation", "validation_split", "validation_seed")})
        bucket.seed = getattr(args, "seed", None)
        train, reg = [], []
        seen = set()
        for si, sub in enumerate(ds.get("subsets") or []):
            swhere = f"{where}, subset #{si + 1}"
            _check_keys(sub, SUBSET_KEYS | SUBSET_ONLY, swhere)
            if not sub.get("image_dir"):
                raise DatasetError(f"dataset_config: {swhere} needs image_dir")
            d = Path(sub["image_dir"])
            if d in seen:
                warn(f"dataset_config: {d} appears twice in {where}; the second is ignored")
                continue
            seen.add(d)
            if not d.is_dir():
                raise DatasetError(f"dataset_config: image_dir {d} ({swhere}) is not a folder")
            opts = SimpleNamespace(**{k: pick(k, sub, ds, general) for k in (
                "shuffle_caption", "caption_separator", "keep_tokens", "flip_aug", "random_crop", "caption_prefix",
                "caption_suffix", "caption_dropout_rate", "caption_dropout_every_n_epochs",
                "caption_tag_dropout_rate", "keep_tokens_separator", "secondary_separator", "enable_wildcard",
                "color_aug", "face_crop_aug_range", "resize_interpolation", "alpha_mask", "token_warmup_min",
                "token_warmup_step")})
            opts.caption_separator = opts.caption_separator or ","
            from .resize import check_interpolation
            bad = check_interpolation(opts.resize_interpolation)
            if bad:
                raise DatasetError(f"dataset_config: {bad} ({swhere})")
            ext = pick("caption_extension", sub, ds, general, default=".caption")
            tokens = pick("class_tokens", sub, ds, general)
            if tokens is None:
                tokens = ""
            repeats = int(pick("num_repeats", sub, ds, general, default=1))
            is_reg = bool(sub.get("is_reg", False))
            s = scan_subset(d, repeats, tokens, is_reg, ext, bool(opts.enable_wildcard), opts)
            if sub.get("conditioning_data_dir"):
                if not getattr(args, "masked_loss", False):
                    raise DatasetError(f"dataset_config: conditioning_data_dir ({swhere}) is read only with "
                                       f"masked_loss; set masked_loss = true or remove it")
                from .loss_mask import find_conditioning_images
                find_conditioning_images(s.items, sub["conditioning_data_dir"], swhere)
            (reg if is_reg else train).append(s)
        parts.append(_assemble(train, reg, reso, int(pick("batch_size", ds, general, default=1)), bucket, warn,
                               f"dataset_config {path} {where}"))
    # Options read globally (caching decisions, metadata) take the most demanding subset value.
    subs = [it.opts for p in parts for it in p.samples]
    for k in ("shuffle_caption", "flip_aug", "random_crop", "enable_wildcard", "color_aug"):
        setattr(args, k, any(bool(getattr(o, k)) for o in subs))
    for k in ("caption_dropout_rate", "caption_tag_dropout_rate", "caption_dropout_every_n_epochs"):
        setattr(args, k, max((getattr(o, k) or 0) for o in subs))
    return parts[0] if len(parts) == 1 else DatasetGroup(parts)
