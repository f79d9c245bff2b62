"""The LoRA training run: startup order, loop, saving and signals as in sd-scripts' `train_network.py`
(spec sd_scripts_interface.md §4, §6), built on diffusers/transformers models and accelerate.

Differences from sd-scripts, on purpose: SIGINT/SIGTERM finish the current step, save `<output_name>` and exit
130 (sd-scripts saves nothing); an empty dataset is an error (exit 1, sd-scripts exits 0); files are written
atomically; unsupported options are refused up front (`unsupported_options.json`).

Here: `main` and `Trainer` (set-up, loop, step). Beside it: options.py (checks before loading), optim.py
(optimizer and LR scheduler), loss.py (noise and loss), saving.py (LoRA files and their metadata), state.py
(save_state/resume), interrupt.py (signals), console.py (log and output lines).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

from .args import OptionError, parse_args
from .console import PROGRESS_PREFIX, join_streams, log, out, streams_merged, warn
from .dataset import (DatasetError, build_dataset, captions_are_static, load_image_tensor, process_caption,
                      size_ids)
from .loss_mask import batch_masks
from .interrupt import Interrupt
from .loss import diffusion_loss, sample_noise
from .models import FAMILY_LABEL, ModelError, detect_family
from .optim import make_optimizer, make_scheduler
from .options import network_args, validate
from .pending import LrSnapshot, StepRecord, loss_lag_enabled
from .saving import SavingMixin, dims_from_weights, read_lora
from .state import StateMixin

EXIT_INTERRUPTED = 130


def _stale_step(step: int, keep, every) -> int:
    """The step of the save that falls out of the last `keep` steps once step `step` is saved (saves every `every`
    steps); <= 0 when there is none. sd-scripts' rule for save_last_n_steps(_state)."""
    old = step - int(keep) - 1
    return old - old % int(every)


def check_model(args, script: str) -> str:
    """The checkpoint's family ("sd1"/"sd2"/"sdxl") from its header; ModelError when it does not fit `script`
    or `v2`. Reads no weights."""
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
    return family


