"""`save_state` / `resume`: the training state folder `<name>-state` (network weights, optimizer, LR scheduler,
counters, RNG states), written without pickles so `resume` loads it with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

from .args import OptionError
from .console import out


class StateMixin:
    """`Trainer`'s state folders. Reads the trainer's `args` (output_dir), `acc`, `net_prepared`, `optimizer`
    and `scheduler`."""

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
        st = {"current_epoch": epoch, "current_step": step, "python_rng": rng_json(rng.getstate()),
              "random_module": rng_json(random.getstate())}
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
        rng.setstate(rng_state(st["python_rng"]))
        random.setstate(rng_state(st["random_module"]))
        return int(st["current_step"])

    def _remove_state(self, dirname: str) -> None:
        """Delete an old state folder (save_last_n_*_state); only a folder this trainer wrote (train_state.json)."""
        import shutil

        d = Path(self.args.output_dir) / dirname
        if self.acc.is_main_process and (d / "train_state.json").is_file():
            out(f"removing old state: {d}")
            shutil.rmtree(d)


def rng_json(state):
    """`random.getstate()` as JSON-able lists."""
    version, internal, gauss = state
    return [version, list(internal), gauss]


def rng_state(j):
    """Inverse of `rng_json`: a state for `random.setstate`."""
    return (j[0], tuple(j[1]), j[2])
