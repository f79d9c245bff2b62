"""Validation of the accelerate side of a launch: processes, machines, GPUs, extra launch options and the
user-level accelerate config file that ``accelerate launch`` reads on its own.

Sources: accelerate 1.x ``commands/launch.py`` (``_validate_launch_command``: one of --cpu/--multi_gpu/--tpu/
--use_deepspeed/--use_fsdp; --multi_gpu needs 2+ processes and 2+ GPU ids; the config file fills every option not
given) and ``utils/launch.py`` (multi-node: ``num_processes // num_machines`` processes per machine, the main
process address and port required). Pure apart from reading that config file; never raises.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING, Mapping, Optional

from lora_tui.config.app_settings import AppSettings
from lora_tui.plan.accelerate_config import cluster_config_keys, launch_config_file, read_config_file
from lora_tui.plan.launch import AccelerateLaunch, LaunchError, accelerate_launch, find_accelerate, gpu_id_list
from lora_tui.plan.problems import Problem
from lora_tui.plan.trainer_packages import package_location, pip_command, python_problem
from lora_tui.plan.wording import agree, counted

if TYPE_CHECKING:
    from lora_tui.config.model import TrainingConfig

_EXTRA = "extra_accelerate_launch_args"
# accelerate launches one of these ways at a time (it refuses a second).
_MODES = ("--cpu", "--multi_gpu", "--tpu", "--use_deepspeed", "--use_fsdp", "--use_megatron_lm")
_OTHER_ENGINES = {"DEEPSPEED": "DeepSpeed", "FSDP": "FSDP", "MEGATRON_LM": "Megatron-LM", "XLA": "TPU (XLA)",
                  "TPU": "TPU (XLA)"}
_CONFIG_FIX = ("edit or delete it (accelerate reads it at every launch), or name another file with --config_file "
               "in extra_accelerate_launch_args")


_NVIDIA_GPUS = "/proc/driver/nvidia/gpus"


# Cached: validate runs this at every keystroke in the app, and GPUs do not come and go while it runs.
@functools.cache
def nvidia_gpu_count(path: str = _NVIDIA_GPUS) -> Optional[int]:
    """NVIDIA GPUs the driver lists (one folder each under ``/proc/driver/nvidia/gpus``); None where that is
    unknown (no NVIDIA driver, not Linux, unreadable). Read once per ``path`` per process (``cache_clear()``
    reads again), without torch; a container may see more than it may use. Never raises."""
    try:
        with os.scandir(path) as entries:
            return sum(1 for _ in entries)
    except OSError:
        return None


def launch_problems(cfg: TrainingConfig, settings: AppSettings = None, env: Optional[Mapping[str, str]] = None,
                    gpu_count: Optional[int] = -1) -> list[Problem]:
    """The problems of ``cfg``'s accelerate settings, in form order. ``env`` (default ``os.environ``) locates the
    user-level accelerate config file; ``gpu_count`` is the number of GPUs of this machine (-1: ask the NVIDIA
    driver, None: unknown). Never raises: an argument string that does not split is reported by the general rules
    and skipped here."""
    out: list[Problem] = []
    try:
        acc = accelerate_launch(cfg)
    except LaunchError:
        return out
    except Exception:  # noqa: BLE001 - values outside the model's types (plain objects): nothing to check
        return out
    _process_rules(out, cfg, acc)
    _gpu_rules(out, cfg, acc, nvidia_gpu_count() if gpu_count == -1 else gpu_count)
    _extra_rules(out, acc)
    python = str(getattr(settings, "python", "") or "") if settings is not None else ""
    if _accelerate_rules(out, python):
        _config_file_rules(out, cfg, acc, os.environ if env is None else env, python)
    return out


def _accelerate_rules(out: list[Problem], python: str) -> bool:
    """The trainer's Python (the ``python`` app setting, which the launch runs ``accelerate launch`` with) starts
    and has accelerate. False when it does not (then nothing more about accelerate can be known)."""
    bad = python_problem(python)
    if bad:
        _err(out, "", bad)
        return False
    if len(find_accelerate(AppSettings.model_construct(python=python))) == 1:
        return True  # the `accelerate` script installed beside that Python runs the launch (find_accelerate)
    if package_location(python, "accelerate") == "":
        shown = python or sys.executable
        _err(out, "", f"the trainer's Python '{shown}' has no accelerate package, and every training starts "
                      f"with `accelerate launch`: run `{pip_command(python)} accelerate` (or `pip install -e "
                      f"'.[train]'` in lora-tui's folder), or set the `python` app setting to an interpreter that "
                      f"has it")
        return False
    return True


def _err(out: list[Problem], field: str, msg: str) -> None:
    out.append(Problem(field, "error", msg))


def _warn(out: list[Problem], field: str, msg: str) -> None:
    out.append(Problem(field, "warning", msg))


def _extra_value(acc: AccelerateLaunch, flag: str) -> Optional[str]:
    for o in acc.extra:
        if o.flag == flag:
            return o.value
    return None


def _process_rules(out: list[Problem], cfg: TrainingConfig, acc: AccelerateLaunch) -> None:
    P, M = acc.processes, acc.machines
    if (cfg.num_machines or 0) < 1:
        _err(out, "num_machines", f"num_machines is {cfg.num_machines}; it must be at least 1 (1 = this machine)")
    if cfg.multi_gpu and P < 2:
        _warn(out, "multi_gpu", "multi_gpu needs num_processes of 2 or more (accelerate refuses it for one process),"
                                " so it is not passed: set num_processes to the number of GPUs to train on")
    rank = cfg.machine_rank or 0
    extra_rank = _extra_value(acc, "--machine_rank")
    if extra_rank is not None:
        rank = int(extra_rank) if extra_rank.lstrip("-").isdigit() else rank
    if M > 1:
        if not 0 <= rank < M:
            _err(out, "machine_rank", f"machine_rank is {rank} but num_machines is {M}: give each machine a "
                                      f"distinct rank from 0 to {M - 1} (0 on the main machine)")
        if not cfg.main_process_ip.strip() and not _extra_value(acc, "--main_process_ip"):
            _err(out, "main_process_ip", f"a {M}-machine run needs main_process_ip: the address of the rank-0 "
                                         f"machine, reachable from every machine")
        if (not cfg.main_process_port or cfg.main_process_port <= 0) \
                and not _extra_value(acc, "--main_process_port"):
            _err(out, "main_process_port", f"a {M}-machine run needs main_process_port: a free TCP port on the "
                                           f"rank-0 machine, the same on every machine (e.g. 29500)")
        if P < M or P % M:
            _err(out, "num_processes", f"num_processes is the total over all machines and accelerate starts "
                                       f"num_processes ÷ num_machines on each: {P} does not divide into {M} "
                                       f"machines; use a multiple of {M} (e.g. {M * max(1, P // M)})")
    else:
        if rank:
            _warn(out, "machine_rank", f"machine_rank {rank} is only used when num_machines > 1: set it to 0")
        if cfg.main_process_ip.strip():
            _warn(out, "main_process_ip", "main_process_ip is only used when num_machines > 1: clear it")
    if cfg.main_process_port and not 0 < cfg.main_process_port < 65536:
        _err(out, "main_process_port", f"main_process_port {cfg.main_process_port} is not a TCP port (1-65535; "
                                       f"0 = accelerate's default)")
    if (cfg.dynamo_backend or "no") == "no":
        unused = [n for n in ("dynamo_use_fullgraph", "dynamo_use_dynamic") if getattr(cfg, n)]
        if cfg.dynamo_mode and cfg.dynamo_mode != "default":
            unused.insert(0, "dynamo_mode")
        for n in unused:
            _warn(out, n, f"{n} only acts with a dynamo_backend; dynamo_backend is 'no', so it is ignored")
    if acc.cpu and cfg.mixed_precision == "fp16":
        _warn(out, "mixed_precision", "fp16 mixed precision does not run on the CPU (--cpu): accelerate skips "
                                      "autocast there; use 'no' or 'bf16'")


def _gpu_rules(out: list[Problem], cfg: TrainingConfig, acc: AccelerateLaunch, gpus: Optional[int]) -> None:
    per_machine = max(1, acc.processes // acc.machines)
    given_extra = _extra_value(acc, "--gpu_ids")
    field = _EXTRA if given_extra is not None else "gpu_ids"
    text = given_extra if given_extra is not None else (cfg.gpu_ids or "")
    if acc.cpu:
        if text.strip():
            _warn(out, field, "gpu_ids is ignored: the processes run on the CPU (--cpu in "
                              "extra_accelerate_launch_args)")
        return
    ids = gpu_id_list(text)
    if ids is None:
        if gpus is not None and per_machine > gpus:
            _warn(out, "num_processes", f"{per_machine} processes would run on this machine but it has "
                                        f"{counted(gpus, 'NVIDIA GPU')} (one process per GPU): lower "
                                        f"num_processes, or add --cpu to extra_accelerate_launch_args to train "
                                        f"on the CPU")
        return
    bad = [i for i in ids if not i.isdigit()]
    if bad:
        _err(out, field, f"gpu_ids '{text}' must be GPU numbers separated by commas, such as 0,1 (or empty for "
                         f"all GPUs); not {', '.join(repr(b) for b in bad)}")
        return
    if len(set(int(i) for i in ids)) != len(ids):
        _err(out, field, f"gpu_ids '{text}' names a GPU twice: list each GPU once")
        return
    missing = [i for i in ids if gpus is not None and int(i) >= gpus]
    if missing:
        _warn(out, field, f"gpu_ids names GPU {', '.join(missing)} but this machine has "
                          f"{counted(gpus, 'NVIDIA GPU')} (numbered from 0)")
    if len(ids) < per_machine:
        _err(out, field, f"gpu_ids lists {counted(len(ids), 'GPU')} but {per_machine} "
                         f"processes run on this machine (one per GPU): list {per_machine} GPUs or lower "
                         f"num_processes to {len(ids)}")
    elif len(ids) > per_machine:
        unused = ",".join(ids[per_machine:])
        _warn(out, field, f"gpu_ids lists {len(ids)} GPUs but only {per_machine} process"
                          f"{'es run' if per_machine != 1 else ' runs'} on this machine, so GPU {unused} stays idle: "
                          f"set num_processes to {len(ids) * acc.machines} to use them all")


def _extra_rules(out: list[Problem], acc: AccelerateLaunch) -> None:
    seen: dict[str, str] = {}
    own = {o.flag: o for o in acc.own}
    for o in acc.extra:
        if not o.flag:
            _err(out, _EXTRA, f"'{o.value}' in {_EXTRA} is not an option: accelerate would take it as the script "
                              f"to run; write options only (--name value)")
            continue
        shown = " ".join(o.tokens)
        if o.flag in seen:
            _err(out, _EXTRA, f"{_EXTRA} gives {o.flag} twice ('{seen[o.flag]}' and '{shown}'): keep one")
            continue
        seen[o.flag] = shown
        mine = own.get(o.flag)
        if mine is None:
            if o.flag == "--multi_gpu" and acc.processes < 2:
                _err(out, _EXTRA, f"{_EXTRA} gives --multi_gpu but num_processes is {acc.processes}: accelerate "
                                  f"refuses it for one process; set num_processes instead (lora-tui then passes "
                                  f"--multi_gpu)")
            continue
        ours = " ".join(mine.tokens)
        if o.value == mine.value:
            _warn(out, _EXTRA, f"{_EXTRA} repeats '{shown}', which the {mine.field} field already gives: remove "
                               f"it from {_EXTRA}")
        else:
            _err(out, _EXTRA, f"{_EXTRA} gives '{shown}' but the {mine.field} field gives '{ours}': set "
                              f"{mine.field} and remove {o.flag} from {_EXTRA} (the step plan follows the field)")
    modes = sorted({o.flag for o in acc.extra if o.flag in _MODES} | {o.flag for o in acc.own if o.flag in _MODES})
    if acc.cpu and acc.processes > 1:
        modes = [m for m in modes if m != "--cpu"]  # launched as --multi_gpu on the CPU
    if len(modes) > 1:
        _err(out, _EXTRA, f"accelerate runs one of {', '.join(_MODES)} at a time, and this launch would pass "
                          f"{' and '.join(modes)}"
                          + (" (lora-tui passes --multi_gpu for num_processes > 1)" if "--multi_gpu" in modes
                             else "") + f": remove the others from {_EXTRA}")


def _config_keys_rule(out: list[Problem], data: dict, where: str, python: str) -> None:
    """Keys the installed accelerate's ``ClusterConfig`` does not know, and a missing ``distributed_type``: its
    ``from_yaml_file`` raises ValueError on either, so ``accelerate launch`` stops before the trainer starts (a file
    written by a newer or older accelerate). The known keys come from that accelerate's source, found with the
    trainer's Python (:func:`trainer_packages.package_location`), never by importing it here."""
    if "distributed_type" not in data:
        _err(out, _EXTRA, f"{where} has no distributed_type, and accelerate launch stops on such a file (\"A "
                          f"`distributed_type` must be specified\"): add `distributed_type: 'NO'`, or {_CONFIG_FIX}")
    location = package_location(python, "accelerate")
    known = cluster_config_keys(location) if location else None
    if known is None:
        return
    unknown = sorted(k for k in data if str(k) not in known)
    if unknown:
        names = ", ".join(str(k) for k in unknown)
        _err(out, _EXTRA, f"{where} has {agree(len(unknown), 'a key', 'keys')} the installed accelerate "
                          f"({location}) does not know: {names}; accelerate launch stops on "
                          f"{agree(len(unknown), 'it', 'them')} (\"unknown keys\", a file from another "
                          f"accelerate version): remove {agree(len(unknown), 'it', 'them')} from the file, or "
                          f"{_CONFIG_FIX}")


