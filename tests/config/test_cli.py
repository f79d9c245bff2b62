"""`lora-tui print` / `validate` as real subprocesses."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from config_helpers import FIXTURES, REPO, tomllib

LORA_TUI = [sys.executable, "-m", "lora_tui"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(LORA_TUI + list(args), capture_output=True, env=env, cwd=REPO, timeout=60)


def test_print_json_shape(tmp_path):
    out_dir = tmp_path / "out"
    r = run("print", "--json", str(REPO / "presets" / "sdxl-face-lora.json"), "--set", f"output_dir={out_dir}",
            "--set", "network_dim=48", "--set", "optimizer=Prodigy")
    info = json.loads(r.stdout)
    assert set(info) >= {"argv", "config_toml", "settings", "steps", "problems"}
    assert all(isinstance(a, str) for a in info["argv"]) and info["argv"][1] == "launch"
    toml = tomllib.loads(info["config_toml"])
    assert toml["network_dim"] == 48 and toml["optimizer_type"] == "Prodigy"
    assert info["settings"]["network_dim"] == 48
    for p in info["problems"]:
        assert set(p) == {"field", "severity", "message"} and p["severity"] in ("error", "warning")
    if info["steps"] is not None:
        assert {"images", "repeats_images", "reg_images", "batches_per_epoch", "epochs", "max_train_steps",
                "lr_warmup_steps"} <= set(info["steps"])
    errors = [p for p in info["problems"] if p["severity"] == "error"]
    assert r.returncode == (1 if errors else 0)
    assert not out_dir.exists()  # print writes nothing


def test_unicode_names_give_utf8_toml_under_lang_c(tmp_path):
    cfg = tmp_path / "u.json"
    cfg.write_text(json.dumps({"sdxl": True, "output_name": "кот_v1", "sample_prompts": "café au lait",
                               "output_dir": str(tmp_path / "выход")}, ensure_ascii=False), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIOENCODING", "PYTHONUTF8"))}
    env["LANG"] = "C"
    env["LC_ALL"] = "C"
    r = run("print", "--json", str(cfg), env=env)
    assert r.returncode in (0, 1), r.stderr.decode("utf-8", "replace")
    info = json.loads(r.stdout.decode("utf-8"))
    toml = tomllib.loads(info["config_toml"])
    assert toml["output_name"] == "кот_v1" and toml["output_dir"].endswith("выход")
    assert info["settings"]["sample_prompts"] == "café au lait"
    text = run("print", str(cfg), env=env)
    assert "кот_v1" in text.stdout.decode("utf-8")


def test_print_text_and_validate_on_a_kohya_fixture():
    fixture = next(p for p in FIXTURES if p.name == "SDXL - LoRA AI_Now prodigy v1.0.json")
    r = run("print", str(fixture))
    out = r.stdout.decode("utf-8")
    assert "# config TOML" in out and 'optimizer_type = "Prodigy"' in out
    assert "lora_network_weights: legacy key renamed to network_weights" in out
    v = run("validate", str(fixture))
    assert v.returncode == r.returncode and v.returncode in (0, 1)
    problems, notes = v.stdout.decode("utf-8").split("\n\n# notes (reading the file)\n")
    assert problems.startswith(("error: ", "warning: ", "no problems"))
    assert "- lora_network_weights: legacy key renamed to network_weights" in notes
    assert "- ignored (no effect in lora-tui): no_token_padding" in notes  # what a kohya user loses


def test_unreadable_value_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"train_batch_size": "two"}', encoding="utf-8")
    r = run("print", str(bad))
    assert r.returncode == 1 and b"train_batch_size" in r.stderr and b"Traceback" not in r.stderr
    r = run("print", str(bad), "--set", "train_batch_size=2", "--set", "nope=1")
    assert r.returncode == 2 and b"nope" in r.stderr
    missing = tmp_path / "missing.json"
    r = run("validate", str(missing))
    # exit 2: there is no config to check (1 would say "the config has errors")
    assert r.returncode == 2 and r.stderr.decode() == f"lora-tui: error: {missing}: file not found\n"  # named once
    r = run("print", "--json", str(bad), "--set", "train_batch_size=2")  # --set fixes the file's value
    assert json.loads(r.stdout)["settings"]["train_batch_size"] == 2
    # a kohya_ss Textual Inversion config is refused, not trained as a default LoRA
    ti = next(p for p in FIXTURES if p.name == "test-TI-AdamW8bit-SDXL.json")
    r = run("validate", str(ti))
    assert r.returncode == 1 and b"Textual Inversion config" in r.stderr and b"LoRA networks only" in r.stderr
    assert b"Traceback" not in r.stderr and b"networks.lora" not in r.stdout


def test_a_top_level_set_applies_to_the_file_or_is_refused(tmp_path):
    preset = str(REPO / "presets" / "sdxl-face-lora.json")
    r = run("--set", "network_dim=32", "--set", "seed=5", "print", "--json", preset, "--set", "seed=6")
    settings = json.loads(r.stdout)["settings"]
    assert (settings["network_dim"], settings["seed"]) == (32, 6)  # the subcommand's own --set comes last
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    r = run("--set", "network_dim=32", "jobs", env=env)
    assert r.returncode == 2 and not r.stdout
    assert r.stderr.decode().startswith("lora-tui: error: --set: `lora-tui jobs` reads no config")


def test_output_into_a_closed_pipe_is_not_an_error(tmp_path):
    """`lora-tui jobs | head`: the reader leaves early; no BrokenPipeError traceback."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "lora_tui", "jobs"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # closed before the command writes
    err = proc.stderr.read().decode()
    proc.wait(timeout=30)
    assert "BrokenPipeError" not in err and "Traceback" not in err


