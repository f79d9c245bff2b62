"""Validation: everything that would stop or silently spoil a run, found before Start.

``validate`` runs kohya_ss' Start checks in their order (lora_gui.py `train_model`; it stops at the first, we
report all of them), then sd-scripts' own start-up assertions (`train_util.verify_training_args`, the optimizer
and scheduler pairs of `train_util.get_optimizer`/`get_scheduler_fix`) and the
checks users need that neither makes (captions, layout, family of the checkpoint, unsupported options, ...).
Every problem names a field and its fix. Pure apart from ``stat``-level file-system reads and the cached
safetensors header; no torch, no textual.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re
import shlex
from typing import TYPE_CHECKING, Any, Callable, Iterable

from lora_tui.config.kohya_json import TOML_INT_MAX
from lora_tui.config.model import TrainingConfig, all_field_meta, family, field_meta, script_name
from lora_tui.config.rates import rates_in_force
from lora_tui.config.sd_scripts import BUNDLED_ONLY_OPTIONS, FORM_OWNED, script_options
from lora_tui.config.shown import clip, shown
from lora_tui.config.field_use import kept_unused_fields
from lora_tui.plan.dataset import DatasetScan, caption_ext, resolve_path, resolved_note
from lora_tui.plan.flux_files import check_flux_inputs
from lora_tui.plan.launch import toml_dict, tomllib
from lora_tui.plan.outputs import (  # noqa: F401 - existing_outputs, free_output_name: re-exported
    existing_outputs,
    existing_outputs_phrase,
    free_output_name,
    output_target,
)
from lora_tui.plan.network import network_module
from lora_tui.plan.model_family import FAMILY_LABELS, ModelFileError, detect_family
from lora_tui.plan.problems import Problem
from lora_tui.plan.rules_argv import argv_problems, argv_uses
from lora_tui.plan.rules_launch import launch_problems
from lora_tui.plan.steps import StepPlan, adjust_min_max, parse_resolution, plan_steps
from lora_tui.plan.trainer_packages import NETWORK_PACKAGES, package_importable, pip_command
from lora_tui.plan.wording import agree, counted

if TYPE_CHECKING:
    from lora_tui.config.app_settings import AppSettings

LYCORIS_PRESETS = ("full", "full-lin", "attn-mlp", "attn-only", "unet-transformer-only", "unet-convblock-only")
# A Hub repo id (owner/name); kohya_ss' validate_model_path uses [\w-] only, which rejects ids with dots.
_REPO_ID = re.compile(r"^[\w-][\w.-]*/[\w-][\w.-]*$")
# A value naming a model file is a path, even when it looks like owner/name ("models/x.safetensors").
_MODEL_FILE_EXT = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".gguf")


def _hub_id(v: str) -> bool:
    """Whether a model path value is taken as a Hugging Face repo id (owner/name, not a model file name)."""
    return bool(_REPO_ID.match(v)) and not v.startswith((".", "/")) and not v.lower().endswith(_MODEL_FILE_EXT)
_SCHEDULE_FREE = ("schedulefree",)
_PATH_FIELDS = ("pretrained_model_name_or_path", "train_data_dir", "reg_data_dir", "output_dir", "dataset_config",
                "vae", "network_weights", "logging_dir", "resume", "log_tracker_config")


def _get(cfg: TrainingConfig, name: str, default: Any = None) -> Any:
    """The attribute ``name`` of a config or settings object, ``default`` when it has none."""
    return getattr(cfg, name, default)


def _text(cfg: TrainingConfig, name: str) -> str:
    """A text field stripped of surrounding blanks; None → ""."""
    v = getattr(cfg, name, "")
    return "" if v is None else str(v).strip()


def _number(cfg: TrainingConfig, name: str) -> float:
    """A number field as float; None/""/garbage → 0 (kohya counts None as 0 for the LR checks)."""
    v = getattr(cfg, name, None)
    try:
        return float(v) if v not in (None, "") and not isinstance(v, bool) else 0.0
    except (TypeError, ValueError, OverflowError):
        return 0.0


class _Findings:
    """The problems the rules find, in the order found (``err``/``warn`` append one naming its field)."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def err(self, field: str, msg: str) -> None:
        self.items.append(Problem(field, "error", msg))

    def warn(self, field: str, msg: str) -> None:
        self.items.append(Problem(field, "warning", msg))

    def has_error(self, field: str) -> bool:
        """Whether an earlier rule already gave ``field`` an error (a warning on that value would be noise)."""
        return any(p.field == field and p.severity == "error" for p in self.items)


# --- argument strings --------------------------------------------------------------------------------------------


def _check_kv_args(out: _Findings, cfg: TrainingConfig, name: str) -> None:
    """``optimizer_args`` / ``lr_scheduler_args``: tokens ``key=value``, value a Python literal (sd-scripts does
    ``key, value = arg.split("=")`` then ``ast.literal_eval(value)``)."""
    text = _text(cfg, name)
    if not text:
        return
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        out.err(name, f"{name} does not parse ({exc}): close the quote, or escape it")
        return
    for tok in tokens:
        if name == "optimizer_args" and _training_flag(out, cfg, tok):
            continue
        if tok.count("=") != 1 or not tok.split("=")[0] or not tok.split("=")[1]:
            out.err(name, f"{name}: '{tok}' is not key=value (one '=', no spaces around it); e.g. "
                          f"weight_decay=0.01 betas=0.9,0.99")
            continue
        value = tok.split("=", 1)[1]
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out.err(name, f"{name}: the value of '{tok}' is not a Python literal, which the trainer requires; a "
                          f"text value needs inner quotes, e.g. {tok.split('=')[0]}='\"{value}\"'")


#: Where a training option typed into optimizer_args belongs when no field carries its TOML key (written by the
#: launch from another field).
_OPTION_HOME = {"network_train_unet_only": "set text_encoder_lr to 0 (that trains the U-Net only)",
                "network_train_text_encoder_only": "set unet_lr to 0 (that trains the text encoder only)",
                "resolution": "set it in the max_resolution field",
                "max_train_epochs": "set it in the epoch or max_train_epochs field",
                "network_module": "pick it with LoRA_type", "network_args": "set it in the network fields"}


def _training_flag(out: _Findings, cfg: TrainingConfig, tok: str) -> bool:
    """A token of optimizer_args that is a training option of the script (``--network_train_unet_only``,
    ``network_train_unet_only=True``), not an optimizer keyword: sd-scripts passes every ``key=value`` to the
    optimizer's constructor, which stops on it (``unexpected keyword argument``) after the model has loaded, and
    a ``--flag`` there does not split as ``key=value`` at all. Reports where it goes; True when reported."""
    key = tok[2:] if tok.startswith("--") else tok
    key = key.split("=", 1)[0].replace("-", "_")
    try:
        options = script_options(script_name(cfg))
    except Exception:  # noqa: BLE001 - an unknown script is reported elsewhere
        return False
    if not key or key not in options:
        return False
    field = next((m.name for m in all_field_meta() if m.toml_key == key), "")
    where = _OPTION_HOME.get(key) or (f"set it in the {field} field" if field
                                      else f"give it as --{key} in additional_parameters")
    out.err("optimizer_args", f"optimizer_args: '{tok}' is a training option (--{key}), not an argument of the "
                              f"optimizer, which would stop on it: {where} and remove it from optimizer_args")
    return True


