"""Command line: a thin layer over the Python API.

Each stage registers its commands from its own module here; heavy imports
happen inside the command functions so `temshift --help` stays fast.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer

from temshift.errors import TemshiftError

app = typer.Typer(
    name="temshift",
    help="HRTEM nanoparticle segmentation under dataset shift: catalog, simulate, preprocess, "
    "build datasets, train residual U-Nets, run generalization studies, predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from temshift import __version__

        typer.echo(f"temshift {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """HRTEM nanoparticle segmentation under dataset shift."""


def _register() -> None:
    from temshift.cli import (  # noqa: F401  (each module adds its commands to `app`)
        catalog_cmd,
        dataset_cmd,
        finetune_cmd,
        model_cmd,
        predict_cmd,
        preprocess_cmd,
        pretrain_cmd,
        realism_cmd,
        simulate_cmd,
        study_cmd,
        zoo_cmd,
    )


def main() -> None:
    """Entry point: run the app, turning TemshiftError into one red line and exit code 1."""
    from rich.console import Console

    _register()
    _one_line_warnings()
    try:
        rv = app(standalone_mode=False)
        # in non-standalone mode click returns a `typer.Exit` code instead of exiting
        if isinstance(rv, int) and rv != 0:
            sys.exit(rv)
    except TemshiftError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except OSError as exc:  # a file-system refusal (permissions, disk full) is the user's to fix: one line
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        Console(stderr=True).print(f"[bold red]error:[/] {where}{exc.strerror or exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # usage errors come through here in non-standalone mode
        # typer vendors its own copy of click, so match both exception families
        import click

        usage_errors = (click.exceptions.ClickException, _vendored_click_exception())
        if isinstance(exc, usage_errors):
            from typing import cast

            usage = cast(click.exceptions.ClickException, exc)  # either family has show() and exit_code
            usage.show()
            sys.exit(usage.exit_code)
        raise


_PROGRAM = False
"""True in the ``temshift`` program (:func:`run`); in-process callers of :func:`main` (tests) keep
their garbage collector as it is."""


def run() -> None:
    """The ``temshift`` program (console script and ``python -m temshift``): :func:`main`, then
    ``gc.freeze()`` before the interpreter exits.

    With torch, pandas and matplotlib loaded, the interpreter's last garbage collections at
    exit walk millions of objects: measured 2.2-3.1 s of a loaded machine's ``temshift predict``
    after its last output, 0.7 s with the objects frozen. Nothing is skipped (atexit handlers
    and stream flushes still run); tests call :func:`main` in-process and keep collecting.
    """
    import gc

    global _PROGRAM
    _PROGRAM = True
    try:
        main()
    finally:
        gc.freeze()


@contextlib.contextmanager
def loading_libraries() -> Iterator[None]:
    """Around a command's heavy imports (torch, pandas, SciPy): the cyclic garbage collector paused
    while they run and, in the ``temshift`` program, the objects they made frozen afterwards.

    Those imports create a few hundred thousand long-lived objects (modules, functions, classes),
    and meanwhile the collector runs full collections over all of them, again and again as they
    grow; once frozen (``gc.freeze``), later collections skip them. Import garbage caught in the
    freeze is kept to the end (little). In-process callers (:data:`_PROGRAM` false) only get the pause.
    """
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _PROGRAM:
            gc.freeze()
        if enabled:
            gc.enable()


def _one_line_warnings() -> None:
    """Show temshift's own warnings (how a file was read, pixel-scale mismatches) as one line each."""
    import warnings

    plain = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.startswith("temshift"):
            print(f"warning: {message}", file=file or sys.stderr)
        else:
            plain(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def _vendored_click_exception() -> type:
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # older typer uses click itself
        import click

        return click.exceptions.ClickException
    return ClickException
