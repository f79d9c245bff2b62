"""Build hook: the wheel carries the bundled trainer and the presets inside the package.

In the repository the trainer (`sd-scripts/`) and the presets (`presets/`) sit beside `lora_tui/`, where the
trainer's entry scripts run as they are and kohya users recognise the layout. An installed wheel has no checkout
beside it, so `build_py` copies both trees into `lora_tui/_bundled/`; `lora_tui.config.paths` looks there first.
Everything else (metadata, dependencies) is in pyproject.toml.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
#: Source folder → folder under `lora_tui/_bundled/` in the built package.
BUNDLED_TREES = {"sd-scripts": "sd-scripts", "presets": "presets"}
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")


class BuildWithBundledTrees(build_py):
    """`build_py` that also copies the bundled trainer and presets into the built `lora_tui` package."""

    def run(self):
        super().run()
        if self.editable_mode:  # an editable install runs from the checkout: paths.py finds the trees there
            return
        target = Path(self.build_lib) / "lora_tui" / "_bundled"
        for source, name in BUNDLED_TREES.items():
            dest = target / name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(HERE / source, dest, ignore=_SKIP)


setup(cmdclass={"build_py": BuildWithBundledTrees})