def _config_file_rules(out: list[Problem], cfg: TrainingConfig, acc: AccelerateLaunch, env: Mapping[str, str],
                       python: str = "") -> None:
    explicit = _extra_value(acc, "--config_file")
    path = launch_config_file(explicit, cpu_only=acc.cpu and acc.processes == 1, env=env)
    if path is None:
        return
    if explicit and not path.is_file():
        _err(out, _EXTRA, f"--config_file '{explicit}' in {_EXTRA} does not exist: fix the path or remove it")
        return
    conf = read_config_file(path)
    where = f"the accelerate config {path}"
    if conf.error:
        _err(out, _EXTRA, f"{where} {conf.error}, and accelerate launch reads it: {_CONFIG_FIX}")
        return
    env_kind = str(conf.get("compute_environment", "LOCAL_MACHINE"))
    if env_kind != "LOCAL_MACHINE":
        _err(out, _EXTRA, f"{where} sets compute_environment: {env_kind}, so accelerate would hand the run to "
                          f"that service instead of starting it here: {_CONFIG_FIX}")
    else:
        _config_keys_rule(out, conf.data, where, python)
    multi = acc.processes > 1
    dist = str(conf.get("distributed_type", "NO")).upper()
    engine = _OTHER_ENGINES.get(dist)
    if engine:
        if multi:
            _warn(out, _EXTRA, f"{where} sets distributed_type: {dist}; it is ignored, lora-tui launches plain "
                               f"data-parallel training (--multi_gpu)")
        elif not acc.cpu:
            _err(out, _EXTRA, f"{where} sets distributed_type: {dist}, so accelerate would run the trainer under "
                              f"{engine}, which lora-tui does not configure: {_CONFIG_FIX}")
    if conf.get("use_cpu") is True and not acc.cpu:
        _err(out, _EXTRA, f"{where} sets use_cpu: true, so the training would run on the CPU, not the GPU: "
                          f"{_CONFIG_FIX}")
    mpi = conf.get("mpirun_config", {})
    if isinstance(mpi, dict) and mpi.get("mpirun_hostfile") and not multi:
        _warn(out, _EXTRA, f"{where} sets an mpirun hostfile, so accelerate would start the trainer through mpirun: "
                           f"{_CONFIG_FIX}")
    if acc.cpu:
        return
    ours = _extra_value(acc, "--gpu_ids") or (cfg.gpu_ids or "").strip()
    theirs = conf.get("gpu_ids")
    per_machine = max(1, acc.processes // acc.machines)
    if not ours and theirs not in (None, "", "all"):
        ids = gpu_id_list(str(theirs)) or []
        if len(ids) < per_machine:
            _err(out, "gpu_ids", f"{where} restricts training to GPU {theirs}, fewer than the {per_machine} "
                                 f"processes of this machine: set gpu_ids here, or {_CONFIG_FIX}")
        else:
            _warn(out, "gpu_ids", f"{where} restricts training to GPU {theirs} (accelerate applies it because "
                                  f"gpu_ids is empty): set gpu_ids to make the choice here")
    if not multi and dist.startswith("MULTI_") and dist != "MULTI_CPU":
        ids = gpu_id_list(ours or str(theirs or "all"))
        if ids is not None and len(ids) < 2:
            _err(out, "gpu_ids", f"{where} sets distributed_type: {dist}, and accelerate then refuses a single GPU "
                                 f"id ({ours or theirs}): clear gpu_ids, or {_CONFIG_FIX}")
