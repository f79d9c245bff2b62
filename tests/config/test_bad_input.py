"""Hostile values never crash `lora-tui validate` / `print`: each becomes a problem (or a load error) naming its
field; exit 0 = no error, 1 = the config has errors, 2 = the command could not run. Ends with a seeded fuzz run
over mutated kohya_ss presets (in-process for speed, plus a few real CLI processes for the exit codes)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from config_helpers import FIXTURES, REPO
from lora_tui import cli
from lora_tui.plan.rules import INTERNAL_MARK

BASE = {"LoRA_type": "Standard", "sdxl": True, "network_dim": 8, "network_alpha": 8, "output_name": "face",
        "learning_rate": 0.0001, "max_resolution": "512,512", "epoch": 1, "train_batch_size": 1}


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path, monkeypatch):
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))


class _Bytes(io.TextIOWrapper):
    """A stdout like a terminal's: text encoded to UTF-8 strictly into a byte buffer."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", errors="strict")

    def text(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode("utf-8")


def main(*argv: str) -> tuple[int, str, str]:
    """``lora-tui ARGV`` in this process: (exit status, stdout, stderr)."""
    out, err = _Bytes(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(list(argv))
        except SystemExit as exc:
            rc = int(exc.code or 0)
    return rc, out.text(), err.getvalue()


def write(tmp_path: Path, text: str, name: str = "c.json") -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def check(tmp_path, text: str, field: str, words: str = "") -> str:
    """validate and print --json of a config ``text``: exit 1, no traceback, an error naming ``field`` (as a
    problem on it, or in the load error); returns the messages seen."""
    path = write(tmp_path, text)
    seen = []
    for argv in (("validate", path), ("print", "--json", path)):
        rc, out, err = main(*argv)
        assert "Traceback" not in err and "internal error" not in err and INTERNAL_MARK not in out, (argv, err, out)
        assert rc == 1, (argv, rc, err, out[-2000:])
        if err:  # the file did not load: the error names the field
            assert f"{field}:" in err, err
            seen.append(err)
        elif argv[0] == "print":
            problems = [p for p in json.loads(out)["problems"] if p["severity"] == "error"]
            assert any(p["field"] == field for p in problems), problems
            seen.append("\n".join(p["message"] for p in problems if p["field"] == field))
        else:
            assert f"error: {field}: " in out, out
            seen.append("\n".join(line for line in out.splitlines() if line.startswith(f"error: {field}: ")))
    assert all(len(line) < 2500 for m in seen for line in m.splitlines()), [len(m) for m in seen]
    if words:
        assert all(words in m for m in seen), seen
    return "\n".join(seen)


def cfg_text(**values) -> str:
    return json.dumps({**BASE, **values})


def test_integer_past_pythons_digit_limit_names_its_field(tmp_path):
    text = cfg_text(network_dim="HUGE").replace('"HUGE"', "9" * 5000)
    check(tmp_path, text, "network_dim", "5000 digits")


def test_integer_too_large_for_a_float_names_its_field(tmp_path):
    check(tmp_path, cfg_text(noise_offset=10**350), "noise_offset", "too large")
    check(tmp_path, cfg_text(network_dim=2**70), "network_dim", "out of range")


def test_deep_nesting_names_its_field(tmp_path):
    text = cfg_text(keep_tokens="DEEP").replace('"DEEP"', "[" * 50_000 + "]" * 50_000)
    check(tmp_path, text, "keep_tokens", "nested too deep")
    text = cfg_text(keep_tokens="DEEP").replace('"DEEP"', "[" * 60 + "]" * 60)  # parses; not a number
    msg = check(tmp_path, text, "keep_tokens")
    assert "[[[[[[" not in msg  # the value is shown cut, not 60 levels deep


def test_lone_surrogate_in_text(tmp_path):
    # json.dumps writes "\ud800" as the escape a broken file holds
    check(tmp_path, cfg_text(output_name="face\ud800"), "output_name", "surrogate")
    # in a key that is ignored: reported in the notes, printed escaped
    path = write(tmp_path, json.dumps({**BASE, "odd\udc00key": 1}))
    for argv in (("validate", path), ("print", path), ("print", "--json", path)):
        rc, out, err = main(*argv)
        assert rc in (0, 1) and "Traceback" not in err, err
        assert "odd\\udc00key" in out or "odd\\\\udc00key" in out, out[-500:]


def test_names_longer_than_the_file_system_allows(tmp_path):
    out_dir = tmp_path / "out"
    msg = check(tmp_path, cfg_text(output_dir=str(out_dir), output_name="n" * 300), "output_name",
                "bytes")
    assert "shorten it to at most" in msg
    # 240 bytes is a legal file name, but not once the trainer adds '-step00000010.safetensors'
    check(tmp_path, cfg_text(output_dir=str(out_dir), output_name="n" * 240), "output_name", "limit")
    check(tmp_path, cfg_text(output_dir=str(tmp_path / ("d" * 300))), "output_dir", "File name too long")
    check(tmp_path, cfg_text(train_data_dir=str(tmp_path / ("d" * 300) / "img")), "train_data_dir",
          "File name too long")


@pytest.mark.parametrize("values, field", [
    ({"enable_bucket": True, "min_bucket_reso": 0}, "min_bucket_reso"),
    ({"enable_bucket": True, "bucket_reso_steps": 0}, "bucket_reso_steps"),
    ({"enable_bucket": True, "bucket_reso_steps": -64}, "bucket_reso_steps"),
    ({"enable_bucket": True, "min_bucket_reso": 2048, "max_bucket_reso": 256}, "min_bucket_reso"),
    ({"enable_bucket": True, "max_bucket_reso": 10**12}, None),
])
def test_bucket_settings_that_divide_by_zero(tmp_path, values, field):
    """With images to count, so that the bucket arithmetic runs."""
    from PIL import Image

    img = tmp_path / "img" / "5_face"
    img.mkdir(parents=True)
    for i, size in enumerate(((512, 512), (640, 384))):
        Image.new("RGB", size).save(img / f"{i}.png")
    text = cfg_text(train_data_dir=str(tmp_path / "img"), bucket_no_upscale=False, **values)
    if field:
        check(tmp_path, text, field)
    else:
        rc, out, err = main("print", "--json", write(tmp_path, text))
        assert rc in (0, 1) and "Traceback" not in err and INTERNAL_MARK not in out


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_inf(tmp_path, value):
    check(tmp_path, cfg_text(learning_rate=value), "learning_rate", "finite")
    check(tmp_path, cfg_text(network_dim=value), "network_dim")


def test_a_megabyte_value_is_not_echoed(tmp_path):
    check(tmp_path, cfg_text(train_batch_size="x" * 1_000_000), "train_batch_size",
          "1000000 characters")
    path = "/" + "p" * 1_000_000
    check(tmp_path, cfg_text(pretrained_model_name_or_path=path), "pretrained_model_name_or_path")


def test_exit_2_when_the_command_could_not_run(tmp_path, monkeypatch):
    # no file: nothing was checked
    rc, out, err = main("validate", str(tmp_path / "missing.json"))
    assert rc == 2 and "file not found" in err
    # a bug inside planning (injected): exit 2 with the traceback, never 1 ("the config has errors")
    import lora_tui.plan

    def broken(*a, **k):
        raise ZeroDivisionError("injected")

    path = write(tmp_path, cfg_text())
    for argv in (("validate", path), ("print", path)):
        monkeypatch.setattr(lora_tui.plan, "make_plan", broken)
        rc, out, err = main(*argv)
        assert rc == 2 and "internal error: ZeroDivisionError: injected" in err and "Traceback" in err


def test_a_failing_rule_is_an_error_not_a_clean_result(monkeypatch):
    """One rule's bug (injected) becomes an error problem, and the other rules still run."""
    from lora_tui.config.app_settings import AppSettings
    from lora_tui.config.model import TrainingConfig
    from lora_tui.plan import make_plan, rules

    def broken(out, cfg):
        raise KeyError("injected")

    monkeypatch.setattr(rules, "_input_rules", broken)
    plan = make_plan(TrainingConfig(sdxl=True, network_dim=0), AppSettings())
    assert any(p.severity == "error" and INTERNAL_MARK in p.message and "injected" in p.message
               for p in plan.problems)
    assert any(p.field == "network_dim" for p in plan.errors)


# --- seeded fuzz ----------------------------------------------------------------------------------------------

_PLACEHOLDER = "\u2063FUZZ\u2063"


def _mutate(rng: random.Random, data: dict, tmp_path: Path) -> str:
    """One to three mutations of a preset, as JSON text (some values only exist as text: 5,000-digit numbers,
    nesting past Python's recursion limit)."""
    d = dict(data)
    keys = list(d) + ["output_dir", "output_name", "train_data_dir", "pretrained_model_name_or_path",
                      "network_weights", "sample_prompts", "additional_parameters", "min_bucket_reso",
                      "max_bucket_reso", "bucket_reso_steps", "max_resolution", "dataset_config"]
    raw: dict[str, str] = {}
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["swap", "huge", "bigint", "surrogate", "deep", "long", "remove", "nan", "path",
                           "bucket", "zero"])
        k = rng.choice(keys)
        if kind == "swap":
            d[k] = rng.choice([[], {}, "x", 1, 2.5, True, None, "", [1, 2], {"a": 1}, "--x", -1])
        elif kind == "huge":
            d[k] = _PLACEHOLDER + k
            raw[k] = rng.choice(["9" * 5000, "-" + "9" * 4400, "1" + "0" * 400 + ".5"])
        elif kind == "bigint":
            d[k] = rng.choice([2**64, 10**400, -(10**30)])
        elif kind == "surrogate":
            d[k] = rng.choice(["a\ud800", "\udfff", "x\udc80y"])
        elif kind == "deep":
            n = rng.choice([40, 5000, 100_000])
            d[k] = _PLACEHOLDER + k
            raw[k] = "[" * n + "]" * n if rng.random() < 0.5 else '{"a":' * n + "1" + "}" * n
        elif kind == "long":
            d[k] = rng.choice(["x" * 300, "y " * 3000, "z" * 1_000_000 if rng.random() < 0.3 else "z" * 9000])
        elif kind == "remove":
            for kk in rng.sample(list(d), min(len(d), rng.randint(1, 15))):
                d.pop(kk)
        elif kind == "nan":
            d[k] = rng.choice([float("nan"), float("inf"), float("-inf")])
        elif kind == "path":
            k = rng.choice(["output_dir", "output_name", "train_data_dir", "pretrained_model_name_or_path",
                            "network_weights", "dataset_config", "logging_dir", "vae", "reg_data_dir"])
            d[k] = rng.choice([str(tmp_path / ("l" * 300)), "n" * 5000, "/etc/passwd", "/dev/null", "/", "a\x00b",
                               str(tmp_path), "~/x", "../" * 50])
        elif kind == "bucket":
            d["enable_bucket"] = True
            d[rng.choice(["min_bucket_reso", "max_bucket_reso", "bucket_reso_steps"])] = rng.choice(
                [0, -64, 1, 3, 10**6, 10**12])
        else:
            d[k] = 0
    text = json.dumps(d)
    for k, v in raw.items():
        text = text.replace(json.dumps(_PLACEHOLDER + k), v)
    return text


def test_fuzzed_presets_never_crash(tmp_path, monkeypatch):
    rng = random.Random(19)
    parser = cli.build_parser()  # built once: argparse's gettext lookups cost 15 ms a build
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    from PIL import Image

    img = tmp_path / "img" / "3_face"
    img.mkdir(parents=True)
    for i, size in enumerate(((512, 512), (640, 384), (300, 700))):
        Image.new("RGB", size).save(img / f"{i}.png")
        (img / f"{i}.txt").write_text("a face", encoding="utf-8")
    # Paths the shipped presets lack (kohya_ss convention), so that many mutants pass and the dataset scan, the
    # bucket arithmetic and the launch all run; a Hub id as base model is a warning only.
    paths = {"pretrained_model_name_or_path": "stabilityai/stable-diffusion-xl-base-1.0",
             "output_dir": str(tmp_path / "out"), "train_data_dir": str(tmp_path / "img")}
    presets = [{**json.loads(p.read_text(encoding="utf-8")), **paths} for p in FIXTURES]
    files = []
    for i in range(300):
        files.append(write(tmp_path, _mutate(rng, rng.choice(presets), tmp_path), f"m{i}.json"))
    # validate runs the bundled trainer's --preflight (a torch process) on a config without errors: the fuzz
    # validates against an upstream trainer folder instead (stand-in entry points; no preflight), and print (no
    # preflight) covers the bundled trainer's rules.
    upstream = tmp_path / "sd-scripts-upstream"
    upstream.mkdir()
    for script in ("train_network.py", "sdxl_train_network.py", "flux_train_network.py", "sd3_train_network.py"):
        (upstream / script).write_text("# stand-in entry point name\n")
    up_config = tmp_path / "xdg_upstream"
    (up_config / "lora-tui").mkdir(parents=True)
    (up_config / "lora-tui" / "settings.toml").write_text(f"sd_scripts_dir = {json.dumps(str(upstream))}\n")
    bundled_config = os.environ["XDG_CONFIG_HOME"]
    by_code: dict[int, list[str]] = {0: [], 1: []}
    for path in files:
        for argv in (("validate", path), ("print", "--json", path)):
            monkeypatch.setenv("XDG_CONFIG_HOME", str(up_config) if argv[0] == "validate" else bundled_config)
            rc, out, err = main(*argv)
            where = f"{argv} {Path(path).read_text(encoding='utf-8')[:300]}"
            assert rc in (0, 1), (where, rc, err[-3000:])
            assert "Traceback" not in err and INTERNAL_MARK not in out, (where, err[-3000:], out[-3000:])
            assert len(err) < 5000 and (argv[0] == "print" or len(out) < 200_000), where
            if argv[0] == "validate":
                by_code[rc].append(path)
            if argv[0] == "print" and not err:
                problems = json.loads(out)["problems"]
                assert rc == int(any(p["severity"] == "error" for p in problems)), where
    assert len(by_code[0]) >= 5 and len(by_code[1]) >= 5  # the mutants both pass and fail
    # A few through the real command line: the exit status a script sees, and no traceback.
    env = {**os.environ, "XDG_CONFIG_HOME": str(up_config)}
    for rc, paths in by_code.items():
        for path in paths[:2]:
            r = subprocess.run([sys.executable, "-m", "lora_tui", "validate", path], capture_output=True, env=env,
                               cwd=REPO, timeout=60)
            assert r.returncode == rc and b"Traceback" not in r.stderr, (path, r.stderr[-2000:])


def test_numbers_typed_into_the_form_that_no_toml_holds():
    """The form (pydantic) takes any digits: a 401-digit network_dim, an lr_warmup past a float. The plan names
    the field; nothing fails inside it."""
    from lora_tui.config.app_settings import AppSettings
    from lora_tui.config.model import TrainingConfig
    from lora_tui.plan import make_plan

    huge = "1" + "0" * 400
    for name in ("network_dim", "lr_warmup", "min_snr_gamma", "seed", "max_train_steps"):
        cfg = TrainingConfig.model_validate({"sdxl": True, "lr_scheduler": "cosine", name: huge})
        plan = make_plan(cfg, AppSettings())
        assert not [p for p in plan.problems if INTERNAL_MARK in p.message], plan.problems
        [p] = [p for p in plan.errors if p.field == name and "out of range" in p.message]
        assert len(p.message) < 300
        info = cli.describe(cfg, AppSettings())  # print's object: built, the launch's failure a problem
        assert any(p["field"] == name for p in info["problems"])


def test_fuzzed_dataset_configs_never_crash(tmp_path):
    """A dataset_config TOML with hostile values (its own bucket settings, an infinite resolution, nesting past
    the parser's recursion) is reported, never a crash or a failed rule."""
    from PIL import Image

    from lora_tui.config.app_settings import AppSettings
    from lora_tui.config.model import TrainingConfig
    from lora_tui.plan import make_plan

    img = tmp_path / "img"
    img.mkdir()
    for i, size in enumerate(((512, 512), (640, 384))):
        Image.new("RGB", size).save(img / f"{i}.png")
    keys = ["min_bucket_reso", "max_bucket_reso", "bucket_reso_steps", "resolution", "batch_size", "num_repeats",
            "enable_bucket", "bucket_no_upscale", "keep_tokens", "caption_extension", "image_dir"]
    values = ["0", "-64", "1", "10000000000000", "1" + "0" * 30, "nan", "inf", '"x"', "[1,2]", "{a=1}", "true",
              "1e400", '"' + "z" * 5000 + '"', '"\\ud7ff"']
    rng = random.Random(19)
    toml = tmp_path / "data.toml"
    for _ in range(60):
        general = ["[general]", "enable_bucket = true"]
        subset = ["[[datasets]]", "[[datasets.subsets]]", f"image_dir = {json.dumps(str(img))}"]
        for _ in range(rng.randint(1, 3)):
            (general if rng.random() < 0.5 else subset).append(f"{rng.choice(keys)} = {rng.choice(values)}")
        text = "\n".join(general + subset) + "\n"
        if rng.random() < 0.1:
            text = "a = " + "[" * 5000 + "]" * 5000 + "\n"
        toml.write_text(text, encoding="utf-8")
        cfg = TrainingConfig(sdxl=True, dataset_config=str(toml), pretrained_model_name_or_path="a/b",
                             output_dir=str(tmp_path / "out"))
        plan = make_plan(cfg, AppSettings())
        assert not [p for p in plan.problems if INTERNAL_MARK in p.message], (text[:300], plan.problems)
        cli.describe(cfg, AppSettings())
