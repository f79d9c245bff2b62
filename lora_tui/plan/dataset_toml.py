"""``--dataset_config`` files (TOML or JSON) checked against sd-scripts' dataset schema (``config_util.ConfigSanitizer``).

sd-scripts validates with voluptuous and extra keys forbidden, so an unknown or misspelled key, a wrong type or a
missing required key stops the trainer at start-up. We check the same things before launch and name the key and
its line. Types follow sd-scripts' ``isinstance`` checks: ``float`` keys reject TOML integers, ``bool`` keys
reject 0/1; we also reject ``true``/``false`` for ``int`` keys (a mistake, although voluptuous lets it through).
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable

_INT = "int"
_FLOAT = "float"
_NUM = "float or int"
_BOOL = "bool"
_STR = "str"
_TABLE = "table"
_RESO = "int or [width, height]"
_PAIR_F = "[float, float]"

DATASET_KEYS: dict[str, str] = {
    "batch_size": _INT,
    "resolution": _RESO,
    "enable_bucket": _BOOL,
    "min_bucket_reso": _INT,
    "max_bucket_reso": _INT,
    "bucket_reso_steps": _INT,
    "bucket_no_upscale": _BOOL,
    "network_multiplier": _FLOAT,
    "validation_split": _FLOAT,
    "validation_seed": _INT,
    "resize_interpolation": _STR,
}
SUBSET_KEYS: dict[str, str] = {
    "num_repeats": _INT,
    "shuffle_caption": _BOOL,
    "caption_separator": _STR,
    "keep_tokens": _INT,
    "keep_tokens_separator": _STR,
    "secondary_separator": _STR,
    "enable_wildcard": _BOOL,
    "color_aug": _BOOL,
    "flip_aug": _BOOL,
    "random_crop": _BOOL,
    "face_crop_aug_range": _PAIR_F,
    "caption_prefix": _STR,
    "caption_suffix": _STR,
    "token_warmup_min": _INT,
    "token_warmup_step": _NUM,
    "custom_attributes": _TABLE,
    "resize_interpolation": _STR,
    "caption_dropout_rate": _NUM,
    "caption_dropout_every_n_epochs": _INT,
    "caption_tag_dropout_rate": _NUM,
    "caption_extension": _STR,
    "class_tokens": _STR,
    "cache_info": _BOOL,
}
SUBSET_ONLY_KEYS: dict[str, str] = {
    "image_dir": _STR,
    "is_reg": _BOOL,
    "alpha_mask": _BOOL,
    "metadata_file": _STR,
    "conditioning_data_dir": _STR,
}


# Keys whose value must be ≥ 1 (a 0 trains nothing or divides by zero in the trainer).
_POSITIVE = frozenset(("batch_size", "resolution", "num_repeats", "bucket_reso_steps", "min_bucket_reso",
                       "max_bucket_reso"))


def _type_ok(kind: str, v: Any) -> bool:
    isint = isinstance(v, int) and not isinstance(v, bool)
    if kind == _INT:
        return isint
    if kind == _FLOAT:
        return isinstance(v, float)
    if kind == _NUM:
        return isint or isinstance(v, float)
    if kind == _BOOL:
        return isinstance(v, bool)
    if kind == _STR:
        return isinstance(v, str)
    if kind == _TABLE:
        return isinstance(v, dict)
    if kind == _RESO:
        return isint or (
            isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
        )
    if kind == _PAIR_F:
        return isinstance(v, list) and len(v) == 2 and all(isinstance(x, float) for x in v)
    return True


@dataclass
class TomlSubset:
    """One ``[[datasets.subsets]]`` entry with the values resolved through dataset and ``[general]`` (None =
    absent there: the caller falls back to the training config)."""

    values: dict[str, Any]
    line: int | None


@dataclass
class TomlDataset:
    """One ``[[datasets]]`` entry: dataset-level values resolved through ``[general]`` and its subsets."""

    values: dict[str, Any]
    subsets: list[TomlSubset]
    line: int | None


@dataclass
class DatasetToml:
    """The parsed file: its datasets, and ``errors`` as (message, line or None) pairs."""

    datasets: list[TomlDataset] = field(default_factory=list)
    errors: list[tuple[str, int | None]] = field(default_factory=list)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r'^\s*("(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_\-]+)\s*=')


class _LineMap:
    """Finds the line of a key in a TOML text: headers `[general]`, `[[datasets]]`, `[[datasets.subsets]]` are
    counted, so ("datasets", 1, "subsets", 0, "image_dir") maps to a line. Keys written in inline tables fall back
    to a search for ``key =`` within the owning table's lines."""

    def __init__(self, text: str, is_json: bool) -> None:
        self.lines = text.splitlines()
        self.is_json = is_json
        self.table_lines: dict[tuple, int] = {}
        self.key_lines: dict[tuple, int] = {}
        self.table_span: dict[tuple, tuple[int, int]] = {}
        if is_json:
            return
        cur: tuple = ()
        ds = -1
        sub = -1
        spans: list[tuple[tuple, int]] = [((), 1)]
        for i, raw in enumerate(self.lines, 1):
            m = _HEADER.match(raw)
            if m and not _KEY.match(raw):
                name = m.group(2).replace(" ", "")
                if name == "datasets":
                    ds += 1
                    sub = -1
                    cur = ("datasets", ds)
                elif name == "datasets.subsets":
                    sub += 1
                    cur = ("datasets", ds, "subsets", sub)
                else:
                    cur = tuple(name.split("."))
                self.table_lines.setdefault(cur, i)
                spans.append((cur, i))
                continue
            k = _KEY.match(raw)
            if k:
                key = k.group(1).strip("\"'")
                self.key_lines.setdefault(cur + (key,), i)
        for n, (tbl, s) in enumerate(spans):
            e = spans[n + 1][1] - 1 if n + 1 < len(spans) else len(self.lines)
            self.table_span.setdefault(tbl, (s, e))

    def line(self, path: tuple) -> int | None:
        if self.is_json:
            key = path[-1] if path and isinstance(path[-1], str) else None
            if key is None:
                return None
            pat = re.compile(r'"' + re.escape(key) + r'"\s*:')
            for i, raw in enumerate(self.lines, 1):
                if pat.search(raw):
                    return i
            return None
        if path in self.key_lines:
            return self.key_lines[path]
        if path in self.table_lines:
            return self.table_lines[path]
        # Inline tables or arrays of tables: search the key inside the closest enclosing table's lines.
        for cut in range(len(path) - 1, -1, -1):
            parent = path[:cut]
            span = self.table_span.get(parent)
            if span is None:
                continue
            key = path[-1]
            if isinstance(key, str):
                pat = re.compile(r"(^|[\s{,])" + re.escape(key) + r"\s*=")
                for i in range(span[0], span[1] + 1):
                    if pat.search(self.lines[i - 1]):
                        return i
            return span[0] if parent else None
        return None