def test_set_over_a_config_in_memory():
    """`--set` over the defaults or the demo config (no file): the JSON loader's reading, its errors naming the key."""
    import pytest

    from lora_tui.cli import CliError, apply_sets
    from lora_tui.config.model import TrainingConfig

    cfg, notes = apply_sets(TrainingConfig(seed=7), ["network_dim=48", "max_resolution=512", "seed="])
    assert (cfg.network_dim, cfg.max_resolution, cfg.seed) == (48, "512,512", None)
    assert notes[0] == "network_dim: set to '48' from the command line"
    for bad, key in (["network_dim=1.5"], "network_dim"), (["xformers=true"], "xformers"), (["nope=1"], "nope"):
        with pytest.raises(CliError) as exc:
            apply_sets(TrainingConfig(), bad)
        assert exc.value.code == 2 and str(exc.value).startswith(f"--set {key}:")
    for typo, hint in (("learnig_rate", "did you mean learning_rate?"), ("optimiser", "did you mean optimizer "),
                       ("Network_Dim", "did you mean network_dim?"),
                       ("lora_network_weights", "old name for network_weights; use --set network_weights="),
                       ("no_token_padding", "no effect in lora-tui"), ("zzz", "network_dim, learning_rate;")):
        with pytest.raises(CliError) as exc:
            apply_sets(TrainingConfig(), [f"{typo}=1"])
        assert exc.value.code == 2 and str(exc.value).startswith(f"--set {typo}: ") and hint in str(exc.value)


def _with_settings(tmp_path, text: str) -> dict:
    """An environment whose lora-tui settings.toml holds ``text`` (XDG dirs under ``tmp_path``)."""
    env = {**os.environ, **{v: str(tmp_path / v.lower()) for v in ("XDG_CONFIG_HOME", "XDG_STATE_HOME",
                                                                     "XDG_CACHE_HOME")}}
    conf = tmp_path / "xdg_config_home" / "lora-tui"
    conf.mkdir(parents=True)
    (conf / "settings.toml").write_text(text, encoding="utf-8")
    return env


def test_demo_with_a_missing_trainer_python_explains(tmp_path):
    env = _with_settings(tmp_path, f'python = "{tmp_path / "no_such_python"}"\n')
    r = run("--demo", env=env)
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("lora-tui: error: --demo: could not run") and "no_such_python" in last


def test_bad_settings_file_is_a_message(tmp_path):
    r = run("print", str(REPO / "presets" / "sdxl-face-lora.json"),
            env=_with_settings(tmp_path, 'stop_grace_s = "soon"\n'))
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err, err
    assert err.startswith("lora-tui: error: ") and "settings.toml: stop_grace_s" in err
