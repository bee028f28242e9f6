"""Distinct output names for a batch of frames written into one folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import NamedTuple


class FrameName(NamedTuple):
    """How a frame is named in a batch's outputs.

    Attributes
    ----------
    frame : str
        The ``frame`` column of ``risk.csv`` / ``particles.csv``: the file name, or
        ``parent/name`` when names repeat in the batch.
    stem : str
        Prefix of the frame's output files (``<stem>_mask.png``, ...): the file stem, or
        ``parent_stem`` when stems repeat.
    """

    frame: str
    stem: str


def unique_frame_names(paths) -> list[FrameName]:
    """Names that keep the outputs of every frame in a batch apart.

    A frame keeps its file name and stem unless another frame of the batch has the same
    stem (``a/frame.tif`` and ``b/frame.tif``; compared case-insensitively, as on macOS and
    Windows file systems). Those frames are prefixed with as many parent folder names as it
    takes (``a_frame``, ``b_frame``); a frame given twice, or names still equal when the
    folders run out, get a counter (``frame_2``).

    Parameters
    ----------
    paths : sequence of str or Path
        The frames, in batch order.

    Returns
    -------
    list of FrameName
        One per path, in order; all ``stem`` values distinct, all ``frame`` values distinct.
    """
    paths = [Path(p) for p in paths]
    parents = [Path(p).resolve().parent.parts[1:] for p in paths]  # without the root
    depth = [0] * len(paths)

    def name(i: int) -> FrameName:
        lead = list(parents[i][len(parents[i]) - depth[i] :]) if depth[i] else []
        return FrameName("/".join([*lead, paths[i].name]), "_".join([*lead, paths[i].stem]))

    def groups(names):
        by_stem: dict = {}
        for i, n in enumerate(names):
            by_stem.setdefault(n.stem.casefold(), []).append(i)
        return [g for g in by_stem.values() if len(g) > 1]

    while True:  # prefix parent folders while that tells clashing frames apart
        names = [name(i) for i in range(len(paths))]
        deeper = [i for g in groups(names) if len({parents[j] for j in g}) > 1 for i in g if depth[i] < len(parents[i])]
        if not deeper:
            break
        for i in deeper:
            depth[i] += 1
    for g in groups(names):  # same folder: frame.tif and frame.npy
        if len({paths[i].suffix.casefold() for i in g}) == len(g):
            for i in g:
                suffix = paths[i].suffix.lstrip(".")
                names[i] = FrameName(names[i].frame, f"{names[i].stem}_{suffix}" if suffix else names[i].stem)
    taken = Counter(n.stem.casefold() for n in names)
    seen: Counter = Counter()
    for i, n in enumerate(names):  # the same file twice, or nothing else tells them apart
        seen[n.stem.casefold()] += 1
        if seen[n.stem.casefold()] > 1:
            k = seen[n.stem.casefold()]
            while f"{n.stem}_{k}".casefold() in taken:
                k += 1
            taken[f"{n.stem}_{k}".casefold()] += 1
            names[i] = FrameName(f"{n.frame} ({k})", f"{n.stem}_{k}")
    return names