def _where(path: tuple) -> str:
    parts = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else (("." if parts else "") + p))
    return "".join(parts)


def parse_dataset_config(text: str, is_json: bool = False) -> DatasetToml:
    """Parse and validate a dataset config's text. Never raises: problems are in ``.errors``.

    Each error names the key and where it is (``datasets[0].subsets[1].imagedir``) and the fix.
    """
    out = DatasetToml()
    try:
        data = json.loads(text) if is_json else tomllib.loads(text)
    except RecursionError:
        out.errors.append(("is nested too deep to read (lists or tables hundreds of levels deep): no dataset config "
                           "is; check the file", None))
        return out
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        if line is None:
            m = re.search(r"line (\d+)", str(exc))
            line = int(m.group(1)) if m else None
        out.errors.append((f"is not valid {'JSON' if is_json else 'TOML'}: {exc}", line))
        return out
    lm = _LineMap(text, is_json)
    err: Callable[[str, tuple], None] = lambda msg, path: out.errors.append((msg, lm.line(path)))  # noqa: E731
    if not isinstance(data, dict):
        err("must be a table with [general] and [[datasets]]", ())
        return out

    def check_table(tbl: dict, path: tuple, allowed: dict[str, str], level: str) -> None:
        for key, value in tbl.items():
            if key == "subsets" and level == "dataset":
                continue
            kind = allowed.get(key)
            if kind is None:
                hint = ""
                if key in SUBSET_ONLY_KEYS:
                    hint = " (it belongs in a [[datasets.subsets]] table)"
                elif key in DATASET_KEYS and level == "subset":
                    hint = " (it is a dataset key: move it to [[datasets]] or [general])"
                else:
                    close = _close_key(key, allowed)
                    if close:
                        hint = f" (did you mean '{close}'?)"
                err(f"unknown key '{key}' in {_where(path) or 'the top level'}{hint}: sd-scripts refuses the "
                    f"file; remove or rename it", path + (key,))
            elif key in _POSITIVE and _type_ok(kind, value) and (
                    min(value) if isinstance(value, list) else value) < 1:
                err(f"'{_where(path + (key,))}' is {value}; it must be at least 1", path + (key,))
            elif not _type_ok(kind, value):
                err(f"'{_where(path + (key,))}' must be {kind}, not {_describe(value)}"
                    + (" (write 1.0, not 1)" if kind == _FLOAT and isinstance(value, int) else "")
                    + (" (write true/false)" if kind == _BOOL and isinstance(value, int) else ""),
                    path + (key,))

    for key in data:
        if key not in ("general", "datasets"):
            err(f"unknown top-level key '{key}': only [general] and [[datasets]] are allowed", (key,))
    general = data.get("general", {})
    if not isinstance(general, dict):
        err("[general] must be a table", ("general",))
        general = {}
    gen_allowed = {**DATASET_KEYS, **SUBSET_KEYS}
    check_table(general, ("general",), gen_allowed, "general")
    datasets = data.get("datasets")
    if datasets is None:
        err("has no [[datasets]] table: sd-scripts needs at least one dataset with [[datasets.subsets]]", ())
        return out
    if not isinstance(datasets, list) or not all(isinstance(d, dict) for d in datasets):
        err("'datasets' must be an array of tables ([[datasets]])", ("datasets",))
        return out
    ds_allowed = {**DATASET_KEYS, **SUBSET_KEYS}
    sub_allowed = {**SUBSET_KEYS, **SUBSET_ONLY_KEYS}
    for di, ds in enumerate(datasets):
        dpath = ("datasets", di)
        check_table(ds, dpath, ds_allowed, "dataset")
        subsets = ds.get("subsets")
        if subsets is None:
            err(f"datasets[{di}] has no [[datasets.subsets]]: add one with image_dir", dpath)
            subsets = []
        elif not isinstance(subsets, list) or not all(isinstance(s, dict) for s in subsets):
            err(f"datasets[{di}].subsets must be an array of tables", dpath + ("subsets",))
            subsets = []
        dvalues = {k: ds.get(k, general.get(k)) for k in DATASET_KEYS}
        tsubs = []
        kinds = set()
        for si, sub in enumerate(subsets):
            spath = dpath + ("subsets", si)
            check_table(sub, spath, sub_allowed, "subset")
            values = {k: sub.get(k, ds.get(k, general.get(k))) for k in SUBSET_KEYS}
            values.update({k: sub.get(k) for k in SUBSET_ONLY_KEYS})
            if values["metadata_file"] is not None:
                kinds.add("fine-tuning")
            else:
                kinds.add("dreambooth")
                if values["image_dir"] is None and values["conditioning_data_dir"] is None:
                    err(f"datasets[{di}].subsets[{si}] has no image_dir (required): add "
                        f"image_dir = \"/path/to/images\"", spath)
            line = lm.line(spath)
            tsubs.append(TomlSubset(values, line))
        if len(kinds) > 1:
            err(f"datasets[{di}] mixes subsets with and without metadata_file: sd-scripts refuses it; split them "
                f"into two [[datasets]]", dpath)
        out.datasets.append(TomlDataset(dvalues, tsubs, lm.line(dpath)))
    return out


def _describe(v: Any) -> str:
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if isinstance(v, int):
        return f"an integer ({v})"
    if isinstance(v, float):
        return f"a float ({v})"
    if isinstance(v, str):
        return f"a string ({v!r})"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "a table"
    return type(v).__name__


def _close_key(key: str, allowed: dict[str, str]) -> str | None:
    import difflib

    m = difflib.get_close_matches(key, list(allowed) + list(SUBSET_ONLY_KEYS), n=1, cutoff=0.75)
    return m[0] if m else None
