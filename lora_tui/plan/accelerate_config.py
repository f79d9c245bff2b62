"""The accelerate config file that ``accelerate launch`` reads on its own, found and read without accelerate.

``accelerate launch`` fills every option it is not given from ``$HF_HOME/accelerate/default_config.yaml``
(``$XDG_CACHE_HOME/huggingface/...``, ``~/.cache/huggingface/...`` when those are unset), or from the file
named by ``--config_file``; the default file is skipped only under ``--cpu`` (accelerate 1.x,
``commands/launch.py:_validate_launch_command``). A file left by ``accelerate config`` for another project can
therefore turn a launch into DeepSpeed, SageMaker or CPU training, or restrict it to other GPUs. The rules report
that (``rules_launch``); this module only finds and reads the file.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional


def default_config_path(env: Optional[Mapping[str, str]] = None) -> Path:
    """Where accelerate looks for its default config, from ``env`` (default ``os.environ``): ``$HF_HOME``, else
    ``$XDG_CACHE_HOME/huggingface``, else ``~/.cache/huggingface``, then ``accelerate/default_config.yaml``."""
    env = os.environ if env is None else env
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expanduser(home)) / "accelerate" / "default_config.yaml"


@dataclass
class AccelerateConfigFile:
    """A read accelerate config: ``path``, ``data`` (the top-level mapping, {} when unreadable), ``error`` (why
    it could not be read, "" when it could)."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def get(self, key: str, default: Any = None) -> Any:
        """A top-level value, ``default`` when absent or null."""
        v = self.data.get(key)
        return default if v is None else v


def read_config_file(path: Path) -> AccelerateConfigFile:
    """Read an accelerate config as accelerate does: JSON when the name ends in ``.json``, else YAML (safe
    loader). Never raises: an unreadable or malformed file comes back with ``error`` set."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return AccelerateConfigFile(path, error=f"cannot be read ({exc.__class__.__name__}: {exc})")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml  # PyYAML: a dependency of ours (and of accelerate); imported here to keep start-up fast

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError / ValueError: any parse failure is the same finding
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        return AccelerateConfigFile(path, error=f"is not valid {'JSON' if path.suffix == '.json' else 'YAML'} "
                                                f"({first})")
    if not isinstance(data, dict):
        return AccelerateConfigFile(path, error="does not hold a mapping of settings")
    return AccelerateConfigFile(path, data=data)


def launch_config_file(config_file_option: Optional[str], cpu_only: bool,
                       env: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """The config file ``accelerate launch`` will read: the ``--config_file`` value when given, else the default
    file when it exists and the launch is not a one-process ``--cpu`` launch (accelerate skips it then); None when
    no file applies."""
    if config_file_option:
        return Path(os.path.expanduser(config_file_option))
    if cpu_only:
        return None
    path = default_config_path(env)
    return path if path.is_file() else None
