"""User-facing errors: one line, exit status 2, no traceback.

The command line prints them as ``aidi: error: <message>``; the Python API
(:mod:`aidi.analysis.api`) raises them as :class:`UserError` with the same message.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path


class UserError(ValueError):
    """Bad input from the user (file, key, value); printed as one line."""


def user_errors() -> tuple[type[BaseException], ...]:
    from aidi.scenarios.loader import ScenarioError
    from aidi.sim.harvesters import TraceError
    from aidi.sim.workload import NonProgressError

    return (UserError, ScenarioError, TraceError, NonProgressError, FileNotFoundError)


def one_line(exc: BaseException, context: str = "") -> str:
    """The message of an expected error: its first line, prefixed with ``context`` (a file or command
    the user named) unless the message already names it."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    named = context and (context in msg or Path(context).name in msg)
    return f"{context}: {msg}" if context and not named else msg


@contextlib.contextmanager
def one_line_errors(context: str = ""):
    """Turn expected errors into ``aidi: error: ...`` on stderr and exit status 2."""
    import typer

    try:
        yield
    except user_errors() as exc:
        print(f"aidi: error: {one_line(exc, context)}", file=sys.stderr)
        raise typer.Exit(2) from None
