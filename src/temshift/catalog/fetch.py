"""Download raw frames (and labels) of a catalog subset from the published repository.

Uses only the standard library's ``urllib`` (plain HTTP(S) GET/HEAD with ``Range``), so no
extra dependency is needed. Files land in the published layout ``<dest>/<Folder>/<File name>``
and ``<dest>/<Folder>/Labels/<stem>_label.png``; folder names contain spaces and one a ``/``
(a sub-folder), so each path segment is URL-quoted.

Safety: every target is resolved under the destination and a catalog row whose folder or
file name would escape it (``../x``, ``/tmp/x``, a link) is refused before anything is
downloaded. Bytes are written to ``<name>.part`` and renamed to the final name only after the
size was verified against the server's ``Content-Length``; a complete file is skipped, a
``.part`` left by an interrupted run is resumed with an HTTP ``Range`` request, and a local
file of another size is never overwritten unless asked. The fetched rows are written to
``<dest>/catalog.csv`` so that ``temshift dataset build <dest>/catalog.csv`` can follow.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from temshift.errors import TemshiftError
from temshift.progress import Reporter

if TYPE_CHECKING:
    from temshift.catalog import Catalog

DEFAULT_BASE_URL = "https://portal.nersc.gov/project/m3795/hrtem-generalization/"
"""Raw-data portal named in the paper's data availability section."""

CHUNK_BYTES = 1 << 20
USER_AGENT = "temshift-fetch (python urllib)"


class FetchError(TemshiftError):
    """A download failed (HTTP error, network error, or size mismatch)."""


@dataclass
class FetchItem:
    """One file to fetch: its URL and its final local path."""

    url: str
    dest: Path
    kind: str = "frame"


@dataclass
class FetchReport:
    """What a fetch did, by final path; `bytes_downloaded` sums the sizes of fetched files."""

    downloaded: list[Path] = field(default_factory=list)
    resumed: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    bytes_downloaded: int = 0
    catalog_path: Path | None = None


def file_url(base_url: str, *parts: str) -> str:
    """URL of a repository file: each ``/``-separated segment of `parts` percent-quoted."""
    segments = [quote(seg, safe="") for p in parts for seg in str(p).split("/") if seg]
    return base_url.rstrip("/") + "/" + "/".join(segments)


def plan_fetch(
    catalog: Catalog, dest: str | Path, base_url: str = DEFAULT_BASE_URL, labels: bool = False
) -> list[FetchItem]:
    """List the files of a catalog subset with their URLs and destinations.

    Parameters
    ----------
    catalog : temshift.catalog.Catalog
        Frames to fetch (columns ``folder`` and ``file``).
    dest : str or Path
        Local repository root.
    base_url : str
        Repository root URL.
    labels : bool
        Also fetch ``<Folder>/Labels/<stem>_label.png``.

    Raises
    ------
    UnsafePathError
        A row whose ``Folder`` or ``File name`` would place a file outside `dest` (naming the row).
    """
    from temshift.io.paths import resolve_under

    dest = Path(dest)
    items = []
    for row in catalog.rows():
        where = f"{catalog.source}: row with Folder {row['folder']!r}, File name {row['file']!r}"
        items.append(
            FetchItem(
                file_url(base_url, row["folder"], row["file"]),
                resolve_under(dest, row["folder"], row["file"], row=where),
                "frame",
            )
        )
        if labels:
            stem = Path(row["file"]).stem
            items.append(
                FetchItem(
                    file_url(base_url, row["folder"], "Labels", f"{stem}_label.png"),
                    resolve_under(dest, row["folder"], "Labels", f"{stem}_label.png", row=where),
                    "label",
                )
            )
    return items


def _request(url: str, method: str = "GET", offset: int = 0, timeout: float = 60.0) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers, method=method)
    try:
        resp: http.client.HTTPResponse = urllib.request.urlopen(req, timeout=timeout)
        return resp
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            raise
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise FetchError(f"{url}: cannot connect ({exc.reason})") from None
    except TimeoutError:
        raise FetchError(f"{url}: timed out after {timeout:g} s") from None