def _check_token_args(out: _Findings, cfg: TrainingConfig, name: str, dashes: bool) -> list[str]:
    text = _text(cfg, name)
    if not text:
        return []
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        out.err(name, f"{name} does not parse ({exc}): close the quote, or escape it")
        return []
    if dashes and tokens and not tokens[0].startswith("--"):
        out.err(name, f"{name} must start with an option such as --{tokens[0]}, not '{tokens[0]}'")
    return tokens


_OPTIMIZER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _input_rules(out: _Findings, cfg: TrainingConfig) -> None:
    """Values a form accepts as text that the trainer cannot use, and a learning rate that does not apply."""
    name = _text(cfg, "output_name")
    if name and (any(c in name for c in "/\\\0") or name in (".", "..")):
        out.err("output_name", f"output_name '{name}' is a path: it must be a file name without '/' or '\\' "
                               f"(the folder goes in output_dir)")
    opt = _text(cfg, "optimizer")
    known = {str(c).lower() for c in (field_meta("optimizer").choices or ())}
    if opt and opt.lower() not in known and not _OPTIMIZER_PATH.match(opt):
        out.err("optimizer", f"optimizer '{opt}' is not an optimizer: pick one from the list, or give a class "
                             f"path such as bitsandbytes.optim.AdEMAMix8bit")
    # A kohya_ss Minimal-form bug, a Minimal "Learning rate" that unet_lr silently overrides, cannot happen
    # here: the Minimal row edits the field the U-Net's rate comes from (config.rates.minimal_lr_field) and the
    # Advanced form says under each rate which one is in force. What is left to catch is a rate no run survives.
    _lr_sanity(out, cfg)
    if family(cfg) == "sdxl" and (_get(cfg, "clip_skip") or 0) > 1 and not out.has_error("clip_skip"):
        out.warn("clip_skip", f"clip_skip {_get(cfg, 'clip_skip')} does nothing on SDXL: the trainer ignores it (as "
                              f"sd-scripts does, with a warning) and the SDXL text encoders use their fixed layers; "
                              f"set it to 1")


# Optimizers that take learning_rate as a multiplier of a step size they find themselves (D-Adaptation, Prodigy) or,
# for Adafactor with relative_step, replace it: 1.0 is their usual rate.
_ADAPTIVE = ("dadapt", "prodigy")
_LR_LIMIT = 0.1     # far above any LoRA rate for Adam-style optimizers (1e-4 to 1e-3 is usual)
_LR_LIMIT_ADAPTIVE = 10.0


def _lr_sanity(out: _Findings, cfg: TrainingConfig) -> None:
    """A learning rate in force that no run survives (a text encoder LR of 16 typed for 1e-6, say): a warning on
    the field, naming the usual range for the optimizer."""
    opt = _text(cfg, "optimizer") or "AdamW"
    low = opt.lower()
    relative = low == "adafactor" and _optimizer_kwargs(cfg).get("relative_step", "True") not in ("False", "0")
    adaptive = low.startswith(_ADAPTIVE) or relative
    limit = _LR_LIMIT_ADAPTIVE if adaptive else _LR_LIMIT
    try:
        rates = rates_in_force(cfg)
    except (TypeError, ValueError, AttributeError):
        return  # a value the range rules report already
    in_force = {p.source for p in (rates.unet, rates.text_encoder) if p.trained}
    for name in ("learning_rate", "unet_lr", "text_encoder_lr"):
        v = _get(cfg, name)
        if name not in in_force or isinstance(v, bool) or not isinstance(v, (int, float)) or v <= limit \
                or out.has_error(name):
            continue
        if adaptive:
            out.warn(name, f"{name} {v:g} is far too high for {opt}, which takes the rate as a multiplier of the step "
                           f"size it finds itself (1.0 is usual): type 1.0")
        else:
            out.warn(name, f"{name} {v:g} is far too high for {opt}: a LoRA trains at about 1e-4 to 1e-3 and at "
                           f"{v:g} the weights blow up in the first steps; type a rate such as 0.0001")


def _bucket_rules(out: _Findings, cfg: TrainingConfig, plan: StepPlan | None) -> None:
    """With ``bucket_no_upscale`` a side is floored to ``bucket_reso_steps`` (sd-scripts' `BucketManager.select_bucket`): a wide image at a
    small resolution can get a side of 0, which the trainer cannot resize to."""
    for ds in (plan.datasets if plan else ()):
        flat = [b for b in ds.buckets if 0 in b]
        if flat:
            out.err("bucket_reso_steps", f"with bucket_no_upscale, resolution {cfg.max_resolution} and "
                                         f"bucket_reso_steps {cfg.bucket_reso_steps}, some images get a bucket "
                                         f"side of 0 ({flat[0][0]}x{flat[0][1]}): lower bucket_reso_steps, raise "
                                         f"the resolution, or turn bucket_no_upscale off")
            return


# --- the rules, in order -----------------------------------------------------------------------------------------


