"""Progress of long work, always on stderr (so ``--json`` stdout stays one JSON object).

On a terminal it is a rich progress display (bar, count, elapsed, time left); anywhere else
(a pipe, a CI log, a file) it is plain log lines, e.g.::

    aidi sweep: points 3/10 (30%), 0:00:04 elapsed, about 0:00:09 left

Every task is created with its total, so the time left is an estimate from the first step on.
Off a terminal a task logs a line when it finishes and, while it runs, one line every
``interval_s`` (none for work shorter than that, so a quick bad-input failure stays the one-line
error of the contract).  ``AIDI_PROGRESS`` overrides the choice: ``bar``, ``log`` or ``off``.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from typing import Callable, TextIO

MODES = ("auto", "bar", "log", "off")
ENV = "AIDI_PROGRESS"
#: seconds between two log lines of one task off a terminal (first and last steps always log)
LOG_INTERVAL_S = 5.0


def _hms(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(round(max(0.0, seconds)))))


def mode_for(stream: TextIO, requested: str | None = None) -> str:
    """``bar`` on a terminal, ``log`` elsewhere; ``requested`` or ``$AIDI_PROGRESS`` when set."""
    m = (requested or os.environ.get(ENV) or "auto").strip().lower()
    if m not in MODES:
        raise ValueError(f"{ENV}: expected one of {', '.join(MODES)}, got {m!r}")
    if m == "auto":
        isatty = getattr(stream, "isatty", None)
        return "bar" if isatty is not None and isatty() else "log"
    return m


class Task:
    """One piece of work with a known number of steps; ``advance()`` or ``update(done)`` as it goes."""

    def __init__(self, progress: "Progress", label: str, total: int):
        self.p, self.label, self.total = progress, label, max(0, int(total))
        self.done = 0
        self.t0 = time.monotonic()
        self._last_log = self.t0
        self._id = None
        if progress.mode == "bar":
            self._id = progress._bar.add_task(f"{progress.name}: {label}", total=self.total or None)

    def update(self, done: int, total: int | None = None) -> None:
        """Set the steps done (and the total, when it became known later)."""
        if total is not None:
            self.total = int(total)
        self.done = int(done)
        if self.p.mode == "bar":
            self.p._bar.update(self._id, completed=self.done, total=self.total or None)
        elif self.p.mode == "log":
            now = time.monotonic()
            if self.done >= self.total or now - self._last_log >= self.p.interval_s:
                self._log()

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def callback(self) -> Callable[..., None]:
        """``fn(done, total)`` for code that reports progress by callback."""
        return lambda done, total=None: self.update(done, total)

    def line(self) -> str:
        """The plain log line of the current state."""
        el = time.monotonic() - self.t0
        txt = f"{self.p.name}: {self.label} {self.done}/{self.total}"
        if self.total:
            txt += f" ({self.done / self.total:.0%})"
        txt += f", {_hms(el)} elapsed"
        if 0 < self.done < self.total:
            txt += f", about {_hms(el / self.done * (self.total - self.done))} left"
        return txt

    def _log(self) -> None:
        self._last_log = time.monotonic()
        if self.p.mode == "log":
            self.p._write(self.line())

    def close(self) -> None:
        if self.p.mode == "bar" and self._id is not None:
            self.p._bar.remove_task(self._id)
            self._id = None

    def __enter__(self) -> "Task":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Progress:
    """Progress of one command: ``with Progress("aidi sweep") as p: t = p.task("points", n)``.

    ``stream``: where it goes (default stderr); ``mode``: ``auto`` (bar on a terminal, log lines
    otherwise), ``bar``, ``log`` or ``off`` (default: ``$AIDI_PROGRESS`` or ``auto``).
    """

    def __init__(self, name: str = "aidi", stream: TextIO | None = None, mode: str | None = None,
                 interval_s: float = LOG_INTERVAL_S):
        self.name = name
        self.stream = stream if stream is not None else sys.stderr
        self.mode = mode_for(self.stream, mode)
        self.interval_s = interval_s
        self._bar = None
        self.console = None
        if self.mode == "bar":
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, SpinnerColumn,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)

            from .console import console

            self.console = console(file=self.stream, force_terminal=True)
            self._bar = RichProgress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"),
                                     TimeRemainingColumn(), console=self.console, transient=True)

    def task(self, label: str, total: int) -> Task:
        """A task of ``total`` steps; ``label`` names them (e.g. ``points``)."""
        return Task(self, label, total)

    def log(self, msg: str) -> None:
        """A line of its own (above the bar on a terminal; not printed in ``off`` mode)."""
        if self.mode == "bar":
            self.console.print(f"{self.name}: {msg}", style="dim", highlight=False)
        elif self.mode == "log":
            self._write(f"{self.name}: {msg}")

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def __enter__(self) -> "Progress":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
