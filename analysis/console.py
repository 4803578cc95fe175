"""The one rich Console of aidi's human-readable output: data strings are never read as markup.

rich reads ``[...]`` in printed strings, table cells and titles as markup and drops what it takes
for a tag: "no deadline set ([sim] deadline_s)" printed as "no deadline set ( deadline_s)".  Every
console aidi prints through comes from :func:`console`, which turns markup (and ``:emoji:`` codes)
off, so scenario names, file paths, keys and messages print as they are; emphasis is given with
``style=`` or :class:`rich.text.Text` (see :func:`styled`), never with markup tags.
"""

from __future__ import annotations

import sys
from typing import IO

from rich.console import Console
from rich.text import Text


def console(stderr: bool = False, file: IO[str] | None = None, wide: bool = False, **kw) -> Console:
    """A :class:`rich.console.Console` with ``markup=False, emoji=False``.

    ``stderr`` / ``file``: where it prints (default stdout, looked up when printing).  ``wide``: 160 columns
    when that stream is not a terminal (tables in logs and pipes are not wrapped at rich's default 80).
    Other keywords go to :class:`~rich.console.Console`.
    """
    if wide and "width" not in kw:
        stream = file or (sys.stderr if stderr else sys.stdout)
        kw["width"] = None if stream.isatty() else 160
    return Console(stderr=stderr, file=file, markup=False, emoji=False, **kw)


def styled(*parts: str | tuple[str, str]) -> Text:
    """A line made of plain strings and ``(text, style)`` pairs, e.g.
    ``styled(("aidi nas", "bold"), " ", name)``: emphasis without markup, whatever the strings hold."""
    return Text.assemble(*parts)
