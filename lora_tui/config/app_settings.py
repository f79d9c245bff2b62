"""App settings (not training settings): where the trainer is, which Python runs it, grace time, directories.

Stored as TOML in ``$XDG_CONFIG_HOME/lora-tui/settings.toml`` (platformdirs' user config dir elsewhere).
Paths default to: the bundled ``sd-scripts/``, the running interpreter, ``<config>/presets``, the user state dir
(``$XDG_STATE_HOME/lora-tui``) and the user cache dir (``$XDG_CACHE_HOME/lora-tui``).
"""

from __future__ import annotations

import os
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from pathlib import Path
from typing import Optional

import platformdirs
import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lora_tui.config.atomic import atomic_write_text
from lora_tui.config.paths import BUNDLED_SD_SCRIPTS

APP_NAME = "lora-tui"


def config_dir() -> Path:
    """The user config dir for lora-tui (honours ``XDG_CONFIG_HOME``)."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def settings_path() -> Path:
    """``<config dir>/settings.toml``."""
    return config_dir() / "settings.toml"


class AppSettings(BaseModel):
    """App-level settings. ``python``: the interpreter that runs the trainer (``accelerate`` is looked up next to
    it); ``stop_grace_s``: seconds Stop waits for a clean exit before escalating."""

    model_config = ConfigDict(validate_assignment=True, extra="ignore")

    sd_scripts_dir: Path = Field(default_factory=lambda: BUNDLED_SD_SCRIPTS)
    python: str = Field(default_factory=lambda: sys.executable)
    stop_grace_s: float = Field(60.0, ge=0)
    presets_dir: Path = Field(default_factory=lambda: config_dir() / "presets")
    state_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)))
    cache_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)))


class SettingsError(ValueError):
    """settings.toml exists but cannot be read; the message names the file and the key."""


def load_app_settings(path: Optional[os.PathLike[str] | str] = None) -> AppSettings:
    """Read ``path`` (default :func:`settings_path`); a missing file gives the defaults.

    ``~`` in paths is expanded. Raises :class:`SettingsError` for invalid TOML or a bad value."""
    p = Path(path) if path is not None else settings_path()
    if not p.is_file():
        return AppSettings()
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{p}: cannot read ({exc})") from None
    for key in ("sd_scripts_dir", "presets_dir", "state_dir", "cache_dir", "python"):
        if isinstance(data.get(key), str):
            data[key] = os.path.expanduser(data[key])
    try:
        return AppSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SettingsError(f"{p}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def save_app_settings(settings: AppSettings, path: Optional[os.PathLike[str] | str] = None) -> Path:
    """Write ``settings`` as TOML (atomic) to ``path`` (default :func:`settings_path`). Raises OSError."""
    p = Path(path) if path is not None else settings_path()
    data = {k: str(v) if isinstance(v, Path) else v for k, v in settings.model_dump().items()}
    return atomic_write_text(p, tomli_w.dumps(data))
