"""Environments people really run in (issue 19, section 3): a read-only install with a read-only HOME,
a console that is not UTF-8, a machine without the optional Debian data sets."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import aidi
from aidi.analysis.cli import app

PKG = Path(aidi.__file__).resolve().parent
ROOT = Path(__file__).resolve().parents[1]
#: what a copy of the package leaves out (not part of the installed package, or written by runs)
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "__pycache__", "tests", "out", "build", ".hypothesis",
                                     ".pytest_cache", ".aidi-cache", "*.egg-info", "docs")


#: a numba decorator asking for an on-disk cache
CACHED_KERNEL = re.compile(r"^\s*@(numba\.)?n?jit\([^)]*cache\s*=\s*True", re.MULTILINE)


def kernel_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package that holds an ``@njit(cache=True)`` kernel."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if rel.parts[0] in (".venv", "tests", "build", "out") or not CACHED_KERNEL.search(path.read_text()):
            continue
        parts = rel.with_suffix("").parts
        out[".".join(("aidi", *(parts[:-1] if parts[-1] == "__init__" else parts)))] = path
    return out


# --------------------------------------------------------------------------------------------------
# read-only install


def test_kernel_dirs_name_every_folder_with_cached_kernels():
    """aidi decides numba's cache folder from the folders in _KERNEL_DIRS: a new one must be listed."""
    folders = {p.parent.relative_to(PKG).as_posix() for p in kernel_modules().values()}
    assert folders and folders <= set(aidi._KERNEL_DIRS), folders - set(aidi._KERNEL_DIRS)


def _choose(monkeypatch, tmp_path, env: dict, read_only: list[Path]):
    """Run aidi._choose_cache_dirs over ``env`` with the folders under ``read_only`` unwritable (the probe
    itself is exercised by the subprocess tests below); returns (env, stderr lines)."""
    import io

    import numba

    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)  # restored after the test
    monkeypatch.setattr(aidi, "_writable", lambda p: not any(Path(p).is_relative_to(r) for r in read_only))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    err = io.StringIO()
    aidi._choose_cache_dirs(root=tmp_path / "pkg", env=env, stderr=err)
    return env, err.getvalue().splitlines()


def test_writable_install_keeps_every_default_and_says_nothing(monkeypatch, tmp_path):
    env, lines = _choose(monkeypatch, tmp_path, {}, read_only=[])
    assert env == {} and lines == []


def test_read_only_install_and_home_move_both_caches_to_a_private_temp_folder(monkeypatch, tmp_path):
    env, lines = _choose(monkeypatch, tmp_path, {}, read_only=[tmp_path / "pkg", tmp_path / "home"])
    tmp = (tmp_path / "tmp").resolve()
    assert Path(env["AIDI_CACHE_DIR"]).parent == tmp and Path(env["NUMBA_CACHE_DIR"]) == Path(env["AIDI_CACHE_DIR"]) / "numba"
    assert len(lines) == 1 and lines[0].startswith("aidi: ") and env["NUMBA_CACHE_DIR"] in lines[0]
    assert (Path(env["AIDI_CACHE_DIR"]).stat().st_mode & 0o777) == 0o700
    import numba

    assert numba.config.CACHE_DIR == env["NUMBA_CACHE_DIR"]  # numba was imported first: its config follows


def test_read_only_install_with_writable_numba_home_is_numbas_own_fallback(monkeypatch, tmp_path):
    """numba itself falls back to ~/.cache/numba (its UserWideCacheLocator): nothing to decide."""
    env, lines = _choose(monkeypatch, tmp_path, {}, read_only=[tmp_path / "pkg"])
    assert env == {} and lines == []


def test_caches_the_user_chose_are_kept(monkeypatch, tmp_path):
    ro = [tmp_path / "pkg", tmp_path / "home"]
    env, lines = _choose(monkeypatch, tmp_path, {"AIDI_CACHE_DIR": str(tmp_path / "mine"), "NUMBA_CACHE_DIR": "x"}, ro)
    assert env == {"AIDI_CACHE_DIR": str(tmp_path / "mine"), "NUMBA_CACHE_DIR": "x"} and lines == []
    env, lines = _choose(monkeypatch, tmp_path, {"AIDI_CACHE_DIR": str(tmp_path / "mine")}, ro)
    assert env["NUMBA_CACHE_DIR"] == str(tmp_path / "mine" / "numba") and len(lines) == 1