def main(script: str, argv: list[str] | None = None) -> int:
    """Entry point for `train_network.py` ("train_network"), `sdxl_train_network.py` and (through flux_train.main)
    `flux_train_network.py`; returns the exit code.
    With `--preflight` anywhere in `argv`: the checks only (`preflight.run`), nothing loaded or written."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if script == "flux_train_network":  # the Flux.1 family (flux_train.py), preflight included
        from .flux_train import main as flux_main
        return flux_main(argv)
    if "--preflight" in argv:
        from .preflight import run
        return run(script, [a for a in argv if a != "--preflight"])
    join_streams()
    try:
        args = parse_args(script, argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        validate(args, script)
        family = check_model(args, script)
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


class Trainer(SavingMixin, StateMixin):
    """One training run; `run()` returns the exit code."""

    def __init__(self, args, family: str, dataset):
        self.args, self.family, self.dataset = args, family, dataset
        self.interrupt = Interrupt()
        self.saved: list[Path] = []
        self.current_step = 0
        self.unet_input_dtype = None  # fp8_base: the compute dtype the U-Net's inputs keep (_prepare_models)

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

        log(f"loading model {args.pretrained_model_name_or_path}")
        m = self._load_models()
        self.model = m
        unet, vae, tes = m.unet, m.vae, m.text_encoders
        for mod in [unet, vae, *tes]:
            mod.requires_grad_(False)
            mod.eval()
        vae_dtype = torch.float32 if (args.no_half_vae or mp == "no") else weight_dtype
        self.vae_scale = float(vae.config.get("scaling_factor", 0.13025 if self.family == "sdxl" else 0.18215))
        self.vae_shift = float(vae.config.get("shift_factor") or 0.0)  # Flux's AE: (z - 0.1159) * 0.3611

        # --- network
        na = network_args(args)
        network_dim = int(args.network_dim) if args.network_dim is not None else 4
        network_alpha = args.network_alpha
        conv_dim = int(na["conv_dim"]) if "conv_dim" in na else None
        conv_alpha = float(na["conv_alpha"]) if "conv_alpha" in na else None
        weights_sd = None
        if args.network_weights:
            weights_sd = read_lora(args.network_weights)
            if args.dim_from_weights:
                network_dim, network_alpha, conv_dim, conv_alpha = dims_from_weights(weights_sd)
        self.weights_sd = weights_sd
        # recorded in ss_network_dim/alpha as given (sd-scripts writes the options: "None" when unset)
        self.network_dim, self.network_alpha = args.network_dim, args.network_alpha
        train_unet = not args.network_train_text_encoder_only
        train_te = not args.network_train_unet_only
        net = self._make_network(unet, tes, na, network_dim, network_alpha, train_unet, train_te, conv_dim,
                                 conv_alpha)
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
        self._after_network(net)

        te_lrs = args.text_encoder_lr
        if te_lrs is not None and not isinstance(te_lrs, list):
            te_lrs = [te_lrs]
        te_lrs = [float(x) for x in te_lrs] if te_lrs else None
        groups = net.param_groups(te_lrs, args.unet_lr, float(args.learning_rate))
        self.te_trained = any(g["name"].startswith("textencoder") for g in groups)
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
        self._prepare_models(weight_dtype)

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
        if getattr(args, "cache_text_encoder_outputs", False) and self.te_trained and self.family not in ("flux", "sd3"):
            raise OptionError("cache_text_encoder_outputs needs network_train_unet_only (the text encoders "
                              "cannot be trained from cached outputs)")
        # Flux and SD3 keep the outputs in memory (their option checks say so); the npz files are SDXL's layout
        if getattr(args, "cache_text_encoder_outputs_to_disk", False) and self.family == "sdxl":
            from .te_cache import cache_te_outputs_to_disk
            log(f"text encoder outputs cached to disk: {cache_te_outputs_to_disk(self)} encoded")

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
        if args.save_n_epoch_ratio:  # sd-scripts: about save_n_epoch_ratio saves over the run
            args.save_every_n_epochs = math.floor(self.num_epochs / args.save_n_epoch_ratio) or 1
        self.batches_per_epoch = L

        optimizer, self.optimizer_name = self._make_optimizer(groups)
        scheduler = self._make_scheduler(optimizer)
        # The network is not wrapped in DDP (its forward is never called: the LoRA modules run inside the UNet
        # and text encoders), so gradients are averaged across processes by hand (`_sync_grads`).
        optimizer, scheduler = acc.prepare(optimizer, scheduler)
        if args.full_fp16:
            allow_fp16_unscale(acc)
        self.net_prepared, self.optimizer, self.scheduler = net, optimizer, scheduler

        self._setup_noise(dev)
        from .speed import setup_fast_path
        # the fast path drives networks.lora's own modules on the SD U-Net
        self.unet_autocast = True  # the fast path may run the frozen bf16 U-Net without it (speed.FastPath)
        self.fast = setup_fast_path(self) if args.network_module != "lycoris.kohya" and self.family not in ("flux", "sd3") \
            else None
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

    # ---------------------------------------------------------------- family seam
    # What differs between model families, overridden by a family's Trainer subclass (flux_train.FluxTrainer, sd3_train.SD3Trainer):
    # _load_models, _make_network, _after_network, _prepare_models, _setup_noise, _encode, _forward_loss,
    # _metadata_family, _sample. The loop, data, saving, stop/resume and bookkeeping are shared.
    def _load_models(self):
        """The base model's components (`.unet`, `.vae`, `.text_encoders`, `.tokenizers`, `.pipeline`), fp32."""
        import torch

        from .models import load_model
        args = self.args
        return load_model(args.pretrained_model_name_or_path, expected_family=None, torch_dtype=torch.float32,
                          tokenizer_cache_dir=args.tokenizer_cache_dir, vae_path=args.vae)

    def _make_network(self, unet, tes, na, network_dim, network_alpha, train_unet, train_te, conv_dim, conv_alpha):
        """The network over `unet` and the text encoders `tes` (not applied yet): `base_weights` merged first,
        then `network_build.build_network` (networks.lora with block-wise ranks/LR weights and LoRA+, or
        lycoris.kohya; ranks from `network_weights` with dim_from_weights); with fp8_base the frozen layers get
        their upcasting classes here, before the LoRA captures their forward (`fp8.py`)."""
        args = self.args
        if args.base_weights:
            from .base_weights import merge_base_weights
            merge_base_weights(args, unet, tes, self.family, log)
            log(f"all weights merged: {', '.join(args.base_weights)}")
        from .network_build import build_network
        net = build_network(args, self.family, unet, tes, self.weights_sd).net
        from . import fp8
        self.fp8_models = fp8.fp8_models(args, unet, tes)
        fp8.prepare(self.fp8_models)
        return net

    def _after_network(self, net) -> None:
        """Checks that need the built network (a family's own rules); nothing for SD."""

    def _prepare_models(self, weight_dtype) -> None:
        """After the models are on the device in their training dtypes: with fp8_base the frozen layers' weights
        go to float8_e4m3fn (`fp8.store`), and the U-Net's inputs keep the compute dtype."""
        from . import fp8
        models = getattr(self, "fp8_models", [])
        if models:
            saved = fp8.store(models)
            self.unet_input_dtype = weight_dtype
            out(f"enable fp8 training for U-Net{'' if self.args.fp8_base_unet else ' and Text Encoder'}: "
                f"{saved / 2**20:.1f} MiB saved")

    def _setup_noise(self, dev) -> None:
        """The training noise schedule: SD's DDPM schedule (`noise_scheduler`, `snr`)."""
        from diffusers import DDPMScheduler

        args = self.args
        self.noise_scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                             num_train_timesteps=1000, clip_sample=False,
                                             prediction_type="v_prediction" if args.v_parameterization else "epsilon")
        ac = self.noise_scheduler.alphas_cumprod
        self.snr = (ac / (1 - ac)).to(dev)  # before zero_terminal_snr: loss weights use the original SNR (§4.2)
        if args.zero_terminal_snr:
            from .noise_schedule import rescale_zero_terminal_snr
            rescale_zero_terminal_snr(self.noise_scheduler)

    # ---------------------------------------------------------------- optimizer / scheduler (optim.py)
    def _make_optimizer(self, groups):
        """(optimizer, its `ss_optimizer` name) over `groups`; see `optim.make_optimizer`. Also sets
        `optimizer_train`/`optimizer_eval` (schedule-free optimizers' mode switches, else no-ops)."""
        from .optim import train_eval_fns
        opt, name, self.adafactor_relative = make_optimizer(self.args, groups)
        self.optimizer_train, self.optimizer_eval = train_eval_fns(opt, self.args)
        return opt, name

    def _last_lr(self) -> float | None:
        """The scheduler's first group lr as a float (Adafactor's schedule returns 0-dim tensors), or None."""
        get = getattr(self.scheduler, "get_last_lr", None)
        lrs = get() if get is not None else None
        return float(lrs[0]) if lrs and lrs[0] is not None else None

    @contextlib.contextmanager
    def _eval_weights(self):
        """A schedule-free optimizer's evaluation weights in place while sampling or saving (sd-scripts calls
        its eval() before and train() after); nothing for other optimizers."""
        ev = getattr(self, "optimizer_eval", None)
        if ev is None:
            yield
            return
        ev()
        try:
            yield
        finally:
            self.optimizer_train()

    def _save(self, *a, **kw):
        with self._eval_weights():
            return super()._save(*a, **kw)

    def _save_state(self, *a, **kw):
        with self._eval_weights():
            return super()._save_state(*a, **kw)

    def _make_scheduler(self, optimizer):
        """The LR scheduler over max_train_steps × processes steps; see `optim.make_scheduler`."""
        return make_scheduler(self.args, optimizer, self.max_train_steps * self.acc.num_processes,
                              getattr(self, "adafactor_relative", False))

    # ---------------------------------------------------------------- caching
    def _cache_latents(self, vae, vae_dtype):
        import numpy as np
        import torch

        args = self.args
        val = getattr(self.dataset, "validation", None)
        samples = self.dataset.samples + (val.samples if val is not None else [])
        items = list({id(it): it for it in samples}.values())
        log(f"caching latents for {len(items)} images")
        suffix = {"sdxl": "_sdxl.npz", "flux": "_flux.npz", "sd3": "_sd3.npz"}.get(self.family, "_sd.npz")
        rng = random.Random(0)
        from .dataset import conditioning_mask, wants_alpha
        from .resize import crop_ltrb
        for it in items:
            npz = it.path.with_name(f"{it.path.stem}_{it.size[0]:04d}x{it.size[1]:04d}{suffix}")
            alpha = wants_alpha(it)
            if args.cache_latents_to_disk and npz.is_file():
                with np.load(npz) as z:
                    if "latents" in z and (not args.flip_aug or "latents_flipped" in z) and \
                            (not alpha or "alpha_mask" in z) and \
                            tuple(z["latents"].shape[1:]) == (it.bucket[1] // 8, it.bucket[0] // 8):
                        it.latents = torch.from_numpy(z["latents"])
                        it.latents_flipped = torch.from_numpy(z["latents_flipped"]) if args.flip_aug else None
                        it.mask = torch.from_numpy(z["alpha_mask"]) if alpha else None
                        if it.cond_path is not None:
                            it.mask = conditioning_mask(it, False)
                        continue
            flips = [False, True] if args.flip_aug else [False]
            for flip in flips:
                img, mask = load_image_tensor(it, False, flip, rng, augment=False)
                with torch.no_grad():
                    lat = vae.encode(img[None].to(self.acc.device, dtype=vae_dtype)).latent_dist.sample()[0]
                lat = torch.nan_to_num(lat.float().cpu(), 0.0)
                if flip:
                    it.latents_flipped = lat
                else:
                    it.latents, it.mask = lat, mask
            if args.cache_latents_to_disk:
                from .atomic import atomic_path
                # sd-scripts' npz keys; crop_ltrb as its get_crop_ltrb gives it (floats)
                arrays = {"latents": it.latents.numpy(), "original_size": np.array(it.size),
                          "crop_ltrb": np.array(crop_ltrb(it.bucket, it.size))}
                if it.latents_flipped is not None:
                    arrays["latents_flipped"] = it.latents_flipped.numpy()
                if alpha and it.mask is not None:
                    arrays["alpha_mask"] = it.mask.numpy()
                with atomic_path(npz) as tmp:
                    with open(tmp, "wb") as f:
                        np.savez(f, **arrays)

    # ---------------------------------------------------------------- conditioning
    def _tokenize(self, tok, captions):
        """Ids (B·n, 77): n windows per caption for max_token_length 150/225 (long_prompts.py), else n = 1.
        With weighted_captions the ids come without the attention brackets and their weights (B, 75·n + 2)
        are kept in `self._caption_weights[id(tok)]` for `_weigh`."""
        if self.args.weighted_captions:
            from .weighted_captions import weighted_ids
            ids, w = weighted_ids(tok, captions, self.args.max_token_length)
            self._caption_weights = {**getattr(self, "_caption_weights", {}), id(tok): w.to(self.acc.device)}
            return ids.to(self.acc.device)
        from .long_prompts import token_windows
        return token_windows(tok, captions, self.args.max_token_length).to(self.acc.device)

    def _weigh(self, tok, hidden):
        """Stitched hidden states (B, 75·n + 2, D) times the caption weights of `tok` (weighted_captions)."""
        if not self.args.weighted_captions:
            return hidden
        return hidden * self._caption_weights[id(tok)][:, :, None].to(hidden.dtype)

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
                ctx = torch.cat([self._weigh(m.tokenizers[0], stitch(o1.hidden_states[-2], B)),
                                 self._weigh(m.tokenizers[1], stitch(o2.hidden_states[-2], B))], dim=-1)
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
                ctx = self._weigh(m.tokenizers[0], stitch(ctx, len(captions)))
                pooled = None
        if self.cond_cache is not None:
            for i, c in enumerate(captions):
                self.cond_cache[c] = (ctx[i].detach(), pooled[i].detach() if pooled is not None else None)
        return ctx, pooled

    # ---------------------------------------------------------------- one step
    def _batch_inputs(self, batch, epoch, rng):
        import torch

        args = self.args
        lats, imgs, captions, time_ids, weights, masks = [], [], [], [], [], []
        for it in batch:
            opts = it.opts or args
            flip = bool(opts.flip_aug) and rng.random() < 0.5
            cached = it.latents is not None
            if cached:
                lats.append(it.latents_flipped if flip and it.latents_flipped is not None else it.latents)
                mask = it.mask.flip(1) if flip and it.mask is not None else it.mask
            else:
                img, mask = load_image_tensor(it, bool(opts.random_crop), flip, rng)
                imgs.append(img)
            masks.append(mask)
            captions.append(process_caption(it.caption, opts, epoch + 1, rng, self.current_step, self.max_train_steps))
            time_ids.append(size_ids(it, flip, cached))
            weights.append(float(args.prior_loss_weight) if it.is_reg else 1.0)
        # the loss masks of this batch (masked_loss / alpha_mask), read by `_step`; the fast path never runs with
        # masks (speed.fast_path_refusal), so its 4-tuple use of this method is unchanged
        self.batch_masks = batch_masks(masks)
        dev = self.acc.device
        if lats:
            latents = torch.stack(lats).to(dev)
        else:
            with torch.no_grad():
                latents = self.model.vae.encode(torch.stack(imgs).to(dev, dtype=self.vae_dtype)).latent_dist.sample()
            latents = torch.nan_to_num(latents.float(), 0.0)
        latents = (latents - self.vae_shift) * self.vae_scale
        from .speed import host_to_device
        return latents, captions, host_to_device(time_ids, torch.float32, dev), \
            host_to_device(weights, torch.float32, dev)

    def _step(self, batch, epoch, rng):
        latents, captions, time_ids, weights = self._batch_inputs(batch, epoch, rng)
        ctx, pooled = self._encode(captions)
        mask = self.batch_masks.to(latents.device) if self.batch_masks is not None else None
        if mask is None:  # a family's _forward_loss (Flux) takes no mask: masked_loss is refused for it
            return self._forward_loss(latents, ctx, pooled, time_ids, weights)
        return self._forward_loss(latents, ctx, pooled, time_ids, weights, mask)

    def _forward_loss(self, latents, ctx, pooled, time_ids, weights, mask=None):
        """Noise, UNet forward and loss from device tensors. Must stay free of host syncs and host randomness:
        `speed.FastPath` captures it in a CUDA graph."""
        import torch

        args, acc = self.args, self.acc
        noise = sample_noise(args, latents)
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
            dt = self.unet_input_dtype or self.model.unet.dtype  # fp8_base: the weights' dtype is not the inputs'
            pred = self.model.unet(noisy.to(dt), timesteps, ctx.to(dt), **kw).sample
        target = self.noise_scheduler.get_velocity(latents, noise, timesteps) if args.v_parameterization else noise
        return diffusion_loss(args, pred, target, timesteps, weights, self.snr, self.noise_scheduler, mask)

    # ---------------------------------------------------------------- loop
    def _loop(self) -> int:
        from tqdm import tqdm

        args, acc = self.args, self.acc
        name_final = args.output_name or "last"
        every = max(1, self.max_train_steps // 500)
        merged = streams_merged()
        steps_per_epoch = math.ceil(self.batches_per_epoch / int(args.gradient_accumulation_steps))
        rng = random.Random(args.seed)
        first_epoch, global_step = 0, 0
        if args.resume:
            done = self._load_state(Path(args.resume), rng)
            # Unlike sd-scripts (which restarts the count at 0), the step count continues from the state's epoch.
            first_epoch = done // steps_per_epoch
            global_step = first_epoch * steps_per_epoch
            out(f"resumed from {args.resume}: epoch {first_epoch + 1}, step {global_step}")
        from .start_point import start_point
        sp = start_point(args, self.batches_per_epoch, acc.num_processes, self.max_train_steps)
        skip = 0
        if sp is not None:  # initial_epoch / initial_step override the resumed step, as sd-scripts
            first_epoch, global_step, skip = sp.epoch, sp.global_step, sp.skip_batches
            out(f"starting at epoch {first_epoch + 1}, step {global_step}"
                + (f", skipping {skip} batches" if skip else ""))
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
        # The fast path finishes a step's bookkeeping after launching the next step (see pending.py); a step
        # whose bookkeeping reads or writes the weights or may end the run is finished before the next launch.
        lag = self.fast is not None and loss_lag_enabled()
        pending: StepRecord | None = None
        launched = global_step  # optimizer steps launched (fast path: one per micro-batch)
        avr = 0.0

        def finish(rec: StepRecord) -> None:
            """Step `rec`'s bookkeeping, in step order: loss window, bar, logs, progress line, saves, samples."""
            nonlocal global_step, avr
            last_loss = rec.loss()
            # avr_loss: mean over the first epoch so far, then a window of one epoch's micro-batches (§6.4)
            if len(loss_window) < self.batches_per_epoch:
                loss_window.append(last_loss)
            else:
                loss_window[rec.bi % len(loss_window)] = last_loss
            avr = sum(loss_window) / len(loss_window)
            if not rec.sync:
                return
            global_step += 1
            postfix = {"avr_loss": avr}
            if args.scale_weight_norms:
                scaled, mean_norm, max_norm = self._scale_weight_norms(float(args.scale_weight_norms))
                postfix.update({"Keys Scaled": scaled, "Average key norm": mean_norm})
            bar.update(1)
            self.trainlog.step(global_step, last_loss, avr, rec.lrs)
            bar.set_postfix(refresh=True, **postfix)  # tqdm sorts keyword keys, as sd-scripts' bar shows them
            if args.validate_every_n_steps and global_step % int(args.validate_every_n_steps) == 0:
                from .validation import validate
                validate(self, "step", global_step, rec.epoch, avr)
            if global_step % every == 0 or global_step == self.max_train_steps:
                el = time.time() - t0
                out(("\n" if merged else "") + PROGRESS_PREFIX + " " + json.dumps({
                    "step": global_step, "total": self.max_train_steps, "epoch": rec.epoch + 1,
                    "epochs": self.num_epochs, "loss": round(last_loss, 6), "avr_loss": round(avr, 6),
                    "lr": rec.lr, "it_per_s": round((global_step - s0) / el, 4) if el > 0 else None,
                    **self._gpu_memory()}))
            if args.save_every_n_steps and global_step % int(args.save_every_n_steps) == 0 \
                    and global_step < self.max_train_steps:
                name = args.output_name or "at"
                self._save(f"{name}-step{global_step:08d}", rec.epoch, global_step)
                if args.save_state:
                    self._save_state(f"{name}-step{global_step:08d}-state", rec.epoch, global_step, rng)
                    keep = args.save_last_n_steps_state or args.save_last_n_steps  # sd-scripts' fallback
                    if keep:
                        old = _stale_step(global_step, keep, args.save_every_n_steps)
                        if old > 0:
                            self._remove_state(f"{name}-step{old:08d}-state")
                if args.save_last_n_steps:
                    old = _stale_step(global_step, args.save_last_n_steps, args.save_every_n_steps)
                    if old > 0:
                        self._remove(f"{name}-step{old:08d}")
            if args.sample_every_n_steps and not args.sample_every_n_epochs and args.sample_prompts \
                    and global_step % int(args.sample_every_n_steps) == 0:
                self._sample(None, global_step)

        for epoch in range(first_epoch, self.num_epochs):
            out(f"\nepoch {epoch + 1}/{self.num_epochs}")
            batches = self._my_batches(self.dataset.batches(epoch, self.dataset_seed))
            for bi, batch in enumerate(batches):
                if skip:  # skip_until_initial_step: the data of the steps before initial_step is drawn, not trained
                    skip -= 1
                    continue
                if pending is not None and self._stop_requested():
                    # the stop flag is host-side: seen before launching another step, the run ends on the
                    # weights of the step in flight
                    finish(pending)
                    pending = None
                    interrupted = True
                    break
                self.current_step = global_step  # the step captions see (token_warmup_step)
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
                # what the bookkeeping reads that the next launch changes (the scheduler steps inside it)
                where = {"epoch": epoch, "bi": bi, "sync": acc.sync_gradients, "lrs": LrSnapshot.of(self.optimizer),
                         "lr": self._last_lr()}
                launched += where["sync"]
                if not lag:
                    rec = StepRecord.done(self._mean_loss(loss), **where)
                else:
                    rec = StepRecord.deferred(loss, **where)
                if pending is not None:
                    finish(pending)  # the previous step, while this one runs on the device
                    pending = None
                if lag and not self._finish_now(launched, bi, len(batches)):
                    pending = rec
                    continue
                finish(rec)
                if rec.sync and self._stop_requested():
                    interrupted = True
                    break
                if global_step >= self.max_train_steps:
                    break
            if interrupted or global_step >= self.max_train_steps and epoch + 1 < self.num_epochs:
                break
            self.trainlog.epoch(epoch + 1, avr)
            if not args.validate_every_n_epochs or (epoch + 1) % int(args.validate_every_n_epochs) == 0:
                from .validation import validate  # sd-scripts validates every epoch unless told otherwise
                validate(self, "epoch", epoch + 1, epoch, avr)
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
        # A stopped run is not the finished LoRA: it is saved under sd-scripts' step-save name
        # (`<output_name>-step00000NNN`), so neither a user nor a later resume mistakes it for the final file,
        # and a finished LoRA of that name is not replaced by a half-trained one.
        stem = f"{args.output_name or 'at'}-step{global_step:08d}" if interrupted else name_final
        path = self._save(stem, final_epoch, global_step)
        if args.save_state or args.save_state_on_train_end:
            self._save_state(f"{stem}-state", final_epoch, global_step, rng)
        acc.wait_for_everyone()
        if interrupted:
            if acc.is_main_process:
                # once per stream, and once only when both streams are the same file (a job log)
                print(f"interrupted: saved {path}", file=sys.stderr, flush=True)
                if not streams_merged():
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

    def _finish_now(self, step: int, bi: int, n_batches: int) -> bool:
        """Whether optimizer step `step` (1-based; micro-batch `bi` of the epoch's `n_batches`) must have its
        bookkeeping finished before the next step is launched: it saves or samples (its weights exactly),
        scales weight norms (writes the weights), or ends the epoch or the run."""
        args = self.args
        return bool(args.scale_weight_norms or step >= self.max_train_steps or bi == n_batches - 1
                    or args.save_every_n_steps and step % int(args.save_every_n_steps) == 0
                    or args.sample_every_n_steps and step % int(args.sample_every_n_steps) == 0)

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
            with self._eval_weights():
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
        Returns (number scaled, mean norm, max norm) after scaling. LyCORIS networks scale with their own
        per-algorithm rule (`LycorisNetwork.apply_max_norm_regularization`)."""
        import torch

        if hasattr(self.network, "apply_max_norm_regularization"):
            return self.network.apply_max_norm_regularization(max_norm, self.acc.device)

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
