"""The accelerate side of a launch: exact argv, the environment, and the problems found before Start
(processes, machines, GPU ids, extra launch options, the user-level accelerate config file)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.model import TrainingConfig
from lora_tui.plan.accelerate_config import default_config_path
from lora_tui.plan.launch import accelerate_launch, accelerate_options, build_launch
from lora_tui.plan.rules import validate
from lora_tui.plan.rules_launch import launch_problems

NOW = datetime(2026, 11, 29, 10, 11, 12)
TAIL = ["--num_machines", "1", "--num_cpu_threads_per_process", "2", "--quiet"]


def cfg(**kw) -> TrainingConfig:
    base = dict(mixed_precision="bf16")
    base.update(kw)
    return TrainingConfig(**base)


def problems(c: TrainingConfig, env: dict | None = None, gpus: int | None = None) -> list[tuple[str, str, str]]:
    found = launch_problems(c, env=env if env is not None else {}, gpu_count=gpus)
    return [(p.field, p.severity, p.message) for p in found]


def fields(c: TrainingConfig, severity: str, env: dict | None = None) -> list[str]:
    return [f for f, s, _ in problems(c, env) if s == severity]


# --- argv -----------------------------------------------------------------------------------------------------


def test_one_process_default():
    assert accelerate_options(cfg()) == [
        "--dynamo_backend", "no", "--mixed_precision", "bf16", "--num_processes", "1"] + TAIL
    assert problems(cfg()) == []


def test_several_processes_on_gpus_get_multi_gpu_and_the_gpu_ids():
    c = cfg(num_processes=2, gpu_ids=" 2, 3 ")
    assert accelerate_options(c) == [
        "--dynamo_backend", "no", "--gpu_ids", "2,3", "--mixed_precision", "bf16", "--multi_gpu",
        "--num_processes", "2"] + TAIL
    assert accelerate_launch(c).env == {}
    assert problems(c) == []


def test_quiet_is_passed_once():
    # no launcher traceback under the trainer's own; a user's own -q/--quiet is not doubled
    assert accelerate_options(cfg()).count("--quiet") == 1
    opts = accelerate_options(cfg(extra_accelerate_launch_args="-q"))
    assert "-q" in opts and "--quiet" not in opts


def test_multi_gpu_checkbox_alone_is_not_passed_for_one_process():
    c = cfg(multi_gpu=True)
    assert "--multi_gpu" not in accelerate_options(c)
    assert fields(c, "warning") == ["multi_gpu"] and fields(c, "error") == []
    assert accelerate_options(cfg(multi_gpu=True, num_processes=4)).count("--multi_gpu") == 1


def test_cpu_processes_go_through_torchrun_with_accelerate_use_cpu(tmp_path):
    one = accelerate_launch(cfg(extra_accelerate_launch_args="--cpu"))
    assert one.options == ["--dynamo_backend", "no", "--cpu", "--mixed_precision", "bf16", "--num_processes",
                           "1"] + TAIL
    assert one.env == {}
    two = build_launch(cfg(extra_accelerate_launch_args="--cpu", num_processes=2, gpu_ids="0,1",
                           output_dir=str(tmp_path)), AppSettings(), now=NOW)
    start = two.argv.index("launch") + 1
    assert two.argv[start:two.argv.index("--config_file") - 1] == [
        "--dynamo_backend", "no", "--mixed_precision", "bf16", "--multi_gpu", "--num_processes", "2"] + TAIL
    assert two.env["ACCELERATE_USE_CPU"] == "true"
    assert any("gpu_ids" in n for n in two.notes) and any("gloo" in n for n in two.notes)


def test_multi_node_flags():
    c = cfg(num_processes=4, num_machines=2, machine_rank=1, main_process_ip="10.0.0.1", main_process_port=29501,
            gpu_ids="0,1")
    assert accelerate_options(c) == [
        "--dynamo_backend", "no", "--gpu_ids", "0,1", "--machine_rank", "1", "--main_process_ip", "10.0.0.1",
        "--main_process_port", "29501", "--mixed_precision", "bf16", "--multi_gpu", "--num_processes", "4",
        "--num_machines", "2", "--num_cpu_threads_per_process", "2", "--quiet"]
    assert problems(c) == []


def test_dynamo_options_only_with_a_backend():
    c = cfg(dynamo_backend="inductor", dynamo_mode="max-autotune", dynamo_use_fullgraph=True,
            dynamo_use_dynamic=True)
    assert accelerate_options(c)[:7] == ["--dynamo_backend", "inductor", "--dynamo_mode", "max-autotune",
                                         "--dynamo_use_fullgraph", "--dynamo_use_dynamic", "--mixed_precision"]
    off = cfg(dynamo_mode="max-autotune", dynamo_use_fullgraph=True)
    assert accelerate_options(off)[:3] == ["--dynamo_backend", "no", "--mixed_precision"]
    assert fields(off, "warning") == ["dynamo_mode", "dynamo_use_fullgraph"]


def test_extra_args_split_with_shell_rules_and_never_duplicated():
    c = cfg(num_processes=2, extra_accelerate_launch_args="--main-process-port=1234 --rdzv_conf 'a=b c=d' "
                                                          "--same_network")
    opts = accelerate_options(c)
    assert opts == ["--dynamo_backend", "no", "--main-process-port=1234", "--rdzv_conf", "a=b c=d",
                    "--same_network", "--mixed_precision", "bf16", "--multi_gpu", "--num_processes", "2"] + TAIL
    assert problems(c) == []
    flags = [o.split("=")[0].replace("-", "_") for o in opts if o.startswith("--")]
    assert len(flags) == len(set(flags))


def test_extra_flag_that_a_field_also_sets_is_a_problem_naming_both():
    clash = cfg(extra_accelerate_launch_args="--num_processes=2")
    opts = accelerate_options(clash)
    assert opts.count("--num_processes=2") == 1 and "--num_processes" not in opts
    [(field, sev, msg)] = problems(clash)
    assert (field, sev) == ("extra_accelerate_launch_args", "error")
    assert "--num_processes=2" in msg and "num_processes field" in msg and "'--num_processes 1'" in msg
    same = cfg(extra_accelerate_launch_args="--mixed-precision bf16")
    [(field, sev, msg)] = problems(same)
    assert sev == "warning" and "mixed_precision field" in msg
    twice = cfg(extra_accelerate_launch_args="--same_network --same_network")
    assert fields(twice, "error") == ["extra_accelerate_launch_args"]
    stray = cfg(extra_accelerate_launch_args="--same_network script.py")
    assert "not an option" in problems(stray)[0][2]
    multi = cfg(extra_accelerate_launch_args="--multi_gpu")
    assert "refuses it for one process" in problems(multi)[0][2]
    deepspeed = cfg(num_processes=2, extra_accelerate_launch_args="--use_deepspeed")
    assert any("--multi_gpu and --use_deepspeed" in m for _, _, m in problems(deepspeed))


# --- validation of processes, machines and GPUs ------------------------------------------------------------------


def test_multi_node_validation():
    c = cfg(num_processes=3, num_machines=2, machine_rank=2)
    assert sorted(fields(c, "error")) == ["machine_rank", "main_process_ip", "main_process_port", "num_processes"]
    msg = {f: m for f, _, m in problems(c)}
    assert "from 0 to 1" in msg["machine_rank"] and "multiple of 2" in msg["num_processes"]
    assert sorted(fields(cfg(machine_rank=1, main_process_ip="h"), "warning")) == ["machine_rank",
                                                                                  "main_process_ip"]
    assert fields(cfg(main_process_port=70000), "error") == ["main_process_port"]
    from_extra = cfg(num_processes=2, num_machines=2, extra_accelerate_launch_args="--main_process_ip=10.1.1.1 "
                                                                                   "--main-process-port 2950")
    assert problems(from_extra) == []


@pytest.mark.parametrize("ids,processes,severity,needle", [
    ("0,x", 1, "error", "GPU numbers"),
    ("1,1", 2, "error", "twice"),
    ("0", 2, "error", "list 2 GPUs or lower num_processes to 1"),
    ("0,1,2", 2, "warning", "GPU 2 stays idle"),
    ("all", 2, None, None),
])
def test_gpu_ids(ids, processes, severity, needle):
    found = problems(cfg(gpu_ids=ids, num_processes=processes))
    if severity is None:
        assert found == []
    else:
        [(field, sev, msg)] = found
        assert (field, sev) == ("gpu_ids", severity) and needle in msg


def test_gpus_of_this_machine():
    assert [(f, s) for f, s, _ in problems(cfg(num_processes=4), gpus=2)] == [("num_processes", "warning")]
    assert "has 2 NVIDIA GPUs" in problems(cfg(num_processes=4), gpus=2)[0][2]
    assert problems(cfg(num_processes=2), gpus=2) == [] and problems(cfg(num_processes=2), gpus=None) == []
    [(field, sev, msg)] = problems(cfg(num_processes=2, gpu_ids="1,2"), gpus=2)
    assert (field, sev) == ("gpu_ids", "warning") and "names GPU 2" in msg
    assert problems(cfg(num_processes=4, extra_accelerate_launch_args="--cpu", mixed_precision="no"), gpus=0) == []


def test_nvidia_gpu_count_reads_the_driver_folder(tmp_path):
    from lora_tui.plan.rules_launch import nvidia_gpu_count

    assert nvidia_gpu_count(str(tmp_path / "absent")) is None
    (tmp_path / "a-file").write_text("")
    assert nvidia_gpu_count(str(tmp_path / "a-file")) is None
    gpus = tmp_path / "gpus"
    gpus.mkdir()
    for bus in ("0000:17:00.0", "0000:65:00.0"):
        (gpus / bus).mkdir()
    assert nvidia_gpu_count(str(gpus)) == 2
    # read once per process: validation at each keystroke does not touch /proc again
    (gpus / "0000:b3:00.0").mkdir()
    assert nvidia_gpu_count(str(gpus)) == 2
    nvidia_gpu_count.cache_clear()
    assert nvidia_gpu_count(str(gpus)) == 3
    # this machine (no NVIDIA driver on CI): an answer, never an exception
    assert nvidia_gpu_count() is None or nvidia_gpu_count() >= 0


def test_cpu_run_warnings():
    c = cfg(extra_accelerate_launch_args="--cpu", gpu_ids="0", mixed_precision="fp16", num_processes=2)
    assert sorted(fields(c, "warning")) == ["gpu_ids", "mixed_precision"] and fields(c, "error") == []


# --- the user-level accelerate config file ------------------------------------------------------------------------


def write_default(tmp_path: Path, text: str) -> dict:
    env = {"HF_HOME": str(tmp_path / "hf")}
    path = default_config_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return env


def test_default_config_path_follows_accelerate():
    assert default_config_path({"HF_HOME": "/h"}) == Path("/h/accelerate/default_config.yaml")
    assert default_config_path({"XDG_CACHE_HOME": "/c"}) == Path("/c/huggingface/accelerate/default_config.yaml")
    assert default_config_path({}) == Path(os.path.expanduser("~/.cache/huggingface/accelerate/default_config.yaml"))


@pytest.mark.parametrize("yaml_text,kw,expected", [
    ("compute_environment: LOCAL_MACHINE\ndistributed_type: DEEPSPEED\nnum_processes: 1\n", {},
     [("extra_accelerate_launch_args", "error", "DeepSpeed")]),
    ("distributed_type: FSDP\n", {"num_processes": 2}, [("extra_accelerate_launch_args", "warning", "ignored")]),
    ("distributed_type: 'NO'\ncompute_environment: AMAZON_SAGEMAKER\n", {}, [("extra_accelerate_launch_args", "error", "AMAZON_SAGEMAKER")]),
    ("distributed_type: 'NO'\nuse_cpu: true\n", {}, [("extra_accelerate_launch_args", "error", "on the CPU")]),
    ("distributed_type: 'NO'\ngpu_ids: '1'\n", {"num_processes": 2}, [("gpu_ids", "error", "restricts training to GPU 1")]),
    ("distributed_type: 'NO'\ngpu_ids: 0,1\n", {}, [("gpu_ids", "warning", "restricts training to GPU 0,1")]),
    ("distributed_type: MULTI_GPU\n", {"gpu_ids": "0"}, [("gpu_ids", "error", "refuses a single GPU id")]),
    ("distributed_type: MULTI_GPU\nnum_processes: 8\nmixed_precision: fp16\n", {}, []),
    ("distributed_type: [unclosed\n", {}, [("extra_accelerate_launch_args", "error", "not valid YAML")]),
    # accelerate skips the default file under --cpu with one process; ours then reads nothing
    ("use_cpu: false\ndistributed_type: DEEPSPEED\n", {"extra_accelerate_launch_args": "--cpu"}, []),
])
def test_incompatible_user_accelerate_config_is_reported(tmp_path, yaml_text, kw, expected):
    env = write_default(tmp_path, yaml_text)
    found = problems(cfg(**kw), env)
    assert [(f, s) for f, s, _ in found] == [(f, s) for f, s, _ in expected], found
    for (_, _, msg), (_, _, needle) in zip(found, expected):
        assert needle in msg and str(default_config_path(env)) in msg


def test_config_file_named_in_extra_args_is_the_one_checked(tmp_path):
    env = write_default(tmp_path, "distributed_type: DEEPSPEED\n")
    mine = tmp_path / "mine.json"
    mine.write_text('{"distributed_type": "NO", "use_cpu": true}', encoding="utf-8")
    c = cfg(extra_accelerate_launch_args=f"--config_file '{mine}'")
    [(field, sev, msg)] = problems(c, env)
    assert sev == "error" and "use_cpu" in msg and str(mine) in msg
    missing = cfg(extra_accelerate_launch_args=f"--config_file {tmp_path / 'nope.yaml'}")
    assert "does not exist" in problems(missing, env)[0][2]


def test_validate_reports_the_launch_problems(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    write_default(tmp_path, "use_cpu: true\n")
    found = validate(cfg(num_processes=2, gpu_ids="0"), None, AppSettings())
    assert {(p.field, p.severity) for p in found} >= {("gpu_ids", "error"),
                                                      ("extra_accelerate_launch_args", "error")}


def test_cli_print_json_shows_the_cpu_launch_and_the_config_file_finding(tmp_path):
    (tmp_path / "hf" / "accelerate").mkdir(parents=True)
    (tmp_path / "hf" / "accelerate" / "default_config.yaml").write_text("distributed_type: DEEPSPEED\n")
    conf = tmp_path / "c.json"
    conf.write_text('{"num_processes": 2, "extra_accelerate_launch_args": "--cpu", "mixed_precision": "no"}')
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"))
    res = subprocess.run([sys.executable, "-m", "lora_tui", "print", str(conf), "--json"], capture_output=True,
                         text=True, env=env, timeout=60)
    out = json.loads(res.stdout)
    start = out["argv"].index("launch") + 1
    assert out["argv"][start:start + 7] == ["--dynamo_backend", "no", "--mixed_precision", "no", "--multi_gpu",
                                            "--num_processes", "2"]
    assert out["env"] == {"ACCELERATE_USE_CPU": "true"}
    assert any("DEEPSPEED" in p["message"] and p["severity"] == "warning" for p in out["problems"])
    text = subprocess.run([sys.executable, "-m", "lora_tui", "print", str(conf)], capture_output=True, text=True,
                          env=env, timeout=60).stdout
    assert text.split("\n")[1].startswith("env ACCELERATE_USE_CPU=true ")
