"""Experiment trackers as sd-scripts sets them up (`prepare_accelerator`, `init_trackers`), through accelerate's
`TensorBoardTracker` and `WandBTracker`.

`log_with`: "tensorboard", "wandb" or "all"; unset with `logging_dir` set means tensorboard (sd-scripts). Run
folder: `<logging_dir>/<log_prefix><YYYYmmddHHMMSS>/`, TensorBoard under `<log_tracker_name or
"network_train">/` (sd-scripts' layout); wandb's files go under the run folder too (sd-scripts sets WANDB_DIR).
Tracker keyword arguments: `{"wandb": {"name": wandb_run_name}}`, replaced by the TOML file
`log_tracker_config` when given (sd-scripts). Scalars: `loss/current` and `loss/average` every optimizer step,
`lr/<group>` per parameter group (`lr/textencoder`, `lr/unet`; D-Adaptation/Prodigy also `lr/d*lr/<group>`),
`loss/epoch` at each epoch's end (x = epoch).
With `log_config`, the options (without keys and paths, as sd-scripts' `get_sanitized_config_or_none`) go in
as hyperparameters. Main process only.

Differences from sd-scripts, on purpose: `log_with` tensorboard/all without `logging_dir` logs to
`<output_dir>/logs` (sd-scripts stops with an error); wandb runs offline (`WANDB_MODE=offline`) unless the
user set WANDB_MODE or has wandb credentials and api.wandb.ai answers within 3 s, so a run never waits on a
login prompt or an unreachable server.
"""
from __future__ import annotations

import importlib.util
import os
import time
import tomllib
from pathlib import Path

SENSITIVE = ("wandb_api_key", "huggingface_token")
SENSITIVE_PATHS = ("pretrained_model_name_or_path", "vae", "tokenizer_cache_dir", "train_data_dir",
                   "conditioning_data_dir", "reg_data_dir", "output_dir", "logging_dir")


def trackers(args) -> list[str]:
    """The trackers a run starts: [] / ["tensorboard"] / ["wandb"] / both, by sd-scripts' rule."""
    log_with = getattr(args, "log_with", None)
    if not log_with:
        return ["tensorboard"] if args.logging_dir else []
    return {"tensorboard": ["tensorboard"], "wandb": ["wandb"], "all": ["tensorboard", "wandb"]}.get(log_with, [])


def default_logging_dir(args) -> str | None:
    """`<output_dir>/logs` when a tracker is asked for without `logging_dir`, else None (nothing to default)."""
    if args.logging_dir or not getattr(args, "log_with", None) or not args.output_dir:
        return None
    return str(Path(args.output_dir) / "logs")


def tracker_init_kwargs(args) -> dict:
    """The per-tracker keyword arguments (sd-scripts' `init_trackers`): `log_tracker_config` (a TOML file of
    tables named after trackers) when given, else `{"wandb": {"name": wandb_run_name}}`. OptionError names the
    option when the file is missing or not TOML."""
    from .args import OptionError

    if getattr(args, "log_tracker_config", None):
        path = Path(args.log_tracker_config)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise OptionError(f"log_tracker_config: {path} does not exist") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise OptionError(f"log_tracker_config: {path} is not a readable TOML file: {e}") from None
        bad = sorted(k for k, v in data.items() if not isinstance(v, dict))
        if bad:
            raise OptionError(f"log_tracker_config: {path}: {', '.join(bad)} must be tables ([wandb], "
                              f"[tensorboard]) of that tracker's keyword arguments")
        return data
    if getattr(args, "wandb_run_name", None):
        return {"wandb": {"name": args.wandb_run_name}}
    return {}


def logging_problems(args) -> list[str]:
    """Messages for tracker options that cannot work here (checked before torch is imported): a tracker whose
    package is not installed in the trainer's Python, and an unreadable `log_tracker_config`. Each line starts
    with the option it is about."""
    from .args import OptionError

    msgs = []
    want = trackers(args)
    if "tensorboard" in want and not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        opt = "logging_dir" if not getattr(args, "log_with", None) else "log_with"
        msgs.append(f"{opt}: TensorBoard logging needs the tensorboard package; install it into the trainer's "
                    f"Python (pip install tensorboard) or remove {opt}")
    if "wandb" in want and importlib.util.find_spec("wandb") is None:
        msgs.append(f"log_with {args.log_with}: wandb logging needs the wandb package; install it into the "
                    f"trainer's Python (pip install wandb) or use log_with tensorboard")
    try:
        tracker_init_kwargs(args)
    except OptionError as e:
        msgs.append(str(e))
    return msgs


