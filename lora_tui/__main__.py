"""``python -m lora_tui`` = the ``lora-tui`` command."""

from lora_tui.cli import main

raise SystemExit(main())
