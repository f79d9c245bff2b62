#!/usr/bin/env python
"""SD3 / SD3.5 LoRA training with kohya sd-scripts' `sd3_train_network.py` command line and `--config_file` TOML.
See README.md beside this file."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lora_trainer.sd3_train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