def _wandb_reachable(timeout: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def wandb_mode(args) -> str | None:
    """WANDB_MODE for this run: None to leave the user's WANDB_MODE alone, else "offline" when there are no
    wandb credentials (WANDB_API_KEY, `wandb_api_key`, a netrc entry) or the server does not answer in 3 s."""
    if os.environ.get("WANDB_MODE"):
        return None
    has_key = bool(os.environ.get("WANDB_API_KEY") or getattr(args, "wandb_api_key", None))
    if not has_key:
        netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
        try:
            has_key = "api.wandb.ai" in netrc.read_text(errors="replace")
        except OSError:
            has_key = False
    if not has_key or not _wandb_reachable():
        return "offline"
    return None


class TrainLog:
    """Step and epoch scalars to the trackers of `trackers(args)`; every method is a no-op without trackers or
    on a process other than the main one. `dir`: the run folder (TensorBoard's, when it logs)."""

    def __init__(self, args, is_main: bool, config: dict | None = None):
        self.trackers: list = []
        want = trackers(args)
        if not want or not is_main:
            return
        from .console import warn

        logging_dir = args.logging_dir or default_logging_dir(args)
        if not args.logging_dir:
            warn(f"log_with {args.log_with} without logging_dir: logs go to {logging_dir}")
        run_dir = Path(logging_dir) / ((args.log_prefix or "") + time.strftime("%Y%m%d%H%M%S"))
        name = args.log_tracker_name or "network_train"
        kwargs = tracker_init_kwargs(args)
        self.dir = run_dir
        if "tensorboard" in want:
            from accelerate.tracking import TensorBoardTracker

            tb = TensorBoardTracker(name, str(run_dir), **kwargs.get("tensorboard", {}))
            tb.start()
            self.dir = Path(tb.logging_dir)
            self.trackers.append(tb)
        if "wandb" in want:
            mode = wandb_mode(args)
            if mode:
                os.environ["WANDB_MODE"] = mode
                warn(f"wandb: no credentials or server reachable: logging offline to {run_dir} "
                     f"(upload later with `wandb sync`)")
            run_dir.mkdir(parents=True, exist_ok=True)
            os.environ["WANDB_DIR"] = str(run_dir)
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb
            from accelerate.tracking import WandBTracker

            if getattr(args, "wandb_api_key", None) and os.environ.get("WANDB_MODE") != "offline":
                wandb.login(key=args.wandb_api_key)
            # dir as well as WANDB_DIR: wandb reads the variable once per process
            wb = WandBTracker(name, **{"dir": str(run_dir), **kwargs.get("wandb", {})})
            wb.start()
            self.trackers.append(wb)
        if config is not None:
            for t in self.trackers:
                t.store_init_configuration(config)

    @property
    def tracker(self):
        """The first tracker, or None (kept for callers that only check whether logging is on)."""
        return self.trackers[0] if self.trackers else None

    def _log(self, values: dict, step: int) -> None:
        for t in self.trackers:
            t.log(values, step=step)

    def step(self, step: int, loss: float, avr: float, optimizer) -> None:
        """One optimizer step: current and running-average loss and each parameter group's learning rate."""
        if not self.trackers:
            return
        values = {"loss/current": loss, "loss/average": avr}
        seen: dict[str, int] = {}
        for g in optimizer.param_groups:
            if g["lr"] is None:
                continue
            name = g.get("name", "group")
            seen[name] = seen.get(name, 0) + 1
            key = f"lr/{name}" if seen[name] == 1 else f"lr/{name}{seen[name]}"
            values[key] = float(g["lr"])
            if "d" in g:  # D-Adaptation / Prodigy: the effective lr, as sd-scripts logs it
                values[f"lr/d*lr/{key[3:]}"] = float(g["d"]) * float(g["lr"])
        self._log(values, step)

    def epoch(self, epoch: int, avr: float) -> None:
        """End of epoch `epoch` (1-based): the epoch's average loss."""
        self._log({"loss/epoch": avr}, epoch)

    def close(self) -> None:
        for t in self.trackers:
            t.finish()
        self.trackers = []


def config_values(args) -> dict:
    """The options as tracker hyperparameters (`log_config`), as sd-scripts' `get_sanitized_config_or_none`:
    without API keys/tokens and paths; bool/int/float/str as they are, None as "None", others as text."""
    out = {}
    for k, v in sorted(vars(args).items()):
        if k in SENSITIVE or k in SENSITIVE_PATHS:
            continue
        if v is None or isinstance(v, (bool, int, float, str)):
            out[k] = v if v is not None else "None"
        else:
            out[k] = str(v)
    return out
