"""Scan of the training data as sd-scripts will see it (sd-scripts' `library/config_util.py` subsets and `train_util.DreamBoothDataset`/`FineTuningDataset`).

``scan_dataset(cfg)`` reads the file system only: folder names, file names, image headers. What depends on other
config fields (caption extension, buckets, batch size) is computed later from the scan, so editing those fields
never needs a re-scan.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lora_tui.plan.dataset_toml import parse_dataset_config
from lora_tui.plan.imagefiles import IMAGE_EXTS, FolderListing, ImageEntry, image_size, list_folder
from lora_tui.plan.problems import Problem
from lora_tui.plan.wording import agree, counted

if TYPE_CHECKING:
    from lora_tui.config.model import TrainingConfig

_REPEAT_FOLDER = re.compile(r"^\d+_.+$")  # kohya_ss' folder check before training (`<repeats>_<name>`)


def resolve_path(value: str) -> str:
    """Absolute form of a user path: ``~`` expanded, relative paths taken from the current directory."""
    return os.path.abspath(os.path.expanduser(value))


def resolved_note(value: str, resolved: str | None = None) -> str:
    """``" (resolved: '<absolute path>')"`` for a message about the path ``value``, or ``""`` when that absolute
    form (``resolved``, default :func:`resolve_path`) says nothing more than ``value`` does (an absolute path,
    up to a trailing ``/`` or ``./``): the message then shows the path once."""
    full = resolve_path(value) if resolved is None else resolved
    return "" if os.path.normpath(value) == full else f" (resolved: '{full}')"


def parse_repeat_folder(name: str) -> tuple[int, str] | None:
    """``10_sks dog`` → (10, "sks dog"); None when the first ``_`` piece is not an integer (sd-scripts skips the
    folder) or the repeats are < 1. Uses Python's ``int`` as sd-scripts' ``config_util.extract_dreambooth_params`` does."""
    head, _, rest = name.partition("_")
    try:
        n = int(head)
    except ValueError:
        return None
    if n < 1:
        return None
    return n, rest


@dataclass
class SubsetScan:
    """One subset: an image folder with its repeats.

    ``image_dir``: absolute path; ``num_repeats``: from the ``N_`` prefix (folders) or ``num_repeats`` (TOML,
    None = not set there); ``class_tokens``: the folder name after ``N_`` (folders) or ``class_tokens`` (TOML);
    ``is_reg``: regularisation subset; ``listing``: the folder's files; ``toml``: the subset's TOML values
    resolved through its dataset and ``[general]`` (empty in folder mode); ``line``: its line in the TOML.
    """

    image_dir: str
    name: str
    num_repeats: int | None
    class_tokens: str | None
    is_reg: bool
    listing: FolderListing
    toml: dict[str, Any] = field(default_factory=dict)
    line: int | None = None
    metadata_file: str | None = None

    @property
    def images(self) -> list[ImageEntry]:
        return self.listing.images

    def repeats(self, cfg: TrainingConfig = None) -> int:
        """Repeats the trainer uses: the folder's, else the TOML's, else ``dataset_repeats`` (default 1)."""
        if self.num_repeats is not None:
            return self.num_repeats
        return int(getattr(cfg, "dataset_repeats", None) or 1)


@dataclass
class DatasetGroup:
    """One sd-scripts dataset (its own batch size and buckets). ``toml`` holds the dataset-level TOML values
    (None = absent: fall back to the config field); empty in folder mode."""

    subsets: list[SubsetScan]
    toml: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


@dataclass
class RootScan:
    """A ``train_data_dir`` / ``reg_data_dir`` folder and what sits directly in it.

    ``subsets``: the ``N_name`` folders in listing order (sd-scripts' order); ``skipped``: sub-folders sd-scripts
    ignores (no integer prefix or repeats < 1) with how many pictures each holds; ``listing``: the root's own files.
    """

    field: str
    given: str
    path: str
    exists: bool
    is_dir: bool
    listing: FolderListing | None = None
    subsets: list[SubsetScan] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class DatasetScan:
    """Everything the plan needs from the file system.

    ``mode``: ``"folders"`` (DreamBooth folders), ``"dataset_config"`` or ``"none"`` (no data given);
    ``datasets``: sd-scripts datasets; ``roots``: the scanned data dirs (folder mode); ``problems``: layout and
    schema problems found while scanning; ``key``: the config values the scan depends on (see ``matches``).
    """

    mode: Literal["folders", "dataset_config", "none"]
    datasets: list[DatasetGroup] = field(default_factory=list)
    roots: list[RootScan] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    key: tuple = ()
    stamps: dict[str, int] = field(default_factory=dict)
    made_at: float = 0.0

    @property
    def subsets(self) -> list[SubsetScan]:
        return [s for d in self.datasets for s in d.subsets]

    def matches(self, cfg: TrainingConfig) -> bool:
        """Whether this scan was made for ``cfg``'s data fields (the UI re-scans when it was not)."""
        return self.key == scan_key(cfg)

    def is_fresh(self, max_age_s: float = 30.0) -> bool:
        """True when no scanned folder (nor the dataset config) changed its mtime since the scan, and the scan is
        younger than ``max_age_s`` (files edited in place do not touch their folder's mtime; the age bounds how
        long such an edit can go unseen)."""
        if time.monotonic() - self.made_at > max_age_s:
            return False
        for path, stamp in self.stamps.items():
            try:
                now = os.stat(path).st_mtime_ns
            except (OSError, ValueError):
                now = -1
            if now != stamp:
                return False
        return True


def scan_key(cfg: TrainingConfig) -> tuple:
    """The config values a scan depends on."""
    return (
        str(getattr(cfg, "train_data_dir", "") or ""),
        str(getattr(cfg, "reg_data_dir", "") or ""),
        str(getattr(cfg, "dataset_config", "") or ""),
    )


def scan_dataset(cfg: TrainingConfig) -> DatasetScan:
    """Scan ``cfg``'s ``dataset_config`` (when set; sd-scripts then ignores the folders) or ``train_data_dir`` and
    ``reg_data_dir``. Never raises on bad input: missing paths give an empty scan (the rules report them), bad
    layouts and schema errors are ``Problem``s in ``.problems``. Image headers are cached (path, mtime, size).
    """
    key = scan_key(cfg)
    train, reg, dataset_config = key
    stamps: dict[str, int] = {}
    _collect.stamps = stamps
    made_at = time.monotonic()
    try:
        scan = _scan_by_mode(cfg, train, reg, dataset_config)
    finally:
        _collect.stamps = None
    scan.key = key
    scan.stamps = stamps
    scan.made_at = made_at
    # Count captions now, in the scanning worker, so the first validation after a scan stays fast.
    cfg_ext = caption_ext(getattr(cfg, "caption_extension", None))
    for sub in scan.subsets:
        own = sub.toml.get("caption_extension")
        sub.listing.captions(caption_ext(own) if own else cfg_ext)
        sub.listing.sidecar_counts()
    return scan


def _scan_by_mode(cfg: TrainingConfig, train: str, reg: str, dataset_config: str) -> DatasetScan:
    if dataset_config.strip():
        scan = _scan_toml(dataset_config, cfg)
    elif train.strip() or reg.strip():
        scan = _scan_folders(train, reg)
    else:
        scan = DatasetScan(mode="none")
    return scan


_collect = threading.local()


def _stamp(path: str) -> None:
    stamps = getattr(_collect, "stamps", None)
    if stamps is not None:
        try:
            stamps[path] = os.stat(path).st_mtime_ns
        except (OSError, ValueError):
            stamps[path] = -1


def _list(path: str, read_sizes: bool = True) -> FolderListing:
    """``list_folder`` that records the folder's mtime for ``DatasetScan.is_fresh``."""
    _stamp(path)
    return list_folder(path, read_sizes=read_sizes)


def caption_ext(value: Any) -> str:
    """The caption extension sd-scripts uses for ``value``: ``.caption`` when empty, a leading dot added."""
    ext = "" if value is None else str(value).strip()
    if not ext:
        return ".caption"
    return ext if ext.startswith(".") else "." + ext


# --- folder (DreamBooth) mode ------------------------------------------------------------------------------------


def _scan_root(fieldname: str, given: str, is_reg: bool) -> RootScan:
    path = resolve_path(given)
    _stamp(path)
    root = RootScan(fieldname, given, path, os.path.exists(path), os.path.isdir(path))
    if not root.is_dir:
        return root
    root.listing = _list(path, read_sizes=False)
    for name in root.listing.subdirs:
        parsed = parse_repeat_folder(name)
        sub_path = os.path.join(path, name)
        if parsed is None:
            peek = _list(sub_path, read_sizes=False)
            root.skipped.append((name, len(peek.images) + len(peek.unused_pictures)))
            continue
        repeats, tokens = parsed
        root.subsets.append(SubsetScan(sub_path, name, repeats, tokens, is_reg, _list(sub_path)))
    return root


def _scan_folders(train: str, reg: str) -> DatasetScan:
    scan = DatasetScan(mode="folders")
    subsets: list[SubsetScan] = []
    for fieldname, given, is_reg in (("train_data_dir", train, False), ("reg_data_dir", reg, True)):
        if not given.strip():
            continue
        root = _scan_root(fieldname, given, is_reg)
        scan.roots.append(root)
        subsets.extend(root.subsets)
        if root.is_dir:
            scan.problems.extend(_layout_problems(root))
    scan.datasets.append(DatasetGroup(subsets))
    return scan


def _count_nested_images(folder: str, subdirs: list[str]) -> list[tuple[str, int]]:
    out = []
    for name in subdirs:
        peek = _list(os.path.join(folder, name), read_sizes=False)
        n = len(peek.images) + len(peek.unused_pictures)
        if n:
            out.append((name, n))
    return out


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{x}'" for x in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _layout_problems(root: RootScan) -> list[Problem]:
    """The folder-layout findings for one data dir (kohya_ss' `<repeats>_<name>` folder check, plus the shapes users get wrong)."""
    f = root.field
    label = "image folder" if f == "train_data_dir" else "regularisation folder"
    out: list[Problem] = []
    listing = root.listing
    assert listing is not None
    if listing.error:
        return [Problem(f, "error", f"cannot read {label} '{root.path}': {listing.error}; check its permissions")]
    base = os.path.basename(root.path.rstrip(os.sep)) or root.path
    parent = os.path.dirname(root.path.rstrip(os.sep)) or root.path
    direct = len(listing.images) + len(listing.unused_pictures)
    own_parse = parse_repeat_folder(base)
    if not root.subsets:
        nested = _count_nested_images(root.path, listing.subdirs) if not direct else []
        if own_parse is not None and (direct or nested):
            where = counted(direct, "image") if direct else f"images in '{nested[0][0]}/'"
            msg = (f"'{root.path}' is itself a repeats folder ({where}); {f} must be its parent: set it to "
                   f"'{parent}'")
            if not direct:
                msg += (f", and move the images from '{base}/{nested[0][0]}/' up into '{base}/' (expected "
                        f"'{parent}{os.sep}{base}{os.sep}<image>.png')")
            return [Problem(f, "error", msg)]
        if direct:
            return [Problem(f, "error",
                            f"'{root.path}' holds {counted(direct, 'image')} directly, but the trainer only reads "
                            f"folders named <repeats>_<name> inside it: move {agree(direct, 'it', 'them')} into "
                            f"'{root.path}{os.sep}10_{base}' (10 = repeats per epoch) and keep {f} = '{root.path}'")]
        with_pics = [(n, c) for n, c in root.skipped if c]
        if with_pics:
            for name, pics in with_pics:
                out.append(Problem(f, "error",
                                   f"folder '{name}' ({counted(pics, 'image')}) has no repeats prefix, so the "
                                   f"trainer skips it: rename it to '10_{name}' (10 = repeats per epoch)"))
            return out
        return [Problem(f, "error",
                        f"no <repeats>_<name> folders with images in '{root.path}': expected "
                        f"'{root.path}{os.sep}10_name{os.sep}<image>.png'")]
    for name, pics in root.skipped:
        what = f"holds {counted(pics, 'image')} but " if pics else ""
        out.append(Problem(f, "warning",
                           f"folder '{name}' {what}is ignored by the trainer (no <repeats>_ prefix): rename it to "
                           f"'10_{name}' to train on it, or move it out of '{root.path}'"))
    if direct:
        out.append(Problem(f, "warning",
                           f"{counted(direct, 'image')} {agree(direct, 'lies', 'lie')} directly in '{root.path}' and "
                           f"{agree(direct, 'is', 'are')} not used: only images inside "
                           f"<repeats>_<name> folders are read; move {agree(direct, 'it', 'them')} into one"))
    for sub in root.subsets:
        sl = sub.listing
        if sl.error:
            out.append(Problem(f, "error", f"cannot read '{sub.image_dir}': {sl.error}"))
            continue
        if not sl.images and not sl.unreadable:
            nested = _count_nested_images(sub.image_dir, sl.subdirs)
            if nested:
                inner, n = nested[0]
                out.append(Problem(f, "error",
                                   f"'{sub.name}' holds no images directly; its {counted(n, 'image')} "
                                   f"{agree(n, 'is', 'are')} in "
                                   f"'{sub.name}/{inner}/', which the trainer does not read. Expected "
                                   f"'{root.path}{os.sep}{sub.name}{os.sep}<image>.png': move them up one level"))
            elif sl.unused_pictures:
                pass  # reported below as unused pictures
            else:
                out.append(Problem(f, "warning", f"'{sub.name}' holds no images; remove it or add images"))
        elif sl.subdirs:
            nested = _count_nested_images(sub.image_dir, sl.subdirs)
            if nested:
                names = [n for n, _ in nested]
                out.append(Problem(f, "warning",
                                   f"sub-folders {_names(names)} inside '{sub.name}' are not read (the trainer "
                                   f"does not recurse)"))
        if not _REPEAT_FOLDER.match(sub.name):
            out.append(Problem(f, "warning",
                               f"folder '{sub.name}' has repeats {sub.num_repeats} but no class name after "
                               f"'_': images without captions get an empty caption; name it "
                               f"'{sub.num_repeats}_<name>'"))
        out.extend(_folder_file_problems(f, sub.name, sl))
    return out


def _folder_file_problems(f: str, name: str, sl: FolderListing) -> list[Problem]:
    out = []
    if sl.unreadable:
        n = len(sl.unreadable)
        them = agree(n, "it", "them")
        out.append(Problem(f, "error",
                           f"{counted(n, 'image')} in '{name}' cannot be read ({_names(sl.unreadable)}): "
                           f"the trainer stops on {them}; re-save or remove {them}"))
    if sl.unused_pictures:
        n = len(sl.unused_pictures)
        out.append(Problem(f, "warning",
                           f"{counted(n, 'picture')} in '{name}' {agree(n, 'is', 'are')} not used by the trainer "
                           f"({_names(sl.unused_pictures)}): it reads .png .jpg .jpeg .webp .bmp in lower or "
                           f"upper case only; convert or rename {agree(n, 'it', 'them')}"))
    stray = sl.stray_files()
    if stray:
        n = len(stray)
        out.append(Problem(f, "warning",
                           f"{counted(n, 'file')} in '{name}' {agree(n, 'is', 'are')} neither images nor their "
                           f"captions ({_names(stray)}); the trainer ignores {agree(n, 'it', 'them')}"))
    return out


# --- dataset_config mode -----------------------------------------------------------------------------------------


def _scan_toml(given: str, cfg: TrainingConfig) -> DatasetScan:
    scan = DatasetScan(mode="dataset_config")
    path = resolve_path(given)
    _stamp(path)
    if not os.path.isfile(path):
        return scan  # the rules report a missing file (as kohya_ss' dataset_config check does)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        scan.problems.append(Problem("dataset_config", "error", f"cannot read '{path}': {exc}"))
        return scan
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".toml", ".json"):
        scan.problems.append(Problem("dataset_config", "error",
                                     f"'{path}' must end in .toml or .json (sd-scripts refuses other names)"))
        return scan
    parsed = parse_dataset_config(text, is_json=suffix == ".json")
    for msg, line in parsed.errors:
        where = f"{os.path.basename(path)} line {line}" if line else os.path.basename(path)
        scan.problems.append(Problem("dataset_config", "error", f"{where}: {msg}"))
    for di, ds in enumerate(parsed.datasets):
        group = DatasetGroup([], ds.values, ds.line)
        seen: set[str] = set()
        for si, sub in enumerate(ds.subsets):
            v = sub.values
            image_dir = v.get("image_dir")
            meta = v.get("metadata_file")
            where = f"datasets[{di}].subsets[{si}]" + (f" (line {sub.line})" if sub.line else "")
            if image_dir is None and meta is None:
                continue
            if image_dir is not None and not isinstance(image_dir, str):
                continue  # the type error is reported by the schema check
            img_path = resolve_path(image_dir) if isinstance(image_dir, str) else None
            if img_path is not None and img_path in seen:
                scan.problems.append(Problem("dataset_config", "warning",
                                             f"{where}: image_dir '{image_dir}' appears twice in one dataset; "
                                             f"sd-scripts ignores the second"))
                continue
            if img_path is not None:
                seen.add(img_path)
            if meta is not None:
                listing = _metadata_listing(str(meta), img_path, scan, where)
            elif not os.path.isdir(img_path or ""):
                _stamp(img_path or "")
                scan.problems.append(Problem("dataset_config", "error",
                                             f"{where}: image_dir '{image_dir}' does not exist"
                                             f"{resolved_note(image_dir, img_path or '')}; fix the path in "
                                             f"{os.path.basename(path)}"))
                listing = FolderListing(path=img_path or "")
            else:
                listing = _list(img_path)
                scan.problems.extend(
                    _folder_file_problems("dataset_config", image_dir, listing))
                if not listing.images and not listing.unreadable:
                    scan.problems.append(Problem("dataset_config", "warning",
                                                 f"{where}: image_dir '{image_dir}' holds no images"))
            reps = v.get("num_repeats")
            group.subsets.append(SubsetScan(
                img_path or "", os.path.basename(img_path or str(meta)), reps if isinstance(reps, int) else None,
                v.get("class_tokens"), bool(v.get("is_reg")), listing, dict(v), sub.line,
                str(meta) if meta is not None else None))
        scan.datasets.append(group)
    return scan