def _kohya_order(out: _Findings, cfg: TrainingConfig, scan: DatasetScan | None) -> None:
    """kohya_ss' checks before a run (lora_gui.py `train_model`), in its order, those that apply to a config
    (whether a run is going belongs to the run layer; the accelerate lookup and the file writes to the launch)."""
    # argument strings (kohya: a regex; we: shell rules plus sd-scripts' own parsing of each token).
    _check_kv_args(out, cfg, "lr_scheduler_args")
    _check_kv_args(out, cfg, "optimizer_args")
    lora_type = _text(cfg, "LoRA_type")
    # Flux.1 LoRA type
    if _get(cfg, "flux1_checkbox") and lora_type not in ("Flux1", "Flux1 OFT") and "LyCORIS" not in lora_type:
        out.err("LoRA_type", f"LoRA type '{lora_type}' cannot train Flux.1: choose 'Flux1', 'Flux1 OFT' or a "
                             f"LyCORIS type")
    if lora_type in ("Flux1", "Flux1 OFT") and not _get(cfg, "flux1_checkbox"):
        out.err("LoRA_type", f"LoRA type '{lora_type}' needs a Flux.1 model: tick Flux.1 or pick 'Standard'")
    # native LoHa/LoKr need SDXL
    if lora_type in ("Kohya LoHa", "Kohya LoKr"):
        if not _get(cfg, "sdxl") or _get(cfg, "flux1_checkbox") or _get(cfg, "sd3_checkbox"):
            out.err("LoRA_type", f"'{lora_type}' works with SDXL models only: tick SDXL or use "
                                 f"'LyCORIS/{lora_type.split()[-1]}'")
    # dataset_config must be a file
    dc = _text(cfg, "dataset_config")
    if dc and not os.path.isfile(resolve_path(dc)):
        out.err("dataset_config", f"dataset config '{dc}' does not exist{resolved_note(dc)}: "
                                  f"pick the .toml file or clear the field")
    # log_tracker_config
    ltc = _text(cfg, "log_tracker_config")
    if ltc and not os.path.isfile(resolve_path(ltc)):
        out.err("log_tracker_config", f"log tracker config '{ltc}' does not exist: pick the file or clear it")
    # logging_dir writable
    ld = _text(cfg, "logging_dir")
    if ld:
        p = resolve_path(ld)
        if os.path.exists(p) and not os.path.isdir(p):
            out.err("logging_dir", f"logging folder '{p}' is a file: pick a folder")
        elif os.path.isdir(p) and not os.access(p, os.W_OK):
            out.err("logging_dir", f"logging folder '{p}' is not writable: pick another folder")
    # LyCORIS preset (only when a LyCORIS type uses it; kohya_ss checks it for every type)
    preset = _text(cfg, "LyCORIS_preset")
    if "LyCORIS" in lora_type and preset and preset not in LYCORIS_PRESETS:
        p = resolve_path(preset)
        if not os.path.isfile(p):
            out.err("LyCORIS_preset", f"LyCORIS preset '{preset}' is neither one of {', '.join(LYCORIS_PRESETS)} "
                                      f"nor an existing .toml file")
        else:
            try:
                with open(p, "rb") as fh:
                    tomllib.load(fh)
            except (OSError, ValueError, RecursionError) as exc:  # TOMLDecodeError, UnicodeDecodeError are ValueErrors
                out.err("LyCORIS_preset", f"LyCORIS preset file '{p}' is not valid TOML: "
                                          f"{clip(str(exc) or type(exc).__name__, 200)}")
    # network_weights
    nw = _text(cfg, "network_weights")
    if nw and not os.path.isfile(resolve_path(nw)):
        out.err("network_weights", f"initial LoRA weights '{nw}' do not exist: pick the .safetensors file or "
                                   f"clear the field")
    elif nw:
        _check_network_weights(out, nw)
    # output_dir
    od = _text(cfg, "output_dir")
    if not od:
        out.err("output_dir", "output folder is required: pick where the LoRA files go")
    else:
        p = resolve_path(od)
        if os.path.exists(p) and not os.path.isdir(p):
            out.err("output_dir", f"output folder '{p}' is a file: pick a folder")
        elif os.path.isdir(p) and not os.access(p, os.W_OK):
            out.err("output_dir", f"output folder '{p}' is not writable: pick another folder")
        elif not os.path.exists(p):
            anc = p
            while anc and not os.path.exists(anc):
                nxt = os.path.dirname(anc)
                if nxt == anc:
                    break
                anc = nxt
            if os.path.isdir(anc) and not os.access(anc, os.W_OK):
                out.err("output_dir", f"output folder '{p}' cannot be created ('{anc}' is not writable)")
    # base model (+ ours: its family); Flux.1's other three files
    _check_model(out, cfg)
    if family(cfg) == "flux1":
        check_flux_inputs(out, cfg, resolve_path, resolved_note)
    elif family(cfg) == "sd3":
        from lora_tui.plan.sd3_files import check_sd3_inputs
        check_sd3_inputs(out, cfg, resolve_path, resolved_note)
    # data folders
    for name, label in (("reg_data_dir", "regularisation folder"), ("resume", "resume state folder"),
                        ("train_data_dir", "image folder")):
        v = _text(cfg, name)
        if v:
            p = resolve_path(v)
            if not os.path.isdir(p):
                what = "is a file, not a folder" if os.path.isfile(p) else "does not exist"
                fix = f"pick its folder '{os.path.dirname(p)}'" if os.path.isfile(p) else "fix the path"
                out.err(name, f"{label} '{v}' {what}{resolved_note(v)}: {fix}")
    # VAE
    vae = _text(cfg, "vae")
    if vae and not _hub_id(vae) and not os.path.exists(resolve_path(vae)):
        out.err("vae", f"VAE '{vae}' does not exist{resolved_note(vae)}: pick the file or clear it")
    # folder layout (folder mode)
    if scan is not None:
        out.items.extend(scan.problems)
    # bucket steps
    steps = _get(cfg, "bucket_reso_steps")
    if steps is not None and _number(cfg, "bucket_reso_steps") < 1:
        out.err("bucket_reso_steps", "bucket resolution steps must be at least 1 (64 is usual)")
    # noise offset
    no = _get(cfg, "noise_offset")
    if no not in (None, "") and not 0 <= _number(cfg, "noise_offset") <= 1:
        out.err("noise_offset", f"noise offset {no} must be between 0 and 1 (0.05-0.1 is usual)")
    ste = _get(cfg, "stop_text_encoder_training")
    if ste not in (None, "") and _number(cfg, "stop_text_encoder_training") != 0:
        out.warn("stop_text_encoder_training", "stop text encoder training is not supported by LoRA training and "
                                               "is ignored: set it to 0")
    # existing output
    _check_existing_output(out, cfg)
    # no data at all
    if not dc and not _text(cfg, "train_data_dir"):
        out.err("train_data_dir", "train_data_dir (the image folder) is not set: pick the folder that holds "
                                  "your <repeats>_<name> folders, or set dataset_config")
    # T5-XXL LR
    if family(cfg) == "flux1" and _number(cfg, "t5xxl_lr") > 0 and _get(cfg, "text_encoder_lr") is not None \
            and _number(cfg, "text_encoder_lr") == 0:
        out.err("t5xxl_lr", "a T5-XXL learning rate needs a text encoder learning rate above 0: set "
                            "text_encoder_lr, or set t5xxl_lr to 0")
    # all learning rates zero
    if _number(cfg, "learning_rate") == 0 and _number(cfg, "text_encoder_lr") == 0 and _number(cfg, "unet_lr") == 0:
        out.err("learning_rate", "every learning rate is 0 or empty, so nothing would train: set learning_rate "
                                 "(1e-4 is usual)")


# A .safetensors file that is no base model (model_family.ModelInfo.kind): sd-scripts would fail only after
# loading it (its checkpoint loader needs the UNet and text encoder keys), so the plan names it first.
_NOT_A_BASE_MODEL = {
    "lora": "is a LoRA file, not a base model",
    "vae": "holds a VAE only, not a base model",
    "embedding": "holds a textual-inversion embedding, not a base model",
    "empty": "holds no tensors, not a base model",
    "unknown": "holds no Stable Diffusion, Flux.1 or SD3 model keys, not a base model",
}
_WHERE_IT_GOES = {
    "lora": "; a LoRA to continue from goes in network_weights",
    "vae": "; a separate VAE goes in 'vae'",
}


#: What sd-scripts loads as network_weights: safetensors (safetensors.load_file), else torch.load of a pickle.
_WEIGHT_PICKLES = (".ckpt", ".pt", ".pth", ".bin")


def _check_network_weights(out: _Findings, value: str) -> None:
    """network_weights names a file: it must be LoRA weights (sd-scripts loads a .safetensors file with
    safetensors, anything else with torch.load), not a text file, a base model or a VAE."""
    name, p = "network_weights", resolve_path(value)
    if not p.lower().endswith(".safetensors"):
        if not p.lower().endswith(_WEIGHT_PICKLES):
            out.err(name, f"network_weights {shown(value)} is not a weights file (the trainer loads a .safetensors "
                          f"LoRA, or a .ckpt/.pt pickle): pick the LoRA .safetensors file to start from, or clear it")
        return
    try:
        info = detect_family(p)
    except ModelFileError as exc:
        out.err(name, f"network_weights {shown(value)} is not a safetensors file ({exc}): pick the LoRA "
                      f".safetensors file to start from, or clear it")
        return
    except (OSError, ValueError) as exc:
        out.err(name, f"cannot read network_weights {shown(value)}: {clip(str(exc), 200)}")
        return
    if info.kind not in ("lora", "unknown"):
        what = {"empty": "holds no tensors", "embedding": "is a textual-inversion embedding",
                "vae": "is a VAE"}.get(info.kind, "is a base model")
        out.err(name, f"network_weights {shown(value)} {what} ({info.detail}), not LoRA weights: pick the LoRA "
                      f"to start from (the base model goes in pretrained_model_name_or_path)")


