#!/usr/bin/env python
"""LoRA training with kohya sd-scripts' `sdxl_train_network.py` command line and `--config_file` TOML
(SDXL). See README.md beside this file."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lora_trainer.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("sdxl_train_network"))