def remote_size(url: str, timeout: float = 60.0) -> int | None:
    """Size in bytes from a HEAD request's ``Content-Length`` (None when not given)."""
    with _request(url, "HEAD", timeout=timeout) as resp:
        n = resp.headers.get("Content-Length")
    return int(n) if n is not None and n.isdigit() else None


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def download(
    url: str,
    dest: str | Path,
    *,
    timeout: float = 60.0,
    on_bytes: Callable[[int], None] | None = None,
    on_size: Callable[[int | None], None] | None = None,
    sha256: str | None = None,
    overwrite: bool = False,
) -> str:
    """Download one file to `dest` via ``dest.part``, resuming and verifying its size (and hash).

    Parameters
    ----------
    url : str
        File URL.
    dest : str or Path
        Final path; written only once complete and verified.
    timeout : float
        Socket timeout per operation, seconds.
    on_bytes : callable, optional
        Called with the number of bytes just written (progress).
    on_size : callable, optional
        Called once with the expected total size in bytes (None if unknown).
    sha256 : str, optional
        Expected hex SHA-256 of the file: a complete file that does not match is fetched
        again, a downloaded one that does not match is removed and is an error.
    overwrite : bool
        Replace a local file whose size differs from the server's (default: refuse; with
        `sha256` given, a local file that fails the hash is replaced).

    Returns
    -------
    str
        ``"skipped"`` (already complete), ``"resumed"`` or ``"downloaded"``.

    Raises
    ------
    FetchError
        HTTP or network failure, a size that differs from ``Content-Length`` (a short
        ``.part`` is kept for resuming; a too-long one is removed), a SHA-256 mismatch, or a
        local file of another size under the final name (kept unless `overwrite`).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    size = remote_size(url, timeout)
    if on_size:
        on_size(size)
    if (
        dest.is_file()
        and (size is None or dest.stat().st_size == size)
        and (sha256 is None or sha256_file(dest) == sha256.lower())
    ):
        if on_bytes:
            on_bytes(dest.stat().st_size)
        return "skipped"
    # with a known hash, a local file that fails it is a damaged copy of this very file: replace it
    if dest.exists() and not overwrite and not (sha256 is not None and dest.is_file()):
        have = dest.stat().st_size if dest.is_file() else None
        what = f"a local file of {have} bytes" if have is not None else "something that is not a file"
        raise FetchError(
            f"{dest}: {what} is in the way of {url} ({size} bytes); not overwritten: move it away or pass --overwrite"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    status = "resumed" if offset else "downloaded"
    if size is None or offset < size:
        try:
            resp = _request(url, "GET", offset, timeout)
        except urllib.error.HTTPError:  # 416: our .part does not fit the remote file
            part.unlink(missing_ok=True)
            offset, status = 0, "downloaded"
            resp = _request(url, "GET", 0, timeout)
        with resp:
            if offset and resp.status != 206:  # server ignored Range: start over
                offset, status = 0, "downloaded"
            if on_bytes and offset:
                on_bytes(offset)
            _stream(resp, part, offset, url, on_bytes)
    got = part.stat().st_size
    if size is not None and got != size:
        if got > size:
            part.unlink()
        raise FetchError(
            f"{url}: size mismatch, received {got} bytes, server announced {size}"
            + ("; run again to resume" if got < size else "")
        )
    if sha256 is not None and (digest := sha256_file(part)) != sha256.lower():
        part.unlink()
        raise FetchError(
            f"{dest.name}: SHA-256 mismatch (got {digest[:12]}..., expected {sha256[:12]}...); not saved (from {url})"
        )
    os.replace(part, dest)
    return status


def _stream(
    resp: http.client.HTTPResponse, part: Path, offset: int, url: str, on_bytes: Callable[[int], None] | None
) -> None:
    mode = "r+b" if offset else "wb"
    with open(part, mode) as fh:
        fh.seek(offset)
        fh.truncate()
        written = offset
        try:
            while chunk := resp.read(CHUNK_BYTES):
                fh.write(chunk)
                written += len(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
        except (OSError, TimeoutError, urllib.error.URLError) as exc:
            fh.flush()
            raise FetchError(
                f"{url}: connection lost after {written} bytes ({type(exc).__name__}); run again to resume"
            ) from None
        except Exception as exc:  # noqa: BLE001  http.client.IncompleteRead and friends, re-raised as FetchError
            fh.flush()
            raise FetchError(
                f"{url}: transfer broke off after {written} bytes ({type(exc).__name__}); run again to resume"
            ) from None


def fetch(
    catalog: Catalog,
    dest: str | Path,
    *,
    base_url: str = DEFAULT_BASE_URL,
    labels: bool = False,
    timeout: float = 60.0,
    reporter: Reporter | None = None,
    overwrite: bool = False,
) -> FetchReport:
    """Download the raw frames (and labels) of a catalog subset into the published layout.

    Parameters
    ----------
    catalog : temshift.catalog.Catalog
        Subset to fetch (e.g. ``Catalog.published().query(material="Ag")``).
    dest : str or Path
        Local repository root.
    base_url : str
        Repository root URL (default: the paper's raw-data portal).
    labels : bool
        Also fetch label PNGs.
    timeout : float
        Socket timeout, seconds.
    reporter : temshift.progress.Reporter, optional
        Receives the progress (job ``"fetch"`` in bytes, a note ``"k/n files"``); default: logging.
    overwrite : bool
        Replace local files whose size differs from the server's (default: refuse).

    Returns
    -------
    FetchReport
        With ``catalog_path``: ``<dest>/catalog.csv``, the fetched rows merged with the rows
        of an earlier fetch into the same `dest` (written atomically once all files are in).

    Raises
    ------
    UnsafePathError
        A row that would write outside `dest` (before anything is downloaded).
    FetchError
        On the first failing file (files completed before it stay in place).
    """
    from temshift.progress import reporter_or_log

    items = plan_fetch(catalog, dest, base_url, labels)
    report = FetchReport()
    rep = reporter_or_log(reporter)
    rep.start("fetch", None, unit="bytes")
    rep.note("fetch", f"0/{len(items)} files")
    counted = [0]  # bytes reported for the current file: a restarted download reports some twice

    def on_bytes(n: int) -> None:
        counted[0] += n
        rep.advance("fetch", n)

    try:
        for k, item in enumerate(items, 1):
            counted[0] = 0
            status = download(item.url, item.dest, timeout=timeout, on_bytes=on_bytes, overwrite=overwrite)
            got = item.dest.stat().st_size
            if status == "skipped":
                report.skipped.append(item.dest)
            else:
                (report.resumed if status == "resumed" else report.downloaded).append(item.dest)
                report.bytes_downloaded += got
            rep.advance("fetch", got - counted[0])  # the bar ends at the sum of the file sizes
            rep.note("fetch", f"{k}/{len(items)} files")
    finally:
        rep.stop("fetch")
    report.catalog_path = write_fetched_catalog(catalog, dest)
    return report


def write_fetched_catalog(catalog: Catalog, dest: str | Path) -> Path:
    """Write `catalog`'s rows to ``<dest>/catalog.csv`` (published schema, atomically).

    Rows already listed there by an earlier fetch are kept (a row of `catalog` with the same
    folder and file name replaces its old line), so the table lists every fetched frame.
    """
    import pandas as pd

    from temshift.catalog import Catalog
    from temshift.errors import CatalogError

    path = Path(dest) / "catalog.csv"
    table = catalog
    if path.is_file():
        try:
            old = Catalog.read(path)
        except CatalogError as exc:
            raise FetchError(
                f"{path}: an earlier catalog is in the way and cannot be read ({exc}); move it away and run again"
            ) from None
        new_keys = set(zip(catalog.df["folder"], catalog.df["file"]))
        keep = [k not in new_keys for k in zip(old.df["folder"], old.df["file"])]
        merged = pd.concat([old.to_published().loc[keep], catalog.to_published()], ignore_index=True)
        table = Catalog(merged, source=str(path))
    return table.to_published_csv(path)