def _check_sample_prompts(out: _Findings, cfg: TrainingConfig) -> None:
    """sample_prompts holds the prompts' TEXT (kohya_ss convention; Start writes it to
    <output_dir>/sample/prompt.txt): a file's path there would be sampled as a prompt, and binary data is no
    prompt."""
    text = str(_get(cfg, "sample_prompts") or "")
    if not text.strip():
        return
    bad = next((c for c in text if ord(c) < 32 and c not in "\n\r\t"), None)
    if bad is not None:
        out.err("sample_prompts", f"sample_prompts holds control characters ({bad!r}): it is the prompts' text, one "
                                  f"prompt per line; paste text, not a binary file")
        return
    line = text.strip()
    if "\n" not in line and (line.startswith(("/", "~", "./")) or line.endswith((".txt", ".toml", ".json"))):
        try:
            is_file = os.path.isfile(resolve_path(line))
        except (OSError, ValueError):
            is_file = False
        if is_file:
            out.warn("sample_prompts", f"sample_prompts is the path of a file ({shown(line)}), but it holds the "
                                       f"prompts' text (Start writes it to <output_dir>/sample/prompt.txt), so "
                                       f"that path would be sampled as a prompt: paste the file's prompts instead")


def _check_model(out: _Findings, cfg: TrainingConfig) -> None:
    name = "pretrained_model_name_or_path"
    v = _text(cfg, name)
    if not v:
        out.err(name, "no base model: pick a checkpoint (.safetensors) or a Diffusers folder")
        return
    p = resolve_path(v)
    if not os.path.exists(p):
        if _hub_id(v):
            out.warn(name, f"'{v}' is not a local path, so it is taken as a Hugging Face repo id and must be "
                           f"downloaded (needs network); pick a local checkpoint to train offline")
        else:
            out.err(name, f"base model '{v}' does not exist{resolved_note(v)}: pick the checkpoint file or "
                          f"Diffusers folder")
        return
    try:
        info = detect_family(p)
    except ModelFileError as exc:
        out.err(name, f"base model '{v}' is not a readable safetensors file: {exc}; re-download it")
        return
    except (OSError, ValueError) as exc:
        out.err(name, f"cannot read base model '{v}': {exc}")
        return
    if info.kind in _NOT_A_BASE_MODEL:
        out.err(name, f"'{v}' {_NOT_A_BASE_MODEL[info.kind]} ({info.detail}): pick the checkpoint you "
                      f"train on (the model's .safetensors file or Diffusers folder)"
                      f"{_WHERE_IT_GOES.get(info.kind, '')}")
        return
    chosen = family(cfg)
    if info.family is not None and info.family != chosen:
        fix = {"sdxl": "tick SDXL", "flux1": "tick Flux.1", "sd3": "tick SD3", "sd2": "tick v2 (SD2.x)",
               "sd1": "untick SDXL/v2/Flux.1/SD3"}[info.family]
        out.err(name, f"the checkpoint is {FAMILY_LABELS[info.family]} ({info.detail}) but the settings say "
                      f"{FAMILY_LABELS[chosen]}: {fix}, or pick a {FAMILY_LABELS[chosen]} checkpoint")


def _check_existing_output(out: _Findings, cfg: TrainingConfig) -> None:
    found = existing_outputs(cfg)
    if not found:
        return
    _, name, ext = output_target(cfg)
    final = os.path.basename(found[0]) == f"{name}.{ext}"
    steps = len(found) - final
    more = f" (and {counted(steps, 'epoch/step file')} '{name}-*.{ext}')" if steps and final else ""
    out.warn("output_name", f"'{found[0]}'{more} already exists and training would overwrite it: change output_name "
                            f"to keep it, or confirm the overwrite at Start (lora-tui train: --overwrite)")


# --- sd-scripts start-up assertions (train_util.verify_training_args) and scheduler/optimizer pairs -------------------------------


def _trainer_rules(out: _Findings, cfg: TrainingConfig, plan: StepPlan | None) -> None:
    fam = family(cfg)
    mp = _text(cfg, "mixed_precision") or "no"
    if fam == "sdxl" and _get(cfg, "v2"):
        out.err("v2", "v2 cannot be used with SDXL (the trainer refuses it): untick v2")
    if _get(cfg, "cache_latents") or _get(cfg, "cache_latents_to_disk"):
        for n in ("color_aug", "random_crop"):
            if _get(cfg, n):
                out.err(n, f"{n} cannot be used with cached latents (the trainer refuses it): untick {n} or "
                           f"untick cache_latents")
    if _get(cfg, "full_fp16") and mp != "fp16":
        out.err("full_fp16", "full_fp16 needs mixed_precision fp16: set it, or untick full_fp16")
    if _get(cfg, "full_bf16") and mp != "bf16":
        out.err("full_bf16", "full_bf16 needs mixed_precision bf16: set it, or untick full_bf16")
    if _get(cfg, "fp8_base") and mp == "no":
        out.err("fp8_base", "fp8_base needs mixed precision (fp16 or bf16)")
    if _number(cfg, "adaptive_noise_scale") and not _number(cfg, "noise_offset"):
        out.err("adaptive_noise_scale", "adaptive_noise_scale needs noise_offset: set noise_offset or clear it")
    if _get(cfg, "scale_v_pred_loss_like_noise_pred") and not _get(cfg, "v_parameterization"):
        out.err("scale_v_pred_loss_like_noise_pred", "scale_v_pred_loss_like_noise_pred needs v_parameterization")
    if _number(cfg, "v_pred_like_loss") and _get(cfg, "v_parameterization"):
        out.err("v_pred_like_loss", "v_pred_like_loss cannot be used with v_parameterization: clear it")
    if fam == "sdxl" and _get(cfg, "sdxl_cache_text_encoder_outputs"):
        if _get(cfg, "text_encoder_lr") is None or _number(cfg, "text_encoder_lr") != 0:
            out.err("sdxl_cache_text_encoder_outputs", "caching text encoder outputs trains the U-Net only: set "
                                                       "text_encoder_lr to 0, or untick the cache")
        for n in ("shuffle_caption", "caption_dropout_rate", "caption_tag_dropout_rate", "token_warmup_step"):
            if _number(cfg, n) if n != "shuffle_caption" else _get(cfg, n):
                out.err(n, f"{n} changes captions per step, which cached text encoder outputs cannot follow: clear "
                           f"{n} or untick sdxl_cache_text_encoder_outputs")
    # Resolution against the bucket limits (sd-scripts asserts).
    reso_raw = _get(cfg, "max_resolution")
    reso = parse_resolution(reso_raw)
    if reso_raw not in (None, "") and reso is None:
        out.err("max_resolution", f"resolution '{reso_raw}' is not 'W,H' (e.g. 1024,1024)")
    step = int(_number(cfg, "bucket_reso_steps") or 64)
    if step >= 1 and _get(cfg, "enable_bucket"):
        div = 32 if fam == "sdxl" else 64 if fam in ("sd1", "sd2") else 16
        if step % div:
            out.err("bucket_reso_steps", f"bucket_reso_steps {step} must be a multiple of {div} for "
                                         f"{FAMILY_LABELS[fam]} (the trainer refuses it): use 64")
    if reso and _get(cfg, "enable_bucket") and not _get(cfg, "bucket_no_upscale") and step >= 1:
        lo, hi = adjust_min_max(int(_number(cfg, "min_bucket_reso") or 256),
                                int(_number(cfg, "max_bucket_reso") or 1024), step)
        if lo > hi:
            out.err("min_bucket_reso", f"min_bucket_reso {lo} is above max_bucket_reso {hi}")
        elif min(reso) < lo:
            out.err("min_bucket_reso", f"min_bucket_reso {lo} is above the resolution's short side {min(reso)}: "
                                       f"lower it to {min(reso)} or less")
        elif max(reso) > hi:
            out.err("max_bucket_reso", f"max_bucket_reso {hi} is below the resolution's long side {max(reso)}: "
                                       f"raise it to at least {max(reso)}")
    _scheduler_rules(out, cfg, plan)


