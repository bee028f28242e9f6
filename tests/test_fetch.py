"""Downloads from a local HTTP server on 127.0.0.1: layout, skip, resume, errors, sizes."""

from __future__ import annotations

import contextlib
import http.server
import threading
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest

from temshift.catalog import Catalog
from temshift.catalog.fetch import FetchError, download, fetch, file_url

FOLDER = "2021_08_26 5nm Au nanoparticles on C/Ultrathin Carbon"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files` {url path: bytes} with Range support; `server.lie` inflates HEAD sizes."""

    def log_message(self, *args):  # keep test output clean
        pass

    def _lookup(self):
        path = unquote(urlsplit(self.path).path)
        self.server.requests.append((self.command, path, self.headers.get("Range")))
        return self.server.files.get(path)

    def do_HEAD(self):
        data = self._lookup()
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data) + self.server.lie))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_GET(self):
        data = self._lookup()
        if data is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        if rng and not self.server.no_range:
            start = int(rng.split("=")[1].split("-")[0])
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def serve(files: dict[str, bytes], lie: int = 0, no_range: bool = False):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.lie, server.requests, server.no_range = files, lie, [], no_range
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}/repo/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _catalog() -> Catalog:
    rows = []
    for k in (1, 2):
        rows.append(
            {
                "File name": f"Au_{k:02d}.dm3",
                "Date": "08/26/21",
                "Material": "Au",
                "Nanoparticle Size (nm)": "5",
                "Nanoparticle Shape": "Sphere",
                "Support": "UT Carbon",
                "Instrument": "Team05",
                "Dosage (e/A2)": "420",
                "Pixel Scale (nm)": "0.033",
                "Folder": FOLDER,
            }
        )
    return Catalog(pd.DataFrame(rows), source="test catalog")


def _files() -> dict[str, bytes]:
    files = {}
    for k in (1, 2):
        files[f"/repo/{FOLDER}/Au_{k:02d}.dm3"] = bytes([k]) * (300_000 + k)
        files[f"/repo/{FOLDER}/Labels/Au_{k:02d}_label.png"] = b"png" * (100 + k)
    return files


def test_url_quotes_each_segment():
    url = file_url("http://h/repo/", FOLDER, "a b.dm3")
    assert url == "http://h/repo/2021_08_26%205nm%20Au%20nanoparticles%20on%20C/Ultrathin%20Carbon/a%20b.dm3"


def test_fetch_layout_labels_and_skip(tmp_path):
    files = _files()
    with serve(files) as (server, base):
        report = fetch(_catalog(), tmp_path, base_url=base, labels=True)
        assert len(report.downloaded) == 4 and not report.skipped
        for url_path, data in files.items():
            local = tmp_path / url_path.removeprefix("/repo/")
            assert local.read_bytes() == data
        assert (tmp_path / "2021_08_26 5nm Au nanoparticles on C" / "Ultrathin Carbon" / "Labels").is_dir()
        server.requests.clear()
        again = fetch(_catalog(), tmp_path, base_url=base, labels=True)
        assert len(again.skipped) == 4 and not again.downloaded
        assert all(method == "HEAD" for method, _, _ in server.requests)
    assert not list(tmp_path.rglob("*.part"))


def test_resume_partial_file(tmp_path):
    files = _files()
    path = f"/repo/{FOLDER}/Au_01.dm3"
    dest = tmp_path / "Au_01.dm3"
    part = tmp_path / "Au_01.dm3.part"
    part.write_bytes(files[path][:123_456])
    with serve(files) as (server, base):
        status = download(file_url(base, FOLDER, "Au_01.dm3"), dest)
        assert status == "resumed"
        assert ("GET", path, "bytes=123456-") in server.requests
    assert dest.read_bytes() == files[path]
    assert not part.exists()


def test_server_without_range_support_restarts_cleanly(tmp_path):
    files = _files()
    path = f"/repo/{FOLDER}/Au_02.dm3"
    dest = tmp_path / "Au_02.dm3"
    (tmp_path / "Au_02.dm3.part").write_bytes(b"garbage" * 100)
    with serve(files, no_range=True) as (_, base):
        assert download(file_url(base, FOLDER, "Au_02.dm3"), dest) == "downloaded"
    assert dest.read_bytes() == files[path]


def test_http_404_is_one_clear_error(tmp_path):
    with serve({}) as (_, base), pytest.raises(FetchError, match="HTTP 404"):
        fetch(_catalog(), tmp_path, base_url=base)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_size_mismatch_leaves_no_final_file(tmp_path):
    files = _files()
    with serve(files, lie=10) as (_, base):
        dest = tmp_path / "Au_01.dm3"
        with pytest.raises(FetchError, match="size mismatch"):
            download(file_url(base, FOLDER, "Au_01.dm3"), dest)
    assert not dest.exists()
    assert (tmp_path / "Au_01.dm3.part").stat().st_size == 300_001  # kept for resuming


def test_unreachable_server(tmp_path):
    with serve({}) as (_, base):
        pass  # server stopped: connection refused
    with pytest.raises(FetchError, match="cannot connect"):
        download(base + "x.dm3", tmp_path / "x.dm3", timeout=2)


def test_cli_fetch(tmp_path):
    from typer.testing import CliRunner

    from temshift.cli import _register, app

    _register()
    cat_csv = tmp_path / "catalog.csv"
    _catalog().to_published_csv(cat_csv)
    with serve(_files()) as (_, base):
        res = CliRunner().invoke(
            app,
            [
                "fetch",
                "--catalog",
                str(cat_csv),
                "--where",
                "file=Au_02.dm3",
                "--dest",
                str(tmp_path / "repo"),
                "--base-url",
                base,
            ],
        )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "repo" / FOLDER / "Au_02.dm3").stat().st_size == 300_002
    assert not (tmp_path / "repo" / FOLDER / "Au_01.dm3").exists()


def test_sha256_checked_and_wrong_complete_file_fetched_again(tmp_path):
    import hashlib

    files = _files()
    path = f"/repo/{FOLDER}/Au_01.dm3"
    digest = hashlib.sha256(files[path]).hexdigest()
    dest = tmp_path / "Au_01.dm3"
    dest.write_bytes(b"\0" * len(files[path]))  # right size, wrong content
    with serve(files) as (_, base):
        url = file_url(base, FOLDER, "Au_01.dm3")
        assert download(url, dest, sha256=digest) == "downloaded"
        assert dest.read_bytes() == files[path]
        assert download(url, dest, sha256=digest) == "skipped"
        with pytest.raises(FetchError, match="Au_02.dm3: SHA-256 mismatch"):
            download(file_url(base, FOLDER, "Au_02.dm3"), tmp_path / "Au_02.dm3", sha256=digest)
    assert not (tmp_path / "Au_02.dm3").exists() and not (tmp_path / "Au_02.dm3.part").exists()
