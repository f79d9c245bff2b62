"""Option checks for `network_module = "lycoris.kohya"` that run before torch is imported (the network itself is
in `lycoris_network.py`)."""
from __future__ import annotations

import importlib.util

MODULE = "lycoris.kohya"


def lycoris_available() -> bool:
    """True when the `lycoris` package (PyPI `lycoris-lora`) can be imported."""
    return importlib.util.find_spec("lycoris") is not None


def lycoris_problems(args) -> list[str]:
    """Why `network_module lycoris.kohya` cannot run with these options (checked before torch is imported)."""
    if args.network_module != MODULE:
        return []
    if not lycoris_available():
        return ["network_module lycoris.kohya needs the lycoris-lora package: pip install lycoris-lora into the "
                "trainer's Python, or use networks.lora"]
    return []
