"""`--preflight`: every check a run makes before it trains, without loading a model (docs/architecture.md,
"Preflight"). Parses the command line and `--config_file` exactly as a run, runs the option checks
(`options.validate`: unsupported_options.json, sd-scripts' start-up assertions, network_args, trackers), reads
the checkpoint's header (family), builds the dataset blueprint and its buckets (image headers), builds the
optimizer and LR scheduler on a stand-in parameter with the given arguments and takes one step with them, and
reads the sample prompts. Writes nothing.

Output on stdout, one line per finding and a closing line:
`LORA_TUI_PREFLIGHT {"field": "<option>", "severity": "error"|"warning", "message": "..."}` and
`LORA_TUI_PREFLIGHT_DONE {"ok": bool, "errors": n, "warnings": n, "seconds": s}`. Exit 0 without errors, 1
with errors, 2 when argparse rejects the command line. torch is imported only for the optimizer check.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import sys
import time

PREFIX = "LORA_TUI_PREFLIGHT"
DONE = "LORA_TUI_PREFLIGHT_DONE"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Findings:
    """Findings in order, each {"field", "severity", "message"}; `field_of` names the option of a message."""

    def __init__(self, script: str):
        from .args import catalogue
        self.known = set(catalogue(script))
        self.items: list[dict] = []

    def field_of(self, message: str) -> str:
        """The option a message is about: its first word when that is an option (every trainer message starts
        with the option it names), else the first option named in it, else ""."""
        words = _WORD.findall(message)
        if words and words[0] in self.known:
            return words[0]
        return next((w for w in words if w in self.known), "")

    def add(self, severity: str, message: str, field: str | None = None) -> None:
        message = message.strip()
        for prefix in ("ERROR: ", "WARNING: ", "WARNING "):
            message = message.removeprefix(prefix)
        if not message:
            return
        item = {"field": self.field_of(message) if field is None else field, "severity": severity,
                "message": message}
        if item not in self.items:
            self.items.append(item)

    def add_lines(self, severity: str, text: str, field: str | None = None) -> None:
        for line in text.splitlines():
            self.add(severity, line, field)

    def add_stderr(self, text: str) -> None:
        """Lines a check printed: `ERROR: ...` as errors, `WARNING...` as warnings, others dropped."""
        for line in text.splitlines():
            if line.startswith("ERROR"):
                self.add("error", line)
            elif line.startswith("WARNING"):
                m = re.match(r"WARNING: config_file: unknown key '([^']+)' ignored", line)
                self.add("warning", line, m.group(1) if m else None)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.items if f["severity"] == "error")


def run(script: str, argv: list[str]) -> int:
    """The preflight for `script` ("train_network"/"sdxl_train_network"/"flux_train_network"/"sd3_train_network") with the run's
    `argv` (without `--preflight`); prints the findings and returns the exit code."""
    t0 = time.time()
    from .args import parse_args

    f = Findings(script)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parse_args(script, argv)
    except SystemExit as e:
        if e.code == 2:  # argparse: usage and message go to the real stderr, as a run prints them
            sys.stderr.write(err.getvalue())
            return 2
        f.add_stderr(err.getvalue())
        if not f.errors:
            f.add("error", f"the command line or config_file cannot be read (exit {e.code})", "config_file")
        return _finish(f, t0)
    f.add_stderr(err.getvalue())
    _checks(f, args, script)
    return _finish(f, t0)


def _finish(f: Findings, t0: float) -> int:
    for item in f.items:
        print(f"{PREFIX} {json.dumps(item, ensure_ascii=False)}", flush=True)
    n_err = f.errors
    print(f"{DONE} " + json.dumps({"ok": n_err == 0, "errors": n_err, "warnings": len(f.items) - n_err,
                                   "seconds": round(time.time() - t0, 3)}), flush=True)
    return 1 if n_err else 0


def _guard(f: Findings, what: str, field: str, fn):
    """Run one check; its OptionError/ModelError/DatasetError lines become errors, anything else one error
    naming `what` (the check must never end the preflight)."""
    from .args import OptionError
    from .dataset import DatasetError
    from .models import ModelError

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return fn()
    except (OptionError, ModelError, DatasetError) as e:
        f.add_lines("error", str(e))
    except Exception as e:  # noqa: BLE001 - reported, never raised: the preflight must always answer
        f.add("error", f"{what}: {type(e).__name__}: {e}", field)
    finally:
        f.add_stderr(err.getvalue())
    return None


def _checks(f: Findings, args, script: str) -> None:
    from .options import validate
    from .train import check_model

    _guard(f, "options", "", lambda: validate(args, script))
    if script == "flux_train_network":
        _guard(f, "pretrained_model_name_or_path", "pretrained_model_name_or_path", lambda: _flux_files(args))
    elif script == "sd3_train_network":
        _guard(f, "pretrained_model_name_or_path", "pretrained_model_name_or_path", lambda: _sd3_files(args))
    elif args.pretrained_model_name_or_path:
        _guard(f, "pretrained_model_name_or_path", "pretrained_model_name_or_path", lambda: check_model(args, script))
    _guard(f, "full_bf16", "", lambda: _precision(args))
    if script == "sdxl_train_network":
        _guard(f, "cache_text_encoder_outputs_to_disk", "", lambda: _te_disk_cache(args))
    dataset = _guard(f, "dataset", "train_data_dir", lambda: _dataset(args, f))
    steps = _steps(args, dataset)
    if steps is not None:
        _guard(f, "optimizer_type", "optimizer_type", lambda: _optimizer(args, steps))
    if args.network_module == "lycoris.kohya":
        _guard(f, "network_args", "network_args", lambda: _lycoris(args))
    if args.sample_prompts:
        _guard(f, "sample_prompts", "sample_prompts", lambda: _prompts(args))


def _precision(args) -> None:
    """full_fp16/full_bf16 on a machine without a CUDA GPU: the run would refuse them at its start
    (`precision.full_dtype`); say so now."""
    if not (args.full_fp16 or args.full_bf16):
        return
    import torch

    from .args import OptionError
    from .precision import full_dtype

    try:
        full_dtype(args, torch.cuda.is_available())
    except ValueError as e:
        raise OptionError(str(e)) from None


def _te_disk_cache(args) -> None:
    """The SDXL text-encoder disk cache (`te_cache`) needs frozen text encoders and captions that do not change
    between steps; the run finds out only after the model has loaded, so the same rule is checked here."""
    from .args import OptionError
    from .dataset import captions_are_static

    if not getattr(args, "cache_text_encoder_outputs_to_disk", False):
        return
    te_lrs = args.text_encoder_lr if isinstance(args.text_encoder_lr, (list, tuple)) else [args.text_encoder_lr]
    te_frozen = bool(args.network_train_unet_only) or all(lr == 0 for lr in te_lrs if lr is not None) and any(
        lr is not None for lr in te_lrs)
    if not te_frozen or not captions_are_static(args):
        raise OptionError("cache_text_encoder_outputs_to_disk needs network_train_unet_only and captions that do "
                          "not change between steps (no shuffle_caption, caption/tag dropout, wildcards or "
                          "token warm-up), as sd-scripts requires")


def _lycoris(args) -> None:
    """lycoris.kohya reads `algo` and `preset` only when it builds the network on the model: check them here
    against the installed lycoris-lora (its module table and built-in presets; a preset may be a TOML file)."""
    from pathlib import Path

    from .args import OptionError
    from .lycoris_options import lycoris_available
    from .options import key_values

    if not lycoris_available():
        return  # options.validate reports the missing package
    from lycoris.config import PRESET
    from lycoris.wrapper import network_module_dict

    kv = key_values("network_args", args.network_args)
    algo = (kv.get("algo") or "lora").lower()
    if algo not in network_module_dict:
        raise OptionError(f"network_args: algo={kv.get('algo')} is not a LyCORIS algorithm "
                          f"({', '.join(sorted(network_module_dict))})")
    preset = kv.get("preset", "full")
    if preset not in PRESET and not Path(preset).is_file():
        raise OptionError(f"network_args: preset={preset} is neither a LyCORIS preset ({', '.join(sorted(PRESET))}) "
                          f"nor a preset file")


def _flux_files(args) -> None:
    """Flux.1's four files (transformer, ae, clip_l, t5xxl) as `flux_train.main` checks them: headers only."""
    from .flux_models import FILE_OPTION, check_file
    from .models import ModelError

    problems = []
    for kind in ("transformer", "ae", "clip_l", "t5xxl"):
        if not getattr(args, FILE_OPTION[kind], None) and kind != "transformer":
            continue  # an unset one: flux_problems (options.validate) says so
        try:
            check_file(kind, getattr(args, FILE_OPTION[kind]))
        except ModelError as e:
            problems.append(str(e))
    if problems:
        raise ModelError("\n".join(problems))


