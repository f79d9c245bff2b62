#!/usr/bin/env python
"""Flux.1 LoRA training with kohya sd-scripts' `flux_train_network.py` command line and `--config_file` TOML.
See README.md beside this file."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lora_trainer.flux_train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
