"""`full_fp16` / `full_bf16`: the LoRA weights themselves (and so the optimizer's view of them) in half precision,
as sd-scripts does (spec sd_scripts_interface.md §4.11). Only meaningful with a CUDA GPU: on CPU this trainer
trains in fp32 (mixed precision needs a GPU), so the options are refused there rather than silently ignored."""
from __future__ import annotations


def full_precision_problems(args) -> list[str]:
    """Option clashes found before torch is imported: both set, or set without the matching mixed_precision
    (sd-scripts asserts the same)."""
    msgs = []
    mp = args.mixed_precision or "no"
    if args.full_fp16 and args.full_bf16:
        msgs.append("full_fp16 and full_bf16 are both set; keep one")
    elif args.full_fp16 and mp != "fp16":
        msgs.append(f"full_fp16 needs mixed_precision fp16 (it is {mp}); set mixed_precision = \"fp16\"")
    elif args.full_bf16 and mp != "bf16":
        msgs.append(f"full_bf16 needs mixed_precision bf16 (it is {mp}); set mixed_precision = \"bf16\"")
    return msgs


def full_dtype(args, cuda: bool):
    """The LoRA weight dtype: torch.float16 / torch.bfloat16 with full_fp16 / full_bf16, else torch.float32.

    Raises ValueError without a CUDA GPU (the message names the option and the fix)."""
    import torch

    if not (args.full_fp16 or args.full_bf16):
        return torch.float32
    name = "full_fp16" if args.full_fp16 else "full_bf16"
    if not cuda:
        raise ValueError(f"{name} needs a CUDA GPU: without one this trainer trains in fp32 (mixed precision is "
                         f"GPU-only), so {name} would do nothing; remove it")
    return torch.float16 if args.full_fp16 else torch.bfloat16


def allow_fp16_unscale(acc) -> None:
    """fp16 LoRA weights have fp16 gradients, which torch's GradScaler refuses to unscale; let it (sd-scripts
    patches the scaler the same way for full_fp16)."""
    scaler = getattr(acc, "scaler", None)
    if scaler is None:
        return
    org = scaler._unscale_grads_

    def unscale(optimizer, inv_scale, found_inf, allow_fp16):
        return org(optimizer, inv_scale, found_inf, True)

    scaler._unscale_grads_ = unscale
