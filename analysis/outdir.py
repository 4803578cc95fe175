"""Output folders: aidi writes only into folders it made (or empty ones), unless told ``--force``.

A folder aidi writes into gets a marker file, :data:`MARKER`, so a later run recognises it and may
overwrite its own files there.  A non-empty folder without the marker is the user's: aidi refuses it
(one-line error) instead of silently replacing a ``Makefile`` or ``README.md`` of theirs.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UserError

MARKER = ".aidi-output"


def prepare(out: Path | str, force: bool = False, option: str = "--out") -> Path:
    """Make ``out`` (and parents) ready for writing and mark it; a one-line :class:`UserError` when it cannot be."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{option} {out}: exists and is not a folder")
    if out.is_dir() and not force and not (out / MARKER).is_file() and any(out.iterdir()):
        raise UserError(f"{option} {out}: folder is not empty and was not made by aidi; choose a new folder, or "
                        "pass --force to write into it (files of the same names are replaced)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("This folder was made by aidi; aidi may replace files in it.\n")
    except OSError as exc:
        raise UserError(f"{option} {out}: cannot write there ({exc.strerror or exc.__class__.__name__})") from None
    return out
