"""User-facing errors: one line, exit status 2, no traceback."""

from __future__ import annotations

import contextlib
import sys

import typer


class UserError(ValueError):
    """Bad input from the user (file, key, value); printed as one line."""


def user_errors() -> tuple[type[BaseException], ...]:
    from aidi.scenarios.loader import ScenarioError
    from aidi.sim.harvesters import TraceError
    from aidi.sim.workload import NonProgressError

    return (UserError, ScenarioError, TraceError, NonProgressError, FileNotFoundError)


@contextlib.contextmanager
def one_line_errors(context: str = ""):
    """Turn expected errors into ``aidi: error: ...`` on stderr and exit status 2."""
    try:
        yield
    except user_errors() as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        from pathlib import Path

        named = context and (context in msg or Path(context).name in msg)
        prefix = f"{context}: " if context and not named else ""
        print(f"aidi: error: {prefix}{msg}", file=sys.stderr)
        raise typer.Exit(2) from None
