"""A user's labelled frames: two folders, images paired with labels by name.

``image_K.png`` pairs with ``label_K.png`` (or ``mask_K``), ``NAME.tif`` with ``NAME.png`` or
``NAME_label.png`` (the catalog's convention); an exact stem match wins over a prefix or suffix
match. Unpaired or ambiguous files and shape mismatches are errors naming the files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temshift.errors import TemshiftError

#: files in the folders that are not frames and are skipped without complaint
IGNORED_SUFFIXES = (".txt", ".md", ".csv", ".json", ".yaml", ".yml", ".toml")


class PairingError(TemshiftError):
    """Images and labels cannot be paired, or a pair does not fit together."""


@dataclass(frozen=True)
class FramePair:
    """One labelled frame: an image file and its label file."""

    image: Path
    label: Path


def image_suffixes() -> tuple[str, ...]:
    """Suffixes accepted as frames: those of `temshift.io.read_frame` (8-bit PNG/JPEG included)."""
    from temshift.io.frames import frame_suffixes

    return frame_suffixes()


def _image_keys(stem: str) -> list[str]:
    s = stem.lower()
    m = re.match(r"(?:image|img)[_-]?(.+)$", s)
    return [s] + ([m.group(1)] if m else [])


def _label_keys(stem: str) -> list[str]:
    s = stem.lower()
    keys = [s]
    m = re.match(r"(.+?)[_-](?:label|labels|mask)$", s)
    if m:
        keys.append(m.group(1))
    m = re.match(r"(?:label|labels|mask)[_-]?(.+)$", s)
    if m:
        keys.append(m.group(1))
    return keys


def _listing(folder: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    if not folder.is_dir():
        raise PairingError(f"{folder}: no such {what} folder")
    files: list[Path] = []
    bad: list[Path] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() in IGNORED_SUFFIXES:
            continue
        (files if p.suffix.lower() in suffixes else bad).append(p)
    if bad:
        raise PairingError(
            f"{bad[0]}: unsupported {what} format {bad[0].suffix or '(no suffix)'!r} "
            f"(use {', '.join(suffixes)})" + (f"; and {len(bad) - 1} more" if len(bad) > 1 else "")
        )
    if not files:
        raise PairingError(f"{folder}: no {what} files ({', '.join(suffixes)})")
    return files


def _names(paths, limit: int = 4) -> str:
    names = [p.name for p in paths]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def pair_frames(images_dir, labels_dir) -> list[FramePair]:
    """Pair every image in `images_dir` with its label in `labels_dir`.

    Returns
    -------
    list of FramePair
        Sorted by image name (natural order: ``image_2`` before ``image_10``).

    Raises
    ------
    PairingError
        Missing folder, unsupported file, an image or label without a partner, or a name
        that matches several files.
    """
    from temshift.io.labels import LABEL_SUFFIXES

    images = _listing(Path(images_dir), image_suffixes(), "image")
    labels = _listing(Path(labels_dir), LABEL_SUFFIXES, "label")
    label_keys = {lab: _label_keys(lab.stem) for lab in labels}
    pairs: list[Any] = []
    used: dict[Any, Any] = {}
    unpaired: list[Any] = []
    for img in images:
        keys = _image_keys(img.stem)
        exact = [lab for lab, lk in label_keys.items() if lk[0] == keys[0]]
        found = exact or [lab for lab, lk in label_keys.items() if set(lk) & set(keys)]
        if len(found) > 1:
            raise PairingError(f"{img}: several labels match ({_names(found)}); keep one")
        if not found:
            unpaired.append(img)
            continue
        lab = found[0]
        if lab in used:
            raise PairingError(f"{lab}: label matches two images ({used[lab].name}, {img.name}); rename one")
        used[lab] = img
        pairs.append(FramePair(img, lab))
    orphans = [lab for lab in labels if lab not in used]
    if unpaired or orphans:
        parts = []
        if unpaired:
            parts.append(
                f"{len(unpaired)} image(s) in {images_dir} without a label in {labels_dir}: {_names(unpaired)}"
            )
        if orphans:
            parts.append(f"{len(orphans)} label(s) in {labels_dir} without an image: {_names(orphans)}")
        raise PairingError(
            "; ".join(parts) + " (pairs by name: image_K <-> label_K, or the same stem, or NAME <-> NAME_label)"
        )

    def natural(p: FramePair):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.image.name.lower())]

    return sorted(pairs, key=natural)


def read_image(path):
    """A frame in any format `temshift.io.read_frame` reads (8-bit PNG/JPEG included).

    Returns
    -------
    temshift.io.Frame
    """
    from temshift.io import read_frame

    return read_frame(Path(path))


def read_pair(pair: FramePair):
    """Image frame and 0/1 label of a pair, checked to have the same shape.

    Returns
    -------
    frame : temshift.io.Frame
    label : numpy.ndarray
        (H, W) uint8 {0, 1}.

    Raises
    ------
    FrameReadError, PairingError
        Unreadable file (named), or a label whose shape is not the image's (both named).
    """
    from temshift.io import read_label

    frame = read_image(pair.image)
    label = read_label(pair.label)
    if label.shape != frame.data.shape:
        raise PairingError(
            f"{pair.label}: label shape {label.shape[0]}x{label.shape[1]} does not match image "
            f"{pair.image} ({frame.data.shape[0]}x{frame.data.shape[1]})"
        )
    return frame, label
