"""What every figure aidi writes shares: reference lines that stay put on log axes, human labels,
and writing figures as HTML (one plotly.js per output folder) and as static SVG, PDF or PNG.

Static export goes through kaleido (plotly's own exporter, pinned in requirements.txt), which
drives a Chrome or Chromium that is already installed: ``BROWSER_PATH`` if set, else the first
Chrome/Chromium on ``PATH`` or in the usual places (Debian: ``apt-get install chromium``).
Nothing is downloaded: aidi never calls kaleido's ``get_chrome``, and the page kaleido renders
in loads plotly.js from the installed plotly package and no MathJax (its default is a CDN).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Sequence

from .errors import UserError

#: figure file formats of ``--format``: interactive HTML and the static formats kaleido writes
FORMATS = ("html", "svg", "pdf", "png")
STATIC = ("svg", "pdf", "png")
#: the one copy of plotly.js in an output folder; every HTML file there loads it by a relative path
PLOTLYJS = "plotly.min.js"
#: size (px) of a static image when the figure sets none; PNG is written at 2x this for print
STATIC_WIDTH, STATIC_HEIGHT = 1000, 550
FORMAT_HELP = ("figure files to write, comma-separated: html (interactive), svg, pdf, png (static, need "
               "Chrome/Chromium: Debian package chromium, or BROWSER_PATH); report.html is always written")

#: energy categories of ``energy_J.by_category`` as a reader would name them (sim.workload.CATEGORIES)
CATEGORY_LABELS = {
    "compute": "compute",
    "data_movement": "data movement (FRAM/DMA)",
    "preservation": "preservation (commits)",
    "board": "board (quiescent and peripheral loads)",
    "restore": "restore (boot)",
    "reexecution": "re-execution (lost work)",
    "sleep": "sleep between inferences",
    "unfinished": "unfinished at the end",
    "wait": "waiting for energy",
    "converter_loss": "converter loss",
    "converter_input": "converter loss, input (boost)",
}

#: swept scenario keys as an axis title with unit (``aidi sweep --set KEY=...``)
KEY_LABELS = {
    "power.capacitor_F": "capacitor (F)",
    "power.v_on": "turn-on voltage V_on (V)",
    "power.v_off": "brown-out voltage V_off (V)",
    "power.v_max": "maximum voltage V_max (V)",
    "power.leakage_A": "leakage current (A)",
    "harvester.power_W": "harvested power (W)",
    "harvester.r_ohm": "source resistance (ohm)",
    "harvester.v_source": "source voltage (V)",
    "device.sram_budget_bytes": "SRAM budget (bytes)",
    "device.mclk_hz": "MCLK (Hz)",
    "execution.hyper_tile": "hyper-tile size (tiles per commit)",
    "sim.inferences": "inferences",
    "sim.period_s": "inference period (s)",
}
_UNIT_SUFFIXES = {"F": "F", "V": "V", "W": "W", "A": "A", "s": "s", "ohm": "ohm", "hz": "Hz", "bytes": "bytes",
                  "J": "J"}


def category_label(key: str) -> str:
    """``data_movement`` -> ``data movement (FRAM/DMA)``; unknown keys with spaces for underscores."""
    return CATEGORY_LABELS.get(key, key.replace("_", " "))


def category_bar(by_category: dict[str, float], name: str = "category"):
    """Energy by category (``energy_J.by_category``, J) as a horizontal :class:`plotly.graph_objects.Bar`,
    each bar labelled in full by :func:`category_label`, zero categories left out.

    Horizontal because a vertical bar chart rotated long category labels and cut them at the plot's
    lower edge ("data movement (FR…", "sleep between infe…"); on the y axis they read in full, and
    :func:`fit_labels` lets the axis take the width they need.
    """
    import plotly.graph_objects as go

    cats = {category_label(k): v for k, v in by_category.items() if v}
    return go.Bar(y=list(cats), x=list(cats.values()), orientation="h", name=name)


def fit_labels(fig):
    """Let every axis of ``fig`` widen the figure's margin to fit its tick labels (plotly's ``automargin``;
    the default margins are fixed, so long labels were clipped).  Returns ``fig``."""
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def key_label(key: str) -> str:
    """An axis title with unit for a swept key: ``power.capacitor_F`` -> ``capacitor (F)``."""
    if key in KEY_LABELS:
        return KEY_LABELS[key]
    name = key.rsplit(".", 1)[-1]
    stem, _, suffix = name.rpartition("_")
    if stem and suffix in _UNIT_SUFFIXES:
        return f"{stem.replace('_', ' ')} ({_UNIT_SUFFIXES[suffix]})"
    return name.replace("_", " ")


def plural(n: int, one: str, many: str | None = None) -> str:
    """``plural(1, "power cycle")`` -> ``1 power cycle``; 2 -> ``2 power cycles``."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