def _optimizer_kwargs(cfg: TrainingConfig) -> dict[str, str]:
    try:
        tokens = shlex.split(_text(cfg, "optimizer_args"))
    except ValueError:
        return {}
    return {t.split("=", 1)[0].lower(): t.split("=", 1)[1] for t in tokens if "=" in t}


def _warmup_rules(out: _Findings, cfg: TrainingConfig, plan: StepPlan | None, warm_field: str) -> None:
    """A warm-up the scheduler uses: which of the two settings wins when both are set (kohya_ss writes
    lr_warmup_steps and logs "lr_warmup_steps will be used"), and a warm-up as long as the whole run (the rate
    would never reach learning_rate)."""
    steps, pct = _number(cfg, "lr_warmup_steps"), _number(cfg, "lr_warmup")
    if steps > 0 and pct > 0 and not out.has_error("lr_warmup"):
        out.warn("lr_warmup", f"lr_warmup {pct:g} % is not used: lr_warmup_steps {steps:g} is set too and wins (as in "
                              f"kohya_ss); set lr_warmup to 0, or lr_warmup_steps to 0 to warm up by percentage")
    if plan is None or plan.max_train_steps <= 0 or plan.lr_warmup_steps < plan.max_train_steps \
            or out.has_error(warm_field):
        return
    out.warn(warm_field, f"the warm-up ({counted(plan.lr_warmup_steps, 'step')}) is as long as the whole run "
                         f"({counted(plan.max_train_steps, 'step')}): the rate never reaches learning_rate; lower "
                         f"{warm_field}")


def _scheduler_rules(out: _Findings, cfg: TrainingConfig, plan: StepPlan | None) -> None:
    sched = _text(cfg, "lr_scheduler") or "constant"
    opt = _text(cfg, "optimizer") or "AdamW"
    warm = _number(cfg, "lr_warmup_steps") > 0 or _number(cfg, "lr_warmup") > 0
    warm_field = "lr_warmup_steps" if _number(cfg, "lr_warmup_steps") > 0 else "lr_warmup"
    kwargs = _optimizer_kwargs(cfg)
    adafactor_relative = opt.lower() == "adafactor" and kwargs.get("relative_step", "True") not in ("False", "0")
    if sched.startswith("adafactor") and opt.lower() != "adafactor":
        out.err("lr_scheduler", f"the adafactor scheduler works only with the Adafactor optimizer, not {opt}: pick "
                                f"another scheduler (cosine, constant_with_warmup, ...)")
    if warm:
        if _text(cfg, "lr_scheduler_type"):
            out.err(warm_field, f"a custom scheduler ({_text(cfg, 'lr_scheduler_type')}) takes no warm-up in the "
                                f"trainer: set {warm_field} to 0")
        elif adafactor_relative:
            out.err(warm_field, "Adafactor with relative_step (its default) replaces the scheduler by its own, "
                                f"which takes no warm-up: set {warm_field} to 0, or add relative_step=False "
                                "scale_parameter=False warmup_init=False to optimizer_args")
        elif sched.startswith("adafactor"):
            out.err(warm_field, f"the adafactor scheduler takes no warm-up: set {warm_field} to 0")
        elif sched == "constant":
            out.warn(warm_field, f"the constant scheduler takes no warm-up, so {warm_field} "
                                 f"{_get(cfg, warm_field)} is not used: pick constant_with_warmup to warm up, or set "
                                 f"it to 0")
        else:
            _warmup_rules(out, cfg, plan, warm_field)
    if sched == "piecewise_constant" and "step_rules" not in _text(cfg, "lr_scheduler_args"):
        out.err("lr_scheduler_args", "piecewise_constant needs step_rules in lr_scheduler_args, e.g. "
                                     "step_rules='\"1:10,0.1:20,0.01\"' (inner quotes make it a text value)")
    low = opt.lower()
    if any(k in low for k in _SCHEDULE_FREE) and sched not in ("constant", "constant_with_warmup"):
        out.warn("lr_scheduler", f"schedule-free optimizer {opt} ignores lr_scheduler '{sched}': pick constant")
    if (low.startswith("dadapt") or low.startswith("prodigy")) and 0 < _number(cfg, "learning_rate") < 0.1:
        out.warn("learning_rate", f"{opt} expects learning_rate near 1.0 (it finds the step size itself); "
                                  f"{_get(cfg, 'learning_rate')} makes it train very slowly")


# --- data: captions, plan --------------------------------------------------------------------------------------------


def _data_rules(out: _Findings, cfg: TrainingConfig, scan: DatasetScan | None, plan: StepPlan | None) -> None:
    if scan is None:
        return
    cfg_ext = caption_ext(_get(cfg, "caption_extension"))
    field_for_data = "dataset_config" if scan.mode == "dataset_config" else "train_data_dir"
    for sub in scan.subsets:
        if not sub.images:
            continue
        ext = caption_ext(sub.toml["caption_extension"]) if sub.toml.get("caption_extension") else cfg_ext
        where = f"'{sub.name}'" if scan.mode == "folders" else f"subset '{sub.image_dir}'"
        field = "caption_extension" if scan.mode == "folders" or not sub.toml.get("caption_extension") \
            else "dataset_config"
        data_field = ("reg_data_dir" if sub.is_reg else "train_data_dir") if scan.mode == "folders" \
            else "dataset_config"
        n = len(sub.images)
        have, missing, empty = sub.listing.captions(ext)
        if empty:
            out.err(data_field, f"{counted(len(empty), 'caption file')} in {where} {agree(len(empty), 'is', 'are')} "
                                f"empty ({', '.join(empty[:5])}): the "
                                f"trainer stops on an empty caption; write a caption or delete the file")
        if have == n or sub.metadata_file:
            continue
        others = {e: c for e, c in sub.listing.sidecar_counts().items() if e != ext and c}
        fallback = f"the class token '{sub.class_tokens}'" if sub.class_tokens else "an empty caption"
        if others:
            best, with_best = max(others.items(), key=lambda kv: kv[1])
            out.warn(field, f"{have} of {counted(n, 'image')} in {where} "
                            f"{agree(have, 'has', 'have')} {ext} captions, {with_best} "
                            f"{agree(with_best, 'has', 'have')} {best}: set "
                            f"caption_extension to {best} (images without a caption are trained with {fallback})")
        elif not sub.is_reg:
            out.warn(data_field, f"{n - have} of {counted(n, 'image')} in {where} "
                                 f"{agree(n - have, 'has', 'have')} no {ext} caption ({', '.join(missing)}); "
                                 f"{agree(n - have, 'it is', 'they are')} trained with {fallback}")
    if plan is None:
        return
    if scan.mode != "none" and plan.repeats_images == 0:
        if not any(p.severity == "error" and p.field in ("train_data_dir", "dataset_config") for p in out.items):
            out.err(field_for_data, "no training images found: sd-scripts would exit without training; check the "
                                    "folder layout (<train_data_dir>/10_name/<image>.png)")
    if plan.reg_images > plan.repeats_images > 0:
        out.warn("reg_data_dir", f"{plan.reg_images} regularisation samples but {plan.repeats_images} training "
                                 f"samples: only {plan.reg_samples} reg samples are used per epoch (the trainer "
                                 f"balances them)")
    if scan.mode == "dataset_config":
        for n in ("train_data_dir", "reg_data_dir"):
            if _text(cfg, n):
                out.warn(n, f"{n} is ignored because dataset_config is set (the trainer uses the TOML): clear "
                            f"{n} or dataset_config")
    if plan.source == "trainer_default" and plan.repeats_images and not out.has_error("epoch"):
        out.warn("epoch", f"neither epoch, max_train_epochs nor max_train_steps is set, so the trainer runs its "
                          f"default {plan.max_train_steps} steps (≈ {counted(plan.epochs, 'epoch')}): set epoch")
    epoch = _get(cfg, "epoch")
    if isinstance(epoch, int) and epoch > 1:
        for note in plan.notes:
            if "is not used" in note:
                out.warn("max_train_steps", note)


