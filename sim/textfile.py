"""Text files as loggers and spreadsheets export them: the one reader of aidi's text inputs.

Every text file aidi reads (a ``trace`` CSV, a TMY3 file for ``pv``) goes through :func:`read_lines`, so all
of them accept the same text:

* encodings: a byte-order mark selects UTF-8, UTF-16 or UTF-32 (Python's ``codecs.BOM_*``); without one the
  bytes must be UTF-8 or else Windows-1252 (the superset of ISO-8859-1 that spreadsheets on Windows write;
  pvlib's ``read_tmy3`` documents ISO-8859-1 for SolarAnywhere TMY3 files).  A NUL byte without a BOM, or a
  control character other than tab or form feed, means the file is not text (a UTF-16 file needs its BOM).
* line ends: ``\\n``, ``\\r\\n`` and a lone ``\\r``, each one line, as editors count them (not
  :meth:`str.splitlines`, which also splits on form feeds and U+2028 and would shift line numbers).
* ``#`` starts a comment (the rest of the line is dropped); blank lines are skipped.
* errors name the file and its line: :meth:`TextLines.where` maps a kept line back to the file's line number
  (1-based, counting comments and blank lines).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

#: byte-order marks, longest first (UTF-32-LE's BOM begins with UTF-16-LE's)
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
#: encodings tried, in order, when there is no byte-order mark
FALLBACKS = ("utf-8", "cp1252")
_LINE_END = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # tab, LF, FF, CR allowed


class TextFileError(ValueError):
    """A file that is not readable text; the message names the file (and the line, where there is one)."""


@dataclass(frozen=True)
class TextLines:
    """The kept lines of a text file: comments removed, blank lines dropped, line ends stripped.

    ``numbers[k]`` is the file's line number (1-based) of ``lines[k]``; ``encoding`` is the codec that decoded it.
    """

    path: Path
    numbers: tuple[int, ...]
    lines: tuple[str, ...]
    encoding: str

    def __len__(self) -> int:
        return len(self.lines)

    def where(self, k: int) -> str:
        """``"<path>: line <n>"`` for kept line ``k`` (past the end: the line after the last one)."""
        n = self.numbers[k] if k < len(self.numbers) else (self.numbers[-1] if self.numbers else 0) + 1
        return f"{self.path}: line {n}"

    def text(self, start: int = 0) -> str:
        """Kept lines ``start:`` joined by ``\\n`` (with a final one), for a CSV parser."""
        return "".join(line + "\n" for line in self.lines[start:])


def decode(data: bytes, path: Path | str = "<bytes>", error: type[ValueError] = TextFileError) -> tuple[str, str]:
    """(text, encoding) of ``data`` under the rules of the module docstring; raises ``error`` naming ``path``."""
    for bom, enc in BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc), enc
            except UnicodeDecodeError as exc:
                raise error(f"{path}: not {enc.upper()} text after its byte-order mark (byte {exc.start})") from None
    if b"\x00" in data:
        raise error(f"{path}: not a text file (NUL bytes; a UTF-16 or UTF-32 file needs its byte-order mark)")
    for enc in FALLBACKS:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        bad = _CONTROL.search(text)
        if bad:
            line = len(_LINE_END.findall(text, 0, bad.start())) + 1
            raise error(f"{path}: line {line}: not a text file (control character {bad.group()!r})")
        return text, enc
    raise error(f"{path}: not a text file (neither UTF-8 nor Windows-1252)")


def split_lines(text: str) -> list[str]:
    """``text`` cut at ``\\n``, ``\\r\\n`` and ``\\r`` (a final line end adds no empty line)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def read_lines(path: Path | str, error: type[ValueError] = TextFileError) -> TextLines:
    """Read ``path`` as text (module docstring): its non-blank lines with comments removed.

    Raises ``error`` (a ValueError subclass; :class:`TextFileError` by default) with one line naming the file:
    missing, a folder, unreadable, or not text.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    text, enc = decode(data, path, error)
    lines = split_lines(text)
    if "#" in text:
        lines = [line.partition("#")[0] for line in lines]
    numbers = tuple(k + 1 for k, line in enumerate(lines) if line and not line.isspace())
    return TextLines(path, numbers, tuple(lines[k - 1] for k in numbers), enc)


__all__ = ["TextLines", "TextFileError", "read_lines", "decode", "split_lines", "BOMS", "FALLBACKS"]