# --------------------------------------------------------------------------- reference lines
def vline(fig, x: float, label: str | None = None, *, log_x: bool = False, row=None, col=None,
          dash: str = "dash", color: str = "grey", label_y: float = 1.0) -> None:
    """A vertical line at data ``x`` with ``label`` at height ``label_y`` (fraction of the plot).

    plotly's ``add_vline(annotation_text=...)`` places the label at the raw ``x``, which a log
    axis reads as log10(x): a line at 1e-4 F stretched the axis to 1e4.  The line itself (a
    shape) is in data coordinates on either axis type; the label is placed here at log10(x)
    when ``log_x``.  Pass ``log_x`` for a log axis (set before or after this call).
    """
    fig.add_vline(x=x, line_dash=dash, line_color=color, row=row, col=col)
    if label:
        ax = math.log10(x) if log_x else x
        fig.add_annotation(x=ax, y=label_y, yref="y domain", text=label, showarrow=False, xanchor="left",
                           yanchor="top", font=dict(size=11, color=color), row=row, col=col)


def hline(fig, y: float, label: str | None = None, *, dash: str = "dot", color: str = "grey", row=None,
          col=None) -> None:
    """A horizontal line at data ``y`` (linear y axis) labelled at the right end."""
    fig.add_hline(y=y, line_dash=dash, line_color=color, row=row, col=col)
    if label:
        fig.add_annotation(x=1, xref="x domain", y=y, text=label, showarrow=False, xanchor="right",
                           yanchor="bottom", font=dict(size=11, color=color), row=row, col=col)


def log_bar_positions(values: Sequence[float], fill: float = 0.7) -> tuple[list[float], list[float]]:
    """Bar centres and widths (data units) that look evenly wide on a log axis.

    plotly draws a bar from x - w/2 to x + w/2 in data units, so equal ``w`` is lopsided on a
    log axis.  For each value v this returns the linear centre and width of the interval
    [v / 10^h, v * 10^h], h = ``fill`` / 2 of the smallest gap between neighbouring values in
    decades: the bar is symmetric around v on the log axis and bars never overlap.
    """
    vs = sorted(set(float(v) for v in values))
    logs = [math.log10(v) for v in vs]
    gaps = [b - a for a, b in zip(logs, logs[1:])]
    h = fill * (min(gaps) if gaps else 0.5) / 2
    lo, hi = 10 ** -h, 10 ** h
    return [v * (lo + hi) / 2 for v in values], [v * (hi - lo) for v in values]


# --------------------------------------------------------------------------- formats
def parse_formats(text: str | Iterable[str] | None, option: str = "--format") -> tuple[str, ...]:
    """``"html,svg"`` -> ``("html", "svg")``; a one-line :class:`UserError` for an unknown or empty list."""
    if text is None:
        return ("html",)
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in (i.strip().lower().lstrip(".") for i in items):
        if not item:
            continue
        if item not in FORMATS:
            raise UserError(f"{option}: unknown figure format {item!r}; choose from {', '.join(FORMATS)} "
                            "(comma-separated)")
        if item not in out:
            out.append(item)
    if not out:
        raise UserError(f"{option}: give at least one of {', '.join(FORMATS)}")
    return tuple(out)


def find_browser() -> str | None:
    """The Chrome/Chromium kaleido will drive: ``BROWSER_PATH`` if set (None when it is not an
    executable), else choreographer's search of PATH and the usual install places; None if none."""
    env = os.environ.get("BROWSER_PATH")
    if env:
        return env if os.path.isfile(env) and os.access(env, os.X_OK) else None
    from choreographer.browsers.chromium import Chromium

    return Chromium.find_browser(skip_local=False)


