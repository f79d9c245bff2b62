"""lora-tui: a keyboard-driven terminal app that configures, launches, watches and stops LoRA training.

Layers (imports point one way): ``ui`` → ``run`` → ``plan`` → ``config``. Nothing in this package imports
torch, diffusers, transformers, accelerate or safetensors.
"""

__version__ = "0.1.0"
