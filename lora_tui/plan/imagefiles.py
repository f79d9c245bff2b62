"""One folder of training images as sd-scripts sees it: which files are images, their sizes, their captions.

Sizes come from the file header through ``imagesize`` with Pillow's lazy ``Image.open`` as fallback (nothing is
decoded, EXIF orientation is not applied: exactly what sd-scripts does), cached by (path, mtime, size) so a re-scan of
an unchanged folder only costs a directory listing and a ``stat`` per file.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import imagesize
from PIL import Image

# sd-scripts globs `*.png` and `*.PNG` etc. (case-sensitive; `train_util.glob_images`): lower- and upper-case forms only.
IMAGE_EXTS_LOWER = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
IMAGE_EXTS = frozenset(IMAGE_EXTS_LOWER) | frozenset(e.upper() for e in IMAGE_EXTS_LOWER)
# Pictures the trainer will not read (other formats, or mixed-case extensions such as `.Jpg`).
OTHER_PICTURE_EXTS = frozenset((".gif", ".tif", ".tiff", ".avif", ".jxl", ".heic", ".heif")) | frozenset(
    IMAGE_EXTS_LOWER
)
# Files next to images that are not captions and not stray: latent caches, metadata.
NON_CAPTION_EXTS = frozenset((".npz", ".json", ".jsonl", ".toml"))

_size_cache: dict[str, tuple[int, int, tuple[int, int] | None]] = {}
_cache_lock = threading.Lock()


def image_size(path: str, mtime_ns: int, nbytes: int) -> tuple[int, int] | None:
    """(width, height) from the header of the image at ``path``, or None when it cannot be read.

    Read with ``imagesize`` (the package sd-scripts itself uses, so sizes agree with the trainer's), falling back
    to Pillow's lazy ``Image.open`` (header only) as sd-scripts does.

    Cached by (path, mtime_ns, nbytes).
    """
    hit = _size_cache.get(path)
    if hit is not None and hit[0] == mtime_ns and hit[1] == nbytes:
        return hit[2]
    size: tuple[int, int] | None = None
    try:
        w, h = imagesize.get(path)
        if w > 0 and h > 0:
            size = (int(w), int(h))
    except Exception:  # noqa: BLE001 - fall back to Pillow, as sd-scripts does
        pass
    if size is None:
        try:
            with Image.open(path) as im:
                size = (int(im.size[0]), int(im.size[1]))
        except Exception:  # noqa: BLE001 - any unreadable header is reported, never raised
            size = None
    with _cache_lock:
        _size_cache[path] = (mtime_ns, nbytes, size)
    return size


def clear_size_cache() -> None:
    """Forget every cached image size (benchmarks measure a cold scan with it)."""
    with _cache_lock:
        _size_cache.clear()


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """One image the trainer will read: file name, size in pixels (0, 0 when the header is unreadable)."""

    name: str
    width: int
    height: int

    @property
    def stem(self) -> str:
        return os.path.splitext(self.name)[0]


@dataclass
class FolderListing:
    """What lies directly inside one folder.

    ``images``: the files sd-scripts reads, sorted by name (its order); ``unreadable``: images whose header
    Pillow cannot read; ``unused_pictures``: pictures the trainer skips (format or extension case);
    ``files``: every plain file name; ``empty_files``: zero-byte sidecar files; ``stray``: files that are no
    image, picture, sidecar of an image or cache; ``subdirs``: sub-folder names
    in listing order; ``error``: an OSError text when the folder could not be listed.
    """

    path: str
    images: list[ImageEntry] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    unused_pictures: list[str] = field(default_factory=list)
    files: frozenset[str] = frozenset()
    empty_files: frozenset[str] = frozenset()
    subdirs: list[str] = field(default_factory=list)
    error: str | None = None
    stray: list[str] = field(default_factory=list)
    _sizes: dict[tuple[int, int], int] | None = field(default=None, repr=False)
    _sidecars: dict[str, int] | None = field(default=None, repr=False)
    _caption_memo: dict[str, tuple[int, list[str], list[str]]] = field(default_factory=dict, repr=False)

    def captions(self, ext: str) -> tuple[int, list[str], list[str]]:
        """(images with a caption file ``stem + ext``, first 5 image names without one, empty caption files).

        The face-crop fallback of sd-scripts (a stem of ≥5 ``_`` pieces without its last 4) counts too (``DreamBoothDataset``'s caption lookup).
        Memoised per extension.
        """
        hit = self._caption_memo.get(ext)
        if hit is not None:
            return hit
        files = self.files
        empty_files = self.empty_files
        have = 0
        missing: list[str] = []
        empty: list[str] = []
        for im in self.images:
            n = im.name
            name = n[: n.rfind(".")] + ext
            if name not in files:
                pieces = name[: len(name) - len(ext)].split("_")
                if len(pieces) < 5 or "_".join(pieces[:-4]) + ext not in files:
                    if len(missing) < 5:
                        missing.append(n)
                    continue
                name = "_".join(pieces[:-4]) + ext
            have += 1
            if name in empty_files:
                empty.append(name)
        out = (have, missing, empty)
        self._caption_memo[ext] = out
        return out

    def sidecar_counts(self) -> dict[str, int]:
        """For each caption-like extension present (not images, latent caches or metadata), how many images have
        a file ``stem + ext`` next to them."""
        if self._sidecars is None:
            stems = {im.name[: im.name.rfind(".")] for im in self.images}
            counts: dict[str, int] = {}
            for name in self.files:
                dot = name.rfind(".")
                if dot <= 0:
                    continue
                ext = name[dot:]
                if ext not in IMAGE_EXTS and ext.lower() not in NON_CAPTION_EXTS and name[:dot] in stems:
                    counts[ext] = counts.get(ext, 0) + 1
            self._sidecars = counts
        return self._sidecars

    def stray_files(self) -> list[str]:
        """Plain files that are neither images, pictures, caption-like sidecars of an image, nor caches."""
        return self.stray

    def size_counts(self) -> dict[tuple[int, int], int]:
        """{(width, height): number of images of that size}, computed once."""
        if self._sizes is None:
            counts: dict[tuple[int, int], int] = {}
            for im in self.images:
                key = (im.width, im.height)
                counts[key] = counts.get(key, 0) + 1
            self._sizes = counts
        return self._sizes


def list_folder(path: str, read_sizes: bool = True) -> FolderListing:
    """List ``path`` (not recursive) the way sd-scripts' DreamBooth loader does (``train_util.glob_images``).

    Hidden names (leading dot) are skipped as ``glob('*.png')`` skips them. With ``read_sizes`` False, image
    sizes are left (0, 0) (used to peek into folders the trainer ignores). Never raises: an unreadable folder
    gives a listing with ``error`` set. Zero-byte files are looked for among the images' sidecars only (the
    trainer stops on an empty caption).
    """
    out = FolderListing(path=path)
    images: list[ImageEntry] = []
    files: list[str] = []
    others = []
    try:
        with os.scandir(path) as it:
            entries = list(it)
    except (OSError, ValueError) as exc:
        out.error = f"{getattr(exc, 'strerror', None) or exc}"
        return out
    for entry in entries:
        name = entry.name
        try:
            if entry.is_dir():
                out.subdirs.append(name)
                continue
            if not entry.is_file():
                continue
        except (OSError, ValueError):
            continue
        files.append(name)
        if name[0] == ".":
            continue
        dot = name.rfind(".")
        ext = name[dot:] if dot > 0 else ""
        if ext in IMAGE_EXTS:
            if not read_sizes:
                images.append(ImageEntry(name, 0, 0))
                continue
            try:
                st = entry.stat()
            except (OSError, ValueError):
                out.unreadable.append(name)
                continue
            size = image_size(entry.path, st.st_mtime_ns, st.st_size)
            if size is None:
                out.unreadable.append(name)
            else:
                images.append(ImageEntry(name, size[0], size[1]))
        elif ext.lower() in OTHER_PICTURE_EXTS:
            out.unused_pictures.append(name)
        else:
            others.append((entry, name, name[:dot] if dot > 0 else name, ext))
    images.sort(key=lambda im: im.name)
    stems = {im.name[: im.name.rfind(".")] for im in images}
    stems.update(n[: n.rfind(".")] for n in out.unreadable)
    stems.update(n[: n.rfind(".")] for n in out.unused_pictures)
    empty: list[str] = []
    stray: list[str] = []
    for entry, name, stem, ext in others:
        if ext.lower() in NON_CAPTION_EXTS:
            continue
        if stem in stems or len(stem.split("_")) >= 5:
            if read_sizes:
                try:
                    if entry.stat().st_size == 0:
                        empty.append(name)
                except (OSError, ValueError):
                    pass
        else:
            stray.append(name)
    out.images = images
    out.unreadable.sort()
    out.unused_pictures.sort()
    out.files = frozenset(files)
    out.empty_files = frozenset(empty)
    out.stray = sorted(stray)
    return out
