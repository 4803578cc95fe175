"""The README's Python examples are tests: every fenced ```python block runs as written."""

import contextlib
import io
import re
from pathlib import Path

import pytest

import aidi

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    """The source of every fenced ```python block of the README, in order."""
    return re.findall(r"^```python\n(.*?)^```\s*$", README, flags=re.MULTILINE | re.DOTALL)


def api_section() -> str:
    m = re.search(r"^## Python API\n(.*?)(?=^## )", README, flags=re.MULTILINE | re.DOTALL)
    assert m, "README has no '## Python API' section"
    return m.group(1)


def run_block(src: str) -> str:
    """Execute one block in a fresh namespace (as a new script); its stdout."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(src, "README.md", "exec"), {"__name__": "__readme__"})
    return buf.getvalue()


def _param(i: int, src: str):
    slow = "aidi.nas(" in src or "aidi.from_torch(" in src  # trains a supernet / a CNN; the others take seconds
    return pytest.param(src, id=f"block{i}", marks=[pytest.mark.slow] if slow else [])


def test_readme_has_python_examples_of_every_exported_function():
    blocks = python_blocks()
    assert len(blocks) >= 4
    code = "\n".join(blocks)
    for name in ("load", "run", "check", "sweep", "explore", "nas", "shipped_scenarios", "UserError"):
        assert f"aidi.{name}" in code, name
    assert ".replace(" in code
    section = api_section()
    for name in aidi.__all__:
        if name != "__version__":
            assert name in section, f"aidi.{name} is exported but not in the README's Python API section"


@pytest.mark.parametrize("src", [_param(i, b) for i, b in enumerate(python_blocks())])
def test_readme_python_example_runs(src, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative out= folders land in tmp
    out = run_block(src)
    assert out.strip(), "an example should show something"
    for line in src.splitlines():  # `print(x)  # text` where text is the whole, exact output of the line
        m = re.match(r"^\s*print\(err\)\s*#\s*(.+)$", line)
        if m:
            assert out.strip() == m.group(1).strip()