def _metadata_listing(meta: str, img_dir: str | None, scan: DatasetScan, where: str) -> FolderListing:
    """Fine-tuning subsets: one image per metadata entry, sizes from ``image_size`` when present, else from the
    image header (sd-scripts' `FineTuningDataset`)."""
    listing = FolderListing(path=img_dir or "")
    path = resolve_path(meta)
    try:
        text = Path(path).read_text(encoding="utf-8")
        if path.lower().endswith(".jsonl"):
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            entries = {r.get("image_path", str(i)): r for i, r in enumerate(rows)}
        else:
            entries = json.loads(text)
    except (OSError, ValueError, RecursionError, AttributeError) as exc:
        scan.problems.append(Problem("dataset_config", "error", f"{where}: cannot read metadata_file '{meta}': "
                                                                f"{str(exc)[:200] or type(exc).__name__}"))
        return listing
    images = []
    for key, row in (entries.items() if isinstance(entries, dict) else []):
        size = row.get("image_size") if isinstance(row, dict) else None
        if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                             for v in size):
            images.append(ImageEntry(str(key), int(size[0]), int(size[1])))
            continue
        key = str(key)
        p = key if os.path.isabs(key) or img_dir is None else os.path.join(img_dir, key)
        try:
            st = os.stat(p)
            wh = image_size(p, st.st_mtime_ns, st.st_size)
        except (OSError, ValueError):
            wh = None
        if wh is None:
            listing.unreadable.append(str(key))
        else:
            images.append(ImageEntry(str(key), wh[0], wh[1]))
    listing.images = images
    return listing


__all__ = [
    "DatasetGroup",
    "DatasetScan",
    "IMAGE_EXTS",
    "RootScan",
    "SubsetScan",
    "parse_repeat_folder",
    "resolve_path",
    "scan_dataset",
    "scan_key",
]