# --- ranges ------------------------------------------------------------------------------------------------------

# (field, minimum, maximum or None, message hint); None values are "unset" and pass.
_RANGES: tuple[tuple[str, float, float | None, str], ...] = (
    ("train_batch_size", 1, None, "1-4 is usual"),
    ("gradient_accumulation_steps", 1, None, "1 = none"),
    ("epoch", 0, None, "10 is usual"),
    ("max_train_epochs", 0, None, "empty = use epoch"),
    ("max_train_steps", 0, None, "empty = use epoch"),
    ("lr_warmup", 0, 100, "a percentage of the steps"),
    ("lr_warmup_steps", 0, None, "0 = use lr_warmup"),
    ("network_dim", 1, None, "8-64 is usual"),
    ("network_alpha", 0, None, "often dim or dim/2"),
    ("learning_rate", 0, None, "1e-4 is usual"),
    ("unet_lr", 0, None, "empty = learning_rate"),
    ("text_encoder_lr", 0, None, "empty = learning_rate"),
    ("num_processes", 1, None, "one per GPU"),
    ("min_bucket_reso", 64, None, "256 is usual"),
    ("max_bucket_reso", 64, None, "1024 or 2048"),
    ("save_every_n_epochs", 0, None, "0 = only at the end"),
    ("caption_dropout_rate", 0, 1, "a probability"),
    ("caption_tag_dropout_rate", 0, 1, "a probability"),
    ("prior_loss_weight", 0, None, "1.0 is usual"),
    ("max_grad_norm", 0, None, "0 = no clipping"),
    ("clip_skip", 0, 12, "1 (SD1) or 2 (anime models)"),
    ("keep_tokens", 0, None, "0 = none"),
    ("max_data_loader_n_workers", 0, None, "0 = in the main process"),
    ("min_snr_gamma", 0, None, "5 is usual"),
    ("network_dropout", 0, 1, "a probability"),
)


def _range_rules(out: _Findings, cfg: TrainingConfig) -> None:
    for name, lo, hi, hint in _RANGES:
        v = _get(cfg, name)
        if v is None or v == "" or isinstance(v, bool):
            continue
        try:
            x = float(v)
        except OverflowError:
            x = math.inf if v > 0 else -math.inf
        except (TypeError, ValueError):
            out.err(name, f"{name} {shown(v)} is not a number ({hint})")
            continue
        if math.isnan(x) or x < lo or (hi is not None and x > hi):
            span = f"between {lo:g} and {hi:g}" if hi is not None else f"at least {lo:g}"
            out.err(name, f"{name} is {shown(v)}; it must be {span} ({hint})")


# --- paths, options the trainer lacks, family-specific fields ---------------------------------------------------------


def _fs_limits(path: str) -> tuple[int, int]:
    """``(longest file or folder name, longest path)`` in bytes where ``path`` would be (the file system of its
    nearest existing folder; Linux's 255 / 4096 when that cannot be asked)."""
    folder = path
    while folder and not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    try:
        return int(os.pathconf(folder or os.sep, "PC_NAME_MAX")), int(os.pathconf(folder or os.sep, "PC_PATH_MAX"))
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or a folder that went away
        return 255, 4096


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


#: The longest suffix sd-scripts or the launch adds to output_name: the step files' "-step00000010.<ext>" and
#: the settings JSON's "_YYYYMMDD-HHMMSS-N.json" (build_launch adds -N on a name clash).
_JSON_SUFFIX = "_20260101-000000-99.json"


def _path_limits(out: _Findings, cfg: TrainingConfig) -> None:
    """Paths and names the file system cannot hold: a NUL character, a folder or file name longer than the file
    system allows (Errno 36 "File name too long"), a whole path over its limit, and an output_name that becomes
    too long once the trainer adds its suffixes. Without this the trainer (or the launch's own writes) fails
    with an OSError instead of a message naming the field."""
    for name in _PATH_FIELDS:
        v = _text(cfg, name)
        if not v:
            continue
        if "\0" in v:
            out.err(name, f"{name} {shown(v)} holds a NUL character, which no path can: retype it")
            continue
        full = resolve_path(v)
        name_max, path_max = _fs_limits(full)
        long = [c for c in full.split(os.sep) if _nbytes(c) > name_max]
        if long:
            out.err(name, f"{name}: the name {shown(long[0], 60)} is {_nbytes(long[0])} bytes long, and the file "
                          f"system allows {name_max} for one folder or file name ('File name too long'): shorten it")
        elif _nbytes(full) > path_max:
            out.err(name, f"{name} is {_nbytes(full)} bytes long, and the file system allows {path_max} for a "
                          f"whole path ('File name too long'): pick a shorter path")
    stem = _text(cfg, "output_name")
    if stem and not any(c in stem for c in "/\\\0"):
        od = _text(cfg, "output_dir")
        name_max = _fs_limits(resolve_path(od))[0] if od and "\0" not in od else 255
        ext = _text(cfg, "save_model_as") or "safetensors"
        room = name_max - max(_nbytes(f"-step00000010.{ext}"), _nbytes(_JSON_SUFFIX))
        if _nbytes(stem) > room:
            out.err("output_name", f"output_name is {_nbytes(stem)} bytes long; with what the run adds to it "
                                   f"('-step00000010.{ext}', the settings JSON's '_YYYYMMDD-HHMMSS.json') a file "
                                   f"name would pass the file system's {name_max}-byte limit: shorten it to at "
                                   f"most {room} bytes")


def _number_limits(out: _Findings, cfg: TrainingConfig, metas: list[Any]) -> None:
    """Numbers no config file of the trainer can hold: an integer past 64 bits (TOML's limit; the form accepts
    any digits) and, for a number field the range rules do not cover, NaN or an infinity."""
    ranged = {r[0] for r in _RANGES}
    for m in metas:
        v = _get(cfg, m.name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, int) and abs(v) > TOML_INT_MAX:
            out.err(m.name, f"{m.name} is {shown(v)}: out of range (the trainer's config file holds integers up to "
                            f"{TOML_INT_MAX})")
        elif isinstance(v, float) and not math.isfinite(v) and m.name not in ranged:
            out.err(m.name, f"{m.name} is {v}: give a finite number")


def _relative_paths(out: _Findings, cfg: TrainingConfig) -> None:
    for name in _PATH_FIELDS:
        v = _text(cfg, name)
        if not v:
            continue
        if os.sep == "/" and "\\" in v:
            # A path copied from a Windows kohya_ss config: on Linux/macOS '\' is a character of a file name, so
            # 'C:\data\img' names one file in the current folder, not a folder two levels down.
            out.warn(name, f"{name} '{v}' contains '\\', which on this system is part of a file name, not a folder "
                           f"separator: write it with '/' ('{v.replace(chr(92), '/')}') and the folders of this "
                           f"machine")
            continue
        if v.startswith("~"):
            out.err(name, f"the trainer does not expand '~' in {name}: write '{os.path.expanduser(v)}'")
        elif not os.path.isabs(v):
            if not os.path.exists(resolve_path(v)) and (out.has_error(name) or (
                    name in ("pretrained_model_name_or_path", "vae") and _hub_id(v))):
                continue  # "does not exist" (or a Hub id) was said above: one message is enough
            out.warn(name, f"{name} '{v}' is relative: it resolves to '{resolve_path(v)}' (from the current "
                           f"folder '{os.getcwd()}'); write the absolute path so the config means the same place "
                           f"wherever it is run from")


