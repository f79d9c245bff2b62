"""The LoRA training run: startup order, loop, saving and signals as in sd-scripts' `train_network.py`
(spec sd_scripts_interface.md §4, §6), built on diffusers/transformers models and accelerate.

Differences from sd-scripts, on purpose: SIGINT/SIGTERM finish the current step, save `<output_name>` and exit
130 (sd-scripts saves nothing); an empty dataset is an error (exit 1, sd-scripts exits 0); files are written
atomically; unsupported options are refused up front (`unsupported_options.json`).
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

from .args import OptionError, check_unsupported, parse_args
from .dataset import DatasetError, build_dataset, captions_are_static, load_image_tensor, process_caption
from .models import FAMILY_LABEL, ModelError, detect_family

PROGRESS_PREFIX = "LORA_TUI_PROGRESS"
SAVED_PREFIX = "LORA_TUI_SAVED"
EXIT_INTERRUPTED = 130


def _is_main() -> bool:
    """True in the single process or in rank 0 of a multi-process launch (torchrun sets RANK)."""
    return os.environ.get("RANK", "0") in ("0", "")


def _streams_merged() -> bool:
    """True when stdout and stderr are the same file (a job log, a terminal): the tqdm bar on stderr then
    leaves its line open, so our stdout lines must start on a fresh line to stay parseable."""
    try:
        a, b = os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def log(msg: str) -> None:
    """Log line on stderr (sd-scripts logs through `logging` to stderr); main process only."""
    if _is_main():
        print(f"INFO {msg}", file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    if _is_main():
        print(f"WARNING {msg}", file=sys.stderr, flush=True)


def out(msg: str) -> None:
    """Line on stdout (sd-scripts' `accelerator.print`); main process only."""
    if _is_main():
        print(msg, flush=True)


def _key_values(option: str, items) -> dict[str, str]:
    """`key=value` strings of a list option → {key: value} (both stripped); OptionError names `option`."""
    kv = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise OptionError(f"{option}: {item!r} is not key=value")
        kv[key.strip()] = value.strip()
    return kv


_LORA_NETWORK_ARGS = {"conv_dim": int, "conv_alpha": float, "rank_dropout": float, "module_dropout": float}


def _network_args(args) -> dict[str, str]:
    kv = _key_values("network_args", args.network_args)
    if args.network_module == "lycoris.kohya":
        return kv  # LyCORIS reads its own keys (algo, preset, ...)
    bad = sorted(set(kv) - set(_LORA_NETWORK_ARGS))
    if bad:
        raise OptionError(f"network_args: {', '.join(bad)} not supported by this trainer "
                          f"(supported: {', '.join(sorted(_LORA_NETWORK_ARGS))})")
    for key, value in kv.items():
        try:
            _LORA_NETWORK_ARGS[key](value)
        except ValueError:
            raise OptionError(f"network_args: {key}={value!r} is not a number "
                              f"({'an integer' if _LORA_NETWORK_ARGS[key] is int else 'e.g. 0.1'})") from None
    return kv


def _optimizer_kwargs(args) -> dict:
    kw = {}
    for key, value in _key_values("optimizer_args", args.optimizer_args).items():
        try:
            kw[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kw[key] = value
    return kw


def _validate(args, script: str) -> None:
    msgs = check_unsupported(args, script)
    from .lycoris_options import lycoris_problems  # other network modules: unsupported_options.json
    msgs += lycoris_problems(args)
    for parse in (_network_args, _optimizer_kwargs):  # read again where used; here so a typo fails before loading
        try:
            parse(args)
        except OptionError as e:
            msgs.append(str(e))
    if not args.pretrained_model_name_or_path:
        msgs.append("pretrained_model_name_or_path is not set; give a local .safetensors/.ckpt checkpoint")
    if not args.output_dir:
        msgs.append("output_dir is not set; give the folder for the LoRA files")
    if args.noise_offset is None and args.adaptive_noise_scale is not None:
        msgs.append("adaptive_noise_scale needs noise_offset")
    if args.scale_v_pred_loss_like_noise_pred and not args.v_parameterization:
        msgs.append("scale_v_pred_loss_like_noise_pred needs v_parameterization")
    if args.v_pred_like_loss and args.v_parameterization:
        msgs.append("v_pred_like_loss cannot be used with v_parameterization")
    if script == "sdxl_train_network" and args.v2:
        msgs.append("v2 is not valid for SDXL (sdxl_train_network.py)")
    if args.cache_latents and (args.random_crop or args.color_aug):
        msgs.append("cache_latents cannot be combined with random_crop; turn one off")
    if args.network_weights and not Path(args.network_weights).is_file():
        msgs.append(f"network_weights: {args.network_weights} does not exist")
    if args.resume and not Path(args.resume).is_dir():
        msgs.append(f"resume: {args.resume} is not a folder (give a <name>-state folder written with save_state)")
    for name in ("sample_every_n_steps", "sample_every_n_epochs"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            print(f"WARNING {name} {v} <= 0: no samples on that schedule", file=sys.stderr, flush=True)
            setattr(args, name, None)
    if (args.lr_scheduler or "constant") == "constant" and args.lr_warmup_steps:
        msgs.append("lr_warmup_steps must be 0 with lr_scheduler constant; use constant_with_warmup")
    step_div = 32 if script == "sdxl_train_network" else 64
    if args.bucket_reso_steps % step_div and args.enable_bucket:
        msgs.append(f"bucket_reso_steps {args.bucket_reso_steps} must be a multiple of {step_div}")
    from .precision import full_precision_problems
    from .tracking import logging_problems
    msgs += logging_problems(args) + full_precision_problems(args)
    if msgs:
        raise OptionError("\n".join(msgs))


class Interrupt:
    """SIGINT/SIGTERM → a flag the loop checks after each optimizer step."""

    def __init__(self):
        self.signum = None

    def install(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._handle)

    def _handle(self, signum, frame):
        if self.signum is None and _is_main():
            print(f"\n{signal.Signals(signum).name} received: finishing the current step, then saving",
                  file=sys.stderr, flush=True)
        self.signum = signum


def main(script: str, argv: list[str] | None = None) -> int:
    """Entry point for `train_network.py` ("train_network") and `sdxl_train_network.py`; returns the exit code."""
    try:
        args = parse_args(script, argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        _validate(args, script)
        family = detect_family(args.pretrained_model_name_or_path)
        expected = "sdxl" if script == "sdxl_train_network" else "sd"
        if (expected == "sdxl") != (family == "sdxl"):
            right = "sdxl_train_network.py" if family == "sdxl" else "train_network.py"
            raise ModelError(f"pretrained_model_name_or_path: {args.pretrained_model_name_or_path} is an "
                             f"{FAMILY_LABEL[family]} checkpoint; train it with {right}")
        if family == "sd2" and not args.v2:
            raise ModelError("pretrained_model_name_or_path is an SD2.x checkpoint; add --v2 (v2 = true)")
        if family == "sd1" and args.v2:
            raise ModelError("v2 is set but the checkpoint is SD1.x; remove v2")
        dataset = build_dataset(args, warn)
        if args.cache_latents and args.random_crop:
            raise OptionError("cache_latents cannot be combined with random_crop (set in dataset_config); turn one off")
        return Trainer(args, family, dataset).run()
    except (OptionError, ModelError, DatasetError) as e:
        for line in str(e).splitlines():
            print(f"ERROR: {line}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing saved (training had not started)", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


class Trainer:
    """One training run; `run()` returns the exit code."""

    def __init__(self, args, family: str, dataset):
        self.args, self.family, self.dataset = args, family, dataset
        self.interrupt = Interrupt()
        self.saved: list[Path] = []

    # ---------------------------------------------------------------- setup
    def run(self) -> int:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from diffusers.utils import logging as diffusers_logging

        # diffusers' loading bars and dtype notes would drown the training log; errors still show
        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
        args = self.args
        if "OMP_NUM_THREADS" in os.environ:
            torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))
        self.session_id = random.randint(0, 2**32)
        self.started_at = time.time()
        seed_drawn = args.seed is None
        if seed_drawn:
            args.seed = random.randint(0, 2**32)
        set_seed(args.seed)
        self.dataset_seed = random.randint(0, 2**32)

        mp = args.mixed_precision or "no"
        # LORA_TUI_CPU_BF16=1 (tests only): bf16 autocast on the CPU, to check the bf16 fast path's arithmetic
        cpu_bf16 = mp == "bf16" and os.environ.get("LORA_TUI_CPU_BF16") == "1"
        if mp in ("fp16", "bf16") and not torch.cuda.is_available() and not cpu_bf16:
            warn(f"mixed_precision {mp} needs a GPU; none found, training in fp32 (mixed_precision no)")
            mp = "no"
        self.mixed_precision = mp
        from .precision import allow_fp16_unscale, full_dtype
        try:
            lora_dtype = full_dtype(args, torch.cuda.is_available())
        except ValueError as e:
            raise OptionError(str(e)) from None
        G = int(args.gradient_accumulation_steps)
        acc = Accelerator(gradient_accumulation_steps=G, mixed_precision=mp, cpu=not torch.cuda.is_available())
        self.acc = acc
        if seed_drawn and acc.num_processes > 1:
            # each process drew its own seed: take the main one's, so all shuffle the batches alike (their shares
            # of an epoch must not overlap) and seed the same way sd-scripts seeds every rank
            from accelerate.utils import broadcast_object_list

            args.seed, self.dataset_seed = broadcast_object_list([args.seed, self.dataset_seed])
            set_seed(args.seed)
        print(f"accelerator device: {acc.device}", flush=True)
        from .tracking import TrainLog, config_values
        self.trainlog = TrainLog(args, acc.is_main_process, config_values(args) if args.log_config else None)
        weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[mp]
        self.save_dtype = {None: None, "float": torch.float32, "fp16": torch.float16,
                           "bf16": torch.bfloat16}.get(args.save_precision)
        if args.save_precision not in (None, "float", "fp16", "bf16"):
            raise OptionError(f"save_precision {args.save_precision!r}: use float, fp16 or bf16")

        from .models import load_model
        log(f"loading model {args.pretrained_model_name_or_path}")
        m = load_model(args.pretrained_model_name_or_path, expected_family=None, torch_dtype=torch.float32,
                       tokenizer_cache_dir=args.tokenizer_cache_dir, vae_path=args.vae)
        self.model = m
        unet, vae, tes = m.unet, m.vae, m.text_encoders
        for mod in [unet, vae, *tes]:
            mod.requires_grad_(False)
            mod.eval()
        vae_dtype = torch.float32 if (args.no_half_vae or mp == "no") else weight_dtype
        self.vae_scale = float(vae.config.get("scaling_factor", 0.13025 if self.family == "sdxl" else 0.18215))

        # --- network
        na = _network_args(args)
        network_dim = int(args.network_dim) if args.network_dim is not None else 4
        network_alpha = args.network_alpha
        conv_dim = int(na["conv_dim"]) if "conv_dim" in na else None
        conv_alpha = float(na["conv_alpha"]) if "conv_alpha" in na else None
        weights_sd = None
        if args.network_weights:
            weights_sd = self._read_lora(args.network_weights)
            if args.dim_from_weights:
                network_dim, network_alpha, conv_dim, conv_alpha = _dims_from_weights(weights_sd)
        self.network_dim, self.network_alpha = network_dim, network_alpha
        train_unet = not args.network_train_text_encoder_only
        train_te = not args.network_train_unet_only
        from .network import LoRANetwork
        if args.network_module == "lycoris.kohya":
            from .lycoris_network import LycorisNetwork
            net = LycorisNetwork(unet, tes, self.family, network_dim, network_alpha, train_unet=train_unet,
                                 train_te=train_te, network_args=na, dropout=args.network_dropout)
        else:
            net = LoRANetwork(unet, tes, self.family, network_dim, network_alpha, train_unet=train_unet,
                              train_te=train_te, conv_dim=conv_dim, conv_alpha=conv_alpha,
                              dropout=args.network_dropout,
                              rank_dropout=float(na["rank_dropout"]) if "rank_dropout" in na else None,
                              module_dropout=float(na["module_dropout"]) if "module_dropout" in na else None)
        out(f"import network module: {args.network_module or 'networks.lora'}")
        if train_te:
            log(f"create LoRA for Text Encoder: {len(net.te_modules)} modules.")
        if train_unet:
            log(f"create LoRA for U-Net: {len(net.unet_modules)} modules.")
        net.apply_to()
        if weights_sd is not None:
            missing, unexpected = net.load_weights(weights_sd)
            out(f"load network weights from {args.network_weights}: missing {len(missing)}, "
                f"unexpected {len(unexpected)}")
        self.network = net

        te_lrs = args.text_encoder_lr
        if te_lrs is not None and not isinstance(te_lrs, list):
            te_lrs = [te_lrs]
        te_lrs = [float(x) for x in te_lrs] if te_lrs else None
        groups = net.param_groups(te_lrs, args.unet_lr, float(args.learning_rate))
        self.te_trained = any(g["name"] == "textencoder" for g in groups)
        if not groups:
            raise OptionError("nothing to train: every learning rate (learning_rate/unet_lr/text_encoder_lr) is 0")

        # --- devices / dtypes
        dev = acc.device
        unet.to(dev, dtype=weight_dtype)
        for te in tes:
            te.to(dev, dtype=weight_dtype if not self.te_trained else torch.float32)
        net.to(dev, dtype=lora_dtype)
        if lora_dtype != torch.float32:
            out(f"enable full {'fp16' if args.full_fp16 else 'bf16'} training.")
        if args.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            unet.train()
            if self.te_trained:
                for te in tes:
                    enable = getattr(te, "activation_checkpointing_enable", None) or te.gradient_checkpointing_enable
                    enable()
                    te.train()

        # --- caching
        if args.cache_latents or args.cache_latents_to_disk:
            if args.cache_latents_to_disk and not args.cache_latents:
                warn("cache_latents_to_disk without cache_latents: cache_latents turned on")
            vae.to(dev, dtype=vae_dtype)
            self._cache_latents(vae, vae_dtype)
            vae.to("cpu")
            self.vae_on_device = False
        else:
            vae.to(dev, dtype=vae_dtype)
            self.vae_on_device = True
        self.vae_dtype = vae_dtype
        self.cond_cache = {} if (not self.te_trained and captions_are_static(args)) else None
        if getattr(args, "cache_text_encoder_outputs", False) and self.te_trained:
            raise OptionError("cache_text_encoder_outputs needs network_train_unet_only (the text encoders "
                              "cannot be trained from cached outputs)")

        # --- steps
        P = acc.num_processes
        # every process takes every P-th batch (the last ones padded by wrapping), as accelerate shards a
        # DataLoader; spec §2.12: L' = ceil(L / P), steps per epoch = ceil(L' / G)
        L = math.ceil(len(self.dataset) / P)
        steps_per_epoch = math.ceil(L / G)
        if args.max_train_epochs:
            args.max_train_steps = int(args.max_train_epochs) * steps_per_epoch
            log(f"override steps. steps for {args.max_train_epochs} epochs is: {args.max_train_steps}")
        self.max_train_steps = int(args.max_train_steps)
        self.num_epochs = math.ceil(self.max_train_steps / steps_per_epoch)
        self.batches_per_epoch = L

        optimizer, self.optimizer_name = self._make_optimizer(groups)
        scheduler = self._make_scheduler(optimizer)
        # The network is not wrapped in DDP (its forward is never called: the LoRA modules run inside the UNet
        # and text encoders), so gradients are averaged across processes by hand (`_sync_grads`).
        optimizer, scheduler = acc.prepare(optimizer, scheduler)
        if args.full_fp16:
            allow_fp16_unscale(acc)
        self.net_prepared, self.optimizer, self.scheduler = net, optimizer, scheduler

        from diffusers import DDPMScheduler
        self.noise_scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                             num_train_timesteps=1000, clip_sample=False,
                                             prediction_type="v_prediction" if args.v_parameterization else "epsilon")
        ac = self.noise_scheduler.alphas_cumprod
        self.snr = (ac / (1 - ac)).to(dev)  # before zero_terminal_snr: loss weights use the original SNR (§4.2)
        if args.zero_terminal_snr:
            from .noise_schedule import rescale_zero_terminal_snr
            rescale_zero_terminal_snr(self.noise_scheduler)
        from .speed import setup_fast_path
        # the fast path drives networks.lora's own modules
        self.unet_autocast = True  # the fast path may run the frozen bf16 U-Net without it (speed.FastPath)
        self.fast = setup_fast_path(self) if args.network_module != "lycoris.kohya" else None
        if args.torch_compile and self.fast is None:
            from .speed import compile_unet
            log(compile_unet(self))

        out("running training / 学習開始")
        out(f"  num train images * repeats / 学習画像の数×繰り返し回数: {self.dataset.num_train_images}")
        out(f"  num reg images / 正則化画像の数: {self.dataset.num_reg_images}")
        out(f"  num batches per epoch / 1epochのバッチ数: {L}")
        out(f"  num epochs / epoch数: {self.num_epochs}")
        sizes = [p.batch_size for p in getattr(self.dataset, "parts", [self.dataset])]
        out(f"  batch size per device / バッチサイズ: {', '.join(str(x) for x in sizes)}")
        out(f"  gradient accumulation steps / 勾配を合計するステップ数 = {G}")
        out(f"  total optimization steps / 学習ステップ数: {self.max_train_steps}")
        return self._loop()

    def _read_lora(self, path):
        from safetensors.torch import load_file
        import torch

        p = Path(path)
        if not p.is_file():
            raise OptionError(f"network_weights: {path} does not exist")
        if p.suffix == ".safetensors":
            return load_file(str(p))
        return torch.load(str(p), map_location="cpu", weights_only=True)

    # ---------------------------------------------------------------- optimizer / scheduler
    def _make_optimizer(self, groups):
        import torch

        args = self.args
        name = (args.optimizer_type or "").strip()
        if not name:
            name = "AdamW8bit" if args.use_8bit_adam else ("Lion" if args.use_lion_optimizer else "AdamW")
        kw = _optimizer_kwargs(args)
        lr = float(args.learning_rate)
        low = name.lower()
        if low == "adamw":
            cls = torch.optim.AdamW
        elif low in ("adamw8bit", "pagedadamw8bit", "pagedadamw", "pagedadamw32bit", "lion8bit", "pagedlion8bit",
                     "sgdnesterov8bit"):
            try:
                import bitsandbytes.optim as bnb
            except Exception as e:
                raise OptionError(f"optimizer_type {name} needs bitsandbytes, which cannot be imported: {e}") from e
            cls = {"adamw8bit": bnb.AdamW8bit, "pagedadamw8bit": bnb.PagedAdamW8bit, "pagedadamw": bnb.PagedAdamW,
                   "pagedadamw32bit": bnb.PagedAdamW32bit, "lion8bit": bnb.Lion8bit,
                   "pagedlion8bit": bnb.PagedLion8bit, "sgdnesterov8bit": bnb.SGD8bit}[low]
        elif low == "lion":
            try:
                from lion_pytorch import Lion as cls
            except ImportError as e:
                raise OptionError("optimizer_type Lion needs the lion-pytorch package (pip install lion-pytorch)") from e
        elif low == "sgdnesterov":
            cls = torch.optim.SGD
        elif low == "prodigy":
            try:
                from prodigyopt import Prodigy as cls
            except ImportError as e:
                raise OptionError("optimizer_type Prodigy needs prodigyopt (pip install prodigyopt)") from e
        elif low.startswith("dadapt"):
            try:
                import dadaptation
            except ImportError as e:
                raise OptionError(f"optimizer_type {name} needs dadaptation (pip install dadaptation)") from e
            attr = {"dadaptation": "DAdaptAdamPreprint", "dadaptadampreprint": "DAdaptAdamPreprint",
                    "dadaptadagrad": "DAdaptAdaGrad", "dadaptadam": "DAdaptAdam", "dadaptadan": "DAdaptAdan",
                    "dadaptadanip": "DAdaptAdanIP", "dadaptlion": "DAdaptLion", "dadaptsgd": "DAdaptSGD"}.get(low)
            if attr is None:
                raise OptionError(f"optimizer_type {name}: unknown DAdaptation variant")
            cls = getattr(dadaptation.experimental if attr in ("DAdaptAdamPreprint", "DAdaptAdanIP") else dadaptation,
                          attr, None) or getattr(dadaptation, attr)
        elif low == "adafactor":
            from transformers.optimization import Adafactor as cls
            kw.setdefault("relative_step", True)
            kw.setdefault("scale_parameter", kw["relative_step"])
            kw.setdefault("warmup_init", False)
            if kw["relative_step"]:
                self.adafactor_relative = True
                for g in groups:
                    g.pop("lr", None)
                opt = cls(groups, lr=None, **kw)
                return opt, self._opt_name(cls, kw)
        else:
            if "." in name:
                mod, _, attr = name.rpartition(".")
                try:
                    cls = getattr(importlib.import_module(mod), attr)
                except (ImportError, AttributeError) as e:
                    raise OptionError(f"optimizer_type {name}: cannot import it ({e})") from e
            else:
                cls = getattr(torch.optim, name, None)
                if cls is None:
                    raise OptionError(f"optimizer_type {name}: not a known optimizer (AdamW, AdamW8bit, Adafactor, "
                                      f"Prodigy, Lion, SGDNesterov, DAdaptation, or a torch.optim class)")
        if low in ("sgdnesterov", "sgdnesterov8bit"):
            kw.setdefault("momentum", 0.9)
            kw["nesterov"] = True
        try:
            opt = cls(groups, lr=lr, **kw)
        except (TypeError, ValueError, RuntimeError) as e:
            raise OptionError(f"optimizer_type {name} with optimizer_args {args.optimizer_args}: {e}") from e
        return opt, self._opt_name(cls, kw)

    @staticmethod
    def _opt_name(cls, kw) -> str:
        s = f"{cls.__module__}.{cls.__name__}"
        if kw:
            s += "(" + ",".join(f"{k}={v}" for k, v in kw.items()) + ")"
        return s

    def _make_scheduler(self, optimizer):
        from diffusers.optimization import get_scheduler

        args = self.args
        T = self.max_train_steps * self.acc.num_processes
        name = args.lr_scheduler or "constant"
        if getattr(self, "adafactor_relative", False):
            from transformers.optimization import AdafactorSchedule
            return AdafactorSchedule(optimizer, initial_lr=float(args.learning_rate))
        w = args.lr_warmup_steps or 0
        warmup = int(w * T) if isinstance(w, float) else int(w)
        kw = {}
        if name in ("cosine_with_restarts",):
            kw["num_cycles"] = int(args.lr_scheduler_num_cycles or 1)
        if name == "polynomial":
            kw["power"] = float(args.lr_scheduler_power or 1.0)
        if name == "adafactor" or name.startswith("adafactor:"):
            raise OptionError("lr_scheduler adafactor needs optimizer_type Adafactor with relative_step")
        supported = {"constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"}
        if name not in supported:
            raise OptionError(f"lr_scheduler {name!r} not supported by this trainer "
                              f"(supported: {', '.join(sorted(supported))})")
        return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=T, **kw)

    # ---------------------------------------------------------------- caching
    def _cache_latents(self, vae, vae_dtype):
        import numpy as np
        import torch

        args = self.args
        items = list({id(it): it for it in self.dataset.samples}.values())
        log(f"caching latents for {len(items)} images")
        suffix = "_sdxl.npz" if self.family == "sdxl" else "_sd.npz"
        rng = random.Random(0)
        for it in items:
            npz = it.path.with_name(f"{it.path.stem}_{it.size[0]:04d}x{it.size[1]:04d}{suffix}")
            if args.cache_latents_to_disk and npz.is_file():
                with np.load(npz) as z:
                    if "latents" in z and (not args.flip_aug or "latents_flipped" in z) and \
                            tuple(z["latents"].shape[1:]) == (it.bucket[1] // 8, it.bucket[0] // 8):
                        it.latents = torch.from_numpy(z["latents"])
                        it.latents_flipped = torch.from_numpy(z["latents_flipped"]) if args.flip_aug else None
                        continue
            flips = [False, True] if args.flip_aug else [False]
            for flip in flips:
                img, _ = load_image_tensor(it, False, flip, rng)
                with torch.no_grad():
                    lat = vae.encode(img[None].to(self.acc.device, dtype=vae_dtype)).latent_dist.sample()[0]
                lat = torch.nan_to_num(lat.float().cpu(), 0.0)
                if flip:
                    it.latents_flipped = lat
                else:
                    it.latents = lat
            if args.cache_latents_to_disk:
                from .atomic import atomic_path
                arrays = {"latents": it.latents.numpy(), "original_size": np.array(it.size),
                          "crop_ltrb": np.array([0, 0, it.bucket[0], it.bucket[1]])}
                if it.latents_flipped is not None:
                    arrays["latents_flipped"] = it.latents_flipped.numpy()
                with atomic_path(npz) as tmp:
                    with open(tmp, "wb") as f:
                        np.savez(f, **arrays)

    # ---------------------------------------------------------------- conditioning
    def _tokenize(self, tok, captions):
        """Ids (B·n, 77): n windows per caption for max_token_length 150/225 (long_prompts.py), else n = 1."""
        from .long_prompts import token_windows
        return token_windows(tok, captions, self.args.max_token_length).to(self.acc.device)

    def _encode(self, captions: list[str]):
        """Text conditioning for a batch: SD1/2 → (context, None); SDXL → (context, pooled), spec §4.8."""
        import torch

        from .long_prompts import first_window, stitch

        m = self.model
        if self.cond_cache is not None and all(c in self.cond_cache for c in captions):
            parts = [self.cond_cache[c] for c in captions]
            ctx = torch.stack([p[0] for p in parts])
            pooled = torch.stack([p[1] for p in parts]) if parts[0][1] is not None else None
            return ctx, pooled
        with torch.set_grad_enabled(self.te_trained):
            if self.family == "sdxl":
                te1, te2 = m.text_encoders
                o1 = te1(self._tokenize(m.tokenizers[0], captions), output_hidden_states=True)
                o2 = te2(self._tokenize(m.tokenizers[1], captions), output_hidden_states=True)
                B = len(captions)
                ctx = torch.cat([stitch(o1.hidden_states[-2], B), stitch(o2.hidden_states[-2], B)], dim=-1)
                pooled = first_window(o2.text_embeds, B)
            else:
                te = m.text_encoders[0]
                o = te(self._tokenize(m.tokenizers[0], captions), output_hidden_states=True)
                cs = self.args.clip_skip
                if cs and cs > 1:
                    norm = te.text_model.final_layer_norm if hasattr(te, "text_model") else te.final_layer_norm
                    ctx = norm(o.hidden_states[-cs])
                else:
                    ctx = o.last_hidden_state
                ctx = stitch(ctx, len(captions))
                pooled = None
        if self.cond_cache is not None:
            for i, c in enumerate(captions):
                self.cond_cache[c] = (ctx[i].detach(), pooled[i].detach() if pooled is not None else None)
        return ctx, pooled

    # ---------------------------------------------------------------- one step
    def _batch_inputs(self, batch, epoch, rng):
        import torch

        args = self.args
        lats, imgs, captions, time_ids, weights = [], [], [], [], []
        for it in batch:
            opts = it.opts or args
            flip = bool(opts.flip_aug) and rng.random() < 0.5
            if it.latents is not None:
                lats.append(it.latents_flipped if flip and it.latents_flipped is not None else it.latents)
                ct, cl = (it.resized[1] - it.bucket[1]) // 2, (it.resized[0] - it.bucket[0]) // 2
            else:
                img, (ct, cl) = load_image_tensor(it, bool(opts.random_crop), flip, rng)
                imgs.append(img)
            if flip:
                cl = it.resized[0] - cl - it.bucket[0]
            captions.append(process_caption(it.caption, opts, epoch + 1, rng))
            time_ids.append([it.size[1], it.size[0], ct, cl, it.bucket[1], it.bucket[0]])
            weights.append(float(args.prior_loss_weight) if it.is_reg else 1.0)
        dev = self.acc.device
        if lats:
            latents = torch.stack(lats).to(dev)
        else:
            with torch.no_grad():
                latents = self.model.vae.encode(torch.stack(imgs).to(dev, dtype=self.vae_dtype)).latent_dist.sample()
            latents = torch.nan_to_num(latents.float(), 0.0)
        latents = latents * self.vae_scale
        from .speed import host_to_device
        return latents, captions, host_to_device(time_ids, torch.float32, dev), \
            host_to_device(weights, torch.float32, dev)

    def _noise(self, latents):
        import torch
        args = self.args
        noise = torch.randn_like(latents)
        if args.noise_offset:
            off = float(args.noise_offset)
            if args.noise_offset_random_strength:
                off = torch.rand(1, device=latents.device).item() * off
            if args.adaptive_noise_scale:
                off = (off + args.adaptive_noise_scale * latents.mean(dim=(2, 3), keepdim=True).abs()).clamp(min=0)
                noise = noise + off * torch.randn(latents.shape[0], latents.shape[1], 1, 1, device=latents.device)
            else:
                noise = noise + off * torch.randn(latents.shape[0], latents.shape[1], 1, 1, device=latents.device)
        if args.multires_noise_iterations:
            b, c, h, w = noise.shape
            up = torch.nn.Upsample(size=(h, w), mode="bilinear")
            d = float(args.multires_noise_discount)
            for i in range(int(args.multires_noise_iterations)):
                r = random.random() * 2 + 2
                wi, hi = max(1, int(w / (r ** i))), max(1, int(h / (r ** i)))
                noise = noise + up(torch.randn(b, c, hi, wi, device=noise.device)) * d ** i
                if wi == 1 or hi == 1:
                    break
            noise = noise / noise.std()
        return noise

    def _loss(self, pred, target, timesteps, weights):
        import torch

        args = self.args
        pred, target = pred.float(), target.float()
        lt = args.loss_type or "l2"
        if lt == "l2":
            el = (pred - target) ** 2
        elif lt == "l1":
            el = (pred - target).abs()
        elif lt in ("huber", "smooth_l1"):
            c = self._huber_c(timesteps).view(-1, 1, 1, 1)
            d2 = (pred - target) ** 2
            el = 2 * c * (torch.sqrt(d2 + c ** 2) - c) if lt == "huber" else 2 * (torch.sqrt(d2 + c ** 2) - c)
        else:
            raise OptionError(f"loss_type {lt!r}: use l2, l1, huber or smooth_l1")
        loss = el.mean(dim=(1, 2, 3)) * weights
        snr = self.snr[timesteps]
        if args.min_snr_gamma:
            g = float(args.min_snr_gamma)
            w = torch.clamp(snr, max=g) / (snr + 1 if args.v_parameterization else snr)
            loss = loss * w
        clipped = torch.clamp(snr, max=1000)
        if args.scale_v_pred_loss_like_noise_pred:
            loss = loss * (clipped / (clipped + 1))
        if args.v_pred_like_loss:
            loss = loss + loss * float(args.v_pred_like_loss) / (clipped / (clipped + 1))
        if args.debiased_estimation_loss:
            loss = loss / (clipped + 1 if args.v_parameterization else torch.sqrt(clipped))
        return loss.mean()

    def _huber_c(self, timesteps):
        import torch

        args = self.args
        hc, hs = float(args.huber_c), float(args.huber_scale)
        sched = args.huber_schedule or "snr"
        if sched == "constant":
            return torch.full_like(timesteps, hc * hs, dtype=torch.float32)
        if sched == "exponential":
            alpha = -math.log(hc) / 1000
            return hs * torch.exp(-alpha * timesteps.float())
        ac = self.noise_scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
        sigma = ((1 - ac) / ac) ** 0.5
        return (1 - hc) / (1 + sigma) ** 2 + hc

    def _step(self, batch, epoch, rng):
        latents, captions, time_ids, weights = self._batch_inputs(batch, epoch, rng)
        ctx, pooled = self._encode(captions)
        return self._forward_loss(latents, ctx, pooled, time_ids, weights)

    def _forward_loss(self, latents, ctx, pooled, time_ids, weights):
        """Noise, UNet forward and loss from device tensors. Must stay free of host syncs and host randomness:
        `speed.FastPath` captures it in a CUDA graph."""
        import torch

        args, acc = self.args, self.acc
        noise = self._noise(latents)
        lo = int(args.min_timestep or 0)
        hi = int(args.max_timestep or 1000)
        if lo == hi:
            timesteps = torch.full((latents.shape[0],), hi, device=latents.device, dtype=torch.long)
        else:
            timesteps = torch.randint(lo, hi, (latents.shape[0],), device=latents.device).long()
        if args.ip_noise_gamma:
            from .noise_schedule import perturbed_noise
            noisy = self.noise_scheduler.add_noise(
                latents, perturbed_noise(noise, float(args.ip_noise_gamma), args.ip_noise_gamma_random_strength),
                timesteps)
        else:
            noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        with acc.autocast() if self.unet_autocast else contextlib.nullcontext():
            kw = {}
            if self.family == "sdxl":
                kw["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
            pred = self.model.unet(noisy.to(self.model.unet.dtype), timesteps, ctx.to(self.model.unet.dtype), **kw).sample
        target = self.noise_scheduler.get_velocity(latents, noise, timesteps) if args.v_parameterization else noise
        return self._loss(pred, target, timesteps, weights)

    # ---------------------------------------------------------------- loop
    def _loop(self) -> int:
        from tqdm import tqdm

        args, acc = self.args, self.acc
        name_final = args.output_name or "last"
        every = max(1, self.max_train_steps // 500)
        merged = _streams_merged()
        steps_per_epoch = math.ceil(self.batches_per_epoch / int(args.gradient_accumulation_steps))
        rng = random.Random(args.seed)
        first_epoch, global_step = 0, 0
        if args.resume:
            done = self._load_state(Path(args.resume), rng)
            # Unlike sd-scripts (which restarts the count at 0), the step count continues from the state's epoch.
            first_epoch = done // steps_per_epoch
            global_step = first_epoch * steps_per_epoch
            out(f"resumed from {args.resume}: epoch {first_epoch + 1}, step {global_step}")
        self.interrupt.install()
        bar = tqdm(total=self.max_train_steps, initial=global_step, desc="steps", smoothing=0, file=sys.stderr,
                   dynamic_ncols=False, ascii=False, disable=not acc.is_main_process)
        epoch = first_epoch
        loss_window: list[float] = []
        t0, s0 = time.time(), global_step
        interrupted = False
        self.network.train()
        if args.sample_at_first and args.sample_prompts:
            self._sample(0, global_step)
        for epoch in range(first_epoch, self.num_epochs):
            out(f"\nepoch {epoch + 1}/{self.num_epochs}")
            batches = self._my_batches(self.dataset.batches(epoch, self.dataset_seed))
            for bi, batch in enumerate(batches):
                if self.fast is not None:
                    loss = self.fast.step(batch, epoch, rng)
                else:
                    with acc.accumulate(self.net_prepared):
                        loss = self._step(batch, epoch, rng)
                        acc.backward(loss)
                        if acc.sync_gradients and acc.num_processes > 1:
                            self._sync_grads()
                        if acc.sync_gradients and args.max_grad_norm:
                            acc.clip_grad_norm_(self.network.parameters(), float(args.max_grad_norm))
                        self.optimizer.step()
                        self.scheduler.step()
                        self.optimizer.zero_grad(set_to_none=True)
                last_loss = self._mean_loss(loss)
                # avr_loss: mean over the first epoch so far, then a window of one epoch's micro-batches (§6.4)
                if len(loss_window) < self.batches_per_epoch:
                    loss_window.append(last_loss)
                else:
                    loss_window[bi % len(loss_window)] = last_loss
                avr = sum(loss_window) / len(loss_window)
                if acc.sync_gradients:
                    global_step += 1
                    postfix = {"avr_loss": avr}
                    if args.scale_weight_norms:
                        scaled, mean_norm, max_norm = self._scale_weight_norms(float(args.scale_weight_norms))
                        postfix.update({"Keys Scaled": scaled, "Average key norm": mean_norm})
                    bar.update(1)
                    self.trainlog.step(global_step, last_loss, avr, self.optimizer)
                    bar.set_postfix(refresh=True, **postfix)  # tqdm sorts keyword keys, as sd-scripts' bar shows them
                    if global_step % every == 0 or global_step == self.max_train_steps:
                        el = time.time() - t0
                        out(("\n" if merged else "") + PROGRESS_PREFIX + " " + json.dumps({
                            "step": global_step, "total": self.max_train_steps, "epoch": epoch + 1,
                            "epochs": self.num_epochs, "loss": round(last_loss, 6), "avr_loss": round(avr, 6),
                            "lr": self.scheduler.get_last_lr()[0] if hasattr(self.scheduler, "get_last_lr") else None,
                            "it_per_s": round((global_step - s0) / el, 4) if el > 0 else None,
                            **self._gpu_memory()}))
                    if args.save_every_n_steps and global_step % int(args.save_every_n_steps) == 0 \
                            and global_step < self.max_train_steps:
                        name = args.output_name or "at"
                        self._save(f"{name}-step{global_step:08d}", epoch, global_step)
                        if args.save_state:
                            self._save_state(f"{name}-step{global_step:08d}-state", epoch, global_step, rng)
                            keep = args.save_last_n_steps_state or args.save_last_n_steps  # sd-scripts' fallback
                            if keep:
                                old = global_step - int(keep) - 1
                                old -= old % int(args.save_every_n_steps)
                                if old > 0:
                                    self._remove_state(f"{name}-step{old:08d}-state")
                        if args.save_last_n_steps:
                            n = int(args.save_every_n_steps)
                            old = global_step - int(args.save_last_n_steps) - 1
                            old -= old % n
                            if old > 0:
                                self._remove(f"{name}-step{old:08d}")
                    if args.sample_every_n_steps and not args.sample_every_n_epochs and args.sample_prompts \
                            and global_step % int(args.sample_every_n_steps) == 0:
                        self._sample(None, global_step)
                    if self._stop_requested():
                        interrupted = True
                        break
                if global_step >= self.max_train_steps:
                    break
            if interrupted or global_step >= self.max_train_steps and epoch + 1 < self.num_epochs:
                break
            self.trainlog.epoch(epoch + 1, avr)
            if args.sample_every_n_epochs and args.sample_prompts and (epoch + 1) % int(args.sample_every_n_epochs) == 0:
                self._sample(epoch + 1, global_step)
            if args.save_every_n_epochs and (epoch + 1) % int(args.save_every_n_epochs) == 0 \
                    and epoch + 1 < self.num_epochs:
                name = args.output_name or "epoch"
                self._save(f"{name}-{epoch + 1:06d}", epoch + 1, global_step)
                if args.save_state:
                    self._save_state(f"{name}-{epoch + 1:06d}-state", epoch + 1, global_step, rng)
                    keep = args.save_last_n_epochs_state or args.save_last_n_epochs  # sd-scripts' fallback
                    if keep:
                        old = epoch + 1 - int(args.save_every_n_epochs) * int(keep)
                        if old > 0:
                            self._remove_state(f"{name}-{old:06d}-state")
                if args.save_last_n_epochs:
                    old = epoch + 1 - int(args.save_every_n_epochs) * int(args.save_last_n_epochs)
                    if old > 0:
                        self._remove(f"{name}-{old:06d}")
        bar.close()
        self.trainlog.close()
        self._check_replicas()
        final_epoch = self.num_epochs if not interrupted else epoch + 1
        path = self._save(name_final, final_epoch, global_step)
        if args.save_state or args.save_state_on_train_end:
            self._save_state(f"{args.output_name or 'last'}-state", final_epoch, global_step, rng)
        acc.wait_for_everyone()
        if interrupted:
            if acc.is_main_process:
                # once per stream, and once only when both streams are the same file (a job log)
                print(f"interrupted: saved {path}", file=sys.stderr, flush=True)
                if not _streams_merged():
                    out(f"interrupted: saved {path}")
            return EXIT_INTERRUPTED
        out("model saved.")
        return 0

    # ---------------------------------------------------------------- several processes
    def _my_batches(self, batches: list) -> list:
        """This process's share of an epoch: every P-th batch from its rank, padded by wrapping so every
        process takes the same number of steps (the all-reduce needs them in lockstep)."""
        P = self.acc.num_processes
        if P == 1:
            return batches
        n = math.ceil(len(batches) / P)
        mine = batches[self.acc.process_index::P]
        i = 0
        while len(mine) < n:
            mine.append(batches[i % len(batches)])
            i += 1
        return mine

    def _sync_grads(self) -> None:
        """Average the LoRA gradients over all processes (one flat all-reduce)."""
        import torch
        import torch.distributed as dist

        ps = [p for p in self.network.parameters() if p.requires_grad]
        for p in ps:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in ps])
        dist.all_reduce(flat)
        flat /= self.acc.num_processes
        i = 0
        for p in ps:
            n = p.numel()
            p.grad.copy_(flat[i:i + n].view_as(p.grad))
            i += n

    def _mean_loss(self, loss) -> float:
        """The micro-batch loss as reported (progress lines, avr_loss): averaged over the processes, so it is
        the loss of the global batch, as one process with the same global batch would report it."""
        if self.acc.num_processes == 1:
            return float(loss.detach().item())
        return float(self.acc.reduce(loss.detach().float().reshape(1), reduction="mean").item())

    def _stop_requested(self) -> bool:
        """The signal flag, agreed by all processes (any one signalled stops all at the same step)."""
        if self.acc.num_processes == 1:
            return self.interrupt.signum is not None
        import torch
        import torch.distributed as dist

        t = torch.tensor([1.0 if self.interrupt.signum is not None else 0.0], device=self.acc.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def _check_replicas(self) -> None:
        """With several processes, check that every process ended with the same LoRA weights."""
        if self.acc.num_processes == 1:
            return
        import torch

        sig = torch.stack([torch.cat([p.detach().double().reshape(-1) for p in self.network.parameters()]).sum(),
                           torch.cat([p.detach().double().abs().reshape(-1) for p in self.network.parameters()]).sum()])
        sigs = self.acc.gather(sig.to(self.acc.device)[None]).cpu()
        if torch.allclose(sigs, sigs[0:1].expand_as(sigs), rtol=0, atol=0):
            log(f"all {self.acc.num_processes} processes hold the same LoRA weights")
        else:
            warn(f"the {self.acc.num_processes} processes hold different LoRA weights: {sigs.tolist()}")

    def _sample(self, epoch: int | None, step: int) -> None:
        """Sample images with the current LoRA (see `sampling.py`); text encoders are brought to the device
        for it and put back where they were."""
        from .sampling import sample_images

        if not self.acc.is_main_process:
            return
        homes = [next(te.parameters()).device for te in self.model.text_encoders]
        for te in self.model.text_encoders:
            te.to(self.acc.device)
        try:
            sample_images(self, epoch, step)
        except (ValueError, OSError) as e:
            print(f"ERROR: sample images skipped: {e}", file=sys.stderr, flush=True)
        finally:
            for te, dev in zip(self.model.text_encoders, homes):
                te.to(dev)

    @staticmethod
    def _gpu_memory() -> dict:
        """{"max_memory_gib": peak CUDA memory allocated by this process} on a GPU, {} on CPU."""
        import torch

        if not torch.cuda.is_available():
            return {}
        return {"max_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)}

    def _scale_weight_norms(self, max_norm: float):
        """`--scale_weight_norms` (spec §4.3 step 11): shrink modules whose ΔW norm exceeds `max_norm`.
        Returns (number scaled, mean norm, max norm) after scaling."""
        import torch

        norms, scaled = [], 0
        with torch.no_grad():
            for m in self.network.te_modules + self.network.unet_modules:
                down, up = m.lora_down.weight, m.lora_up.weight
                if down.dim() == 4 and down.shape[2] > 1:
                    dw = torch.nn.functional.conv2d(down.permute(1, 0, 2, 3), up).permute(1, 0, 2, 3)
                elif down.dim() == 4:
                    dw = up.squeeze(3).squeeze(2) @ down.squeeze(3).squeeze(2)
                else:
                    dw = up @ down
                n = float((dw * m.scale).norm())
                if n > max_norm:
                    ratio = (max_norm / n) ** 0.5
                    down.mul_(ratio)
                    up.mul_(ratio)
                    scaled += 1
                    n = max_norm
                norms.append(n)
        return scaled, sum(norms) / max(1, len(norms)), max(norms, default=0.0)

    # ---------------------------------------------------------------- state (save_state / resume)
    def _save_state(self, dirname: str, epoch: int, step: int, rng: random.Random) -> Path:
        """Training state in a folder, without pickles: network weights and RNG in safetensors, optimizer and
        scheduler state dicts via `torch.save` (tensors and plain values, loadable with weights_only=True),
        counters and Python RNG states in `train_state.json`. Written to a temp folder, then renamed."""
        import shutil

        import torch
        from safetensors.torch import save_file

        if not self.acc.is_main_process:
            return Path()
        od = Path(self.args.output_dir)
        final = od / dirname
        tmp = od / f".{dirname}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        net = self.acc.unwrap_model(self.net_prepared)
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp / "model.safetensors"))
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
        rng_t = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng_t["cuda"] = torch.cuda.get_rng_state()
        save_file(rng_t, str(tmp / "rng.safetensors"))
        st = {"current_epoch": epoch, "current_step": step, "python_rng": _rng_json(rng.getstate()),
              "random_module": _rng_json(random.getstate())}
        (tmp / "train_state.json").write_text(json.dumps(st))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        out(f"saving state: {final}")
        return final

    def _load_state(self, d: Path, rng: random.Random) -> int:
        """Restore what `_save_state` wrote; returns the saved step count."""
        import torch
        from safetensors.torch import load_file

        need = ["model.safetensors", "optimizer.pt", "scheduler.pt", "rng.safetensors", "train_state.json"]
        missing = [n for n in need if not (d / n).is_file()]
        if missing:
            raise OptionError(f"resume: {d} is not a state folder written by this trainer "
                              f"(missing {', '.join(missing)})")
        net = self.acc.unwrap_model(self.net_prepared)
        res = net.load_state_dict(load_file(str(d / "model.safetensors")), strict=False)
        if res.missing_keys or res.unexpected_keys:
            raise OptionError(f"resume: {d} holds a different network (missing {len(res.missing_keys)}, "
                              f"unexpected {len(res.unexpected_keys)} keys); use the same network options")
        self.optimizer.load_state_dict(torch.load(d / "optimizer.pt", weights_only=True, map_location="cpu"))
        self.scheduler.load_state_dict(torch.load(d / "scheduler.pt", weights_only=True))
        rng_t = load_file(str(d / "rng.safetensors"))
        torch.set_rng_state(rng_t["torch"])
        if "cuda" in rng_t and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng_t["cuda"])
        st = json.loads((d / "train_state.json").read_text())
        rng.setstate(_rng_state(st["python_rng"]))
        random.setstate(_rng_state(st["random_module"]))
        return int(st["current_step"])

    # ---------------------------------------------------------------- saving
    def _ext(self) -> str:
        return "." + (self.args.save_model_as or "safetensors")

    def _remove(self, stem: str) -> None:
        p = Path(self.args.output_dir) / (stem + self._ext())
        if p.exists():
            out(f"removing old checkpoint: {p}")
            p.unlink()

    def _remove_state(self, dirname: str) -> None:
        """Delete an old state folder (save_last_n_*_state); only a folder this trainer wrote (train_state.json)."""
        import shutil

        d = Path(self.args.output_dir) / dirname
        if self.acc.is_main_process and (d / "train_state.json").is_file():
            out(f"removing old state: {d}")
            shutil.rmtree(d)

    def _save(self, stem: str, epoch: int, step: int) -> Path:
        import torch
        from safetensors.torch import save, save_file

        from .atomic import atomic_path

        if not self.acc.is_main_process:
            return Path()
        od = Path(self.args.output_dir)
        od.mkdir(parents=True, exist_ok=True)
        path = od / (stem + self._ext())
        net = self.acc.unwrap_model(self.net_prepared)
        sd = {}
        for k, v in net.state_dict().items():
            v = v.detach().to("cpu")
            if self.save_dtype is not None:
                v = v.to(self.save_dtype)
            sd[k] = v.contiguous()
        out(f"\nsaving checkpoint: {path}")
        with atomic_path(path) as tmp:
            if self._ext() == ".safetensors":
                meta = self._metadata(epoch, step)
                ss_only = {k: v for k, v in meta.items() if k.startswith("ss_")}
                buf = save(sd, metadata=ss_only)
                n = int.from_bytes(buf[:8], "little")
                meta["sshs_model_hash"] = hashlib.sha256(buf[8 + n:]).hexdigest()
                meta["sshs_legacy_hash"] = hashlib.sha256(buf[0x100000:0x110000]).hexdigest()[:8]
                save_file(sd, str(tmp), metadata=meta)
            else:
                torch.save(sd, str(tmp))
        self.saved.append(path)
        out(SAVED_PREFIX + " " + json.dumps({"path": str(path), "step": step, "epoch": epoch}))
        return path

    def _metadata(self, epoch: int, step: int) -> dict[str, str]:
        args = self.args
        ds = self.dataset
        fam = self.family
        if fam == "sdxl":
            base = "sdxl_base_v1-0"
            arch = "stable-diffusion-xl-v1-base/lora"
        else:
            base = ("sd_v2" if fam == "sd2" else "sd_v1") + ("_v" if args.v_parameterization else "")
            arch = "stable-diffusion-v1/lora" if fam == "sd1" else \
                ("stable-diffusion-v2-768-v/lora" if args.v_parameterization else "stable-diffusion-v2-512/lora")
        dirs = {s.dir.name: {"n_repeats": s.repeats, "img_count": len(s.items)} for s in ds.subsets if not s.is_reg}
        reg_dirs = {s.dir.name: {"n_repeats": s.repeats, "img_count": len(s.items)} for s in ds.subsets if s.is_reg}
        tags: dict[str, dict[str, int]] = {}
        for s in ds.subsets:
            if s.is_reg:
                continue
            freq = tags.setdefault(s.dir.name, {})
            for it in s.items:
                for t in it.caption.split(","):
                    t = t.strip().lower()
                    if t:
                        freq[t] = freq.get(t, 0) + 1
        buckets = {str(i): {"resolution": list(k), "count": len(v)} for i, (k, v) in enumerate(sorted(ds.buckets.items()))}
        te_lr = args.text_encoder_lr[0] if isinstance(args.text_encoder_lr, list) and args.text_encoder_lr \
            else args.text_encoder_lr
        model_path = Path(args.pretrained_model_name_or_path)
        reso = args.resolution
        md = {
            "ss_session_id": str(self.session_id), "ss_training_started_at": str(self.started_at),
            "ss_training_finished_at": str(time.time()), "ss_output_name": str(args.output_name),
            "ss_learning_rate": str(args.learning_rate), "ss_unet_lr": str(args.unet_lr),
            "ss_text_encoder_lr": str(te_lr), "ss_num_train_images": str(ds.num_train_images),
            "ss_num_validation_images": "0", "ss_num_reg_images": str(ds.num_reg_images),
            "ss_num_batches_per_epoch": str(self.batches_per_epoch), "ss_num_epochs": str(self.num_epochs),
            "ss_steps": str(step), "ss_epoch": str(epoch), "ss_max_train_steps": str(self.max_train_steps),
            "ss_gradient_checkpointing": str(args.gradient_checkpointing),
            "ss_gradient_accumulation_steps": str(args.gradient_accumulation_steps),
            "ss_lr_warmup_steps": str(args.lr_warmup_steps), "ss_lr_scheduler": str(args.lr_scheduler),
            "ss_network_module": args.network_module or "networks.lora", "ss_network_dim": str(self.network_dim),
            "ss_network_alpha": str(self.network_alpha), "ss_network_dropout": str(args.network_dropout),
            "ss_mixed_precision": str(self.mixed_precision), "ss_full_fp16": str(args.full_fp16),
            "ss_v2": str(bool(args.v2)), "ss_base_model_version": base, "ss_clip_skip": str(args.clip_skip),
            "ss_max_token_length": str(args.max_token_length), "ss_cache_latents": str(args.cache_latents),
            "ss_seed": str(args.seed), "ss_lowram": str(args.lowram), "ss_noise_offset": str(args.noise_offset),
            "ss_noise_offset_random_strength": str(args.noise_offset_random_strength),
            "ss_adaptive_noise_scale": str(args.adaptive_noise_scale),
            "ss_multires_noise_iterations": str(args.multires_noise_iterations),
            "ss_multires_noise_discount": str(args.multires_noise_discount),
            "ss_zero_terminal_snr": str(args.zero_terminal_snr), "ss_ip_noise_gamma": str(args.ip_noise_gamma),
            "ss_ip_noise_gamma_random_strength": str(args.ip_noise_gamma_random_strength),
            "ss_min_snr_gamma": str(args.min_snr_gamma), "ss_debiased_estimation": str(args.debiased_estimation_loss),
            "ss_loss_type": str(args.loss_type), "ss_huber_schedule": str(args.huber_schedule),
            "ss_huber_scale": str(args.huber_scale), "ss_huber_c": str(args.huber_c),
            "ss_training_comment": str(args.training_comment), "ss_sd_scripts_commit_hash": "lora-tui",
            "ss_optimizer": self.optimizer_name, "ss_max_grad_norm": str(args.max_grad_norm),
            "ss_scale_weight_norms": str(args.scale_weight_norms), "ss_prior_loss_weight": str(args.prior_loss_weight),
            "ss_caption_dropout_rate": str(args.caption_dropout_rate),
            "ss_caption_dropout_every_n_epochs": str(args.caption_dropout_every_n_epochs),
            "ss_caption_tag_dropout_rate": str(args.caption_tag_dropout_rate),
            "ss_face_crop_aug_range": str(args.face_crop_aug_range),
            "ss_sd_model_name": model_path.name if model_path.exists() else str(args.pretrained_model_name_or_path),
            "ss_batch_size_per_device": str(args.train_batch_size),
            "ss_total_batch_size": str(int(args.train_batch_size) * self.acc.num_processes
                                       * int(args.gradient_accumulation_steps)),
            "ss_resolution": str(tuple(int(x) for x in str(reso).split(","))) if reso else "None",
            "ss_color_aug": str(args.color_aug), "ss_flip_aug": str(args.flip_aug),
            "ss_random_crop": str(args.random_crop), "ss_shuffle_caption": str(args.shuffle_caption),
            "ss_enable_bucket": str(args.enable_bucket), "ss_bucket_no_upscale": str(args.bucket_no_upscale),
            "ss_min_bucket_reso": str(args.min_bucket_reso), "ss_max_bucket_reso": str(args.max_bucket_reso),
            "ss_keep_tokens": str(args.keep_tokens), "ss_dataset_dirs": json.dumps(dirs),
            "ss_reg_dataset_dirs": json.dumps(reg_dirs), "ss_tag_frequency": json.dumps(tags),
            "ss_bucket_info": json.dumps({"buckets": buckets}),
        }
        if args.network_args:
            kv = _network_args(args)
            kv["dropout"] = str(args.network_dropout)
            md["ss_network_args"] = json.dumps(kv)
        if args.no_metadata:
            keep = {"ss_v2", "ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha",
                    "ss_network_args"}
            md = {k: v for k, v in md.items() if k in keep}
        res = str(reso).replace(",", "x") if reso and "," in str(reso) else (f"{reso}x{reso}" if reso else
                                                                            ("1024x1024" if fam == "sdxl" else "512x512"))
        md.update({
            "modelspec.sai_model_spec": "1.0.1", "modelspec.architecture": arch,
            "modelspec.implementation": "https://github.com/Stability-AI/generative-models" if fam == "sdxl"
            else "diffusers",
            "modelspec.title": args.metadata_title or args.output_name or f"LoRA@{int(self.started_at)}",
            "modelspec.resolution": res, "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "modelspec.prediction_type": "v" if args.v_parameterization else "epsilon",
            "modelspec.implementation_version": "lora-tui",
        })
        for k in ("author", "description", "license", "tags"):
            v = getattr(args, f"metadata_{k}", None)
            if v:
                md[f"modelspec.{k}"] = str(v)
        return md


def _rng_json(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_state(j):
    return (j[0], tuple(j[1]), j[2])


def _dims_from_weights(sd):
    """(network_dim, network_alpha, conv_dim, conv_alpha) read from a kohya LoRA state dict."""
    dim = alpha = cdim = calpha = None
    for k, v in sd.items():
        if not k.endswith(".lora_down.weight"):
            continue
        base = k[: -len(".lora_down.weight")]
        a = sd.get(base + ".alpha")
        if v.dim() == 4 and v.shape[2] > 1:
            cdim = cdim or int(v.shape[0])
            calpha = calpha if calpha is not None else (float(a) if a is not None else cdim)
        else:
            dim = dim or int(v.shape[0])
            alpha = alpha if alpha is not None else (float(a) if a is not None else dim)
    return dim or 4, alpha, cdim, calpha
