"""Loss masks of `masked_loss` / `alpha_mask` (sd-scripts' `apply_masked_loss`): per image an [H, W] mask in
[0, 1] at bucket size, from the alpha channel (alpha_mask) or the red channel of the image of the same name in the
subset's `conditioning_data_dir`; made in `dataset.load_image_tensor` and, with cached latents, cached beside them.
"""
from __future__ import annotations


def batch_masks(masks: list):
    """The batch's masks as one (B, 1, H, W) float tensor, or None when no image of the batch has one; an image
    without a mask in a batch with masks gets ones (sd-scripts' collation)."""
    if all(m is None for m in masks):
        return None
    import torch

    shape = next(m for m in masks if m is not None).shape
    return torch.stack([torch.ones(shape) if m is None else m for m in masks])[:, None]


def find_conditioning_images(items: list, cond_dir, where: str) -> None:
    """Set `cond_path` of each item to the image of the same stem in `cond_dir` (any image extension, as
    sd-scripts' `glob_images`). Raises DatasetError naming the images that have none."""
    from pathlib import Path

    from .dataset import IMAGE_EXTS, DatasetError

    d = Path(cond_dir)
    if not d.is_dir():
        raise DatasetError(f"dataset_config: conditioning_data_dir {d} ({where}) is not a folder")
    by_stem: dict[str, Path] = {}
    for p in sorted(d.iterdir()):
        if p.is_file() and p.suffix in IMAGE_EXTS:
            by_stem.setdefault(p.stem, p)
    missing = []
    for it in items:
        it.cond_path = by_stem.get(it.path.stem)
        if it.cond_path is None:
            missing.append(it.path.name)
    if missing:
        raise DatasetError(f"dataset_config: conditioning_data_dir {d} ({where}) has no image for "
                           f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; add one of the same "
                           f"name per training image")