def unsupported_options(settings: AppSettings) -> dict[str, Any] | None:
    """What the selected trainer refuses: ``<sd_scripts_dir>/lora_trainer/unsupported_options.json`` read as
    ``{"options": {name: reason}, "values": {name: {"allowed": [...], "reason": str}}, "script_options": {name:
    {"scripts": [script stems that implement it], "reason": str}}}`` (a bare JSON list or dict of names is taken as
    ``options``). None when the file is absent (an upstream checkout refuses nothing).
    """
    base = _get(settings, "sd_scripts_dir")
    if not base:
        return None
    path = os.path.join(str(base), "lora_trainer", "unsupported_options.json")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"options": {}, "values": {}, "error": f"'{path}' is not valid JSON"}
    options: Any = data
    values: Any = {}
    if isinstance(data, dict) and ("options" in data or "values" in data):
        options, values = data.get("options", {}), data.get("values", {})
    if isinstance(options, list):
        options = {str(k): "" for k in options}
    if not isinstance(options, dict):
        options = {}
    options = {str(k).lstrip("-"): (v if isinstance(v, str) else "") for k, v in options.items()
               if not str(k).startswith("_")}
    scripted = data.get("script_options", {}) if isinstance(data, dict) else {}
    scripted = {str(k): v for k, v in scripted.items() if isinstance(v, dict) and not str(k).startswith("_")} \
        if isinstance(scripted, dict) else {}
    return {"options": options, "values": values if isinstance(values, dict) else {}, "script_options": scripted}


def _catalogue_defaults(base: str, script: str) -> dict[str, Any]:
    path = os.path.join(base, "lora_trainer", "args_catalogue.json")
    try:
        with open(path, encoding="utf-8") as fh:
            cat = json.load(fh).get(script.removesuffix(".py"), {})
        return {k: v.get("default") for k, v in cat.items() if isinstance(v, dict)}
    except (OSError, ValueError, AttributeError):
        return {}


def _trainer_takes_as_unset(value: Any, default: Any) -> bool:
    """The bundled trainer's own test of "not set" (None, False, "", [], its default, or 0 with a falsy
    default)."""
    return value is None or value is False or value == "" or value == [] or value == default or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0 and not default)


def _written_options(cfg: TrainingConfig) -> dict[str, Any] | None:
    """The option → value mapping the launch would write (TOML keys), or None when it cannot be built."""
    try:
        return toml_dict(cfg)[0]
    except Exception:  # noqa: BLE001 - a value the launch rejects is reported by its own rule
        return None


def _trainer_support(out: _Findings, cfg: TrainingConfig, settings: AppSettings, metas: list[Any]) -> None:
    base = _get(settings, "sd_scripts_dir")
    script = script_name(cfg)
    if base and os.path.isdir(str(base)):
        if not os.path.isfile(os.path.join(str(base), script)):
            fam = FAMILY_LABELS[family(cfg)]
            out.err("pretrained_model_name_or_path",
                    f"the trainer in '{base}' has no {script}, so it cannot train {fam}: point sd_scripts_dir at "
                    f"an sd-scripts checkout that has it, or pick another model family")
    refused = unsupported_options(settings)
    if refused is None and base:
        for name in BUNDLED_ONLY_OPTIONS:
            if getattr(cfg, name, False):
                out.warn(name, f"{name} is a switch of lora-tui's bundled trainer; the trainer in '{base}' "
                               f"ignores it: clear it, or point sd_scripts_dir at the bundled sd-scripts")
    if not refused:
        return
    if refused.get("error"):
        out.warn("pretrained_model_name_or_path", f"cannot read the trainer's list of unsupported options: "
                                                  f"{refused['error']}")
    field_of: dict[str, str] = {}
    for m in metas:
        for k in (getattr(m, "toml_key", None), m.name):
            if k:
                field_of.setdefault(k, m.name)
    written = _written_options(cfg)
    defaults = _catalogue_defaults(str(base), script)
    suffix = "; clear it, or point sd_scripts_dir at an upstream sd-scripts checkout"
    if written is not None:
        for opt, reason in refused["options"].items():
            if opt in written and not _trainer_takes_as_unset(written[opt], defaults.get(opt)):
                fname = field_of.get(opt, opt)
                why = f" ({reason})" if reason else ""
                out.err(fname, f"{opt} = {written[opt]!r}: the bundled trainer does not implement it{why}{suffix}")
        for opt, rule in refused["values"].items():
            allowed = rule.get("allowed", []) if isinstance(rule, dict) else []
            v = written.get(opt, defaults.get(opt))
            if allowed and v not in allowed:
                fname = field_of.get(opt, opt)
                why = rule.get("reason", "")
                out.err(fname, f"{opt} = {v!r}: the bundled trainer does not implement it ({why}); allowed: "
                               f"{', '.join(repr(a) for a in allowed)}")
        for opt, rule in refused.get("script_options", {}).items():  # options only some scripts implement
            scripts = rule.get("scripts", []) if isinstance(rule, dict) else []
            if scripts and script.removesuffix(".py") not in scripts and opt in written \
                    and not _trainer_takes_as_unset(written[opt], defaults.get(opt)):
                out.err(field_of.get(opt, opt), f"{opt} = {written[opt]!r}: the bundled trainer implements it for "
                                                f"{', '.join(s + '.py' for s in scripts)} only "
                                                f"({rule.get('reason', '')}){suffix}")
    for opt in dict.fromkeys(u.name for u in (argv_uses(cfg, settings) or ()) if u.name):
        if opt in refused["options"]:
            out.err("additional_parameters", f"additional parameter --{opt} is not implemented by the bundled "
                                             f"trainer: remove it, or use an upstream sd-scripts checkout")




def _network_package(out: _Findings, cfg: TrainingConfig, settings: AppSettings) -> None:
    """A LoRA type whose network_module comes from a package the trainer's Python cannot import (checked once per
    interpreter, see :mod:`lora_tui.plan.trainer_packages`)."""
    try:
        module = network_module(cfg)
    except Exception:  # noqa: BLE001 - an unknown LoRA type is reported by its own rule
        return
    if module not in NETWORK_PACKAGES:
        return
    package, dist = NETWORK_PACKAGES[module]
    python = str(_get(settings, "python") or "")
    if package_importable(python, package) is False:
        out.err("LoRA_type", f"LoRA_type '{_text(cfg, 'LoRA_type')}' trains with network_module {module}, which "
                             f"needs the {dist} package, and the trainer's Python ({python or 'this one'}) does not "
                             f"have it: run `{pip_command(python)} {dist}`, or pick a Kohya LoRA type")


def _same_value(arg_values: list[str], written: Any) -> bool:
    """Whether an argv option's values say what the TOML says (as sd-scripts would parse them)."""
    if isinstance(written, bool):
        return written and not arg_values
    if isinstance(written, list):
        return [str(w) for w in written] == arg_values
    if len(arg_values) != 1:
        return False
    if isinstance(written, (int, float)):
        try:
            return float(arg_values[0]) == float(written)
        except ValueError:
            return False
    return arg_values[0] == str(written)


