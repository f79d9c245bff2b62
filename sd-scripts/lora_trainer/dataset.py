"""DreamBooth-style dataset as sd-scripts reads it (spec sd_scripts_interface.md §2).

`train_data_dir` / `reg_data_dir` hold `N_name` sub-folders (N = repeats, name = class tokens); captions come
from `<image stem><caption_extension>` (first line) or the class tokens; reg images are balanced to the train
count; images are bucketed by aspect ratio (§2.8) and resized to cover the bucket, then centre- (or random-)
cropped (§2.9).
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from pathlib import Path

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP"}


class DatasetError(Exception):
    """The dataset cannot be used; the message names the folder or file and the fix."""


@dataclass
class ImageItem:
    """One image file. `size` is (W, H) of the file; `bucket` (W, H) and `resized` (W, H) are set by bucketing."""
    path: Path
    caption: str
    is_reg: bool
    size: tuple[int, int]
    bucket: tuple[int, int] = (0, 0)
    resized: tuple[int, int] = (0, 0)
    latents: object = None
    latents_flipped: object = None
    opts: object = None  # per-subset options (flip_aug, random_crop, caption options); the args in CLI mode
    bucketed: bool = True  # its dataset has enable_bucket (SDXL size ids differ without it)
    mask: object = None  # cached loss mask [H, W] in [0, 1] at bucket size (alpha_mask / conditioning image)
    cond_path: Path | None = None  # conditioning image of masked_loss (conditioning_data_dir)


@dataclass
class Subset:
    """One `N_name` folder."""
    dir: Path
    repeats: int
    class_tokens: str
    is_reg: bool
    items: list[ImageItem] = field(default_factory=list)
    opts: object = None  # its options (dataset_config), for the ss_datasets metadata


def parse_subset_dir(name: str) -> tuple[int, str] | None:
    """`"10_sks dog"` → (10, "sks dog"); `"3"` → (3, ""); None when the name does not start with an int ≥ 1."""
    head, _, rest = name.partition("_")
    try:
        n = int(head)
    except ValueError:
        return None
    return (n, rest) if n >= 1 else None


def read_caption(img: Path, caption_extension: str, fallback: str, all_lines: bool = False) -> str:
    """First line of the caption file beside `img` (with `all_lines`, for `enable_wildcard`: every non-empty
    line, joined by newlines), or `fallback` when there is none.

    Raises DatasetError for an empty or non-UTF-8 caption file (sd-scripts aborts on both, §2.4)."""
    ext = caption_extension if caption_extension.startswith(".") else "." + caption_extension
    cands = [img.with_suffix(ext)]
    parts = img.stem.split("_")
    if len(parts) >= 5:  # face-crop names: stem_cx_cy_w_h
        cands.append(img.with_name("_".join(parts[:-4]) + ext))
    for c in cands:
        if c.is_file():
            try:
                text = c.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise DatasetError(f"caption file {c} is not UTF-8: {e}") from e
            lines = text.splitlines()
            if not lines or not lines[0].strip():
                raise DatasetError(f"caption file {c} is empty; write a caption or delete the file")
            if all_lines:
                return "\n".join(ln.strip() for ln in lines if ln.strip())
            return lines[0].strip()
    return fallback


def scan_folder(root: str | None, is_reg: bool, caption_extension: str, warn,
                all_lines: bool = False) -> list[Subset]:
    """Subsets of one data root; folders not named `N_name` are skipped with a warning. `all_lines`: keep every
    caption line (`enable_wildcard`)."""
    if not root:
        return []
    rp = Path(root)
    if not rp.is_dir():
        field_name = "reg_data_dir" if is_reg else "train_data_dir"
        raise DatasetError(f"{field_name}: {root} is not a folder")
    subsets = []
    # listing order, not sorted: sd-scripts walks os.listdir (§2.2), and the reg balancing below depends on it
    for d in [p for p in rp.iterdir() if p.is_dir()]:
        parsed = parse_subset_dir(d.name)
        if parsed is None:
            warn(f"ignore directory without repeats: {d}")
            continue
        repeats, tokens = parsed
        subsets.append(scan_subset(d, repeats, tokens, is_reg, caption_extension, all_lines))
    return subsets


def scan_subset(d: Path, repeats: int, tokens: str, is_reg: bool, caption_extension: str,
                all_lines: bool = False, opts=None) -> Subset:
    """One image folder as a `Subset`: its images (sorted; hidden names skipped, as sd-scripts' glob does, §2.3)
    with their captions (`tokens` where a caption file is missing) and sizes; `opts` goes on every item.

    Raises DatasetError for an image PIL cannot open, or a bad caption file (`read_caption`)."""
    from PIL import Image

    sub = Subset(d, repeats, tokens, is_reg, opts=opts)
    for img in sorted(p for p in d.iterdir()
                      if p.is_file() and p.suffix in IMAGE_EXTS and not p.name.startswith(".")):
        try:
            with Image.open(img) as im:
                size = im.size
        except Exception as e:
            raise DatasetError(f"cannot read image {img}: {e}") from e
        sub.items.append(ImageItem(img, read_caption(img, caption_extension, tokens, all_lines), is_reg, size,
                                   opts=opts))
    return sub


def make_bucket_resolutions(max_reso: tuple[int, int], min_size: int, max_size: int, step: int) -> list[tuple[int, int]]:
    """Bucket list for `enable_bucket` (spec §2.8.1): the square of the same area plus every (w, h) with
    w on the `step` grid in [min, max] and h the largest grid value keeping w·h ≤ area (and its transpose)."""
    area = max_reso[0] * max_reso[1]
    q = int(math.sqrt(area) // step) * step
    out = {(q, q)}
    w = min_size
    while w <= max_size:
        h = min(max_size, int((area // w) // step) * step)
        if h >= min_size:
            out.add((w, h))
            out.add((h, w))
        w += step
    return sorted(out)


def assign_bucket(size: tuple[int, int], buckets: list[tuple[int, int]]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(bucket, resized size) for an image in upscaling mode (§2.8.2): closest aspect ratio, scaled to cover."""
    w0, h0 = size
    if (w0, h0) in buckets:
        return (w0, h0), (w0, h0)
    ar = w0 / h0
    bw, bh = min(buckets, key=lambda b: abs(b[0] / b[1] - ar))
    k = bh / h0 if ar > bw / bh else bw / w0
    return (bw, bh), (int(w0 * k + 0.5), int(h0 * k + 0.5))


def _round_to_step(x: float, step: int) -> int:
    """Round to the nearest pixel, then down to the `step` grid (sd-scripts' BucketManager rounding)."""
    x = int(x + 0.5)
    return x - x % step


def assign_no_upscale(size: tuple[int, int], max_area: int, step: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """`bucket_no_upscale` (§2.8.2): shrink to the area if larger, then floor each side to `step`.

    When shrinking, both candidate sizes (width on the grid, height on the grid) are compared by the aspect ratio
    of their grid-rounded sides, as sd-scripts' `BucketManager.select_bucket` does: 1100×900 at 512×512 → width
    first 512×419 (rounded 512×384, aspect 1.33), height first 548×448 (rounded 512×448, aspect 1.14); the
    image's 1.22 is closer to the second → resized 548×448, bucket 512×448."""
    w0, h0 = size
    if w0 * h0 > max_area:
        ar = w0 / h0
        wf = math.sqrt(max_area * ar)
        hf = max_area / wf
        bw = _round_to_step(wf, step)
        bh_of_w = _round_to_step(bw / ar, step)
        ar_w = bw / bh_of_w if bh_of_w else math.inf
        bh = _round_to_step(hf, step)
        bw_of_h = _round_to_step(bh * ar, step)
        ar_h = bw_of_h / bh if bh else math.inf
        resized = (bw, int(bw / ar + 0.5)) if abs(ar_w - ar) < abs(ar_h - ar) else (int(bh * ar + 0.5), bh)
    else:
        resized = (w0, h0)
    bucket = (max(step, resized[0] // step * step), max(step, resized[1] // step * step))
    return bucket, resized


def ar_error(item: ImageItem) -> float:
    """sd-scripts' `select_bucket` aspect error: bucket W/H − image W/H (0 for an image already bucket-sized)."""
    if tuple(item.size) == tuple(item.bucket):
        return 0.0
    return item.bucket[0] / item.bucket[1] - item.size[0] / item.size[1]


@dataclass
class Dataset:
    """All items with repeats expanded into per-epoch sample lists and batches."""
    subsets: list[Subset]
    samples: list[ImageItem]          # one entry per occurrence (repeats, balanced reg)
    num_train_images: int
    num_reg_images: int
    batch_size: int
    buckets: dict[tuple[int, int], list[ImageItem]] = field(default_factory=dict)
    # how it was bucketed, for the ss_* metadata (sd-scripts' `bucket_info`, `ss_datasets`)
    resolution: tuple[int, int] = (0, 0)
    bucket_opts: object = None      # enable_bucket, bucket_no_upscale, min/max_bucket_reso, bucket_reso_steps
    bucket_list: list | None = None  # the full predefined bucket list (enable_bucket without bucket_no_upscale)
    resize_interpolation: str | None = None
    validation: object = None  # the validation Dataset split off by validation_split (validation.py), or None

    def batches(self, epoch: int, seed: int) -> list[list[ImageItem]]:
        """The epoch's batches: every batch from one bucket, bucket contents and batch order shuffled with
        `random.Random(seed + epoch)` (§2.8.3)."""
        rng = random.Random(seed + epoch)
        out = []
        for key in sorted(self.buckets):
            items = list(self.buckets[key])
            rng.shuffle(items)
            out += [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        rng.shuffle(out)
        return out

    def __len__(self) -> int:
        return sum(math.ceil(len(v) / self.batch_size) for v in self.buckets.values())


def _assemble(train: list[Subset], reg: list[Subset], reso, batch_size: int, bucket, warn, where: str) -> Dataset:
    """Balance reg images against the train count (§2.7) and bucket (§2.8) one dataset. `bucket` holds
    enable_bucket, bucket_no_upscale, min_bucket_reso, max_bucket_reso, bucket_reso_steps (and validation_split,
    validation_seed, seed: a validation split of each training folder, `validation.split_items`)."""
    split = float(getattr(bucket, "validation_split", 0) or 0)
    if split > 0:
        from .validation import split_items
        seed = getattr(bucket, "validation_seed", None)
        seed = seed if seed is not None else (getattr(bucket, "seed", None) or 0)
        val_subsets = []
        for s in train:
            keep, held = split_items(s.items, split, int(seed))
            val_subsets.append(Subset(s.dir, s.repeats, s.class_tokens, False, held, s.opts))
            s.items = keep
        no_split = SimpleNamespace(**{**vars(bucket), "validation_split": 0})
        val = _assemble(val_subsets, [], reso, batch_size, no_split, warn, where) \
            if any(v.items for v in val_subsets) else None
        ds = _assemble(train, reg, reso, batch_size, no_split, warn, where)
        ds.bucket_opts, ds.validation = bucket, val
        return ds
    num_train = sum(len(s.items) * s.repeats for s in train)
    if num_train == 0:
        raise DatasetError(f"No data found in {where}: it must be the parent of folders named like '10_name' "
                           f"that contain images (.png .jpg .jpeg .webp .bmp)")
    samples: list[ImageItem] = []
    for s in train:
        for it in s.items:
            samples += [it] * s.repeats
    num_reg = sum(len(s.items) * s.repeats for s in reg)
    if num_reg:
        reg_samples: list[ImageItem] = []
        # first pass: each reg image with ALL its repeats, in order, until the train count is reached; the rest
        # stay unused (sd-scripts' DreamBoothDataset, §2.7: 5 train, 3 reg × 2 → 2, 4, 6 = 6 reg samples)
        for s in reg:
            for it in s.items:
                if len(reg_samples) >= num_train:
                    break
                reg_samples += [it] * s.repeats
        if num_reg > num_train:
            warn(f"some of reg images are not used: {num_reg} reg > {num_train} train")
        # still short (all used): one more repeat per image, cycling, until the count is reached
        all_reg = [it for s in reg for it in s.items]
        i = 0
        while len(reg_samples) < num_train:
            reg_samples.append(all_reg[i % len(all_reg)])
            i += 1
        samples += reg_samples

    step = int(bucket.bucket_reso_steps)
    items = {id(it): it for it in samples}.values()
    bl = None
    if bucket.enable_bucket and not bucket.bucket_no_upscale:
        mn = int(bucket.min_bucket_reso) // step * step
        mx = -(-int(bucket.max_bucket_reso) // step) * step
        if min(reso) < mn or max(reso) > mx:
            raise DatasetError(f"resolution {reso} must lie within min_bucket_reso {mn} and max_bucket_reso {mx}")
        bl = make_bucket_resolutions(reso, mn, mx, step)
        for it in items:
            it.bucket, it.resized = assign_bucket(it.size, bl)
    elif bucket.enable_bucket:
        for it in items:
            it.bucket, it.resized = assign_no_upscale(it.size, reso[0] * reso[1], step)
            if 0 in it.resized:
                raise DatasetError(
                    f"{it.path}: a {it.size[0]}x{it.size[1]} image gets a side of 0 with bucket_no_upscale at "
                    f"resolution {reso[0]},{reso[1]} and bucket_reso_steps {step}: lower bucket_reso_steps, "
                    f"raise the resolution, or turn bucket_no_upscale off")
    else:
        for it in items:
            it.bucket = reso
            it.bucketed = False
            _, it.resized = assign_bucket(it.size, [reso])
    buckets: dict[tuple[int, int], list[ImageItem]] = {}
    for it in samples:
        buckets.setdefault(it.bucket, []).append(it)
    return Dataset(train + reg, samples, num_train, num_reg, batch_size, buckets, tuple(reso), bucket, bl,
                   getattr(bucket, "resize_interpolation", None))


def build_dataset(args, warn):
    """Scan `train_data_dir`/`reg_data_dir` (or read `dataset_config`), balance reg images (§2.7) and bucket
    (§2.8). Returns a `Dataset` (or a `DatasetGroup` for several datasets in a dataset_config).

    Raises DatasetError when no training image is found (sd-scripts exits 0 there; we make it an error so a
    run that trains nothing is not reported as a success)."""
    if getattr(args, "dataset_config", None):
        from .dataset_config import build_from_config
        return build_from_config(args, warn)
    ext = args.caption_extension if args.caption_extension else ".caption"
    if getattr(args, "caption_extention", None):
        ext = args.caption_extention
    if not args.train_data_dir:
        raise DatasetError("train_data_dir is not set; give the folder that holds the N_name image folders")
    wild = bool(getattr(args, "enable_wildcard", False))
    train = scan_folder(args.train_data_dir, False, ext, warn, wild)
    reg = scan_folder(args.reg_data_dir, True, ext, warn, wild)
    for s in train + reg:
        for it in s.items:
            it.opts = args
    return _assemble(train, reg, parse_resolution(args.resolution), int(args.train_batch_size), args, warn,
                     f"train_data_dir {args.train_data_dir}")


class DatasetGroup:
    """Several datasets trained together (dataset_config with more than one `[[datasets]]`): each keeps its own
    resolution, buckets and batch size; an epoch is all their batches, shuffled together."""

    def __init__(self, parts: list[Dataset]):
        self.parts = parts
        self.subsets = [s for p in parts for s in p.subsets]
        self.samples = [it for p in parts for it in p.samples]
        self.num_train_images = sum(p.num_train_images for p in parts)
        self.num_reg_images = sum(p.num_reg_images for p in parts)
        self.batch_size = parts[0].batch_size
        vals = [p.validation for p in parts if p.validation is not None]
        self.validation = DatasetGroup(vals) if vals else None
        self.buckets: dict = {}
        for p in parts:
            for k, v in p.buckets.items():
                self.buckets.setdefault(k, []).extend(v)

    def batches(self, epoch: int, seed: int):
        out = [b for i, p in enumerate(self.parts) for b in p.batches(epoch, seed + 1000 * i)]
        random.Random(seed + epoch).shuffle(out)
        return out

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)


def parse_resolution(value) -> tuple[int, int]:
    """`"512"` → (512, 512), `"768,512"` → (768, 512) (W, H). Raises DatasetError otherwise."""
    if value is None:
        raise DatasetError("resolution is not set; give e.g. resolution = \"1024,1024\"")
    parts = [p.strip() for p in str(value).split(",")]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise DatasetError(f"resolution {value!r} is not 'S' or 'W,H' in pixels") from None
    if len(nums) == 1:
        return nums[0], nums[0]
    if len(nums) == 2:
        return nums[0], nums[1]
    raise DatasetError(f"resolution {value!r} is not 'S' or 'W,H' in pixels")


def _opt(item: ImageItem, name: str, default=None):
    """A per-subset option of `item` (its opts, the args in CLI mode), `default` when absent or None."""
    v = getattr(item.opts, name, None) if item.opts is not None else None
    return default if v is None else v


def wants_alpha(item: ImageItem) -> bool:
    """Whether `item`'s loss mask comes from its alpha channel (alpha_mask)."""
    return bool(_opt(item, "alpha_mask", False))


def load_image_tensor(item: ImageItem, random_crop: bool, flip: bool, rng: random.Random, augment: bool = True):
    """The image resized and trimmed to its bucket with sd-scripts' rules (`resize.trim_and_resize`; face crop
    for non-bucketed items with face_crop_aug_range and a `_cx_cy_w_h` name), colour-augmented (color_aug, when
    `augment`) and flipped, as a [3, H, W] float tensor in [-1, 1].

    Returns (tensor, mask): mask is the [H, W] float loss mask in [0, 1] (alpha channel with alpha_mask — ones for
    an image without one — or the conditioning image's red channel with conditioning_data_dir), else None."""
    import numpy as np
    import torch
    from PIL import Image

    from .resize import trim_and_resize

    alpha = wants_alpha(item)
    with Image.open(item.path) as im:
        arr = np.asarray(im.convert("RGBA" if alpha else "RGB"))
    interp = _opt(item, "resize_interpolation")
    face_range = _opt(item, "face_crop_aug_range")
    face = None
    if face_range and not item.bucketed:
        from .augment import face_box
        face = face_box(item.path.stem)
    if face is not None:
        from .augment import face_crop
        rng_range = [float(x) for x in (face_range.split(",") if isinstance(face_range, str) else face_range)]
        arr = face_crop(arr, face, item.bucket, (rng_range[0], rng_range[1]), random_crop, interp, rng)
    else:
        arr = trim_and_resize(arr, item.bucket, item.resized, interp, random_crop, rng)
    if augment and _opt(item, "color_aug", False):
        from .augment import color_aug
        arr = np.concatenate([color_aug(arr[:, :, :3], rng), arr[:, :, 3:]], axis=2) if alpha \
            else color_aug(arr, rng)
    if flip:
        arr = arr[:, ::-1]
    mask = None
    if alpha:
        mask = torch.from_numpy(arr[:, :, 3].astype(np.float32) / 255.0)
    elif item.cond_path is not None:
        mask = conditioning_mask(item, flip)
    rgb = np.ascontiguousarray(arr[:, :, :3]).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), mask


def conditioning_mask(item: ImageItem, flip: bool):
    """masked_loss's mask from the conditioning image: resized straight to the bucket size (sd-scripts'
    ControlNet dataset: no aspect-preserving crop), flipped with the image, red channel / 255 → [H, W]."""
    import numpy as np
    import torch
    from PIL import Image

    from .resize import resize_array

    with Image.open(item.cond_path) as im:
        arr = np.asarray(im.convert("RGB"))
    bw, bh = item.bucket
    if arr.shape[:2] != (bh, bw):
        arr = resize_array(arr, (bw, bh), _opt(item, "resize_interpolation"))
    if flip:
        arr = arr[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(arr[:, :, 0]).astype(np.float32) / 255.0)


def size_ids(item: ImageItem, flipped: bool, cached: bool) -> list[int]:
    """SDXL's six size ids [original H, W, crop top, crop left, target H, W] for `item`, as sd-scripts' dataset
    gives them: crop from `get_crop_ltrb` (the image fitted inside the bucket), left mirrored when flipped; a
    non-bucketed image read from file has original = target and crop ltrb (0, 0, 0, 0)."""
    from .resize import crop_ltrb, crop_top_left

    bw, bh = item.bucket
    if item.bucketed or cached:
        ow, oh = item.size
        ltrb = crop_ltrb(item.bucket, item.size)
    else:
        ow, oh = bw, bh
        ltrb = (0, 0, 0, 0)
    ct, cl = crop_top_left(ltrb, bw, flipped)
    return [oh, ow, ct, cl, bh, bw]


def expand_wildcards(text: str, rng: random.Random) -> str:
    """Replace each `{a|b|c}` by one alternative drawn with `rng`; `{{` and `}}` stand for literal braces
    (sd-scripts' `enable_wildcard`, spec §2.5 step 3)."""
    left, right = "\ue000", "\ue001"  # private-use stand-ins for escaped braces
    while left in text or right in text:
        left, right = left + "\ue000", right + "\ue001"
    text = text.replace("{{", left).replace("}}", right)
    text = re.sub(r"\{([^}]+)\}", lambda m: rng.choice(m.group(1).split("|")), text)
    return text.replace(left, "{").replace(right, "}")


def process_caption(caption: str, args, epoch: int, rng: random.Random, step: int = 0, max_steps: int = 0) -> str:
    """Caption pipeline of §2.5: prefix/suffix, dropout, wildcards (a random line, `{a|b}` alternatives) or the
    first line, then (with shuffle or tag dropout) the fixed head — `keep_tokens` tokens, or the text before
    `keep_tokens_separator` (and the fixed tail after a second one) — and the shuffled/dropped rest, re-joined
    with ", "; finally `secondary_separator` becomes `caption_separator`. As in sd-scripts, without shuffle or
    tag dropout a `keep_tokens_separator` stays in the text. `token_warmup_step` (a fraction < 1 of `max_steps`, or
    steps) keeps only the first floor(step · (n − token_warmup_min) / warmup) + token_warmup_min flexible tags before
    `step` (the optimizer step) reaches it, before shuffling (sd-scripts' order)."""
    if args.caption_prefix:
        caption = args.caption_prefix + " " + caption
    if args.caption_suffix:
        caption = caption + " " + args.caption_suffix
    if (args.caption_dropout_rate and rng.random() < args.caption_dropout_rate) or \
            (args.caption_dropout_every_n_epochs and epoch % args.caption_dropout_every_n_epochs == 0):
        return ""
    if getattr(args, "enable_wildcard", False):
        if "\n" in caption:
            caption = rng.choice(caption.split("\n"))
        caption = expand_wildcards(caption, rng)
    else:
        caption = caption.split("\n")[0]
    sep = args.caption_separator or ","
    warmup = float(getattr(args, "token_warmup_step", 0) or 0)
    if 0 < warmup < 1:
        warmup = math.floor(warmup * max_steps)
    if args.shuffle_caption or args.caption_tag_dropout_rate or warmup:
        kts = getattr(args, "keep_tokens_separator", None)
        tail: list[str] = []
        if kts and kts in caption:
            head, flex_text = caption.split(kts, 1)
            if kts in flex_text:
                flex_text, tail_text = flex_text.split(kts, 1)
                tail = [t.strip() for t in tail_text.split(sep) if t.strip()]
            fixed = [t.strip() for t in head.split(sep) if t.strip()]
            flex = [t.strip() for t in flex_text.split(sep) if t.strip()]
        else:
            toks = [t.strip() for t in caption.strip().split(sep)]
            k = int(args.keep_tokens or 0)
            fixed, flex = toks[:k], toks[k:]
        if warmup and step < warmup:
            lo = int(getattr(args, "token_warmup_min", 1) or 0)
            flex = flex[:math.floor(step * ((len(flex) - lo) / warmup)) + lo]
        if args.shuffle_caption:
            rng.shuffle(flex)
        if args.caption_tag_dropout_rate:
            flex = [t for t in flex if rng.random() >= args.caption_tag_dropout_rate]
        caption = ", ".join(fixed + flex + tail)
    secondary = getattr(args, "secondary_separator", None)
    if secondary:
        caption = caption.replace(secondary, sep)
    return caption


def captions_are_static(args) -> bool:
    """True when a caption's text never changes between epochs, so text-encoder outputs can be cached."""
    return not (args.shuffle_caption or args.caption_tag_dropout_rate or args.caption_dropout_rate
                or args.caption_dropout_every_n_epochs or getattr(args, "enable_wildcard", False)
                or getattr(args, "token_warmup_step", 0))
