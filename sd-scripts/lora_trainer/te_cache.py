"""`cache_text_encoder_outputs_to_disk` (SDXL): each image's text-encoder outputs in `<image stem>_te_outputs.npz`
beside it, with sd-scripts' keys (`hidden_state1` [77·n, 768], `hidden_state2` [77·n, 1280], `pool2` [1280],
float32), read back on the next run instead of running the encoders (sd-scripts'
`SdxlTextEncoderOutputsCachingStrategy`). We also store the caption the outputs belong to (`caption`, an extra key
kohya's loader ignores) and re-encode when it changed; sd-scripts reuses a file whatever the caption is now.
"""
from __future__ import annotations

import random

from .args import OptionError

SUFFIX = "_te_outputs.npz"


def cache_te_outputs_to_disk(trainer) -> int:
    """Fill `trainer.cond_cache` from (or into) the npz files of every image; returns how many were encoded.
    Raises OptionError when outputs cannot be cached: text encoders trained, or captions that change per step."""
    import numpy as np
    import torch

    from .atomic import atomic_path
    from .dataset import process_caption

    if trainer.family != "sdxl":
        raise OptionError("cache_text_encoder_outputs_to_disk is for SDXL (sdxl_train_network.py)")
    if trainer.cond_cache is None:
        raise OptionError("cache_text_encoder_outputs_to_disk needs network_train_unet_only and captions that do "
                          "not change between steps (no shuffle_caption, caption/tag dropout, wildcards or "
                          "token warm-up), as sd-scripts requires")
    val = getattr(trainer.dataset, "validation", None)
    samples = trainer.dataset.samples + (val.samples if val is not None else [])
    w1 = int(trainer.model.text_encoders[0].config.hidden_size)  # the first encoder's share of the context (768)
    encoded = 0
    for it in {id(it): it for it in samples}.values():
        caption = process_caption(it.caption, it.opts or trainer.args, 1, random.Random(0))
        npz = it.path.with_name(it.path.stem + SUFFIX)
        if npz.is_file():
            with np.load(npz) as z:
                if {"hidden_state1", "hidden_state2", "pool2"} <= set(z.files) and \
                        ("caption" not in z.files or str(z["caption"]) == caption):
                    ctx = torch.cat([torch.from_numpy(z["hidden_state1"]), torch.from_numpy(z["hidden_state2"])],
                                    dim=-1)
                    trainer.cond_cache[caption] = (ctx.to(trainer.acc.device), torch.from_numpy(z["pool2"]).to(
                        trainer.acc.device))
                    continue
        ctx, pooled = trainer._encode([caption])  # also puts it in cond_cache
        c = ctx[0].detach().float().cpu().numpy()
        with atomic_path(npz) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, hidden_state1=c[:, :w1], hidden_state2=c[:, w1:],
                         pool2=pooled[0].detach().float().cpu().numpy(), caption=np.array(caption))
        encoded += 1
    return encoded
