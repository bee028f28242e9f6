"""The simulate preview page: whole particles in the zoom, no overlapping titles, scale bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from temshift.catalog import Catalog
from temshift.io import write_label_png, write_tiff_frame
from temshift.simulate.preview import _zoom_window, preview_figure, write_preview


def _disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r**2).astype(np.uint8)


@pytest.mark.parametrize("where", [(600, 620), (40, 40), (980, 30)])
def test_zoom_window_holds_the_whole_particle(where):
    # a 7 nm particle at 0.02 nm/px (350 px) near the centre or in a corner
    label = _disk((1024, 1024), *where, r=175)
    sy, sx = _zoom_window(label, 0.02)
    ys, xs = np.nonzero(label)
    assert sy.start <= ys.min() and ys.max() < sy.stop
    assert sx.start <= xs.min() and xs.max() < sx.stop
    assert sy.stop - sy.start == sx.stop - sx.start <= 1024


@pytest.fixture
def repo(tmp_path):
    rows = []
    rng = np.random.default_rng(0)
    for k, (dose, scale) in enumerate(((80, 0.02), (884, 0.033))):
        folder = f"session {k}"
        name = f"f{k}.tif"
        (tmp_path / folder / "Labels").mkdir(parents=True)
        frame = rng.poisson(50, (256, 256)).astype(np.float32)
        write_tiff_frame(tmp_path / folder / name, frame, scale)
        write_label_png(tmp_path / folder / "Labels" / f"f{k}_label.png", _disk((256, 256), 20, 230, 18))
        rows.append(
            {
                "File name": name,
                "Date": "06/15/22",
                "Material": "Au",
                "Nanoparticle Size (nm)": "5",
                "Nanoparticle Shape": "Sphere",
                "Support": "UT Carbon",
                "Instrument": "Team05",
                "Dosage (e/A2)": str(dose),
                "Pixel Scale (nm)": str(scale),
                "Folder": folder,
            }
        )
    Catalog(pd.DataFrame(rows), source="test").to_published_csv(tmp_path / "catalog.csv")
    return tmp_path


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_preview_titles_do_not_overlap_and_every_image_has_a_scale_bar(repo, tmp_path):
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    fig = preview_figure(repo)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [fig._suptitle] + [ax.title for ax in fig.axes]
    boxes = [t.get_window_extent(renderer) for t in texts if t.get_text()]
    images = [ax.get_window_extent(renderer) for ax in fig.axes]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not _overlaps(a, b)
        for im in images:
            assert not _overlaps(a, im), "a title runs into an image"
    for ax in fig.axes:
        bars = [a for a in ax.artists if isinstance(a, AnchoredSizeBar)]
        assert len(bars) == 1 and bars[0].txt_label.get_text().endswith(" nm")
    out = write_preview(repo, tmp_path / "p.png")
    assert out.stat().st_size > 1000