def test_writable_probe_leaves_nothing_behind(tmp_path):
    assert aidi._writable(tmp_path / "not" / "yet")  # the nearest existing folder decides
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("")
    assert not aidi._writable(tmp_path / "f" / "sub")  # a file where a folder should be


def _locked_readonly_install():
    """A copy of the package at a fixed place, ``<tempdir>/aidi-readonly-test-<uid>/ro/aidi``, beside a HOME
    ``ro/home``, with ``ro`` made unwritable; the fixed place lets numba's fallback cache (under
    ``cache/``) be reused by the next run.  Yields (ro folder, command prefix, cache folder) while holding a lock.

    How it is made unwritable, really (no simulation): ``chmod -R a-w``.  Root ignores permission bits
    (CAP_DAC_OVERRIDE), so as root the subprocess runs under ``setpriv --bounding-set=-dac_override,-fowner``:
    still root, without the capabilities that bypass them (skipped where setpriv is missing).  The premise is
    checked: a write into the copy must fail under that prefix.
    """
    base = Path(tempfile.gettempdir()) / f"aidi-readonly-test-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv (util-linux) is missing: cannot make a folder unwritable")
        prefix = ["setpriv", "--bounding-set=-dac_override,-fowner", "--"]
    with open(base / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ro = base / "ro"
        if ro.exists():
            subprocess.run(["chmod", "-R", "u+w", str(ro)], check=True)
            shutil.rmtree(ro)
        shutil.copytree(PKG, ro / "aidi", ignore=COPY_IGNORE)
        (ro / "home").mkdir()
        subprocess.run(["chmod", "-R", "a-w", str(ro)], check=True)
        probe = subprocess.run([*prefix, sys.executable, "-c", f"open({str(ro / 'home' / 'x')!r}, 'w')"],
                               capture_output=True)
        assert probe.returncode != 0, "the copy is still writable"
        try:
            yield ro, prefix, base / "cache"
        finally:
            subprocess.run(["chmod", "-R", "u+w", str(ro)], check=True)


@pytest.fixture
def readonly_install():
    yield from _locked_readonly_install()


def _run_readonly(ro: Path, prefix: list[str], args: list[str], tmp: Path, **env_extra) -> subprocess.CompletedProcess:
    """``python ARGS`` importing aidi from the read-only copy, HOME read-only, TMPDIR ``tmp``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("AIDI_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(HOME=str(ro / "home"), TMPDIR=str(tmp), PYTHONPATH=str(ro), AIDI_PROGRESS="off", **env_extra)
    tmp.mkdir(parents=True, exist_ok=True)
    return subprocess.run([*prefix, sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp,
                          timeout=1800)


def test_read_only_install_imports_every_kernel_module(readonly_install, tmp_path):
    """Before the fix this died at import: RuntimeError: cannot cache function ...: no locator available."""
    ro, prefix, _ = readonly_install
    mods = sorted(kernel_modules())
    code = ("import importlib, json, os, aidi\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "print(json.dumps({k: os.environ.get(k) for k in ('AIDI_CACHE_DIR', 'NUMBA_CACHE_DIR')} "
            "| {'file': aidi.__file__}))")
    r = _run_readonly(ro, prefix, ["-c", code], tmp_path / "tmp")
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout)
    assert got["file"] == str(ro / "aidi" / "__init__.py")  # the copy, not the editable install
    tmp = (tmp_path / "tmp").resolve()
    assert Path(got["AIDI_CACHE_DIR"]).parent == tmp and Path(got["NUMBA_CACHE_DIR"]).is_relative_to(tmp)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aidi: ") and "read-only" in lines[0], r.stderr


@pytest.mark.slow
def test_read_only_install_runs_a_scenario(readonly_install, tmp_path):
    """``aidi run`` end to end from the read-only copy; numba's cache goes to $AIDI_CACHE_DIR/numba (a fixed
    folder, so only the first run on a machine compiles every kernel)."""
    ro, prefix, cache = readonly_install
    r = _run_readonly(ro, prefix, ["-m", "aidi.analysis.cli", "run", "lab-1mF", "--engine", "oracle",
                                   "--no-functional", "--json"], tmp_path / "tmp", AIDI_CACHE_DIR=str(cache))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["completed"] and res["latency_s"] > 0
    assert r.stderr.splitlines() == [l for l in r.stderr.splitlines() if l.startswith("aidi: ")] != []
    assert f"numba caches compiled kernels in {cache / 'numba'}" in r.stderr
    assert any((cache / "numba").rglob("*.nbi"))


# --------------------------------------------------------------------------------------------------
# consoles that are not UTF-8

SCENARIO_NAME = "lab–1 µF"  # an en dash and a micro sign: neither is ASCII, the dash is not Latin-1


@pytest.fixture
def mu_scenario(tmp_path) -> Path:
    text = (ROOT / "scenarios" / "lab-1mF.toml").read_text()
    text = re.sub(r'(?m)^name = .*$', f'name = "{SCENARIO_NAME}"', text)
    text = re.sub(r'(?m)^description = .*$', 'description = "a 1 µF – 3 V test"', text)
    path = tmp_path / "µ.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_run_prints_to_a_console_that_is_not_utf8(encoding, mu_scenario):
    env = {**os.environ, "PYTHONIOENCODING": encoding, "AIDI_PROGRESS": "off"}
    r = subprocess.run([sys.executable, "-m", "aidi.analysis.cli", "run", str(mu_scenario), "--engine", "oracle",
                        "--no-functional"], capture_output=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr.decode(encoding, "replace")[-2000:]
    out = r.stdout.decode(encoding)  # strict: every byte is in the console's encoding
    assert SCENARIO_NAME.encode(encoding, "replace").decode(encoding) in out and "latency" in out


ascii_runner = CliRunner(charset="ascii")  # stdout: a strict ASCII text stream, as PYTHONIOENCODING=ascii makes


@pytest.mark.parametrize("args", [
    ["run", "{sc}", "--engine", "oracle", "--no-functional"],
    ["check", "{sc}"],
    ["explore", "{sc}", "--top", "1"],
    ["sweep", "{sc}", "--set", "power.capacitor_F=1e-3,2e-3"],
    pytest.param(["nas", "{sc}", "--budget", "2", "--quick"], marks=pytest.mark.slow),
], ids=lambda a: a[0])
def test_every_command_degrades_on_an_ascii_console(args, mu_scenario, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = ascii_runner.invoke(app, [a.format(sc=mu_scenario) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code in (0, 1), r.output  # check exits 1 when not schedulable
    assert "lab?1 ?F" in r.stdout


def test_scenarios_table_degrades_on_an_ascii_console(monkeypatch):
    from aidi.scenarios import loader

    monkeypatch.setattr(loader, "describe_shipped", lambda: [{"name": "x", "description": "100 µF – RF"}])
    r = ascii_runner.invoke(app, ["scenarios"])
    assert r.exit_code == 0, repr(r.exception)
    assert "100 ?F ? RF" in r.stdout and "+" in r.stdout  # rich draws ASCII borders there


# --------------------------------------------------------------------------------------------------
# a machine without the Debian data sets


@pytest.mark.slow
def test_readme_dataset_command_skips_without_the_debian_dataset(tmp_path):
    """$AIDI_SYSTEM_DATASETS pointed at an empty folder hides Debian's data sets: the README's Fashion-MNIST
    command skips with the package's name instead of failing (as on a fresh machine)."""
    env = {k: v for k, v in os.environ.items() if k not in ("AIDI_REQUIRE_DATASETS", "AIDI_DATA_DIR")}
    env["AIDI_SYSTEM_DATASETS"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
                        "tests/test_demo_readme.py::test_readme_command_runs"
                        "[aidi nas lab-1mF --dataset fashion-mnist --budget 16]"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout[-2000:]
    assert f"no IDX files in {tmp_path / 'fashion-mnist'} (Debian package dataset-fashion-mnist)" in r.stdout


# --------------------------------------------------------------------------------------------------
# rich markup: data strings print as they are


def test_console_prints_brackets_as_text():
    import io

    from aidi.analysis.console import console, styled

    buf = io.StringIO()
    con = console(file=buf, width=200)
    con.print("no deadline set ([sim] deadline_s) [bold]x[/bold] :warning:")
    con.print(styled(("[power] v_on", "bold"), " [red]"), style="red")
    assert buf.getvalue().splitlines() == ["no deadline set ([sim] deadline_s) [bold]x[/bold] :warning:",
                                           "[power] v_on [red]"]


def test_every_console_comes_from_the_one_factory():
    """rich reads markup in every Console it makes by default, so a new ``Console(`` or a markup tag in a
    printed f-string would eat '[sim]' again on its path."""
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel.split("/")[0] in (".venv", "tests", "build", "out") or rel == "analysis/console.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bConsole\(|rich\.markup|\[/?(bold|italic|dim|red|green|yellow|blue|cyan|magenta)\]", line):
                offenders.append(f"{rel}:{i}: {line.strip()}")
    assert offenders == []
