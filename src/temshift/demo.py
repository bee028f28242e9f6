"""Seconds-fast smoke demo: a few toy raw frames -> a dataset -> its summary.

Run ``python -m temshift.demo [OUT_DIR]``; OUT_DIR defaults to ``demo-out``. (``make demo``
runs the quick ``dose`` study instead.) The frames are :mod:`temshift.simulate.toy` stand-ins
for camera frames, written in the published repository layout with a ``catalog.csv``,
without abTEM. For physically simulated frames use ``temshift simulate``. This is an entry
point like the CLI (it draws with rich), not a library module.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    from temshift.catalog import Catalog
    from temshift.cli.dataset_cmd import print_summary
    from temshift.datasets import DatasetSpec, build_dataset
    from temshift.simulate.toy import write_toy_repository

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "demo-out")
    console = Console()
    console.print(f"[bold]temshift demo[/]: synthetic frames -> dataset, in {out}/")
    csv = write_toy_repository(out / "repo")
    catalog = Catalog.read(csv)
    console.print(f"wrote {len(catalog)} synthetic frames and {csv}")
    spec = DatasetSpec(name="demo_Au_423e", where={"material": "Au", "dose_e_per_A2": (423, 20)}, patch_size=256)
    path = build_dataset(catalog, None, spec, out / f"{spec.name}.h5")
    print_summary(path, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
