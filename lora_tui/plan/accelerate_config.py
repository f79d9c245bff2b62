"""The accelerate config file that ``accelerate launch`` reads on its own, found and read without accelerate.

``accelerate launch`` fills every option it is not given from ``$HF_HOME/accelerate/default_config.yaml``
(``$XDG_CACHE_HOME/huggingface/...``, ``~/.cache/huggingface/...`` when those are unset), or from the file
named by ``--config_file``; the default file is skipped only under ``--cpu`` (accelerate 1.x,
``commands/launch.py:_validate_launch_command``). A file left by ``accelerate config`` for another project can
therefore turn a launch into DeepSpeed, SageMaker or CPU training, or restrict it to other GPUs. The rules report
that (``rules_launch``); this module only finds and reads the file.
"""
from __future__ import annotations

import functools
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


# Keys ``BaseConfig.process_config`` (accelerate/commands/config/config_args.py) converts to the new format
# before it compares the file's keys with the dataclass fields: an old file may hold them.
_CONVERTED_KEYS = frozenset({"fp16", "dynamo_backend"})


def cluster_config_keys(accelerate_dir: str | os.PathLike[str]) -> Optional[frozenset[str]]:
    """The keys accelerate's ``ClusterConfig`` accepts in a config file, read from the installed accelerate's
    source (``<accelerate_dir>/commands/config/config_args.py``: the annotated fields of ``BaseConfig`` and
    ``ClusterConfig``, plus the old keys it converts) without importing accelerate (which imports torch).
    ``ClusterConfig.from_yaml_file``/``from_json_file`` raise ``ValueError: The config file at ... had unknown
    keys`` for any other top-level key, so ``accelerate launch`` stops on them. None when the source is missing or
    not in that shape (another accelerate layout: nothing to compare against). Cached per file (path, mtime)."""
    path = Path(accelerate_dir) / "commands" / "config" / "config_args.py"
    try:
        st = path.stat()
    except OSError:
        return None
    return _cluster_keys(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _cluster_keys(path: str, mtime_ns: int, size: int) -> Optional[frozenset[str]]:
    import ast

    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    if "ClusterConfig" not in classes or "BaseConfig" not in classes:
        return None
    keys: set[str] = set()
    for name in ("BaseConfig", "ClusterConfig"):
        for stmt in classes[name].body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                keys.add(stmt.target.id)
    return frozenset(keys | _CONVERTED_KEYS) if keys else None


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