def _sd3_files(args) -> None:
    """SD3's checkpoint and clip_l/clip_g/t5xxl/vae files as `sd3_train.main` checks them: headers only."""
    from .models import ModelError
    from .sd3_train import file_problems

    problems = file_problems(args)
    if problems:
        raise ModelError("\n".join(problems))


def _dataset(args, f: Findings):
    from .dataset import build_dataset

    ds = build_dataset(args, lambda msg: f.add("warning", msg))
    if args.cache_latents and args.random_crop:
        from .args import OptionError
        raise OptionError("cache_latents cannot be combined with random_crop (set in dataset_config); turn one off")
    return ds


def _steps(args, dataset) -> int | None:
    """The run's max_train_steps (one process), or 1600/max_train_steps when the dataset could not be built."""
    import math

    G = max(1, int(args.gradient_accumulation_steps or 1))
    if dataset is not None and args.max_train_epochs:
        return max(1, int(args.max_train_epochs) * math.ceil(len(dataset) / G))
    return max(1, int(args.max_train_steps or 1600))


def _optimizer(args, steps: int) -> None:
    """Build the optimizer and scheduler as the run does, on stand-in parameters in the run's groups, and take
    one step (a bad keyword, a missing package, a scheduler that needs an option all fail here)."""
    import torch

    from .args import OptionError
    from .optim import make_optimizer, make_scheduler

    a = copy.deepcopy(args)
    lr = float(a.learning_rate) if a.learning_rate is not None else 1e-4
    te_lrs = a.text_encoder_lr
    if te_lrs is not None and not isinstance(te_lrs, list):
        te_lrs = [te_lrs]
    te_lr = lr if not te_lrs or te_lrs[0] is None else float(te_lrs[0])
    unet_lr = lr if a.unet_lr is None else float(a.unet_lr)
    groups = []
    if not a.network_train_unet_only and te_lr:
        groups.append({"params": [torch.nn.Parameter(torch.zeros(4, 4))], "lr": te_lr, "name": "textencoder"})
    if not a.network_train_text_encoder_only and unet_lr:
        groups.append({"params": [torch.nn.Parameter(torch.zeros(4, 4))], "lr": unet_lr, "name": "unet"})
    if not groups:
        raise OptionError("learning_rate: nothing to train: every learning rate (learning_rate/unet_lr/"
                          "text_encoder_lr) of the trained parts is 0")
    opt, _, relative = make_optimizer(a, groups)
    sched = make_scheduler(a, opt, steps, relative)
    for g in groups:
        for p in g["params"]:
            p.grad = torch.full_like(p, 0.01)
    try:
        opt.step()
        sched.step()
        lrs = sched.get_last_lr() if hasattr(sched, "get_last_lr") else []
        [float(x) for x in lrs]
    except (TypeError, ValueError, RuntimeError) as e:
        raise OptionError(f"optimizer_type {a.optimizer_type or 'AdamW'}: a test step with optimizer_args "
                          f"{' '.join(a.optimizer_args or []) or '(none)'} and lr_scheduler "
                          f"{args.lr_scheduler} failed: {e}") from None


def _prompts(args) -> None:
    from pathlib import Path

    from .args import OptionError
    from .sampling import SAMPLERS, read_prompts

    if not Path(args.sample_prompts).is_file():
        raise OptionError(f"sample_prompts: {args.sample_prompts} does not exist")
    try:
        prompts = read_prompts(args.sample_prompts)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise OptionError(f"sample_prompts: {args.sample_prompts}: {e}") from None
    sampler = (args.sample_sampler or "ddim").lower()
    if sampler not in SAMPLERS:
        raise OptionError(f"sample_sampler {args.sample_sampler!r} is not a sampler ({', '.join(sorted(SAMPLERS))})")
    for p in prompts:
        s = str(p.get("sample_sampler") or "").lower()
        if s and s not in SAMPLERS:
            raise OptionError(f"sample_prompts: sampler {s!r} of prompt {p.get('prompt', '')[:40]!r} is not a "
                              f"sampler ({', '.join(sorted(SAMPLERS))})")
