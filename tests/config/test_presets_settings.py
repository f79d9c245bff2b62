"""Preset discovery, what a preset applied over the form does to kept values it makes invalid, and app settings
(XDG paths, TOML file)."""
from __future__ import annotations

import json
import sys

import pytest

from lora_tui.config.app_settings import AppSettings, SettingsError, load_app_settings, save_app_settings, settings_path
from lora_tui.config.kohya_json import load_config_file
from lora_tui.config.model import family
from lora_tui.config.model import TrainingConfig
from lora_tui.config.paths import BUNDLED_PRESETS, BUNDLED_SD_SCRIPTS
from lora_tui.config.presets import NEVER_RESET, find_preset, list_presets, reset_invalid_kept

SHIPPED = {"sdxl-face-lora": "sdxl", "sd15-character-lora": "sd1", "sdxl-style-lora": "sdxl",
           "sdxl-locon": "sdxl", "flux1-lora": "flux1", "sd3-lora": "sd3"}


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    return tmp_path


def test_defaults_follow_xdg(xdg):
    s = load_app_settings()
    assert s.sd_scripts_dir == BUNDLED_SD_SCRIPTS and s.python == sys.executable and s.stop_grace_s == 60
    assert s.state_dir == xdg / "xdg_state_home" / "lora-tui"
    assert s.cache_dir == xdg / "xdg_cache_home" / "lora-tui"
    assert s.presets_dir == xdg / "xdg_config_home" / "lora-tui" / "presets"
    assert settings_path() == xdg / "xdg_config_home" / "lora-tui" / "settings.toml"


def test_settings_save_and_load(xdg):
    s = AppSettings(sd_scripts_dir=xdg / "upstream sd-scripts", stop_grace_s=5)
    save_app_settings(s)
    again = load_app_settings()
    assert again.sd_scripts_dir == xdg / "upstream sd-scripts" and again.stop_grace_s == 5
    settings_path().write_text('stop_grace_s = "soon"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="stop_grace_s"):
        load_app_settings()
    settings_path().write_text("stop_grace_s = \n", encoding="utf-8")
    with pytest.raises(SettingsError, match="settings.toml"):
        load_app_settings()


def test_shipped_presets_are_found_and_pick_their_family(xdg):
    refs = {p.name: p for p in list_presets()}
    assert set(SHIPPED) <= set(refs)
    for name, fam in SHIPPED.items():
        cfg = load_config_file(refs[name].path).config
        assert family(cfg) == fam, name
    for name in SHIPPED:  # like kohya_ss presets: no paths, so applying one keeps the user's folders
        data = json.loads(refs[name].path.read_text(encoding="utf-8"))
        assert not {"pretrained_model_name_or_path", "train_data_dir", "output_dir", "reg_data_dir"} & set(data)
    face = load_config_file(refs["sdxl-face-lora"].path).config
    assert (face.network_dim, face.network_alpha, face.epoch, face.xformers) == (16, 16, 6, "sdpa")
    assert face.max_train_steps is None and face.unet_lr is None and face.scale_weight_norms is None
    locon = load_config_file(refs["sdxl-locon"].path).config
    assert locon.LoRA_type == "Kohya LoCon" and (locon.conv_dim, locon.conv_alpha) == (8, 4)


def test_user_presets_are_listed_and_win_by_name(xdg):
    settings = load_app_settings()
    settings.presets_dir.mkdir(parents=True)
    (settings.presets_dir / "My Face.json").write_text(json.dumps({"network_dim": 4}), encoding="utf-8")
    (settings.presets_dir / "sdxl-face-lora.json").write_text(json.dumps({"network_dim": 2}), encoding="utf-8")
    refs = list_presets(settings)
    assert [r.origin for r in refs][-2:] == ["user", "user"]
    assert find_preset("my face", settings).path.name == "My Face.json"
    assert find_preset("sdxl-face-lora.json", settings).origin == "user"
    assert find_preset("nothing", settings) is None


def _plan_errors(cfg):
    from lora_tui.plan import validate

    errors = {}
    for p in validate(cfg, None, AppSettings(sd_scripts_dir=BUNDLED_SD_SCRIPTS)):
        if p.severity == "error":
            errors.setdefault(p.field, p.message)
    return errors


def test_a_preset_resets_a_kept_value_it_makes_invalid_but_never_a_path(tmp_path):
    # The demo's form (SDXL, bucket steps 32) with a dataset folder that is not there: the SD1.5 preset sets neither.
    form = TrainingConfig(sdxl=True, bucket_reso_steps=32, train_data_dir=str(tmp_path / "gone"), network_dim=8)
    result = load_config_file(BUNDLED_PRESETS / "sd15-character-lora.json", base=form)
    assert {"bucket_reso_steps", "train_data_dir"} <= set(result.defaulted)
    assert "bucket_reso_steps" in _plan_errors(result.config)
    cfg, notes = reset_invalid_kept(result.config, result.defaulted, _plan_errors)
    assert cfg.bucket_reso_steps == 64 and "bucket_reso_steps" not in _plan_errors(cfg)
    assert notes == ["bucket_reso_steps: 32 from the form is invalid with this preset (must be a multiple of 64 for "
                     "SD1.x (the trainer refuses it): use 64); took the default 64"]
    # The missing folder and the empty checkpoint stay errors: the user's to fix, not the preset's.
    assert cfg.train_data_dir == str(tmp_path / "gone") and {"train_data_dir", "pretrained_model_name_or_path"} <= set(
        _plan_errors(cfg)) <= {"train_data_dir", "pretrained_model_name_or_path", "output_dir"}
    assert {"train_data_dir", "pretrained_model_name_or_path", "output_dir", "output_name"} <= NEVER_RESET
    # Everything else is as applied: only the reset field changed.
    assert {k for k, v in cfg.model_dump().items() if v != getattr(result.config, k)} == {"bucket_reso_steps"}
    # Over a valid SD1.x form nothing changes.
    again, none = reset_invalid_kept(cfg, result.defaulted, _plan_errors)
    assert again == cfg and none == []


def test_only_kept_fields_whose_default_is_valid_are_reset():
    cfg = TrainingConfig(network_dim=999, learning_rate=0.5, network_alpha=3.0)

    def errors_of(c):  # network_dim is an error at any value, learning_rate only off its default
        return {"network_dim": "never right", "network_alpha": "odd",
                **({"learning_rate": "too high"} if c.learning_rate == 0.5 else {})}

    out, notes = reset_invalid_kept(cfg, ["network_dim", "learning_rate"], errors_of)
    # network_alpha is not kept (the preset set it); network_dim's default is an error as well.
    assert out.network_dim == 999 and out.network_alpha == 3.0
    assert out.learning_rate == TrainingConfig().learning_rate
    assert [n.split(":")[0] for n in notes] == ["learning_rate"] and "took the default" in notes[0]