def _argv_over_toml(out: _Findings, cfg: TrainingConfig, settings: AppSettings, metas: list[Any]) -> None:
    """An option in additional_parameters that the config TOML also holds with another value: sd-scripts parses
    the command line after ``--config_file`` and the command line wins (sd-scripts'
    ``train_util.read_config_from_file``), so the form shows one value and the run uses another. (Loading a kohya_ss file moves such options into their fields;
    this catches what is typed later.) An option given twice gets one warning, about the last value: argparse
    keeps the last (a store action overwrites). Options are named as argparse reads them (``--max_grad_n`` is
    ``--max_grad_norm``); the ones the form owns are errors of :func:`argv_problems` already."""
    uses = argv_uses(cfg, settings)
    if not uses or not any(u.name for u in uses):
        return
    written = _written_options(cfg)
    if not written:
        return
    field_of = {m.toml_key: m.name for m in metas if getattr(m, "toml_key", None)}
    field_of.update({"resolution": "max_resolution", "max_train_epochs": "epoch or max_train_epochs",
                     "network_train_unet_only": "text_encoder_lr", "network_train_text_encoder_only": "unet_lr",
                     "network_module": "LoRA_type", "network_args": "LoRA_type and the network fields"})
    argv_errors = [p.message for p in out.items if p.field == "additional_parameters" and p.severity == "error"]
    # argparse keeps the last of an option given twice: one finding per option, about the value it uses.
    given: dict[str, list[tuple[list[str], list[str]]]] = {}
    for u in uses:
        if u.name and not u.error and not u.left and u.name not in FORM_OWNED:
            given.setdefault(u.name, []).append((list(u.values), list(u.tokens)))
    for opt, uses in given.items():
        if any(m.startswith(f"--{opt} ") for m in argv_errors):
            continue  # the value is wrong for argparse already (one message per value)
        values, tokens = uses[-1]
        argv_text = " ".join(values) if values else "on"
        twice = ""
        if len(uses) > 1:
            listed = ", ".join(f"'{shlex.join(t)}'" for _, t in uses)
            times = "twice" if len(uses) == 2 else f"{len(uses)} times"
            twice = (f"additional_parameters gives --{opt} {times} ({listed}) and argparse "
                     f"takes the last, so sd-scripts uses {argv_text}")
        differs = opt in written and not _same_value(values, written[opt]) and not (
            opt == "resolution" and len(values) == 1
            and parse_resolution(values[0]) == parse_resolution(written[opt]))  # "512" is "512,512" to sd-scripts
        if differs:
            field = field_of.get(opt, opt)
            lead = (f"{twice}, while" if twice else
                    f"additional_parameters gives '{shlex.join(tokens)}' while")
            tail = "" if twice else f"; sd-scripts uses the command line's {argv_text}"
            out.warn("additional_parameters",
                     f"{lead} the config file lora-tui writes has {opt} = {written[opt]!r} (from {field}){tail}: "
                     f"set {field} instead and remove --{opt} from additional_parameters")
        elif twice and len({tuple(v) for v, _ in uses}) > 1:
            out.warn("additional_parameters", f"{twice}: keep one --{opt}")


def _is_set(cfg: TrainingConfig, meta: Any) -> bool:
    """Set to something other than its default, empty, false or a 0 that means off."""
    return not _trainer_takes_as_unset(_get(cfg, meta.name), meta.default)


def _family_fields(out: _Findings, cfg: TrainingConfig, metas: list[Any]) -> None:
    fam = family(cfg)
    for m in metas:
        fams = getattr(m, "families", None)
        if fams and fam not in fams and _is_set(cfg, m) and not out.has_error(m.name):
            names = "/".join(FAMILY_LABELS.get(f, f) for f in fams)
            out.warn(m.name, f"{m.name} applies to {names} only and is ignored for {FAMILY_LABELS[fam]}: clear it "
                             f"or pick the matching model family")


def _kept_unused(cfg: TrainingConfig) -> dict[str, str]:
    return kept_unused_fields(cfg) if isinstance(cfg, TrainingConfig) else {}


# --- entry point -------------------------------------------------------------------------------------------------


def validate(cfg: TrainingConfig, scan: DatasetScan | None, settings: AppSettings,
             plan: StepPlan | None = None) -> list[Problem]:
    """All problems of ``cfg`` (+ its data ``scan``) for the trainer chosen by ``settings``, errors and warnings
    in the order the user should fix them: kohya_ss' Start checks (`train_model`, in order), then the trainer's start-up
    assertions, argument strings, ranges, data/captions, paths, unsupported options, family-specific fields.
    ``plan`` is computed when not given. Never raises for bad values: each becomes a Problem. A value with an
    error gets no warning about the same value as well (a missing path is not also "relative", epoch -3 is not
    also "unset", v2 on SDXL is not also "for SD2 only"); the same message is never given twice.
    """
    out = _Findings()
    if plan is None and scan is not None:
        plan = plan_steps(cfg, scan)
    metas = all_field_meta()
    steps: Iterable[Callable[[], None]] = (
        lambda: _path_limits(out, cfg),
        lambda: _number_limits(out, cfg, metas),
        lambda: _kohya_order(out, cfg, scan),
        lambda: _trainer_rules(out, cfg, plan),
        lambda: _check_token_args(out, cfg, "additional_parameters", dashes=True),
        lambda: out.items.extend(argv_problems(cfg, settings)),
        lambda: _check_token_args(out, cfg, "extra_accelerate_launch_args", dashes=True),
        lambda: out.items.extend(launch_problems(cfg, settings)),
        lambda: _check_token_args(out, cfg, "network_args", dashes=False) if isinstance(_get(cfg, "network_args"),
                                                                                          str) else None,
        lambda: _range_rules(out, cfg),
        lambda: _input_rules(out, cfg),
        lambda: _check_sample_prompts(out, cfg),
        lambda: _bucket_rules(out, cfg, plan),
        lambda: _data_rules(out, cfg, scan, plan),
        lambda: _relative_paths(out, cfg),
        lambda: _trainer_support(out, cfg, settings, metas),
        lambda: _network_package(out, cfg, settings),
        lambda: _argv_over_toml(out, cfg, settings, metas),
        lambda: _family_fields(out, cfg, metas),
    )
    for step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - a rule's bug must not hide the other rules' findings
            # Never a clean bill of health: an error, so Start is refused until the value that upset it changes.
            out.err("", f"{INTERNAL_MARK} ({type(exc).__name__}: {clip(str(exc), 200)}); the settings cannot be "
                        f"checked fully: report this, and check the values you changed last")
    # A value kept for another LoRA type or noise_offset_type never reaches the trainer (the launch leaves it
    # out, the load notes say "kept, not used"), so no rule may hold it against the run.
    unused = _kept_unused(cfg)
    # One message per (field, text): the same finding can come from two rules.
    seen: set[tuple[str, str]] = set()
    result = []
    for p in out.items:
        if p.field in unused:
            continue
        message = _tidy(p.message)
        if (p.field, message) not in seen:
            seen.add((p.field, message))
            result.append(p if message == p.message else Problem(p.field, p.severity, message))
    return result


#: Starts the message of a Problem that stands for a rule that failed (a bug): tests look for it.
INTERNAL_MARK = "a validation rule failed"
_LONG_WORD = re.compile(r"\S{200,}")


def _tidy(message: str) -> str:
    """A message as shown: a long run without spaces (a quoted value, a path) cut to 120 characters, the whole
    message to 2,000, lone surrogates escaped (no terminal prints them)."""
    message = _LONG_WORD.sub(lambda m: f"{m.group()[:120]}…({len(m.group())} characters)", message)
    return clip(message, 2000)
