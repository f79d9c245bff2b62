"""Image resizing and SDXL's crop conditioning with sd-scripts' rules (`library/utils.resize_image`,
`train_util.trim_and_resize_if_required`, `BucketManager.get_crop_ltrb`), so a cached latent and the SDXL
`time_ids` equal what kohya computes for the same image.

Filter (`resize_interpolation` unset): OpenCV INTER_AREA when neither side grows, else PIL LANCZOS. Set: `lanczos`
and `box` through PIL; `area`, `nearest` (INTER_NEAREST_EXACT), `bilinear`/`linear`, `bicubic`/`cubic` through
OpenCV (`lanczos4` means PIL LANCZOS too, as sd-scripts). OpenCV comes from `opencv-python-headless` ([train]).
"""
from __future__ import annotations

import numpy as np

INTERPOLATIONS = ("lanczos", "nearest", "bilinear", "linear", "bicubic", "cubic", "area", "box")


def check_interpolation(value) -> str | None:
    """Why `resize_interpolation` = value cannot be used (None when it can; None/empty means the default)."""
    if value in (None, "") or value in INTERPOLATIONS:
        return None
    return f"resize_interpolation {value!r}: use one of {', '.join(INTERPOLATIONS)}"


def resize_array(img: np.ndarray, size: tuple[int, int], interpolation: str | None = None) -> np.ndarray:
    """`img` (H, W, C uint8, RGB or RGBA) resized to `size` (W, H) with sd-scripts' choice of filter."""
    h, w = img.shape[:2]
    rw, rh = int(size[0]), int(size[1])
    if not interpolation:
        interpolation = "area" if w >= rw and h >= rh else "lanczos"
    if interpolation in ("lanczos", "lanczos4", "box"):
        from PIL import Image

        mode = "RGBA" if img.shape[2] == 4 else "RGB"
        resample = Image.Resampling.BOX if interpolation == "box" else Image.Resampling.LANCZOS
        return np.asarray(Image.fromarray(img, mode).resize((rw, rh), resample=resample))
    import cv2

    flag = {"area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST_EXACT, "bilinear": cv2.INTER_LINEAR,
            "linear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC, "cubic": cv2.INTER_CUBIC}[interpolation]
    return cv2.resize(img, (rw, rh), interpolation=flag)


def crop_ltrb(bucket: tuple[int, int], image_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """sd-scripts' `get_crop_ltrb`: (left, top, right, bottom) of the image fitted *inside* the bucket (Stability
    AI's preprocessing), left/top floored, right = left + fitted width. Floats, as sd-scripts computes them:
    bucket (1024, 768), image 1000×1000 → fitted 768×768 → (128.0, 0.0, 896.0, 768.0)."""
    bw, bh = bucket
    iar = image_size[0] / image_size[1]
    if bw / bh > iar:
        fw, fh = bh * iar, bh
    else:
        fw, fh = bw, bw / iar
    left, top = (bw - fw) // 2, (bh - fh) // 2
    return left, top, left + fw, top + fh


def crop_top_left(ltrb, target_w: int, flipped: bool) -> tuple[int, int]:
    """SDXL's (crop_top, crop_left) time ids from a crop_ltrb: flipped, left = target width − right (sd-scripts'
    `BaseDataset.__getitem__`); both truncated to int."""
    left = target_w - ltrb[2] if flipped else ltrb[0]
    return int(ltrb[1]), int(left)


def trim_and_resize(img: np.ndarray, bucket: tuple[int, int], resized: tuple[int, int],
                    interpolation: str | None, random_crop: bool, rng) -> np.ndarray:
    """sd-scripts' `trim_and_resize_if_required`: resize to `resized` (W, H) when the size differs, then trim the
    overflow to `bucket` — centred (floor of half), or at `rng.randint(0, overflow)` with random_crop."""
    h, w = img.shape[:2]
    if (w, h) != tuple(resized):
        img = resize_array(img, resized, interpolation)
    h, w = img.shape[:2]
    if w > bucket[0]:
        p = rng.randint(0, w - bucket[0]) if random_crop else (w - bucket[0]) // 2
        img = img[:, p:p + bucket[0]]
    if h > bucket[1]:
        p = rng.randint(0, h - bucket[1]) if random_crop else (h - bucket[1]) // 2
        img = img[p:p + bucket[1]]
    return img
