"""Which learning rate each part of the network trains at: the one rule the launch, the forms and ``print`` share.

sd-scripts' rule (train_network.py → the network's ``prepare_optimizer_params``): ``unet_lr`` and
``text_encoder_lr`` override ``learning_rate`` where they are given; an omitted one falls back to ``learning_rate``
(whose own default is 2e-6). kohya_ss omits a rate of 0 from the TOML and, when exactly one of the two is 0, adds
``network_train_unet_only`` / ``network_train_text_encoder_only`` so that part is not trained; both 0 means both
fall back to ``learning_rate``. In our model an empty (None) ``unet_lr``/``text_encoder_lr`` inherits
``learning_rate`` (the launch writes the inherited value explicitly).

This module imports only the standard library and the model (config layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from lora_tui.config.model import TrainingConfig

#: sd-scripts' ``--learning_rate`` default, used when ``learning_rate`` is empty (nothing written).
SD_SCRIPTS_DEFAULT_LR = 2e-6


@dataclass(frozen=True)
class PartRate:
    """The rate one part (U-Net or text encoder) trains at.

    ``rate``: the learning rate (0.0 = the part is not trained). ``source``: the field it comes from
    ("unet_lr", "text_encoder_lr", "learning_rate"), or "" when the part is not trained because of the other
    part's 0 (kohya ``network_train_*_only``)."""

    rate: float
    source: str

    @property
    def trained(self) -> bool:
        """The part gets trained (a rate > 0)."""
        return self.rate > 0


@dataclass(frozen=True)
class RatesInForce:
    """What the launch makes sd-scripts train each part at (see the module docstring for the rule).

    ``toml``: the learning-rate keys the launch writes (``learning_rate``, ``unet_lr``, ``text_encoder_lr`` as
    the first-element float, ``network_train_unet_only``, ``network_train_text_encoder_only``)."""

    unet: PartRate
    text_encoder: PartRate
    toml: dict


def _fmt(x: Optional[float]) -> str:
    return "empty" if x is None else f"{x:g}"


def rates_in_force(cfg: TrainingConfig) -> RatesInForce:
    """The U-Net's and the text encoder's rates for ``cfg`` and the TOML keys that give them (the launch writes
    exactly ``toml``). Never raises."""
    lr = cfg.learning_rate
    unet = cfg.unet_lr if cfg.unet_lr is not None else lr
    te = cfg.text_encoder_lr if cfg.text_encoder_lr is not None else lr
    toml: dict = {}
    if lr is not None:
        toml["learning_rate"] = float(lr)
    if unet:
        toml["unet_lr"] = float(unet)
    if te:
        toml["text_encoder_lr"] = float(te)
    if unet is not None and te is not None:
        if unet and not te:
            toml["network_train_unet_only"] = True
        elif te and not unet:
            toml["network_train_text_encoder_only"] = True
    # sd-scripts: a rate not written falls back to learning_rate (or its own default when that is not written).
    base = float(lr) if lr is not None else SD_SCRIPTS_DEFAULT_LR

    def part(written: str, own: Optional[float], off_flag: str) -> PartRate:
        if toml.get(off_flag):
            return PartRate(0.0, "")
        if written in toml:
            return PartRate(toml[written], written if own is not None else "learning_rate")
        return PartRate(base, "learning_rate")

    return RatesInForce(part("unet_lr", cfg.unet_lr, "network_train_text_encoder_only"),
                        part("text_encoder_lr", cfg.text_encoder_lr, "network_train_unet_only"), toml)


def minimal_lr_field(cfg: TrainingConfig) -> str:
    """The field the Minimal form's learning-rate row edits: the one the U-Net's rate comes from.

    ``unet_lr`` when it is set and in force (a kohya file's usual ``unet_lr``, or a 0 that turns the U-Net off),
    else ``learning_rate`` (``unet_lr`` empty, or 0 together with a 0 ``text_encoder_lr``, which kohya_ss reads as
    "both use learning_rate"). So what the row shows is what the U-Net trains at, and typing there changes it."""
    return "unet_lr" if rates_in_force(cfg).unet.source in ("unet_lr", "") else "learning_rate"


def lr_hint(cfg: TrainingConfig, name: str) -> str:
    """One line for the row of ``name`` (``learning_rate``, ``unet_lr`` or ``text_encoder_lr``) saying which rate is
    in force for which part; "" for any other field."""
    if name not in ("learning_rate", "unet_lr", "text_encoder_lr"):
        return ""
    r = rates_in_force(cfg)
    u, t = r.unet, r.text_encoder
    lr = cfg.learning_rate

    def says(p: PartRate, what: str) -> str:
        if not p.trained:
            return f"the {what} is not trained"
        return f"the {what} trains at {p.source} {p.rate:g}"

    if name == "learning_rate":
        users = [w for w, p in (("U-Net", u), ("text encoder", t)) if p.source == "learning_rate" and p.trained]
        if lr is None:
            lead = f"empty: sd-scripts' default {SD_SCRIPTS_DEFAULT_LR:g} applies where it is used"
            return lead if users else f"not used: {says(u, 'U-Net')}, {says(t, 'text encoder')}"
        if len(users) == 2:
            return "in force for the U-Net and the text encoder (unet_lr and text_encoder_lr are empty)"
        if users == ["U-Net"]:
            return f"in force for the U-Net (unet_lr is empty); {says(t, 'text encoder')}"
        if users == ["text encoder"]:
            return f"in force for the text encoder (text_encoder_lr is empty); {says(u, 'U-Net')}"
        return f"not used: {says(u, 'U-Net')}, {says(t, 'text encoder')}"
    part, what, other = (u, "U-Net", "text_encoder_lr") if name == "unet_lr" else (t, "text encoder", "unet_lr")
    own = getattr(cfg, name)
    if own is None:
        return f"empty: {says(part, what)}" if part.trained else f"empty: the {what} is not trained"
    if own == 0 and part.source == "learning_rate":
        return f"0 reads as empty while {other} is 0 or empty too (kohya_ss): {says(part, what)}"
    if own == 0:
        return f"0: the {what} is not trained ({other} trains alone)"
    if lr is not None and float(own) != float(lr):
        return f"in force: the {what} trains at {own:g}, not at learning_rate {lr:g}"
    return f"in force: the {what} trains at {own:g}"
