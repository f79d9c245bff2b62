"""The one training-config model: every kohya_ss LoRA parameter as a typed pydantic field.

Field names are the kohya_ss LoRA parameter names (the keys of kohya_ss preset/config JSON, see
`spec/kohya_lora_params.json`). Each field carries its metadata (section, label, help, TOML key, the model
families and LoRA types it applies to, Minimal-form flag, choices) in ``json_schema_extra``; read it with
:func:`field_meta`. Adding a parameter means adding one field below: the forms, the TOML and the JSON follow.

Numbers: ``None`` means unset (an empty input; the sd-scripts default applies and nothing is written); a typed 0
is kept. Optional floats whose kohya_ss default is 0 (off) default to ``None`` here. Fields flagged ``zero_unset`` are the ones where kohya_ss and sd-scripts both read 0 as "off" (e.g.
``save_every_n_steps``, ``seed``), so 0 is kept in the model but not written to the TOML.

This module imports only pydantic and the standard library (the app must start fast).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

Family = Literal["sd1", "sd2", "sdxl", "flux1", "sd3"]
FAMILIES: tuple[str, ...] = ("sd1", "sd2", "sdxl", "flux1", "sd3")

#: Section order for forms (the Advanced form's navigator).
SECTIONS: tuple[str, ...] = (
    "Model", "Folders", "Training", "Network", "LyCORIS", "Block weights", "SDXL", "Flux.1", "SD3",
    "Advanced", "Samples", "Accelerate", "Metadata", "Hugging Face",
)

#: sd-scripts entry point per family (as kohya_ss' lora_gui.py `train_model` picks it; SD1.x and SD2.x share train_network.py).
SCRIPTS: dict[str, str] = {
    "sd1": "train_network.py",
    "sd2": "train_network.py",
    "sdxl": "sdxl_train_network.py",
    "flux1": "flux_train_network.py",
    "sd3": "sd3_train_network.py",
}

_SAME = object()


@dataclass(frozen=True)
class FieldMeta:
    """Metadata of one :class:`TrainingConfig` field.

    ``toml_key``: the sd-scripts TOML key (None = not written as a top-level key). ``net_arg``: the
    ``network_args`` key it becomes (``conv_dim=4``). ``launch``: the ``accelerate launch`` option it feeds.
    ``families``/``lora_types``: where it applies (None = everywhere). ``zero_unset``: 0 means "off" and is not
    written. ``kind``: "bool" | "str" | "int" | "float"; ``optional``: None (empty) is allowed.
    ``bundled_only``: a switch (bool, written under its own name) that only lora-tui's bundled trainer knows;
    upstream sd-scripts ignores it (``config.sd_scripts.BUNDLED_ONLY_OPTIONS`` lists these fields).
    """

    name: str
    section: str
    label: str
    help: str
    kind: str
    optional: bool
    default: Any
    toml_key: Optional[str]
    net_arg: Optional[str] = None
    launch: Optional[str] = None
    families: Optional[tuple[str, ...]] = None
    lora_types: Optional[tuple[str, ...]] = None
    minimal: bool = False
    choices: Optional[tuple[Any, ...]] = None
    strict_choices: bool = True
    zero_unset: bool = False
    bundled_only: bool = False


def kohya_field(
    default: Any,
    section: str,
    label: str,
    *,
    help: str,
    toml: Any = _SAME,
    net_arg: Optional[str] = None,
    launch: Optional[str] = None,
    families: Optional[tuple[str, ...]] = None,
    lora_types: Optional[tuple[str, ...]] = None,
    minimal: bool = False,
    choices: Optional[tuple[Any, ...]] = None,
    strict: bool = True,
    zero_unset: bool = False,
    bundled_only: bool = False,
) -> Any:
    """Declare one field: its default and its metadata (see :class:`FieldMeta`). ``toml`` defaults to the name."""
    extra = {
        "section": section, "label": label, "help": help,
        "toml": "__same__" if toml is _SAME else toml, "net_arg": net_arg, "launch": launch,
        "families": list(families) if families else None, "lora_types": list(lora_types) if lora_types else None,
        "minimal": minimal, "choices": list(choices) if choices else None, "strict": strict,
        "zero_unset": zero_unset, "bundled_only": bundled_only,
    }
    return Field(default, description=help, json_schema_extra={"lora_tui": extra})



_RESO_SPLIT = re.compile(r"\s*[,xX×]\s*")


def normalise_resolution(value: Any) -> str:
    """``"768, 768"``, ``"768x768"``, ``768`` or ``"768"`` → ``"768,768"``; raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("resolution must be 'W,H' such as 1024,1024")
    if isinstance(value, (int, float)):
        if value != int(value) or value <= 0:
            raise ValueError("resolution must be 'W,H' such as 1024,1024")
        return f"{int(value)},{int(value)}"
    if isinstance(value, (list, tuple)) and len(value) == 2:
        value = f"{value[0]},{value[1]}"
    text = str(value).strip()
    parts = [p for p in _RESO_SPLIT.split(text)] if text else []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"resolution {text!r} is not 'W,H' (for example 1024,1024 or 768x768)")
    return f"{int(parts[0])},{int(parts[1])}"