def static_missing(formats: Iterable[str] = STATIC) -> str | None:
    """Why the static ``formats`` cannot be written here (one line), or None when they can."""
    wanted = [f for f in formats if f in STATIC]
    if not wanted or find_browser() is not None:
        return None
    env = os.environ.get("BROWSER_PATH")
    where = f"BROWSER_PATH={env!r} is not an executable" if env else "no Chrome or Chromium found"
    return (f"{','.join(wanted)} export needs Chrome or Chromium and {where}; install the Debian package "
            "chromium, or set BROWSER_PATH to a Chrome/Chromium executable")


def require_static(formats: Iterable[str], option: str = "--format") -> None:
    """Refuse (one-line :class:`UserError`) static formats that cannot be written, before any work starts."""
    why = static_missing(formats)
    if why:
        raise UserError(f"{option}: {why}")


def formats_for_out(text: str | None, out, option: str = "--format") -> tuple[str, ...]:
    """``--format`` of a command whose figures go to ``--out`` only: parsed, static formats checked,
    and a one-line :class:`UserError` when formats other than the default are given without ``--out``."""
    formats = parse_formats(text, option)
    if out is None:
        if formats != ("html",):
            raise UserError(f"{option} {','.join(formats)}: figures are written only with --out DIR")
        return formats
    require_static(formats, option)
    return formats


def _kaleido_opts() -> dict:
    return {"mathjax": False, "path": find_browser()}


def full_figures(figs: Sequence) -> list[dict]:
    """The figures as plotly.js lays them out (autoranged axes included), as dicts; one browser session."""
    import asyncio
    import json

    import kaleido

    async def layout_all():
        async with kaleido.Kaleido(**_kaleido_opts()) as k:
            return [json.loads(await k.calc_fig(f, opts={"format": "json"})) for f in figs]

    return asyncio.run(layout_all())


def full_figure(fig) -> dict:
    """:func:`full_figures` of one figure."""
    return full_figures([fig])[0]


# --------------------------------------------------------------------------- writing
def write_plotlyjs(folder: Path) -> Path:
    """``folder/plotly.min.js`` (the installed plotly's bundle), written once."""
    path = Path(folder) / PLOTLYJS
    if not path.is_file():
        from plotly.offline import get_plotlyjs

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(get_plotlyjs(), encoding="utf-8")
    return path


class FigureWriter:
    """Writes the figures of one output folder (``root``) in the chosen formats.

    HTML files anywhere under ``root`` load ``root/plotly.min.js`` by a relative path (one 4.8 MB
    copy per folder, not one per file); static files are rendered together by one browser session
    when the writer closes (use it as a context manager).  ``written`` lists every path written.
    """

    def __init__(self, root: Path, formats: Iterable[str] = ("html",)):
        self.root = Path(root)
        self.formats = parse_formats(list(formats))
        self._static: list[dict] = []
        self.written: list[Path] = []

    def script_src(self, html_path: Path) -> str:
        """The relative URL of the folder's plotly.js as seen from ``html_path``."""
        write_plotlyjs(self.root)
        return Path(os.path.relpath(self.root / PLOTLYJS, Path(html_path).parent)).as_posix()

    def figure(self, fig, stem: Path | str) -> list[Path]:
        """Write ``fig`` as ``stem.html`` / queue ``stem.svg`` ... per the formats (``stem``: a path under
        ``root``, e.g. ``root / "sweep"``); returns the paths."""
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        paths = []
        for fmt in self.formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            if fmt == "html":
                fig.write_html(path, include_plotlyjs=self.script_src(path))
            else:
                width = fig.layout.width or STATIC_WIDTH
                height = fig.layout.height or STATIC_HEIGHT
                self._static.append({"fig": fig, "path": path, "opts": {
                    "format": fmt, "width": width, "height": height, "scale": 2 if fmt == "png" else 1}})
            paths.append(path)
            self.written.append(path)
        return paths

    def page(self, path: Path | str, html_text_of) -> Path:
        """Write an HTML page; ``html_text_of(script_src)`` returns its text given plotly.js's URL."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html_text_of(self.script_src(path)), encoding="utf-8")
        self.written.append(path)
        return path

    def flush(self) -> None:
        """Render the queued static files (one browser session for all of them)."""
        if not self._static:
            return
        require_static([j["opts"]["format"] for j in self._static])
        import kaleido

        jobs, self._static = self._static, []
        kaleido.write_fig_from_object_sync(jobs, kopts=_kaleido_opts())

    def __enter__(self) -> "FigureWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.flush()
