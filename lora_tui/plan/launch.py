"""What Start runs: the ``--config_file`` TOML, the ``accelerate launch`` argv, the env, and the files written.

Pure functions of :class:`TrainingConfig` (plus app settings and the clock). Rules follow kohya_ss's launch
(lora_gui.py `train_model`) with its bugs removed: TOML from tomli-w (UTF-8, Windows paths and unicode safe), a typed 0 is
written, empty means unset, argument strings are split with shell rules (``shlex``) and never quote-stripped,
every key is one the chosen sd-scripts script accepts and carries the type it expects, options of another model
family are dropped with a note, and each accelerate flag appears once.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import tomli_w

from lora_tui.config.app_settings import AppSettings
from lora_tui.config.atomic import atomic_write_text
from lora_tui.config.kohya_json import ConfigError, config_to_json
from lora_tui.config.model import (
    TrainingConfig,
    all_field_meta,
    applies,
    family,
    script_name,
)
from lora_tui.config.sd_scripts import script_options
from lora_tui.config.rates import rates_in_force
from lora_tui.config.field_use import NOISE_TYPE_FIELDS
from lora_tui.plan.network import network_args, network_module


#: Start cannot proceed (an argument string that does not split, a TOML that does not read back): the config
#: layer's one error for a value that cannot be used, :class:`~lora_tui.config.kohya_json.ConfigError`, under the
#: name the launch code reads best with. ``field`` names the config field at fault ("" when none).
LaunchError = ConfigError


@dataclass
class Launch:
    """Everything Start needs. ``argv[0]`` is an executable path; ``toml_path``/``json_path`` are absolute and
    not yet written (see :func:`write_launch_files`); ``sample_prompts_path`` is where the prompt text goes
    (None when there is none); ``notes`` say what was dropped or adjusted."""

    argv: list[str]
    toml_text: str
    toml_path: Path
    json_path: Path
    env: dict[str, str]
    cwd: Path
    notes: list[str] = field(default_factory=list)
    sample_prompts_path: Optional[Path] = None
    sample_prompts_text: str = ""


# Fields whose TOML form is built by hand below instead of the generic per-field rule.
_SPECIAL = {
    "lr_warmup", "lr_warmup_steps", "learning_rate", "unet_lr", "text_encoder_lr", "max_train_steps",
    "max_train_epochs", "sample_prompts", "optimizer_args", "lr_scheduler_args", "max_resolution",
    "max_token_length",
}
_NOISE_ORIGINAL = NOISE_TYPE_FIELDS["Original"]
_NOISE_MULTIRES = NOISE_TYPE_FIELDS["Multires"]


def split_args(text: str, field_name: str) -> list[str]:
    """Split an argument string with POSIX shell rules: ``betas=0.9,0.99`` stays one token, quoted spaces stay
    together, quotes are removed as a shell would. Raises :class:`LaunchError` naming ``field_name`` on an
    unbalanced quote."""
    try:
        return shlex.split(text or "")
    except ValueError as exc:
        raise LaunchError(field_name, f"cannot split {text!r}: {exc}; balance the quotes") from None


def _launch_omits(meta_kind: str, value: Any, zero_unset: bool) -> bool:
    """Whether the TOML leaves a field out: None, False, an empty text, or a 0 of a ``zero_unset`` field (sd-scripts
    reads the missing option as its own default)."""
    if value is None or value is False:
        return True
    if meta_kind == "str" and value == "":
        return True
    if zero_unset and meta_kind in ("int", "float") and value == 0:
        return True
    return False


def _typed(value: Any, opt_type: str) -> Any:
    """``value`` in the type the sd-scripts option expects (TOML values are not coerced by sd-scripts)."""
    if opt_type == "flag":
        return bool(value)
    if opt_type == "int":
        return int(value)
    if opt_type == "float":
        return float(value)
    if opt_type == "int_or_float":
        return value
    return str(value)


def sample_prompts_path(cfg: TrainingConfig) -> Optional[Path]:
    """``<output_dir>/sample/prompt.txt`` when ``sample_prompts`` holds text (kohya_ss convention), else None."""
    if not cfg.sample_prompts.strip():
        return None
    return Path(cfg.output_dir or ".") / "sample" / "prompt.txt"


def toml_dict(cfg: TrainingConfig) -> tuple[dict[str, Any], list[str]]:
    """The ``--config_file`` content as a dict (keys sorted) and notes on what was dropped.

    Raises :class:`LaunchError` for an argument string that does not split."""
    script = script_name(cfg)
    opts = script_options(script)
    fam = family(cfg)
    out: dict[str, Any] = {}
    notes: list[str] = []

    def put(key: str, value: Any, field_name: str) -> None:
        opt = opts.get(key)
        if opt is None:
            notes.append(f"{field_name}: dropped, {script} has no --{key} option")
            return
        out[key] = [_typed(v, opt.type) for v in value] if opt.list else _typed(value, opt.type)

    for meta in all_field_meta():
        if meta.toml_key is None or meta.name in _SPECIAL:
            continue
        value = getattr(cfg, meta.name)
        if _launch_omits(meta.kind, value, meta.zero_unset):
            continue
        if not applies(meta, cfg):
            # No note: loading reports a value kept for another LoRA type, and validate warns about one set for
            # another family (saying it a third time here was noise).
            continue
        if meta.name in _NOISE_ORIGINAL and cfg.noise_offset_type != "Original":
            continue
        if meta.name in _NOISE_MULTIRES and cfg.noise_offset_type != "Multires":
            continue
        put(meta.toml_key, value, meta.name)

    # sd-scripts stops at start-up on log_with tensorboard/all without a logging_dir ("logging_dir is required
    # when log_with is tensorboard"), after the model has loaded; wandb keeps its run files there too. A default
    # beside the LoRA keeps the run going, and the note says where the logs go.
    if cfg.log_with in ("tensorboard", "all", "wandb") and not cfg.logging_dir.strip() and "logging_dir" in opts:
        logs = os.path.join(cfg.output_dir or ".", "logs")
        out["logging_dir"] = logs
        notes.append(f"logging_dir: {logs} (log_with {cfg.log_with} writes its logs into a logging folder and none "
                     f"was set; set logging_dir to choose another)")

    # Cross-attention: one dropdown, two sd-scripts flags.
    if cfg.xformers in ("xformers", "sdpa"):
        put(cfg.xformers, True, "xformers")

    out["resolution"] = cfg.max_resolution
    if cfg.max_token_length != 75:  # 75 is sd-scripts' default (None)
        if "max_token_length" in opts and fam != "flux1":
            put("max_token_length", cfg.max_token_length, "max_token_length")

    for name in ("optimizer_args", "lr_scheduler_args"):
        tokens = split_args(getattr(cfg, name), name)
        if tokens:
            put(name, tokens, name)

    # Steps: sd-scripts has no `epoch`; an unset step count means "train for `epoch` epochs".
    if cfg.max_train_epochs:
        put("max_train_epochs", cfg.max_train_epochs, "max_train_epochs")
    if cfg.max_train_steps:
        put("max_train_steps", cfg.max_train_steps, "max_train_steps")
    elif not cfg.max_train_epochs and cfg.epoch > 0:
        put("max_train_epochs", cfg.epoch, "epoch")

    # Warm-up: explicit steps (int) win; else the percentage as a ratio (float), which sd-scripts scales.
    # sd-scripts refuses any warm-up with the plain `constant` scheduler (kohya_ss zeroes it in the form).
    if cfg.lr_scheduler == "constant" and (cfg.lr_warmup or cfg.lr_warmup_steps):
        notes.append("lr_warmup: not written, the constant scheduler has no warm-up (use constant_with_warmup)")
    elif cfg.lr_warmup_steps and cfg.lr_warmup_steps > 0:
        out["lr_warmup_steps"] = int(cfg.lr_warmup_steps)
        if cfg.lr_warmup:
            notes.append("lr_warmup: ignored, lr_warmup_steps is set")
    elif cfg.lr_warmup and cfg.lr_warmup > 0:
        out["lr_warmup_steps"] = float(cfg.lr_warmup) / 100.0

    # Learning rates: empty U-Net/TE rates inherit learning_rate; 0 means "do not train that part" (one rule,
    # config.rates, which the forms' hints and `print` read too).
    rates = rates_in_force(cfg).toml
    for key, value in rates.items():
        if key == "text_encoder_lr":
            second = cfg.t5xxl_lr if (fam == "flux1" and cfg.t5xxl_lr) else value
            out[key] = [float(value), float(second)]
        else:
            out[key] = value

    # Network.
    out["network_module"] = network_module(cfg)
    args = network_args(cfg)
    if args:
        out["network_args"] = args

    path = sample_prompts_path(cfg)
    if path is not None:
        out["sample_prompts"] = str(path)

    return dict(sorted(out.items())), notes


def toml_text(cfg: TrainingConfig) -> str:
    """The TOML text of :func:`toml_dict`, checked by reading it back with tomllib. Raises :class:`LaunchError`."""
    data, _ = toml_dict(cfg)
    return _dump_checked(data)


def _dump_checked(data: dict[str, Any]) -> str:
    text = tomli_w.dumps(data)
    if tomllib.loads(text) != data:
        raise LaunchError("", "the TOML writer produced text that does not read back the same")
    return text


def find_accelerate(settings: AppSettings) -> list[str]:
    """The command that runs ``accelerate launch`` with the trainer's Python (``settings.python``; empty = the
    running interpreter): the ``accelerate`` script beside that interpreter (a venv's bin/Scripts dir, found even
    when the venv is not activated), else ``[python, "-m", "accelerate.commands.launch"]`` (then no ``launch`` word
    follows). accelerate's launcher starts the trainer with its own ``sys.executable``, so either form runs the
    trainer with that Python. An ``accelerate`` found elsewhere (PATH, lora-tui's own venv) would run it with
    another Python, silently ignoring the setting, and is never taken (it was, before: a ``python`` setting
    without an ``accelerate`` script beside it trained with lora-tui's own interpreter).
    Paths are absolute; symlinked interpreters are not resolved (a venv's python links out of the venv)."""
    python = settings.python or sys.executable
    if os.sep not in python and (os.altsep is None or os.altsep not in python):
        python = shutil.which(python) or python  # a bare name ("python3") is looked up in PATH, as a shell would
    names = ["accelerate.exe", "accelerate.cmd", "accelerate.bat", "accelerate"] if os.name == "nt" else ["accelerate"]
    bindir = Path(python).absolute().parent
    for d in (bindir, bindir / "Scripts"):
        for n in names:
            cand = d / n
            if cand.is_file() and os.access(cand, os.X_OK):
                return [str(cand)]
    return [str(Path(python).absolute()) if os.sep in python else python, "-m", "accelerate.commands.launch"]


# accelerate launch options that take no value (its parser's store_true actions); any other option takes the
# next token, or its ``=value``.
_ACCELERATE_BOOL_FLAGS = frozenset({
    "--cpu", "--debug", "--dynamo_use_dynamic", "--dynamo_use_fullgraph", "--dynamo_use_regional_compilation",
    "--enable_cpu_affinity", "--module", "--multi_gpu", "--no_python", "--quiet", "--same_network", "--tpu",
    "--tpu_cluster", "--tpu_use_sudo", "--use_deepspeed", "--use_fsdp", "--use_megatron_lm",
    "--use_parallelism_config", "-m", "-q",
})
_SHORT = {"-m": "--module", "-q": "--quiet"}


@dataclass(frozen=True)
class LaunchOption:
    """One ``accelerate launch`` option: ``flag`` normalised (``--num-processes`` → ``--num_processes``),
    ``value`` (None for a flag without one), ``tokens`` as written, ``field`` the config field it comes from
    ("" for a token of ``extra_accelerate_launch_args``)."""

    flag: str
    value: Optional[str]
    tokens: tuple[str, ...]
    field: str = ""


def normalise_flag(flag: str) -> str:
    """accelerate accepts ``-`` or ``_`` inside option names; ``--num-processes`` → ``--num_processes``."""
    flag = _SHORT.get(flag, flag)
    return "--" + flag[2:].replace("-", "_") if flag.startswith("--") else flag


def parse_launch_tokens(tokens: list[str], field_name: str = "extra_accelerate_launch_args") -> list[LaunchOption]:
    """Group shell-split ``accelerate launch`` tokens into options: ``--flag=value``, ``--flag value`` (the next
    token, unless it is an option or the flag is one of accelerate's value-less flags) or ``--flag``. A token that
    is not an option and follows none becomes an option with an empty ``flag`` (the rules report it)."""
    out: list[LaunchOption] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("-") and len(tok) > 1:
            name, eq, value = tok.partition("=")
            flag = normalise_flag(name)
            if eq:
                out.append(LaunchOption(flag, value, (tok,), field_name))
            elif (flag not in _ACCELERATE_BOOL_FLAGS and i + 1 < len(tokens)
                  and not tokens[i + 1].startswith("--")):
                out.append(LaunchOption(flag, tokens[i + 1], (tok, tokens[i + 1]), field_name))
                i += 1
            else:
                out.append(LaunchOption(flag, None, (tok,), field_name))
        else:
            out.append(LaunchOption("", tok, (tok,), field_name))
        i += 1
    return out


def gpu_id_list(text: str) -> Optional[list[str]]:
    """``"0, 1"`` → ``["0", "1"]``; ``""`` or ``"all"`` → None (every GPU). Items are returned as written
    (stripped), so a caller can report the ones that are not device numbers."""
    text = (text or "").strip()
    if not text or text.lower() == "all":
        return None
    return [p.strip() for p in text.split(",")]


@dataclass
class AccelerateLaunch:
    """The accelerate part of a launch, as :func:`accelerate_launch` resolves it.

    ``options``: the tokens between ``launch`` and the script, each flag once (a flag also given in
    ``extra_accelerate_launch_args`` is taken from there). ``env``: variables the launch adds to the trainer's
    environment. ``own``: the options the fields produce (before the merge), ``extra``: the parsed extra options,
    ``cpu``: the user asked for CPU processes (``--cpu`` among the extra options), ``processes``/``machines``:
    ``num_processes``/``num_machines`` as launched, ``notes``: what was adjusted."""

    options: list[str]
    env: dict[str, str]
    own: list[LaunchOption]
    extra: list[LaunchOption]
    cpu: bool
    processes: int
    machines: int
    notes: list[str] = field(default_factory=list)


def accelerate_launch(cfg: TrainingConfig) -> AccelerateLaunch:
    """Resolve the accelerate settings of ``cfg`` into ``accelerate launch`` options and environment.

    Order as kohya_ss' `run_cmd` builds it: dynamo options, the extra tokens, ``--gpu_ids``, the multi-node options, then
    ``--mixed_precision``, ``--multi_gpu``, ``--num_processes``, ``--num_machines``,
    ``--num_cpu_threads_per_process``, and last ``--quiet``. Where we differ from kohya_ss: ``--quiet`` (no
    launcher traceback under the trainer's own after a failure or a Stop); ``--dynamo_backend`` is always written (so
    a user-level accelerate config cannot switch torch.compile on behind the form) but its mode/fullgraph/dynamic
    only with a backend; ``--multi_gpu`` is written whenever more than one process is launched (accelerate refuses
    it for one process, and without it a multi-process run is not distributed); ``--gpu_ids`` is written without
    spaces; multi-node runs (``num_machines`` > 1) get ``--machine_rank``, ``--main_process_ip`` and
    ``--main_process_port``.

    CPU processes (``--cpu`` in ``extra_accelerate_launch_args``): with one process ``--cpu`` is passed as is;
    with several, ``accelerate launch --cpu`` would start only one (its simple launcher spawns a single process
    unless MPI is set up), so the launch uses the torchrun launcher (``--multi_gpu``) and sets
    ``ACCELERATE_USE_CPU=true``, which makes each rank's ``Accelerator`` join a gloo process group on the CPU.
    Raises :class:`LaunchError` when ``extra_accelerate_launch_args`` does not split.
    """
    extra = parse_launch_tokens(split_args(cfg.extra_accelerate_launch_args, "extra_accelerate_launch_args"))
    cpu = any(o.flag == "--cpu" for o in extra)
    processes = max(1, int(cfg.num_processes or 1))
    machines = max(1, int(cfg.num_machines or 1))
    notes: list[str] = []
    env: dict[str, str] = {}
    own: list[LaunchOption] = []

    def opt(flag: str, value: Any, field_name: str) -> None:
        tokens = (flag,) if value is None else (flag, str(value))
        own.append(LaunchOption(flag, None if value is None else str(value), tokens, field_name))

    backend = cfg.dynamo_backend or "no"
    opt("--dynamo_backend", backend, "dynamo_backend")
    if backend != "no":
        if cfg.dynamo_mode:
            opt("--dynamo_mode", cfg.dynamo_mode, "dynamo_mode")
        if cfg.dynamo_use_fullgraph:
            opt("--dynamo_use_fullgraph", None, "dynamo_use_fullgraph")
        if cfg.dynamo_use_dynamic:
            opt("--dynamo_use_dynamic", None, "dynamo_use_dynamic")
    n_dynamo = len(own)
    ids = gpu_id_list(cfg.gpu_ids)
    if ids is not None:
        if cpu:
            notes.append("gpu_ids: not passed, the processes run on the CPU (--cpu)")
        else:
            opt("--gpu_ids", ",".join(ids), "gpu_ids")
    if machines > 1:
        opt("--machine_rank", int(cfg.machine_rank or 0), "machine_rank")
        if cfg.main_process_ip.strip():
            opt("--main_process_ip", cfg.main_process_ip.strip(), "main_process_ip")
    if cfg.main_process_port and cfg.main_process_port > 0:
        opt("--main_process_port", int(cfg.main_process_port), "main_process_port")
    if cfg.mixed_precision:
        opt("--mixed_precision", cfg.mixed_precision, "mixed_precision")
    if processes > 1:
        opt("--multi_gpu", None, "multi_gpu" if cfg.multi_gpu else "num_processes")
    elif cfg.multi_gpu:
        notes.append("multi_gpu: not passed, it needs num_processes of 2 or more (accelerate refuses it for one)")
    opt("--num_processes", processes, "num_processes")
    opt("--num_machines", machines, "num_machines")
    if cfg.num_cpu_threads_per_process and cfg.num_cpu_threads_per_process > 0:
        opt("--num_cpu_threads_per_process", int(cfg.num_cpu_threads_per_process), "num_cpu_threads_per_process")

    if cpu and processes > 1:
        extra_used = [o for o in extra if o.flag != "--cpu"]
        env["ACCELERATE_USE_CPU"] = "true"
        notes.append(f"--cpu with {processes} processes: launched through torchrun (--multi_gpu) with "
                     f"ACCELERATE_USE_CPU=true, so the processes train together over gloo on the CPU")
    else:
        extra_used = list(extra)
    given = {o.flag for o in extra_used}
    out: list[str] = []
    for o in own[:n_dynamo]:
        if o.flag not in given:
            out.extend(o.tokens)
    for o in extra_used:
        out.extend(o.tokens)
    for o in own[n_dynamo:]:
        if o.flag not in given:
            out.extend(o.tokens)
    if not given & {"--quiet", "-q"}:
        # The launcher adds no CalledProcessError traceback of its own under the trainer's when the trainer
        # fails or is stopped (it exits 1 instead of re-raising; its output is otherwise the same).
        out.append("--quiet")
    return AccelerateLaunch(options=out, env=env, own=own, extra=extra, cpu=cpu, processes=processes,
                            machines=machines, notes=notes)


def accelerate_options(cfg: TrainingConfig) -> list[str]:
    """The ``accelerate launch`` options of ``cfg`` (see :func:`accelerate_launch`), each flag at most once.
    Raises :class:`LaunchError` when ``extra_accelerate_launch_args`` does not split."""
    return accelerate_launch(cfg).options


def child_env(base: Optional[dict[str, str]] = None) -> dict[str, str]:
    """Environment for the trainer: ``base`` (default ``os.environ``) without Textual's variables and the
    terminal's ``LINES``, with unbuffered UTF-8 Python output (piped output is block-buffered otherwise), no
    colour codes and ``COLUMNS=200`` (Rich logging and tqdm wrap at 80 without a terminal). The one place that
    filters the child's environment: ``run.jobs.child_environment`` starts from it."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith("TEXTUAL") and k != "LINES"}
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1", "COLUMNS": "200"})
    return env


def _unique(path: Path) -> Path:
    # os.path.exists: False for a name the file system refuses (Errno 36) instead of raising as Path.exists does
    # on Python 3.11; validation names the field, and the write reports the OSError.
    if not os.path.exists(path):
        return path
    n = 1
    while True:
        cand = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not os.path.exists(cand):
            return cand
        n += 1


def build_launch(cfg: TrainingConfig, settings: Optional[AppSettings] = None,
                 now: Optional[datetime] = None, cwd: Optional[Path] = None) -> Launch:
    """The launch for ``cfg``: argv ``[accelerate, "launch", <options>, <sd_scripts_dir>/<script>,
    "--config_file", <toml>, <additional_parameters>...]``, the TOML text, the file names
    ``<output_dir>/config_lora-<YYYYMMDD-HHMMSS>.toml`` and ``<output_dir>/<output_name>_<ts>.json`` (a suffix
    ``-1``, ``-2``… when the name exists), the child env and cwd (with ``torch_compile``: inductor's cache in
    ``<cache_dir>/torchinductor`` unless the environment names one). Writes nothing.
    Raises :class:`LaunchError` for an argument string that does not split."""
    settings = settings or AppSettings()
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    data, notes = toml_dict(cfg)
    text = _dump_checked(data)
    out_dir = Path(os.path.expanduser(cfg.output_dir or "."))
    if not out_dir.is_absolute():
        out_dir = cwd / out_dir
    toml_path = _unique(out_dir / f"config_lora-{stamp}.toml")
    json_path = _unique(out_dir / f"{cfg.output_name}_{stamp}.json")
    acc = find_accelerate(settings)
    accel = accelerate_launch(cfg)
    notes = notes + accel.notes
    argv = acc + (["launch"] if len(acc) == 1 else [])
    argv += accel.options
    argv += [str(Path(settings.sd_scripts_dir) / script_name(cfg)), "--config_file", str(toml_path)]
    argv += split_args(cfg.additional_parameters, "additional_parameters")
    sp = sample_prompts_path(cfg)
    if sp is not None and not sp.is_absolute():
        sp = cwd / sp
    env = child_env()
    env.update(accel.env)
    if (cfg.torch_compile or cfg.torch_compile_resnets) and "TORCHINDUCTOR_CACHE_DIR" not in env:
        # inductor keeps compiled kernels in /tmp by default, which a reboot (or a fresh container) empties;
        # from this cache a compile takes seconds instead of up to a minute (docs/performance.md)
        env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(settings.cache_dir) / "torchinductor")
    return Launch(argv=argv, toml_text=text, toml_path=toml_path, json_path=json_path, env=env,
                  cwd=cwd, notes=notes, sample_prompts_path=sp, sample_prompts_text=cfg.sample_prompts)


def write_launch_files(launch: Launch, cfg: TrainingConfig) -> Launch:
    """Write the sample prompts file, the TOML and the settings JSON of ``launch`` (each atomically; the TOML and
    JSON never overwrite an existing file: on a race the next free suffix is taken and the returned Launch,
    argv included, names it). The TOML is read back with tomllib and compared before returning.
    Raises OSError on I/O failure, :class:`LaunchError` when the TOML does not read back."""
    if launch.sample_prompts_path is not None:
        atomic_write_text(launch.sample_prompts_path, launch.sample_prompts_text.rstrip("\n") + "\n")
    toml_path = _write_new(launch.toml_path, launch.toml_text)
    back = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    if back != tomllib.loads(launch.toml_text):
        raise LaunchError("", f"{toml_path} does not read back as written")
    json_path = _write_new(launch.json_path, config_to_json(cfg))
    argv = [str(toml_path) if a == str(launch.toml_path) else a for a in launch.argv]
    return replace(launch, argv=argv, toml_path=toml_path, json_path=json_path)


def _write_new(path: Path, text: str) -> Path:
    while True:
        path = _unique(path)
        try:
            return atomic_write_text(path, text, exclusive=True)
        except FileExistsError:
            continue
