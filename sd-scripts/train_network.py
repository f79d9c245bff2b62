#!/usr/bin/env python
"""LoRA training with kohya sd-scripts' `train_network.py` command line and `--config_file` TOML
(SD1.x / SD2.x with --v2). See README.md beside this file."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lora_trainer.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("train_network"))
