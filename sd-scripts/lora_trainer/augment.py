"""Image augmentations of sd-scripts' DreamBooth dataset: `color_aug` (`AugHelper.color_aug`) and
`face_crop_aug_range` (`BaseDataset.crop_target`), drawn from the run's `random.Random` instead of the global
`random` module (same distributions, our own stream).
"""
from __future__ import annotations

import random

import numpy as np

HUE_SHIFT_LIMIT = 8  # OpenCV hue units (0..180)


def color_aug(img: np.ndarray, rng: random.Random) -> np.ndarray:
    """With probability 0.33: half the time a hue shift uniform in ±8 (OpenCV HSV hue, wrapping at 180), else a
    gamma uniform in [0.95, 1.05] on the 0..255 values (clipped). `img`: H×W×3 uint8 RGB, converted with OpenCV's
    BGR↔HSV codes exactly as sd-scripts does with its RGB arrays (so the shifted hue is the one kohya shifts)."""
    if rng.random() > 0.33:
        return img
    if rng.random() > 0.5:
        import cv2

        hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2HSV)
        shift = rng.uniform(-HUE_SHIFT_LIMIT, HUE_SHIFT_LIMIT)
        if shift < 0:
            shift = 180 + shift
        hsv[:, :, 0] = (hsv[:, :, 0] + shift) % 180
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    gamma = rng.uniform(0.95, 1.05)
    return np.clip(img.astype(np.float64) ** gamma, 0, 255).astype(np.uint8)


def face_box(stem: str) -> tuple[int, int, int, int] | None:
    """(cx, cy, w, h) from a file stem ending `_cx_cy_w_h` (the face-crop naming); None otherwise."""
    parts = stem.split("_")
    if len(parts) < 5:
        return None
    try:
        return tuple(int(p) for p in parts[-4:])  # type: ignore[return-value]
    except ValueError:
        return None


def face_crop(img: np.ndarray, face, size: tuple[int, int], aug_range: tuple[float, float], random_crop: bool,
              interpolation, rng: random.Random) -> np.ndarray:
    """sd-scripts' `crop_target`: scale the image so the face spans between 1/aug_range[1] and 1/aug_range[0] of
    the shorter target side (never above 1.0, never below covering the target), then cut `size` (W, H) centred on
    the face (with random_crop, shifted by a triangular draw; with a range, jittered by ±face/20)."""
    from .resize import resize_array

    tw, th = size
    h, w = img.shape[:2]
    if (h, w) == (th, tw):
        return img
    cx, cy, fw, fh = face
    fsize = max(fw, fh)
    short = min(th, tw)
    lo = max(th / h, tw / w)
    lo = min(1.0, max(lo, short / (fsize * aug_range[1])))
    hi = min(1.0, max(lo, short / (fsize * aug_range[0])))
    scale = lo if lo >= hi else rng.uniform(lo, hi)
    nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
    if nh < th or nw < tw:
        raise ValueError(f"face crop: the image scales to {nw}x{nh}, smaller than {tw}x{th}")
    img = resize_array(img, (nw, nh), interpolation)
    cx, cy = int(cx * scale + 0.5), int(cy * scale + 0.5)
    for axis, (target, length, p) in enumerate(((th, nh, cy), (tw, nw, cx))):
        p1 = p - target // 2
        if random_crop:
            span = max(length - p, p)
            p1 = p1 + (rng.randint(0, span) + rng.randint(0, span)) - span
        elif aug_range[0] != aug_range[1] and fsize > short // 10 and fsize >= 40:
            p1 = p1 + rng.randint(-fsize // 20, fsize // 20)
        p1 = max(0, min(p1, length - target))
        img = img[p1:p1 + target] if axis == 0 else img[:, p1:p1 + target]
    return img