class TrainingConfig(BaseModel):
    """Every kohya_ss LoRA training parameter (SD1.x/2.x, SDXL, Flux.1, SD3), under kohya_ss names.

    Defaults are the kohya_ss Training-tab defaults, except where design.md says we differ
    (``max_train_steps`` is unset, so ``epoch`` drives the step count). Assignment is validated.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid", protected_namespaces=())

    # Default empty, not kohya_ss's Hub id: lora-tui runs offline, the user picks a local checkpoint.
    pretrained_model_name_or_path: str = kohya_field(
        "", "Model", "Checkpoint (base model path)", minimal=True,
        help=(
            "Base model: a single file (`.safetensors`/`.ckpt`), a Diffusers folder, or a Hub repo id. "
            "sd-scripts: --pretrained_model_name_or_path"
        ),
    )
    v2: bool = kohya_field(
        False, "Model", "SD 2.x model", families=("sd2",),
        help="The base model is SD 2.x (changes text encoder, tokenizer and U-Net config). sd-scripts: --v2",
    )
    v_parameterization: bool = kohya_field(
        False, "Model", "v-parameterization",
        help="Train with v-prediction target. sd-scripts: --v_parameterization",
    )
    sdxl: bool = kohya_field(
        False, "Model", "SDXL model", toml=None,
        help="The base model is SDXL (runs sdxl_train_network.py)",
    )
    flux1_checkbox: bool = kohya_field(
        False, "Model", "Flux.1 model", toml=None,
        help="The base model is Flux.1 (runs flux_train_network.py)",
    )
    # Ours, not kohya_ss's GUI (its users pass it in additional_parameters): every sd-scripts script has the option,
    # and offline a Flux.1 or SD3 run needs it unless the T5 tokenizer is in the Hugging Face cache.
    tokenizer_cache_dir: str = kohya_field(
        "", "Model", "Tokenizer folder",
        help=(
            "Folder holding the tokenizers, as sd-scripts caches them: `google_t5-v1_1-xxl` (the T5-XXL tokenizer "
            "Flux.1 and SD3 need) and optionally `openai_clip-vit-large-patch14`. Empty: the local Hugging Face "
            "cache. Never downloaded. sd-scripts: --tokenizer_cache_dir"
        ),
    )
    dataset_config: str = kohya_field(
        "", "Folders", "Dataset config",
        help=(
            "Dataset TOML describing the image folders (replaces the image folder fields). sd-scripts: "
            "--dataset_config"
        ),
    )
    save_model_as: str = kohya_field(
        "safetensors", "Model", "Save model as", minimal=True, choices=("ckpt", "safetensors"),
        help="LoRA file format (extension = value). sd-scripts: --save_model_as",
    )
    save_precision: str = kohya_field(
        "fp16", "Model", "Save precision", minimal=True, choices=("float", "fp16", "bf16"),
        help="Dtype of the saved LoRA. sd-scripts: --save_precision",
    )
    train_data_dir: str = kohya_field(
        "", "Folders", "Image folder", minimal=True,
        help="Folder holding the <repeats>_<name> image folders. sd-scripts: --train_data_dir",
    )
    output_name: str = kohya_field(
        "last", "Folders", "Output name", minimal=True,
        help="Base name of the LoRA files. sd-scripts: --output_name",
    )
    model_list: str = kohya_field(
        "", "Model", "Model list", toml=None,
        help="kohya_ss GUI model-list choice; not written",
    )
    training_comment: str = kohya_field(
        "", "Model", "Training comment",
        help="Stored as `ss_training_comment`. sd-scripts: --training_comment",
    )
    logging_dir: str = kohya_field(
        "", "Folders", "Logging folder",
        help="Enables TensorBoard (unless `--log_with` says otherwise). sd-scripts: --logging_dir",
    )
    reg_data_dir: str = kohya_field(
        "", "Folders", "Regularisation image folder",
        help="Parent of `N_name` regularization folders. sd-scripts: --reg_data_dir",
    )
    output_dir: str = kohya_field(
        "", "Folders", "Output folder", minimal=True,
        help="Output directory (created on first save). sd-scripts: --output_dir",
    )
    max_resolution: str = kohya_field(
        "512,512", "Training", "Resolution (W,H)", toml="resolution", minimal=True,
        help="Training resolution (required unless given in dataset TOML). sd-scripts: --resolution",
    )
    learning_rate: Optional[float] = kohya_field(
        0.0001, "Training", "Learning rate", minimal=True,
        help=(
            "Base learning rate: the U-Net and the text encoder train at it where unet_lr / text_encoder_lr are "
            "empty (sd-scripts lets those two override it). The Minimal form's learning-rate row always edits the "
            "U-Net's rate: this field while unet_lr is empty, unet_lr (labelled U-Net learning rate) when a file "
            "sets it; the line under the row says which rate is in force. sd-scripts: --learning_rate"
        ),
    )
    lr_scheduler: str = kohya_field(
        "cosine",
        "Training",
        "LR scheduler",
        choices=(
            "adafactor", "constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "linear",
            "piecewise_constant", "polynomial", "cosine_with_min_lr", "inverse_sqrt", "warmup_stable_decay",
        ),
        help="Scheduler name. sd-scripts: --lr_scheduler",
    )
    lr_warmup: int = kohya_field(
        10, "Training", "LR warm-up (% of steps)", toml="lr_warmup_steps", zero_unset=True,
        help=(
            "Warm-up as a percentage of the total steps (0 = none). Written as the ratio percent/100, which "
            "sd-scripts turns into steps. sd-scripts: --lr_warmup_steps"
        ),
    )
    lr_warmup_steps: int = kohya_field(
        0, "Training", "LR warm-up steps", zero_unset=True,
        help="Warm-up in optimizer steps; when > 0 it wins over the percentage. sd-scripts: --lr_warmup_steps",
    )
    train_batch_size: int = kohya_field(
        1, "Training", "Batch size", minimal=True,
        help="Batch size per device (`batch_size` in dataset TOML). sd-scripts: --train_batch_size",
    )
    epoch: int = kohya_field(
        1, "Training", "Epochs", toml=None, minimal=True,
        help=(
            "Number of epochs to train. Written as sd-scripts --max_train_epochs unless Max train steps or Max "
            "train epochs is set"
        ),
    )
    save_every_n_epochs: int = kohya_field(
        1, "Training", "Save every n epochs", zero_unset=True,
        help="Save `name-EEEEEE` every N epochs (not after the last). sd-scripts: --save_every_n_epochs",
    )
    seed: Optional[int] = kohya_field(
        None, "Training", "Seed", zero_unset=True,
        help="Global seed; 0 or empty = random. sd-scripts: --seed",
    )
    cache_latents: bool = kohya_field(
        True, "Training", "Cache latents", minimal=True,
        help="Encode all images once with the VAE, keep in RAM. sd-scripts: --cache_latents",
    )
    cache_latents_to_disk: bool = kohya_field(
        False, "Training", "Cache latents to disk", minimal=True,
        help=(
            "Cache latents as `.npz` next to images (implies `--cache_latents`). sd-scripts: "
            "--cache_latents_to_disk"
        ),
    )
    caption_extension: str = kohya_field(
        ".txt", "Training", "Caption extension", choices=("", ".cap", ".caption", ".txt"), strict=False,
        help="Caption file extension (dot is prepended if missing). sd-scripts: --caption_extension",
    )
    enable_bucket: bool = kohya_field(
        True, "Training", "Enable bucket",
        help="Aspect-ratio bucketing. sd-scripts: --enable_bucket",
    )
    stop_text_encoder_training: int = kohya_field(
        0, "Training", "Stop text encoder training", toml=None,
        help="kohya_ss GUI setting; not an sd-scripts option (never written)",
    )
    min_bucket_reso: int = kohya_field(
        256, "Training", "Min bucket reso",
        help="Smallest bucket side. sd-scripts: --min_bucket_reso",
    )
    max_bucket_reso: int = kohya_field(
        2048, "Training", "Max bucket reso",
        help="Largest bucket side. sd-scripts: --max_bucket_reso",
    )
    max_train_epochs: Optional[int] = kohya_field(
        None, "Training", "Max train epochs", zero_unset=True,
        help="Epoch count that overrides the steps (0 or empty = use Epochs). sd-scripts: --max_train_epochs",
    )
    max_train_steps: Optional[int] = kohya_field(
        None, "Training", "Max train steps", minimal=True, zero_unset=True,
        help="Optimizer steps; empty or 0 = computed from the epochs. sd-scripts: --max_train_steps",
    )
    lr_scheduler_num_cycles: int = kohya_field(
        1, "Training", "Lr scheduler num cycles",
        help="Restarts of cosine_with_restarts. sd-scripts: --lr_scheduler_num_cycles",
    )
    lr_scheduler_power: Optional[float] = kohya_field(
        1.0, "Training", "Lr scheduler power",
        help="Power of the polynomial scheduler. sd-scripts: --lr_scheduler_power",
    )
    optimizer: str = kohya_field(
        "AdamW8bit",
        "Training",
        "Optimizer",
        toml="optimizer_type",
        choices=(
            "AdamW", "AdamWScheduleFree", "AdamW8bit", "Adafactor", "bitsandbytes.optim.AdEMAMix8bit",
            "bitsandbytes.optim.PagedAdEMAMix8bit", "DAdaptation", "DAdaptAdaGrad", "DAdaptAdam", "DAdaptAdan",
            "DAdaptAdanIP", "DAdaptAdamPreprint", "DAdaptLion", "DAdaptSGD", "Lion", "Lion8bit", "PagedAdamW8bit",
            "PagedAdamW32bit", "PagedLion8bit", "Prodigy", "prodigyplus.ProdigyPlusScheduleFree",
            "pytorch_optimizer.CAME", "RAdamScheduleFree", "SGDNesterov", "SGDNesterov8bit", "SGDScheduleFree",
        ),
        strict=False,
        help="Optimizer class. sd-scripts: --optimizer_type",
    )
    optimizer_args: str = kohya_field(
        "", "Training", "Optimizer args",
        help="`key=value`, value parsed with `ast.literal_eval` (split on every `=`). sd-scripts: --optimizer_args",
    )
    lr_scheduler_args: str = kohya_field(
        "", "Training", "Lr scheduler args",
        help="`key=value` kwargs (literal_eval). sd-scripts: --lr_scheduler_args",
    )
    lr_scheduler_type: str = kohya_field(
        "", "Training", "Lr scheduler type", choices=("", "CosineAnnealingLR"),
        help="Custom scheduler class (torch.optim.lr_scheduler name or dotted path). sd-scripts: --lr_scheduler_type",
    )
    max_grad_norm: Optional[float] = kohya_field(
        1.0, "Training", "Max grad norm",
        help="Gradient clipping over LoRA params; 0 disables. sd-scripts: --max_grad_norm",
    )
    mixed_precision: str = kohya_field(
        "fp16", "Accelerate", "Mixed precision", launch="--mixed_precision", choices=("no", "fp16", "bf16", "fp8"),
        help="Autocast dtype and dtype of frozen weights. sd-scripts: --mixed_precision",
    )
    num_cpu_threads_per_process: int = kohya_field(
        2, "Accelerate", "CPU threads per process", launch="--num_cpu_threads_per_process", toml=None,
        help="CPU threads each training process may use. accelerate launch --num_cpu_threads_per_process",
    )
    num_processes: int = kohya_field(
        1, "Accelerate", "Num processes", launch="--num_processes", toml=None,
        help="Number of training processes (one per GPU). accelerate launch --num_processes",
    )
    num_machines: int = kohya_field(
        1, "Accelerate", "Num machines", launch="--num_machines", toml=None,
        help="Number of machines in a multi-node run. accelerate launch --num_machines",
    )
    multi_gpu: bool = kohya_field(
        False, "Accelerate", "Multi gpu", launch="--multi_gpu", toml=None,
        help="Distributed training over several GPUs of this machine. accelerate launch --multi_gpu",
    )
    gpu_ids: str = kohya_field(
        "", "Accelerate", "GPU ids", launch="--gpu_ids", toml=None,
        help="Which GPUs to use, e.g. 0,1. accelerate launch --gpu_ids",
    )
    main_process_port: int = kohya_field(
        0, "Accelerate", "Main process port", launch="--main_process_port", toml=None, zero_unset=True,
        help=(
            "Port of the main process in multi-GPU runs; 0 = accelerate's default. accelerate launch "
            "--main_process_port"
        ),
    )
    # Not kohya_ss fields (kohya_ss users type them into extra_accelerate_launch_args): a multi-node run needs
    # them, and as fields they are validated (rank < machines, an address given) before Start.
    machine_rank: int = kohya_field(
        0, "Accelerate", "Machine rank", launch="--machine_rank", toml=None,
        help=(
            "This machine's rank in a multi-node run: 0 on the machine at main_process_ip, 1..num_machines-1 on "
            "the others. accelerate launch --machine_rank"
        ),
    )
    main_process_ip: str = kohya_field(
        "", "Accelerate", "Main process IP", launch="--main_process_ip", toml=None,
        help=(
            "Address of the rank-0 machine, reachable from every machine (multi-node runs only). accelerate launch "
            "--main_process_ip"
        ),
    )
    dynamo_backend: str = kohya_field(
        "no",
        "Accelerate",
        "Dynamo backend",
        launch="--dynamo_backend",
        choices=(
            "no", "eager", "aot_eager", "inductor", "aot_ts_nvfuser", "nvprims_nvfuser", "cudagraphs", "ofi",
            "fx2trt", "onnxrt", "tensorrt", "ipex", "tvm",
        ),
        help="torch.compile backend; no = off. accelerate launch --dynamo_backend and sd-scripts --dynamo_backend",
    )
    dynamo_mode: str = kohya_field(
        "default",
        "Accelerate",
        "Dynamo mode",
        launch="--dynamo_mode",
        toml=None,
        choices=("default", "reduce-overhead", "max-autotune"),
        help="torch.compile mode (only with a dynamo backend). accelerate launch --dynamo_mode",
    )
    dynamo_use_fullgraph: bool = kohya_field(
        False, "Accelerate", "Dynamo use fullgraph", launch="--dynamo_use_fullgraph", toml=None,
        help=(
            "torch.compile with fullgraph=True (only with a dynamo backend). accelerate launch "
            "--dynamo_use_fullgraph"
        ),
    )
    dynamo_use_dynamic: bool = kohya_field(
        False, "Accelerate", "Dynamo use dynamic", launch="--dynamo_use_dynamic", toml=None,
        help="torch.compile with dynamic shapes (only with a dynamo backend). accelerate launch --dynamo_use_dynamic",
    )
    extra_accelerate_launch_args: str = kohya_field(
        "", "Accelerate", "Extra accelerate launch args", launch="(extra tokens)", toml=None,
        help="More accelerate launch options, split with shell rules; a flag given here replaces lora-tui's own",
    )
    gradient_checkpointing: bool = kohya_field(
        False, "Advanced", "Gradient checkpointing",
        help="Activation checkpointing in UNet (and trained TEs). sd-scripts: --gradient_checkpointing",
    )
    # Speed switches of the bundled trainer (docs/performance.md, "Levers"); upstream sd-scripts has none of them.
    no_cuda_graphs: bool = kohya_field(
        False, "Advanced", "No CUDA graphs", families=("sd1", "sd2", "sdxl"), bundled_only=True,
        help=(
            "Run every training step eagerly instead of replaying it as one CUDA graph (slower; for debugging). "
            "lora-tui trainer only: --no_cuda_graphs"
        ),
    )
    lora_fp32_weights: bool = kohya_field(
        False, "Advanced", "fp32 LoRA weights", families=("sd1", "sd2", "sdxl"), bundled_only=True,
        help=(
            "Cast the fp32 LoRA weights at each use as sd-scripts does, instead of one bf16 copy per step "
            "(slower, same loss within 1e-3). lora-tui trainer only: --lora_fp32_weights"
        ),
    )
    channels_last: bool = kohya_field(
        False, "Advanced", "Channels-last U-Net", families=("sd1", "sd2", "sdxl"), bundled_only=True,
        help="Store the U-Net in NHWC memory format (measured 6 % slower on an H200). lora-tui trainer only: "
             "--channels_last",
    )
    unet_autocast: bool = kohya_field(
        False, "Advanced", "U-Net under autocast", families=("sd1", "sd2", "sdxl"), bundled_only=True,
        help=(
            "With mixed_precision bf16 on a GPU, run the frozen U-Net under autocast as sd-scripts does (norms "
            "in fp32) instead of in bf16 throughout (measured 10 % slower and 5 GiB more at SDXL batch 4 on an "
            "H200; same loss within 3.5e-4). No effect in fp32 or on the CPU. lora-tui trainer only: "
            "--unet_autocast"
        ),
    )
    torch_compile: bool = kohya_field(
        False, "Advanced", "torch.compile U-Net",
        help=(
            "Compile the U-Net with torch.compile at the first steps. Backend: the Accelerate section's Dynamo "
            "backend, or inductor while that is 'no'. sd-scripts: --torch_compile (the whole U-Net); the "
            "lora-tui trainer compiles its transformer blocks only: on an H200 about 13 s more at the start "
            "the first time (under 1 s once inductor's cache holds them: lora-tui keeps it in its cache dir; a "
            "minute or more on a CPU), "
            "then 4 % faster and 2.7 GiB less at SDXL batch 4"
        ),
    )
    torch_compile_resnets: bool = kohya_field(
        False, "Advanced", "torch.compile ResNet blocks too", families=("sd1", "sd2", "sdxl"), bundled_only=True,
        help=(
            "Compile the U-Net's ResNet blocks as well as its transformer blocks (the trainer compiles both "
            "whether or not torch_compile is ticked). On an H200 about 55 s more at the start the first time "
            "(2-5 s from inductor's cache), then 8.5 % faster than without compiling at SDXL batch 4: pays "
            "back after about 4,500 steps the first time, 300 from the cache. On a CPU the first compile takes "
            "minutes. lora-tui trainer only: --torch_compile_resnets"
        ),
    )
    fp8_base: bool = kohya_field(
        False, "Advanced", "Fp8 base",
        help=(
            "Frozen UNet and TE weights stored as float8_e4m3fn (torch≥2.1, mixed precision required). "
            "sd-scripts: --fp8_base"
        ),
    )
    fp8_base_unet: bool = kohya_field(
        False, "Advanced", "Fp8 base unet", families=("flux1",),
        help="Fp8 for UNet only. sd-scripts: --fp8_base_unet",
    )
    full_fp16: bool = kohya_field(
        False, "Advanced", "Full fp16",
        help="LoRA weights/grads also fp16 (needs `mixed_precision=fp16`). sd-scripts: --full_fp16",
    )
    highvram: bool = kohya_field(
        False, "Advanced", "Highvram",
        help="Skip some `empty_cache` calls (sets a global). sd-scripts: --highvram",
    )
    lowvram: bool = kohya_field(
        False, "Advanced", "Lowvram", toml=None,
        help="kohya_ss GUI setting; not an sd-scripts option (never written)",
    )
    xformers: str = kohya_field(
        "xformers", "Advanced", "Cross-attention", toml=None, choices=("none", "sdpa", "xformers"),
        help=(
            "Cross-attention implementation: sdpa (PyTorch), xformers (needs the xformers package) or none. "
            "sd-scripts: --sdpa / --xformers"
        ),
    )
    shuffle_caption: bool = kohya_field(
        False, "Advanced", "Shuffle caption",
        help="Shuffle caption tokens split by `caption_separator`. sd-scripts: --shuffle_caption",
    )
    save_state: bool = kohya_field(
        False, "Advanced", "Save state",
        help="Also write accelerate state dirs at each save and at the end. sd-scripts: --save_state",
    )
    save_state_on_train_end: bool = kohya_field(
        False, "Advanced", "Save state on train end",
        help="Write the final state dir only. sd-scripts: --save_state_on_train_end",
    )
    resume: str = kohya_field(
        "", "Advanced", "Resume",
        help="State dir to resume from (or Hub path with `--resume_from_huggingface`). sd-scripts: --resume",
    )
    prior_loss_weight: Optional[float] = kohya_field(
        1.0, "Advanced", "Prior loss weight",
        help="Loss weight of regularization samples. sd-scripts: --prior_loss_weight",
    )
    color_aug: bool = kohya_field(
        False, "Advanced", "Color aug",
        help="Weak hue/gamma augmentation (blocks latent caching). sd-scripts: --color_aug",
    )
    flip_aug: bool = kohya_field(
        False, "Advanced", "Flip aug",
        help="50% horizontal flip. sd-scripts: --flip_aug",
    )
    masked_loss: bool = kohya_field(
        False, "Advanced", "Masked loss",
        help="Multiply loss by mask. sd-scripts: --masked_loss",
    )
    clip_skip: int = kohya_field(
        1, "Advanced", "CLIP skip", zero_unset=True,
        help="Use the N-th-from-last TE layer (SD1/2; ignored with a warning on SDXL). sd-scripts: --clip_skip",
    )
    gradient_accumulation_steps: int = kohya_field(
        1, "Advanced", "Gradient accumulation steps",
        help="Micro-steps per optimizer step. sd-scripts: --gradient_accumulation_steps",
    )
    mem_eff_attn: bool = kohya_field(
        False, "Advanced", "Mem eff attn",
        help="Kohya's own memory-efficient attention in the UNet. sd-scripts: --mem_eff_attn",
    )
    max_token_length: int = kohya_field(
        75, "Advanced", "Max token length", families=("sd1", "sd2", "sdxl", "sd3"), choices=(75, 150, 225),
        help="Caption token budget: 75 (default), 150 or 225. sd-scripts: --max_token_length (75 is not written)",
    )
    max_data_loader_n_workers: int = kohya_field(
        0, "Advanced", "Max data loader n workers",
        help=(
            "DataLoader workers (capped at CPU count; forced to 1 with DeepSpeed). sd-scripts: "
            "--max_data_loader_n_workers"
        ),
    )
    keep_tokens: int = kohya_field(
        0, "Advanced", "Keep tokens", zero_unset=True,
        help="Leading tokens never shuffled/dropped. sd-scripts: --keep_tokens",
    )
    persistent_data_loader_workers: bool = kohya_field(
        False, "Advanced", "Persistent data loader workers",
        help="Keep workers between epochs. sd-scripts: --persistent_data_loader_workers",
    )
    bucket_no_upscale: bool = kohya_field(
        True, "Advanced", "Bucket no upscale",
        help="Derive bucket from the image itself, never upscale. sd-scripts: --bucket_no_upscale",
    )
    random_crop: bool = kohya_field(
        False, "Advanced", "Random crop",
        help="Random instead of centre crop (blocks latent caching). sd-scripts: --random_crop",
    )
    bucket_reso_steps: int = kohya_field(
        64, "Advanced", "Bucket reso steps",
        help="Bucket side granularity (SD1: multiple of 64 enforced; SDXL: of 32). sd-scripts: --bucket_reso_steps",
    )
    v_pred_like_loss: Optional[float] = kohya_field(
        None, "Advanced", "V pred like loss",
        help="Adds v-like loss term; forbidden with `--v_parameterization`. sd-scripts: --v_pred_like_loss",
    )
    caption_dropout_every_n_epochs: int = kohya_field(
        0, "Advanced", "Caption dropout every n epochs", zero_unset=True,
        help=(
            "Empty captions for whole epochs whose number is divisible by N. sd-scripts: "
            "--caption_dropout_every_n_epochs"
        ),
    )
    caption_dropout_rate: Optional[float] = kohya_field(
        None, "Advanced", "Caption dropout rate",
        help="Probability of using an empty caption. sd-scripts: --caption_dropout_rate",
    )
    noise_offset_type: str = kohya_field(
        "Original", "Advanced", "Noise offset type", toml=None, choices=("Original", "Multires"),
        help=(
            "Original: noise offset / adaptive noise scale apply; Multires: multires noise applies (GUI switch, "
            "not written itself)"
        ),
    )
    noise_offset: Optional[float] = kohya_field(
        None, "Advanced", "Noise offset",
        help="Offset-noise strength (~0.0357–0.1). sd-scripts: --noise_offset",
    )
    noise_offset_random_strength: bool = kohya_field(
        False, "Advanced", "Noise offset random strength",
        help="Draw offset strength uniformly in [0, noise_offset]. sd-scripts: --noise_offset_random_strength",
    )
    adaptive_noise_scale: Optional[float] = kohya_field(
        None, "Advanced", "Adaptive noise scale", zero_unset=True,
        help=(
            "Adds scale x mean absolute latent value to the noise offset (requires noise_offset). sd-scripts: "
            "--adaptive_noise_scale"
        ),
    )
    multires_noise_iterations: int = kohya_field(
        0, "Advanced", "Multires noise iterations", zero_unset=True,
        help="Pyramid noise levels (6–10 typical). sd-scripts: --multires_noise_iterations",
    )
    multires_noise_discount: Optional[float] = kohya_field(
        0.3, "Advanced", "Multires noise discount",
        help="Per-level discount. sd-scripts: --multires_noise_discount",
    )
    ip_noise_gamma: Optional[float] = kohya_field(
        None, "Advanced", "Ip noise gamma",
        help="Input-perturbation noise strength (~0.1). sd-scripts: --ip_noise_gamma",
    )
    ip_noise_gamma_random_strength: bool = kohya_field(
        False, "Advanced", "Ip noise gamma random strength",
        help="Uniform in [0, gamma]. sd-scripts: --ip_noise_gamma_random_strength",
    )
    additional_parameters: str = kohya_field(
        "", "Advanced", "Additional parameters", toml=None,
        help=(
            "Extra sd-scripts command-line arguments, split with shell rules and appended after --config_file "
            "(they override the TOML)"
        ),
    )
    loss_type: str = kohya_field(
        "l2", "Advanced", "Loss type", choices=("huber", "smooth_l1", "l1", "l2"),
        help="Per-element loss. sd-scripts: --loss_type",
    )
    huber_schedule: str = kohya_field(
        "snr", "Advanced", "Huber schedule", choices=("constant", "exponential", "snr"),
        help="Timestep schedule of Huber `c`. sd-scripts: --huber_schedule",
    )
    huber_c: Optional[float] = kohya_field(
        0.1, "Advanced", "Huber c",
        help="Huber parameter. sd-scripts: --huber_c",
    )
    huber_scale: Optional[float] = kohya_field(
        1.0, "Advanced", "Huber scale",
        help="Huber scale (constant/exponential schedules). sd-scripts: --huber_scale",
    )
    vae_batch_size: int = kohya_field(
        0, "Advanced", "Vae batch size", zero_unset=True,
        help="VAE batch size for caching / on-the-fly encoding chunks. sd-scripts: --vae_batch_size",
    )
    min_snr_gamma: int = kohya_field(
        0, "Advanced", "Min snr gamma", zero_unset=True,
        help="Min-SNR weighting γ (5 typical). sd-scripts: --min_snr_gamma",
    )
    save_every_n_steps: int = kohya_field(
        0, "Advanced", "Save every n steps", zero_unset=True,
        help="Save `name-stepSSSSSSSS` every N steps. sd-scripts: --save_every_n_steps",
    )
    save_last_n_steps: int = kohya_field(
        0, "Advanced", "Save last n steps", zero_unset=True,
        help="Keep step files only for the last N steps. sd-scripts: --save_last_n_steps",
    )
    save_last_n_steps_state: int = kohya_field(
        0, "Advanced", "Save last n steps state", zero_unset=True,
        help="Same for step state dirs. sd-scripts: --save_last_n_steps_state",
    )
    save_last_n_epochs: int = kohya_field(
        0, "Advanced", "Save last n epochs", zero_unset=True,
        help="Keep only the newest N epoch files. sd-scripts: --save_last_n_epochs",
    )
    save_last_n_epochs_state: int = kohya_field(
        0, "Advanced", "Save last n epochs state", zero_unset=True,
        help="Same for state dirs (overrides previous for states). sd-scripts: --save_last_n_epochs_state",
    )
    skip_cache_check: bool = kohya_field(
        False, "Advanced", "Skip cache check",
        help="Trust existing cache files without opening them. sd-scripts: --skip_cache_check",
    )
    log_with: str = kohya_field(
        "", "Advanced", "Log with", choices=("", "wandb", "tensorboard", "all"),
        help="Tracker(s); tensorboard/all require `--logging_dir`. sd-scripts: --log_with",
    )
    wandb_api_key: str = kohya_field(
        "", "Advanced", "Wandb api key",
        help="Wandb login key. sd-scripts: --wandb_api_key",
    )
    wandb_run_name: str = kohya_field(
        "", "Advanced", "Wandb run name",
        help="Weights & Biases run name. sd-scripts: --wandb_run_name",
    )
    log_tracker_name: str = kohya_field(
        "", "Advanced", "Log tracker name",
        help="Accelerate project/run name. sd-scripts: --log_tracker_name",
    )
    log_tracker_config: str = kohya_field(
        "", "Advanced", "Log tracker config",
        help="TOML with tracker init kwargs. sd-scripts: --log_tracker_config",
    )
    log_config: bool = kohya_field(
        False, "Advanced", "Log config",
        help="Log (sanitised) args as tracker config/hparams. sd-scripts: --log_config",
    )
    scale_v_pred_loss_like_noise_pred: bool = kohya_field(
        False, "Advanced", "Scale v pred loss like noise pred",
        help="Requires `--v_parameterization`. sd-scripts: --scale_v_pred_loss_like_noise_pred",
    )
    full_bf16: bool = kohya_field(
        False, "Advanced", "Full bf16",
        help="LoRA weights/grads bf16 (needs bf16). sd-scripts: --full_bf16",
    )
    min_timestep: int = kohya_field(
        0, "Advanced", "Min timestep", zero_unset=True,
        help="Lower bound of sampled timesteps (inclusive). sd-scripts: --min_timestep",
    )
    max_timestep: int = kohya_field(
        1000, "Advanced", "Max timestep", zero_unset=True,
        help="Upper bound (exclusive). sd-scripts: --max_timestep",
    )
    vae: str = kohya_field(
        "", "Advanced", "VAE path",
        help="Replacement VAE (file, Diffusers folder, or Hub id). sd-scripts: --vae",
    )
    weighted_captions: bool = kohya_field(
        False, "Advanced", "Weighted captions",
        help="`(tok:1.2)` / `[tok]` attention weights in captions. sd-scripts: --weighted_captions",
    )
    debiased_estimation_loss: bool = kohya_field(
        False, "Advanced", "Debiased estimation loss",
        help="Debiased-estimation weighting. sd-scripts: --debiased_estimation_loss",
    )
    sdxl_cache_text_encoder_outputs: bool = kohya_field(
        False, "SDXL", "Cache text encoder outputs (SDXL)", toml="cache_text_encoder_outputs", families=("sdxl",),
        help=(
            "Encode captions with both SDXL text encoders once; requires U-Net-only training and no caption "
            "shuffling/dropout. sd-scripts: --cache_text_encoder_outputs"
        ),
    )
    sdxl_no_half_vae: bool = kohya_field(
        False, "SDXL", "No half VAE (SDXL)", toml="no_half_vae", families=("sdxl",),
        help="Keep VAE in fp32 under mixed precision. sd-scripts: --no_half_vae",
    )
    text_encoder_lr: Optional[float] = kohya_field(
        0.0001, "Network", "Text encoder learning rate", minimal=True,
        help=(
            "Text encoder LR (both SDXL text encoders); empty = Learning rate; 0 = train the U-Net only. "
            "sd-scripts: --text_encoder_lr"
        ),
    )
    t5xxl_lr: Optional[float] = kohya_field(
        None, "Network", "T5-XXL learning rate", toml=None,
        help="T5-XXL learning rate (Flux.1); becomes the second element of sd-scripts --text_encoder_lr",
    )
    unet_lr: Optional[float] = kohya_field(
        None, "Network", "U-Net learning rate",
        help=("U-Net LR; empty = Learning rate (a file without unet_lr leaves it empty); 0 = train the text "
              "encoder only. When set it overrides learning_rate for the U-Net (sd-scripts). "
              "sd-scripts: --unet_lr"),
    )
    network_dim: int = kohya_field(
        8, "Network", "Network rank (dim)", minimal=True,
        help="LoRA rank: size of the low-rank matrices. sd-scripts: --network_dim",
    )
    network_weights: str = kohya_field(
        "", "Network", "Network weights",
        help="Initial LoRA weights (non-strict load; alpha in file ignored). sd-scripts: --network_weights",
    )
    dim_from_weights: bool = kohya_field(
        False, "Network", "Dim from weights",
        help="Build the network from the shapes in `--network_weights`. sd-scripts: --dim_from_weights",
    )
    network_alpha: float = kohya_field(
        1.0, "Network", "Network alpha", minimal=True,
        help="Alpha; scale = alpha/dim; 0/None → alpha = dim. sd-scripts: --network_alpha",
    )
    LoRA_type: str = kohya_field(
        "Standard",
        "Network",
        "LoRA type",
        toml=None,
        choices=(
            "Flux1", "Flux1 OFT", "Kohya DyLoRA", "Kohya LoCon", "Kohya LoHa", "Kohya LoKr", "LoRA-FA",
            "LyCORIS/iA3", "LyCORIS/BOFT", "LyCORIS/Diag-OFT", "LyCORIS/DyLoRA", "LyCORIS/GLoRA", "LyCORIS/LoCon",
            "LyCORIS/LoHa", "LyCORIS/LoKr", "LyCORIS/Native Fine-Tuning", "Standard",
        ),
        help="Network kind; chooses network_module and network_args. sd-scripts: --network_module / --network_args",
    )
    factor: int = kohya_field(
        -1, "LyCORIS", "Factor", toml=None, net_arg="factor", lora_types=("Kohya LoKr", "LyCORIS/LoKr"),
        help="LoKr Kronecker factor; -1 = automatic. sd-scripts: network_args factor=",
    )
    bypass_mode: bool = kohya_field(
        False,
        "LyCORIS",
        "Bypass mode",
        toml=None,
        net_arg="bypass_mode",
        lora_types=("LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr"),
        help="LyCORIS bypass mode (needed for quantised base weights). sd-scripts: network_args bypass_mode=",
    )
    dora_wd: bool = kohya_field(
        False,
        "LyCORIS",
        "Dora wd",
        toml=None,
        net_arg="dora_wd",
        lora_types=("LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr"),
        help="DoRA: weight-decomposed LoRA. sd-scripts: network_args dora_wd=",
    )
    use_cp: bool = kohya_field(
        False, "LyCORIS", "Use cp", toml=None, net_arg="use_cp", lora_types=("LyCORIS/LoKr",),
        help="LoKr: CP decomposition of the conv kernels. sd-scripts: network_args use_cp=",
    )
    use_tucker: bool = kohya_field(
        False,
        "LyCORIS",
        "Use tucker",
        toml=None,
        net_arg="use_tucker",
        lora_types=(
            "Kohya LoHa", "Kohya LoKr", "LyCORIS/BOFT", "LyCORIS/Diag-OFT", "LyCORIS/DyLoRA", "LyCORIS/GLoRA",
            "LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr",
        ),
        help="Tucker decomposition of the 3x3 conv layers. sd-scripts: network_args use_tucker=",
    )
    use_scalar: bool = kohya_field(
        False,
        "LyCORIS",
        "Use scalar",
        toml=None,
        net_arg="use_scalar",
        lora_types=("LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr"),
        help="Train an extra scalar per module. sd-scripts: network_args use_scalar=",
    )
    rank_dropout_scale: bool = kohya_field(
        False,
        "LyCORIS",
        "Rank dropout scale",
        toml=None,
        net_arg="rank_dropout_scale",
        lora_types=(
            "LyCORIS/BOFT", "LyCORIS/Diag-OFT", "LyCORIS/GLoRA", "LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr",
            "LyCORIS/Native Fine-Tuning",
        ),
        help="Rescale the kept ranks after rank dropout. sd-scripts: network_args rank_dropout_scale=",
    )
    constrain: Optional[float] = kohya_field(
        None, "LyCORIS", "Constraint", toml=None, net_arg="constraint", lora_types=("LyCORIS/Diag-OFT",),
        help="Diag-OFT constraint (0 = none). sd-scripts: network_args constraint=",
    )
    rescaled: bool = kohya_field(
        False, "LyCORIS", "Rescaled", toml=None, net_arg="rescaled", lora_types=("LyCORIS/Diag-OFT",),
        help="Diag-OFT: rescaled variant. sd-scripts: network_args rescaled=",
    )
    train_norm: bool = kohya_field(
        False,
        "LyCORIS",
        "Train norm",
        toml=None,
        net_arg="train_norm",
        lora_types=(
            "LyCORIS/BOFT", "LyCORIS/Diag-OFT", "LyCORIS/DyLoRA", "LyCORIS/GLoRA", "LyCORIS/LoCon", "LyCORIS/LoHa",
            "LyCORIS/LoKr", "LyCORIS/Native Fine-Tuning",
        ),
        help="Also train normalisation layers. sd-scripts: network_args train_norm=",
    )
    decompose_both: bool = kohya_field(
        False, "LyCORIS", "Decompose both", toml=None, net_arg="decompose_both", lora_types=("LyCORIS/LoKr",),
        help="LoKr: decompose both Kronecker factors. sd-scripts: network_args decompose_both=",
    )
    train_on_input: bool = kohya_field(
        True, "LyCORIS", "Train on input", toml=None, net_arg="train_on_input", lora_types=("LyCORIS/iA3",),
        help="iA3: scale the input side. sd-scripts: network_args train_on_input=",
    )
    conv_dim: int = kohya_field(
        1,
        "Network",
        "Conv dim",
        toml=None,
        net_arg="conv_dim",
        lora_types=(
            "Kohya DyLoRA", "Kohya LoCon", "Kohya LoHa", "Kohya LoKr", "LyCORIS/BOFT", "LyCORIS/Diag-OFT",
            "LyCORIS/DyLoRA", "LyCORIS/GLoRA", "LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr", "LyCORIS/iA3",
        ),
        help="Rank of the 3x3 conv layers (LoCon and LyCORIS types). sd-scripts: network_args conv_dim=",
    )
    conv_alpha: int = kohya_field(
        1,
        "Network",
        "Conv alpha",
        toml=None,
        net_arg="conv_alpha",
        lora_types=(
            "Kohya DyLoRA", "Kohya LoCon", "Kohya LoHa", "Kohya LoKr", "LyCORIS/BOFT", "LyCORIS/Diag-OFT",
            "LyCORIS/DyLoRA", "LyCORIS/GLoRA", "LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr", "LyCORIS/iA3",
        ),
        help="Alpha of the 3x3 conv layers. sd-scripts: network_args conv_alpha=",
    )
    sample_every_n_steps: int = kohya_field(
        0, "Samples", "Sample every n steps", zero_unset=True,
        help="Sample every N global steps (≤0 → disabled). sd-scripts: --sample_every_n_steps",
    )
    sample_every_n_epochs: int = kohya_field(
        0, "Samples", "Sample every n epochs", zero_unset=True,
        help="Sample every N epochs; **disables** step sampling. sd-scripts: --sample_every_n_epochs",
    )
    sample_sampler: str = kohya_field(
        "euler_a",
        "Samples",
        "Sample sampler",
        choices=(
            "ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
            "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a",
        ),
        help="Default scheduler. sd-scripts: --sample_sampler",
    )
    sample_prompts: str = kohya_field(
        "", "Samples", "Sample prompts",
        help=(
            "Sample prompt text (one prompt per line); written to <output_dir>/sample/prompt.txt at Start. "
            "sd-scripts: --sample_prompts"
        ),
    )
    down_lr_weight: str = kohya_field(
        "",
        "Block weights",
        "Down lr weight",
        toml=None,
        net_arg="down_lr_weight",
        lora_types=("Kohya DyLoRA", "Kohya LoCon", "LoRA-FA", "Standard"),
        help=(
            "LR weights of the U-Net down blocks (comma list or a preset name). sd-scripts: network_args "
            "down_lr_weight="
        ),
    )
    mid_lr_weight: str = kohya_field(
        "",
        "Block weights",
        "Mid lr weight",
        toml=None,
        net_arg="mid_lr_weight",
        lora_types=("Kohya DyLoRA", "Kohya LoCon", "LoRA-FA", "Standard"),
        help="LR weight of the U-Net mid block. sd-scripts: network_args mid_lr_weight=",
    )
    up_lr_weight: str = kohya_field(
        "",
        "Block weights",
        "Up lr weight",
        toml=None,
        net_arg="up_lr_weight",
        lora_types=("Kohya DyLoRA", "Kohya LoCon", "LoRA-FA", "Standard"),
        help=(
            "LR weights of the U-Net up blocks (comma list or a preset name). sd-scripts: network_args "
            "up_lr_weight="
        ),
    )
    block_lr_zero_threshold: str = kohya_field(
        "",
        "Block weights",
        "Block lr zero threshold",
        toml=None,
        net_arg="block_lr_zero_threshold",
        lora_types=("Kohya DyLoRA", "Kohya LoCon", "LoRA-FA", "Standard"),
        help=(
            "Blocks whose LR weight is below this are not trained. sd-scripts: network_args "
            "block_lr_zero_threshold="
        ),
    )
    block_dims: str = kohya_field(
        "",
        "Block weights",
        "Block dims",
        toml=None,
        net_arg="block_dims",
        lora_types=("Kohya DyLoRA", "Kohya LoCon", "LoRA-FA", "Standard"),
        help="Rank per U-Net block (comma list). sd-scripts: network_args block_dims=",
    )
    block_alphas: str = kohya_field(
        "",
        "Block weights",
        "Block alphas",
        toml=None,
        net_arg="block_alphas",
        lora_types=("Kohya DyLoRA", "Kohya LoCon", "LoRA-FA", "Standard"),
        help="Alpha per U-Net block (comma list). sd-scripts: network_args block_alphas=",
    )
    conv_block_dims: str = kohya_field(
        "",
        "Block weights",
        "Conv block dims",
        toml=None,
        net_arg="conv_block_dims",
        lora_types=("Kohya DyLoRA", "Kohya LoCon", "LoRA-FA", "Standard"),
        help="Conv rank per U-Net block (comma list). sd-scripts: network_args conv_block_dims=",
    )
    conv_block_alphas: str = kohya_field(
        "",
        "Block weights",
        "Conv block alphas",
        toml=None,
        net_arg="conv_block_alphas",
        lora_types=("Kohya DyLoRA", "Kohya LoCon", "LoRA-FA", "Standard"),
        help="Conv alpha per U-Net block (comma list). sd-scripts: network_args conv_block_alphas=",
    )
    unit: int = kohya_field(
        1, "Network", "DyLoRA unit", toml=None, net_arg="unit", lora_types=("Kohya DyLoRA", "LyCORIS/DyLoRA"),
        help="DyLoRA unit (ranks trained together). sd-scripts: network_args unit= (LyCORIS: block_size=)",
    )
    scale_weight_norms: Optional[float] = kohya_field(
        None, "Network", "Scale weight norms",
        help="Max-norm regularisation of each ΔW (1.0 typical). sd-scripts: --scale_weight_norms",
    )
    network_dropout: Optional[float] = kohya_field(
        None, "Network", "Network dropout",
        help="Dropout on the rank-space activation. sd-scripts: --network_dropout",
    )
    rank_dropout: Optional[float] = kohya_field(
        None,
        "Network",
        "Rank dropout",
        toml=None,
        net_arg="rank_dropout",
        lora_types=(
            "Flux1", "Kohya DyLoRA", "Kohya LoCon", "Kohya LoHa", "Kohya LoKr", "LoRA-FA", "LyCORIS/BOFT",
            "LyCORIS/Diag-OFT", "LyCORIS/DyLoRA", "LyCORIS/GLoRA", "LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr",
            "LyCORIS/Native Fine-Tuning", "Standard",
        ),
        help="Probability of dropping each rank. sd-scripts: network_args rank_dropout=",
    )
    module_dropout: Optional[float] = kohya_field(
        None,
        "Network",
        "Module dropout",
        toml=None,
        net_arg="module_dropout",
        lora_types=(
            "Flux1", "Kohya DyLoRA", "Kohya LoCon", "Kohya LoHa", "Kohya LoKr", "LoRA-FA", "LyCORIS/BOFT",
            "LyCORIS/Diag-OFT", "LyCORIS/DyLoRA", "LyCORIS/GLoRA", "LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr",
            "LyCORIS/Native Fine-Tuning", "Standard",
        ),
        help="Probability of skipping a whole module per step. sd-scripts: network_args module_dropout=",
    )
    LyCORIS_preset: str = kohya_field(
        "full",
        "Network",
        "LyCORIS preset",
        toml=None,
        net_arg="preset",
        lora_types=(
            "LyCORIS/BOFT", "LyCORIS/Diag-OFT", "LyCORIS/DyLoRA", "LyCORIS/GLoRA", "LyCORIS/LoCon", "LyCORIS/LoHa",
            "LyCORIS/LoKr", "LyCORIS/Native Fine-Tuning", "LyCORIS/iA3",
        ),
        choices=("attn-mlp", "attn-only", "full", "full-lin", "unet-transformer-only", "unet-convblock-only"),
        strict=False,
        help=(
            "Which layers LyCORIS trains: a preset name or a path to a LyCORIS preset TOML. sd-scripts: "
            "network_args preset="
        ),
    )
    loraplus_lr_ratio: Optional[float] = kohya_field(
        None, "Network", "Loraplus lr ratio", toml=None, net_arg="loraplus_lr_ratio",
        help="LoRA+: LR multiplier of the up matrices. sd-scripts: network_args loraplus_lr_ratio=",
    )
    loraplus_text_encoder_lr_ratio: Optional[float] = kohya_field(
        None, "Network", "Loraplus text encoder lr ratio", toml=None, net_arg="loraplus_text_encoder_lr_ratio",
        help="LoRA+ ratio for the text encoder. sd-scripts: network_args loraplus_text_encoder_lr_ratio=",
    )
    loraplus_unet_lr_ratio: Optional[float] = kohya_field(
        None, "Network", "Loraplus unet lr ratio", toml=None, net_arg="loraplus_unet_lr_ratio",
        help="LoRA+ ratio for the U-Net. sd-scripts: network_args loraplus_unet_lr_ratio=",
    )
    train_lora_ggpo: bool = kohya_field(
        False, "Network", "Train lora ggpo", toml=None, lora_types=("Flux1",),
        help="Flux.1: enable GGPO regularisation (sigma and beta below)",
    )
    ggpo_sigma: Optional[float] = kohya_field(
        0.03, "Network", "Ggpo sigma", toml=None, net_arg="ggpo_sigma", lora_types=("Flux1",),
        help="GGPO sigma (Flux.1). sd-scripts: network_args ggpo_sigma=",
    )
    ggpo_beta: Optional[float] = kohya_field(
        0.01, "Network", "Ggpo beta", toml=None, net_arg="ggpo_beta", lora_types=("Flux1",),
        help="GGPO beta (Flux.1). sd-scripts: network_args ggpo_beta=",
    )
    huggingface_repo_id: str = kohya_field(
        "", "Hugging Face", "Hugging Face repo id",
        help="Upload each saved file to this repo. sd-scripts: --huggingface_repo_id",
    )
    huggingface_token: str = kohya_field(
        "", "Hugging Face", "Huggingface token",
        help="Hugging Face token (stored in clear text in the config). sd-scripts: --huggingface_token",
    )
    huggingface_repo_type: str = kohya_field(
        "", "Hugging Face", "Huggingface repo type",
        help="Repository type (model, dataset). sd-scripts: --huggingface_repo_type",
    )
    huggingface_repo_visibility: str = kohya_field(
        "", "Hugging Face", "Huggingface repo visibility",
        help="\"public\" makes a public repo; anything else private. sd-scripts: --huggingface_repo_visibility",
    )
    huggingface_path_in_repo: str = kohya_field(
        "", "Hugging Face", "Huggingface path in repo",
        help="Path prefix in repo. sd-scripts: --huggingface_path_in_repo",
    )
    save_state_to_huggingface: bool = kohya_field(
        False, "Hugging Face", "Save state to huggingface",
        help="Upload state dirs too. sd-scripts: --save_state_to_huggingface",
    )
    resume_from_huggingface: str = kohya_field(
        "", "Hugging Face", "Resume from huggingface",
        help="`--resume` is `repo_id/path[:revision[:repo_type]]`. sd-scripts: --resume_from_huggingface",
    )
    async_upload: bool = kohya_field(
        False, "Hugging Face", "Async upload",
        help="Upload in a background thread (final upload is always synchronous). sd-scripts: --async_upload",
    )
    metadata_author: str = kohya_field(
        "", "Metadata", "Metadata author",
        help="Author stored in the LoRA metadata. sd-scripts: --metadata_author",
    )
    metadata_description: str = kohya_field(
        "", "Metadata", "Metadata description",
        help="Description stored in the LoRA metadata. sd-scripts: --metadata_description",
    )
    metadata_license: str = kohya_field(
        "", "Metadata", "Metadata license",
        help="License stored in the LoRA metadata. sd-scripts: --metadata_license",
    )
    metadata_tags: str = kohya_field(
        "", "Metadata", "Metadata tags",
        help="Tags stored in the LoRA metadata. sd-scripts: --metadata_tags",
    )
    metadata_title: str = kohya_field(
        "", "Metadata", "Metadata title",
        help="Title stored in the LoRA metadata. sd-scripts: --metadata_title",
    )
    flux1_cache_text_encoder_outputs: bool = kohya_field(
        False, "Flux.1", "Flux1 cache text encoder outputs", toml="cache_text_encoder_outputs", families=("flux1",),
        help=(
            "Encode captions with CLIP-L and T5 once; requires U-Net-only training and no caption "
            "shuffling/dropout. sd-scripts: --cache_text_encoder_outputs"
        ),
    )
    flux1_cache_text_encoder_outputs_to_disk: bool = kohya_field(
        False,
        "Flux.1",
        "Flux1 cache text encoder outputs to disk",
        toml="cache_text_encoder_outputs_to_disk",
        families=("flux1",),
        help="Also keep those outputs on disk next to the images. sd-scripts: --cache_text_encoder_outputs_to_disk",
    )
    model_type: str = kohya_field(
        "flux", "Flux.1", "Model type", families=("flux1",), choices=("flux", "chroma"),
        help="Flux.1 variant: flux or chroma. sd-scripts: --model_type",
    )
    ae: str = kohya_field(
        "", "Flux.1", "Autoencoder (ae) path", families=("flux1",),
        help="Flux.1 autoencoder file. sd-scripts: --ae",
    )
    clip_l: str = kohya_field(
        "", "Flux.1", "CLIP-L path", families=("flux1",),
        help="Flux.1 CLIP-L text encoder file. sd-scripts: --clip_l",
    )
    t5xxl: str = kohya_field(
        "", "Flux.1", "T5-XXL path", families=("flux1",),
        help="Flux.1 T5-XXL text encoder file. sd-scripts: --t5xxl",
    )
    discrete_flow_shift: Optional[float] = kohya_field(
        3.0, "Flux.1", "Discrete flow shift", families=("flux1",),
        help="Shift of the flow-matching timestep schedule. sd-scripts: --discrete_flow_shift",
    )
    model_prediction_type: str = kohya_field(
        "sigma_scaled",
        "Flux.1",
        "Model prediction type",
        families=("flux1",),
        choices=("raw", "additive", "sigma_scaled"),
        help=(
            "How the Flux.1 prediction is turned into the target: raw, additive or sigma_scaled. sd-scripts: "
            "--model_prediction_type"
        ),
    )
    timestep_sampling: str = kohya_field(
        "sigma",
        "Flux.1",
        "Timestep sampling",
        families=("flux1",),
        choices=("flux_shift", "sigma", "shift", "sigmoid", "uniform"),
        help="How training timesteps are drawn. sd-scripts: --timestep_sampling",
    )
    split_mode: bool = kohya_field(
        False, "Flux.1", "Split mode", families=("flux1",),
        help="Flux.1 split mode (train the single blocks only; saves memory). sd-scripts: --split_mode",
    )
    train_blocks: str = kohya_field(
        "all", "Flux.1", "Train blocks", toml=None, families=("flux1",), choices=("all", "double", "single"),
        help=(
            "Flux.1 blocks to train; only \"single\" (with split mode) reaches sd-scripts as network_args "
            "train_blocks=single"
        ),
    )
    t5xxl_max_token_length: int = kohya_field(
        512, "Flux.1", "T5xxl max token length", families=("flux1",),
        help="T5-XXL caption token budget (Flux.1). sd-scripts: --t5xxl_max_token_length",
    )
    enable_all_linear: bool = kohya_field(
        False,
        "Flux.1",
        "Enable all linear",
        toml=None,
        net_arg="enable_all_linear=True",
        families=("flux1",),
        lora_types=("Flux1 OFT",),
        help="Flux1 OFT: apply to every linear layer. sd-scripts: network_args enable_all_linear=True",
    )
    guidance_scale: Optional[float] = kohya_field(
        3.5, "Flux.1", "Guidance scale", families=("flux1",),
        help="Guidance value fed to Flux.1 dev during training. sd-scripts: --guidance_scale",
    )
    mem_eff_save: bool = kohya_field(
        False, "Flux.1", "Mem eff save", toml=None, families=("flux1",),
        help="kohya_ss GUI setting; the pinned sd-scripts has no such option (never written)",
    )
    apply_t5_attn_mask: bool = kohya_field(
        False, "Flux.1", "Apply t5 attn mask", families=("flux1",),
        help="Mask T5 padding tokens in attention. sd-scripts: --apply_t5_attn_mask",
    )
    split_qkv: bool = kohya_field(
        False, "Flux.1", "Split qkv", toml=None, net_arg="split_qkv=True", families=("flux1",), lora_types=("Flux1",),
        help="Flux.1: separate LoRA for q, k and v. sd-scripts: network_args split_qkv=True",
    )
    train_t5xxl: bool = kohya_field(
        False,
        "Flux.1",
        "Train t5xxl",
        toml=None,
        net_arg="train_t5xxl=True",
        families=("flux1",),
        lora_types=("Flux1",),
        help="Flux.1: also train a LoRA on T5-XXL. sd-scripts: network_args train_t5xxl=True",
    )
    cpu_offload_checkpointing: bool = kohya_field(
        False, "Flux.1", "Cpu offload checkpointing", families=("flux1",),
        help="Offload checkpointed activations to CPU (where supported). sd-scripts: --cpu_offload_checkpointing",
    )
    blocks_to_swap: int = kohya_field(
        0, "Advanced", "Blocks to swap", families=("flux1", "sd3"), zero_unset=True,
        help="Transformer blocks kept on the CPU and swapped in (saves VRAM, slower). sd-scripts: --blocks_to_swap",
    )
    single_blocks_to_swap: int = kohya_field(
        0, "Flux.1", "Single blocks to swap", toml=None, families=("flux1",),
        help="Deprecated kohya_ss setting (use Blocks to swap); the pinned sd-scripts has no such option",
    )
    double_blocks_to_swap: int = kohya_field(
        0, "Flux.1", "Double blocks to swap", toml=None, families=("flux1",),
        help="Deprecated kohya_ss setting (use Blocks to swap); the pinned sd-scripts has no such option",
    )
    img_attn_dim: str = kohya_field(
        "", "Flux.1", "Img attn dim", toml=None, net_arg="img_attn_dim", families=("flux1",), lora_types=("Flux1",),
        help="Flux.1 rank of the image attention layers. sd-scripts: network_args img_attn_dim=",
    )
    img_mlp_dim: str = kohya_field(
        "", "Flux.1", "Img mlp dim", toml=None, net_arg="img_mlp_dim", families=("flux1",), lora_types=("Flux1",),
        help="Flux.1 rank of the image MLP layers. sd-scripts: network_args img_mlp_dim=",
    )
    img_mod_dim: str = kohya_field(
        "", "Flux.1", "Img mod dim", toml=None, net_arg="img_mod_dim", families=("flux1",), lora_types=("Flux1",),
        help="Flux.1 rank of the image modulation layers. sd-scripts: network_args img_mod_dim=",
    )
    single_dim: str = kohya_field(
        "", "Flux.1", "Single dim", toml=None, net_arg="single_dim", families=("flux1",), lora_types=("Flux1",),
        help="Flux.1 rank of the single blocks. sd-scripts: network_args single_dim=",
    )
    txt_attn_dim: str = kohya_field(
        "", "Flux.1", "Txt attn dim", toml=None, net_arg="txt_attn_dim", families=("flux1",), lora_types=("Flux1",),
        help="Flux.1 rank of the text attention layers. sd-scripts: network_args txt_attn_dim=",
    )
    txt_mlp_dim: str = kohya_field(
        "", "Flux.1", "Txt mlp dim", toml=None, net_arg="txt_mlp_dim", families=("flux1",), lora_types=("Flux1",),
        help="Flux.1 rank of the text MLP layers. sd-scripts: network_args txt_mlp_dim=",
    )
    txt_mod_dim: str = kohya_field(
        "", "Flux.1", "Txt mod dim", toml=None, net_arg="txt_mod_dim", families=("flux1",), lora_types=("Flux1",),
        help="Flux.1 rank of the text modulation layers. sd-scripts: network_args txt_mod_dim=",
    )
    single_mod_dim: str = kohya_field(
        "",
        "Flux.1",
        "Single mod dim",
        toml=None,
        net_arg="single_mod_dim",
        families=("flux1",),
        lora_types=("Flux1",),
        help="Flux.1 rank of the single-block modulation layers. sd-scripts: network_args single_mod_dim=",
    )
    in_dims: str = kohya_field(
        "", "Flux.1", "In dims", toml=None, net_arg="in_dims", families=("flux1",), lora_types=("Flux1",),
        help="Flux.1 ranks of the input layers (list). sd-scripts: network_args in_dims=",
    )
    train_double_block_indices: str = kohya_field(
        "all",
        "Flux.1",
        "Train double block indices",
        toml=None,
        net_arg="train_double_block_indices",
        families=("flux1",),
        lora_types=("Flux1",),
        help=(
            "Flux.1 double blocks to train (all, none or indices). sd-scripts: network_args "
            "train_double_block_indices="
        ),
    )
    train_single_block_indices: str = kohya_field(
        "all",
        "Flux.1",
        "Train single block indices",
        toml=None,
        net_arg="train_single_block_indices",
        families=("flux1",),
        lora_types=("Flux1",),
        help=(
            "Flux.1 single blocks to train (all, none or indices). sd-scripts: network_args "
            "train_single_block_indices="
        ),
    )
    sd3_cache_text_encoder_outputs: bool = kohya_field(
        False, "SD3", "Sd3 cache text encoder outputs", toml="cache_text_encoder_outputs", families=("sd3",),
        help=(
            "Encode captions with the SD3 text encoders once; requires U-Net-only training and no caption "
            "shuffling/dropout. sd-scripts: --cache_text_encoder_outputs"
        ),
    )
    sd3_cache_text_encoder_outputs_to_disk: bool = kohya_field(
        False,
        "SD3",
        "Sd3 cache text encoder outputs to disk",
        toml="cache_text_encoder_outputs_to_disk",
        families=("sd3",),
        help="Also keep those outputs on disk next to the images. sd-scripts: --cache_text_encoder_outputs_to_disk",
    )
    sd3_fused_backward_pass: bool = kohya_field(
        False, "SD3", "Sd3 fused backward pass", toml="fused_backward_pass", families=("sd3",),
        help=(
            "Only asserts Adafactor + no grad-accum; has no effect in network training. sd-scripts: "
            "--fused_backward_pass"
        ),
    )
    clip_g: str = kohya_field(
        "", "SD3", "CLIP-G path", families=("sd3",),
        help="SD3 CLIP-G text encoder file; empty: the one inside the checkpoint. sd-scripts: --clip_g",
    )
    clip_g_dropout_rate: Optional[float] = kohya_field(
        None, "SD3", "Clip g dropout rate", families=("sd3",),
        help="Probability of dropping the CLIP-G output. sd-scripts: --clip_g_dropout_rate",
    )
    sd3_clip_l: str = kohya_field(
        "", "SD3", "CLIP-L path (SD3)", toml="clip_l", families=("sd3",),
        help="SD3 CLIP-L text encoder file; empty: the one inside the checkpoint. sd-scripts: --clip_l",
    )
    sd3_clip_l_dropout_rate: Optional[float] = kohya_field(
        None, "SD3", "Sd3 clip l dropout rate", toml="clip_l_dropout_rate", families=("sd3",),
        help="Probability of dropping the CLIP-L output. sd-scripts: --clip_l_dropout_rate",
    )
    sd3_disable_mmap_load_safetensors: bool = kohya_field(
        False, "SD3", "Sd3 disable mmap load safetensors", toml="disable_mmap_load_safetensors", families=("sd3",),
        help=(
            "Read the whole safetensors file into memory instead of mmap. sd-scripts: "
            "--disable_mmap_load_safetensors"
        ),
    )
    sd3_enable_scaled_pos_embed: bool = kohya_field(
        False, "SD3", "Sd3 enable scaled pos embed", toml="enable_scaled_pos_embed", families=("sd3",),
        help="Scale the position embedding to the training resolution. sd-scripts: --enable_scaled_pos_embed",
    )
    logit_mean: Optional[float] = kohya_field(
        None, "SD3", "Logit mean", families=("sd3",),
        help="Mean of the logit-normal timestep weighting. sd-scripts: --logit_mean",
    )
    logit_std: Optional[float] = kohya_field(
        1.0, "SD3", "Logit std", families=("sd3",),
        help="Standard deviation of the logit-normal timestep weighting. sd-scripts: --logit_std",
    )
    mode_scale: Optional[float] = kohya_field(
        1.29, "SD3", "Mode scale", families=("sd3",),
        help="Scale of the mode timestep weighting. sd-scripts: --mode_scale",
    )
    pos_emb_random_crop_rate: Optional[float] = kohya_field(
        None, "SD3", "Pos emb random crop rate", families=("sd3",),
        help="Probability of a random crop of the position embedding. sd-scripts: --pos_emb_random_crop_rate",
    )
    save_clip: bool = kohya_field(
        False, "SD3", "Save clip", families=("sd3",),
        help="Also save the CLIP encoders in the output (SD3). sd-scripts: --save_clip",
    )
    save_t5xxl: bool = kohya_field(
        False, "SD3", "Save t5xxl", families=("sd3",),
        help="Also save T5-XXL in the output (SD3). sd-scripts: --save_t5xxl",
    )
    sd3_t5_dropout_rate: Optional[float] = kohya_field(
        None, "SD3", "Sd3 t5 dropout rate", toml="t5_dropout_rate", families=("sd3",),
        help="Probability of dropping the T5 output. sd-scripts: --t5_dropout_rate",
    )
    sd3_t5xxl: str = kohya_field(
        "", "SD3", "T5-XXL path (SD3)", toml="t5xxl", families=("sd3",),
        help="SD3 T5-XXL text encoder file; empty: the one inside the checkpoint. sd-scripts: --t5xxl",
    )
    t5xxl_device: str = kohya_field(
        "", "SD3", "T5xxl device", families=("sd3",),
        help="Device that runs T5-XXL (e.g. cpu). sd-scripts: --t5xxl_device",
    )
    t5xxl_dtype: str = kohya_field(
        "bf16", "SD3", "T5xxl dtype", families=("sd3",), choices=("float32", "fp16", "bf16"),
        help="Dtype of T5-XXL. sd-scripts: --t5xxl_dtype",
    )
    sd3_text_encoder_batch_size: int = kohya_field(
        1, "SD3", "Sd3 text encoder batch size", toml="text_encoder_batch_size", families=("sd3",),
        help="Batch size when caching text encoder outputs. sd-scripts: --text_encoder_batch_size",
    )
    weighting_scheme: str = kohya_field(
        "logit_normal",
        "SD3",
        "Weighting scheme",
        families=("sd3",),
        choices=("logit_normal", "sigma_sqrt", "mode", "cosmap", "uniform"),
        help="Timestep weighting scheme. sd-scripts: --weighting_scheme",
    )
    sd3_checkbox: bool = kohya_field(
        False, "Model", "SD3 model", toml=None,
        help="The base model is SD3 (runs sd3_train_network.py)",
    )

    @field_validator("max_resolution", mode="before")
    @classmethod
    def _resolution(cls, v: Any) -> str:
        return normalise_resolution(v)

    @field_validator("*", mode="after")
    @classmethod
    def _choices(cls, v: Any, info: Any) -> Any:
        meta = field_meta(info.field_name)
        if meta.choices and meta.strict_choices and v is not None and v not in meta.choices:
            shown = ", ".join(str(c) for c in meta.choices)
            raise ValueError(f"{v!r} is not one of: {shown}")
        return v


def _meta_from_field(name: str, info: Any) -> FieldMeta:
    extra = info.json_schema_extra["lora_tui"]
    ann = info.annotation
    text = str(ann)
    if ann is bool:
        kind = "bool"
    elif ann is int or "int" in text:
        kind = "int"
    elif ann is float or "float" in text:
        kind = "float"
    else:
        kind = "str"
    toml = name if extra["toml"] == "__same__" else extra["toml"]
    return FieldMeta(
        name=name, section=extra["section"], label=extra["label"], help=extra["help"], kind=kind,
        optional="Optional" in text or "None" in text, default=info.default, toml_key=toml,
        net_arg=extra["net_arg"], launch=extra["launch"],
        families=tuple(extra["families"]) if extra["families"] else None,
        lora_types=tuple(extra["lora_types"]) if extra["lora_types"] else None,
        minimal=extra["minimal"], choices=tuple(extra["choices"]) if extra["choices"] else None,
        strict_choices=extra["strict"], zero_unset=extra["zero_unset"], bundled_only=extra["bundled_only"],
    )


@lru_cache(maxsize=None)
def _all_meta() -> dict[str, FieldMeta]:
    return {n: _meta_from_field(n, f) for n, f in TrainingConfig.model_fields.items()}


def field_meta(name: str) -> FieldMeta:
    """Metadata of field ``name``; raises KeyError for an unknown name."""
    return _all_meta()[name]


def all_field_meta() -> list[FieldMeta]:
    """Metadata of every field, in declaration order (kohya_ss signature order)."""
    return list(_all_meta().values())


def fields_in_section(section: str) -> list[FieldMeta]:
    """The fields of one form section, in declaration order."""
    return [m for m in _all_meta().values() if m.section == section]


def minimal_fields() -> list[FieldMeta]:
    """The 16 fields of the Minimal form (the Minimal form), in that form's order."""
    order = ["pretrained_model_name_or_path", "train_data_dir", "output_name", "output_dir", "learning_rate",
             "text_encoder_lr", "network_dim", "network_alpha", "epoch", "max_train_steps", "max_resolution",
             "train_batch_size", "cache_latents", "cache_latents_to_disk", "save_model_as", "save_precision"]
    return [field_meta(n) for n in order]


def family(cfg: TrainingConfig) -> str:
    """The model family: ``sdxl`` > ``flux1`` > ``sd3`` (the priority of kohya_ss' `train_model`: the SDXL box is checked first), else ``sd2``
    (``v2``) or ``sd1``."""
    if cfg.sdxl:
        return "sdxl"
    if cfg.flux1_checkbox:
        return "flux1"
    if cfg.sd3_checkbox:
        return "sd3"
    return "sd2" if cfg.v2 else "sd1"


def script_name(cfg: TrainingConfig) -> str:
    """The sd-scripts entry point for ``cfg`` (kohya_ss' `train_model`), e.g. ``sdxl_train_network.py``."""
    return SCRIPTS[family(cfg)]


def applies(meta: FieldMeta, cfg: TrainingConfig) -> bool:
    """Whether the field matters for ``cfg``'s family and LoRA type (forms hide it, the TOML drops it otherwise)."""
    if meta.families is not None and family(cfg) not in meta.families:
        return False
    if meta.lora_types is not None and cfg.LoRA_type not in meta.lora_types:
        return False
    return True
