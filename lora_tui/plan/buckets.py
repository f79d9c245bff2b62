"""Aspect-ratio buckets exactly as sd-scripts assigns them (sd-scripts' `BucketManager`).

Pure integer/float arithmetic; the float expressions follow sd-scripts' order of operations so that ties and
roundings land in the same bucket as the trainer's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


#: More widths than this between min and max bucket size is no real setting (2048 / 64 gives 32); the list is then
#: not made (validation reports the values) instead of looping for minutes.
MAX_BUCKET_WIDTHS = 10_000


def bucket_resolutions(max_reso: tuple[int, int], min_size: int, max_size: int, step: int) -> list[tuple[int, int]]:
    """The predefined bucket list for ``max_reso`` = (W, H): sorted, de-duplicated ``(w, h)`` pairs.

    Source: sd-scripts ``model_util.make_bucket_resolutions``: the square of area ≈ W·H, then for every
    width from ``min_size`` to ``max_size`` in ``step`` increments the tallest height (≤ ``max_size``) whose area
    fits, with its transpose.
    """
    max_area = max_reso[0] * max_reso[1]
    out = set()
    # sd-scripts' float sqrt; an area past a float (a resolution of hundreds of digits) takes the integer one
    q = (int(math.sqrt(max_area) // step) if max_area < 2**1000 else math.isqrt(max_area) // step) * step
    out.add((q, q))
    if min_size < 1 or step < 1 or (max_size - min_size) // step > MAX_BUCKET_WIDTHS:
        return sorted(out)  # settings validation refuses (a side of 0, a million widths): no list to make
    w = min_size
    while w <= max_size:
        h = min(max_size, int((max_area // w) // step) * step)
        if h >= min_size:
            out.add((w, h))
            out.add((h, w))
        w += step
    return sorted(out)


def adjust_min_max(min_reso: int, max_reso: int, step: int) -> tuple[int, int]:
    """min rounded down, max rounded up to multiples of ``step`` (sd-scripts does this with a warning)."""
    if min_reso % step:
        min_reso -= min_reso % step
    if max_reso % step:
        max_reso += step - max_reso % step
    return min_reso, max_reso


@dataclass
class BucketChooser:
    """Maps an image size (W0, H0) to its bucket (w, h), memoised by size.

    ``enable_bucket`` False → one bucket, ``resolution``. ``no_upscale`` → buckets made on demand from the image
    size (shrunk to the resolution's area when larger, then floored to ``step``); otherwise the predefined list and
    the bucket of the nearest aspect ratio (first of equals in sorted order, like numpy's ``argmin``).
    """

    resolution: tuple[int, int]
    enable_bucket: bool = True
    min_reso: int = 256
    max_reso: int = 1024
    step: int = 64
    no_upscale: bool = False
    _resos: list[tuple[int, int]] = field(default_factory=list, repr=False)
    _ratios: list[float] = field(default_factory=list, repr=False)
    _memo: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.enable_bucket:
            self._resos = [tuple(self.resolution)]
            self.no_upscale = False
        elif not self.no_upscale:
            self._resos = bucket_resolutions(self.resolution, self.min_reso, self.max_reso, self.step)
        self._set = set(self._resos)
        self._ratios = [w / h if h else math.inf for w, h in self._resos]
        self._max_area = self.resolution[0] * self.resolution[1]

    def _round(self, x: float) -> int:
        x = int(x + 0.5)
        return x - x % self.step

    def bucket(self, width: int, height: int) -> tuple[int, int]:
        """The bucket of an image of ``width`` × ``height`` pixels; raises ValueError for a zero side."""
        key = (width, height)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if width <= 0 or height <= 0:
            raise ValueError(f"image size {width}x{height} has a zero side")
        ar = width / height
        if not self.no_upscale:
            if key in self._set:
                reso = key
            else:
                errors = [abs(r - ar) for r in self._ratios]
                reso = self._resos[errors.index(min(errors))]
        else:
            if width * height > self._max_area:
                rw = math.sqrt(self._max_area * ar)
                rh = self._max_area / rw
                bw = self._round(rw)
                bh_w = self._round(bw / ar)
                ar_w = bw / bh_w if bh_w else math.inf
                bh = self._round(rh)
                bw_h = self._round(bh * ar)
                ar_h = bw_h / bh if bh else math.inf
                if abs(ar_w - ar) < abs(ar_h - ar):
                    size = (bw, int(bw / ar + 0.5))
                else:
                    size = (int(bh * ar + 0.5), bh)
            else:
                size = key
            reso = (size[0] - size[0] % self.step, size[1] - size[1] % self.step)
        self._memo[key] = reso
        return reso
