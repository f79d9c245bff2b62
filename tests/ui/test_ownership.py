"""UI state has owners (issue 17): `LoraApp` is a few mixins over one object, and each piece of its state is written
in one file only (the file that owns it), and no file reaches another file's `_private` names. Read from the
source's syntax trees, so a new cross-file write or private call fails here with the file and line."""
from __future__ import annotations

import ast
from pathlib import Path

UI = Path(__file__).resolve().parents[2] / "lora_tui" / "ui"

def _trees(folder: Path) -> dict[str, ast.Module]:
    return {path.name: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.py"))}


def _app_classes(trees: dict[str, ast.Module]) -> list[tuple[str, ast.ClassDef]]:
    """`LoraApp` and its bases defined in lora_tui/ui (the mixins), each with its file."""
    classes = {node.name: (name, node) for name, tree in trees.items() for node in ast.walk(tree)
               if isinstance(node, ast.ClassDef)}
    app_file, app = classes["LoraApp"]
    return [(app_file, app)] + [classes[base.id] for base in app.bases
                                if isinstance(base, ast.Name) and base.id in classes]


def _is_app_ref(node: ast.expr, in_app_class: bool) -> bool:
    # `self` inside LoraApp or a mixin; `app` / `self.app` anywhere (a widget writing the app's state)
    if isinstance(node, ast.Name):
        return node.id == "app" or (in_app_class and node.id == "self")
    return isinstance(node, ast.Attribute) and node.attr == "app" and isinstance(node.value, ast.Name) \
        and node.value.id == "self"


def attribute_writers(folder: Path = UI) -> dict[str, set[str]]:
    """Each attribute of the app written anywhere in `folder` (lora_tui/ui) → the files that write it."""
    trees = _trees(folder)
    app_nodes = {id(node) for _, cls in _app_classes(trees) for node in ast.walk(cls)}
    writers: dict[str, set[str]] = {}
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)) \
                    and _is_app_ref(node.value, id(node) in app_nodes):
                writers.setdefault(node.attr, set()).add(name)
    return writers


def cross_file_private_uses(folder: Path = UI) -> list[str]:
    """`x._name` uses (calls or reads) in one file of a `_name` that only other files of `folder` (lora_tui/ui)
    define (as a method or an assigned attribute): "file:line _name (defined in ...)"."""
    trees = _trees(folder)
    defined: dict[str, set[str]] = {}
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                member = node.name
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                member = node.attr
            else:
                continue
            if member.startswith("_") and not member.startswith("__"):
                defined.setdefault(member, set()).add(name)
    found = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and node.attr in defined \
                    and name not in defined[node.attr]:
                found.append(f"{name}:{node.lineno} {node.attr} (defined in {', '.join(sorted(defined[node.attr]))})")
    return found


def test_no_file_uses_another_files_private_names():
    assert cross_file_private_uses() == []


def test_each_app_attribute_is_written_in_one_file():
    shared = {attr: files for attr, files in attribute_writers().items() if len(files) > 1}
    assert shared == {}, "state written from several files: give it one owner"


def test_the_checks_find_what_they_look_for(tmp_path):
    # The checker itself, on two small files: a mixin writing the app's state and calling the other's private
    # method, and a widget writing the app's state through `self.app`.
    (tmp_path / "app.py").write_text(
        "class Mixin:\n    def go(self):\n        self.count = 1\n        self._helper()\n"
        "class Widget:\n    def on_key(self):\n        self.app.count = 2\n        self.mine = 3\n", encoding="utf-8")
    (tmp_path / "other.py").write_text(
        "class LoraApp(Mixin):\n    def __init__(self):\n        self.count = 0\n"
        "    def _helper(self):\n        pass\n", encoding="utf-8")
    assert attribute_writers(tmp_path)["count"] == {"app.py", "other.py"}
    assert "mine" not in attribute_writers(tmp_path)  # a widget's own state is not the app's
    assert cross_file_private_uses(tmp_path) == ["app.py:4 _helper (defined in other.py)"]
    # and on the UI: the Planner is the app's, written where the app is made
    assert attribute_writers()["planner"] == {"app.py"}
