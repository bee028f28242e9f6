"""Run the temshift command line in-process, as a user would, for tests."""

from __future__ import annotations

import sys

from temshift.cli import main


def run(monkeypatch, capsys, *args):
    """Run `temshift ARGS` through the real entry point; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["temshift", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err
