"""Block-wise ranks and learning rates of `networks.lora` (`network_args` block_dims, block_alphas,
conv_block_dims, conv_block_alphas, down_lr_weight, mid_lr_weight, up_lr_weight, block_lr_zero_threshold), with
the rules of sd-scripts' `networks/lora.py` (`get_block_dims_and_alphas`, `get_block_lr_weight`,
`remove_block_dims_and_alphas`, `get_block_index`).

Block numbering (spec sd_scripts_interface.md §5.5): SD1/2 — 25 blocks: 0 unused, 1–12 down (3·i+j, a
downsampler at 3·i+2), 12 mid, 13–24 up; SDXL — 23 blocks: 0 time/label embedding, 1–9 `input_blocks.0–8`,
10–12 `middle_block.0–2`, 13–21 `output_blocks.0–8`, 22 `out`. Names are the kohya LoRA names, so the index is
read from the same strings sd-scripts reads (SD1/2: diffusers paths; SDXL: the original SAI layout).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .args import OptionError

SD_BLOCKS, SD_MID = 12, 1        # sd-scripts' LoRANetwork.NUM_OF_BLOCKS / NUM_OF_MID_BLOCKS
SDXL_BLOCKS, SDXL_MID = 9, 3     # SDXL_NUM_OF_BLOCKS / SDXL_NUM_OF_MID_BLOCKS
_UPDOWN = re.compile(r"(up|down)_blocks_(\d+)_(resnets|upsamplers|downsamplers|attentions)_(\d+)_")
BLOCK_KEYS = ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas", "down_lr_weight",
              "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold")


def num_blocks(is_sdxl: bool) -> int:
    """How many values block_dims & co. take: 25 (SD1/2) or 23 (SDXL)."""
    return 1 + SDXL_BLOCKS * 2 + SDXL_MID + 1 if is_sdxl else SD_BLOCKS * 2 + SD_MID


def block_index(lora_name: str, is_sdxl: bool) -> int:
    """The block of a U-Net LoRA module named `lora_name` (e.g. `lora_unet_input_blocks_4_1_proj_in` → 5);
    -1 when the name is in no block (sd-scripts then indexes the lists with -1, i.e. the last value)."""
    if not is_sdxl:
        m = _UPDOWN.search(lora_name)
        if m:
            side, i, kind, j = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
            idx = 3 * i + 2 if kind in ("upsamplers", "downsamplers") else 3 * i + j
            return 1 + idx if side == "down" else SD_BLOCKS + 1 + idx
        return SD_BLOCKS if "mid_block_" in lora_name else -1
    if not lora_name.startswith("lora_unet_"):
        return -1
    name = lora_name[len("lora_unet_"):]
    if name.startswith(("time_embed_", "label_emb_")):
        return 0
    for head, base in (("input_blocks_", 1), ("middle_block_", 10), ("output_blocks_", 13)):
        if name.startswith(head):
            return base + int(name.split("_")[2])
    return 22 if name.startswith("out_") else -1


def _numbers(key: str, text: str, cast, n: int | None) -> list:
    try:
        vals = [cast(s) for s in str(text).split(",")]
    except ValueError:
        raise OptionError(f"network_args: {key}={text!r} must be {n or 'a list of'} comma-separated "
                          f"{'integers' if cast is int else 'numbers'}") from None
    if n is not None and len(vals) != n:
        raise OptionError(f"network_args: {key} has {len(vals)} values; this model needs {n} (one per block: "
                          f"{'23 for SDXL' if n == 23 else '25 for SD1.x/2.x'})")
    return vals


def _preset(name_with_base: str, n: int) -> list[float]:
    """down/up_lr_weight presets: `cosine`, `sine`, `linear`, `reverse_linear`, `zeros`, each optionally `+base`
    (added to every value); `n` values from the shallowest block."""
    name, _, base = name_with_base.partition("+")
    try:
        b = float(base) if base else 0.0
    except ValueError:
        raise OptionError(f"network_args: lr weight {name_with_base!r}: the part after + must be a number") from None
    if name == "cosine":
        return [math.sin(math.pi * (i / (n - 1)) / 2) + b for i in reversed(range(n))]
    if name == "sine":
        return [math.sin(math.pi * (i / (n - 1)) / 2) + b for i in range(n)]
    if name == "linear":
        return [i / (n - 1) + b for i in range(n)]
    if name == "reverse_linear":
        return [i / (n - 1) + b for i in reversed(range(n))]
    if name == "zeros":
        return [b] * n
    raise OptionError(f"network_args: lr weight {name!r} is not a list of numbers nor one of cosine, sine, "
                      f"linear, reverse_linear, zeros")


def _lr_list(key: str, text, n: int, preset_ok: bool) -> list[float] | None:
    """One of down/mid/up_lr_weight as n floats: a comma list (empty items are 0, too short filled with 1.0,
    too long cut, as sd-scripts) or, for down/up, a preset name."""
    if text is None:
        return None
    text = str(text)
    if preset_ok and "," not in text:
        vals = _preset(text, n)
    else:
        try:
            vals = [float(s) if s else 0.0 for s in text.split(",")]
        except ValueError:
            raise OptionError(f"network_args: {key}={text!r} must be comma-separated numbers") from None
    return (vals + [1.0] * n)[:n]


@dataclass
class BlockPlan:
    """Per-block ranks/alphas (`dims`, `alphas`; `conv_dims`/`conv_alphas` or None) for the U-Net and per-block LR
    weights (`lr_weight`, or None), indexed by `block_index`."""
    dims: list[int]
    alphas: list[float]
    conv_dims: list[int] | None
    conv_alphas: list[float] | None
    lr_weight: list[float] | None


def lr_weights(kv: dict[str, str], is_sdxl: bool) -> list[float] | None:
    """sd-scripts' `parse_block_lr_kwargs`: the per-block LR multipliers, or None when no *_lr_weight is given.
    Weights ≤ block_lr_zero_threshold become 0; SDXL gets 1.0 for block 0 and 22 around the lists."""
    down, mid, up = kv.get("down_lr_weight"), kv.get("mid_lr_weight"), kv.get("up_lr_weight")
    if down is None and mid is None and up is None:
        return None
    nb, nm = (SDXL_BLOCKS, SDXL_MID) if is_sdxl else (SD_BLOCKS, SD_MID)
    try:
        zero = float(kv.get("block_lr_zero_threshold") or 0.0)
    except ValueError:
        raise OptionError("network_args: block_lr_zero_threshold must be a number") from None
    lists = []
    for key, text, n, preset_ok in (("down_lr_weight", down, nb, True), ("mid_lr_weight", mid, nm, False),
                                    ("up_lr_weight", up, nb, True)):
        vals = _lr_list(key, text, n, preset_ok)
        lists += [1.0] * n if vals is None else [w if w > zero else 0 for w in vals]
    return [1.0] + lists + [1.0] if is_sdxl else lists


def block_plan(kv: dict[str, str], is_sdxl: bool, network_dim: int, network_alpha: float,
               conv_dim: int | None, conv_alpha: float | None) -> BlockPlan | None:
    """The block-wise plan from `network_args` (`kv`), or None when no block key is set (then every module takes
    network_dim/conv_dim). As sd-scripts: without block_dims every block gets network_dim (alphas likewise);
    conv blocks only with conv_block_dims or conv_dim; a block whose LR weight is 0 gets rank 0 (no module).
    OptionError names the key whose list has the wrong length or is not numbers."""
    lrw = lr_weights(kv, is_sdxl)
    if kv.get("block_dims") is None and lrw is None:
        return None
    n = num_blocks(is_sdxl)
    dims = _numbers("block_dims", kv["block_dims"], int, n) if kv.get("block_dims") is not None else [network_dim] * n
    alphas = _numbers("block_alphas", kv["block_alphas"], float, n) if kv.get("block_alphas") is not None \
        else [network_alpha] * n
    if kv.get("conv_block_dims") is not None:
        cdims = _numbers("conv_block_dims", kv["conv_block_dims"], int, n)
        calphas = _numbers("conv_block_alphas", kv["conv_block_alphas"], float, n) \
            if kv.get("conv_block_alphas") is not None else [1.0 if conv_alpha is None else conv_alpha] * n
    elif conv_dim is not None:
        cdims, calphas = [conv_dim] * n, [conv_alpha] * n
    else:
        cdims = calphas = None
    if lrw is not None:
        for i, w in enumerate(lrw):
            if w == 0:
                dims[i] = 0
                if cdims is not None:
                    cdims[i] = 0
    return BlockPlan(dims, alphas, cdims, calphas, lrw)
