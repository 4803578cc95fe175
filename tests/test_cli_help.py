"""A CLI that helps (issue 15 item 20): help shows what each value looks like, `aidi --version`, `aidi scenarios`,
shipped names in every command's help, "did you mean" for unknown keys and scenario names, and a missing
scenario's error lists the shipped ones.  Errors are one line on stderr with exit status 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version

import pytest
import typer
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.scenarios import loader

runner = CliRunner()
WIDE = {"COLUMNS": "250", "TERMINAL_WIDTH": "250"}  # one help row per option: no wrapped words
COMMANDS = sorted(typer.main.get_command(app).commands)
SHIPPED = [p.stem for p in loader.shipped()]
POWER = '[power]\ncapacitor_F = 1e-4\nv_on = 3.0\nv_off = 2.0\n'
BASE = POWER + '[harvester]\nkind = "constant"\npower_W = 1e-3\n'


def help_text(*cmd: str) -> str:
    r = runner.invoke(app, [*cmd, "--help"], env=WIDE)
    assert r.exit_code == 0, r.output
    return r.stdout


def error_line(args: list[str], *parts: str) -> str:
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert r.stdout.strip() == ""
    msg = r.stderr.strip()
    assert "\n" not in msg and "Traceback" not in msg, msg
    for part in parts:
        assert part in msg, (part, msg)
    return msg


def takes_scenario(cmd: str) -> bool:
    return any(p.name == "scenario" for p in typer.main.get_command(app).commands[cmd].params)


@pytest.mark.parametrize("cmd", ["", *COMMANDS])
def test_help_shows_values_not_bare_types(cmd):
    """Enumerations show their choices, flags nothing, text options a metavar: never <str>, <bool>, list[str]."""
    text = help_text(*([cmd] if cmd else []))
    for bare in ("<str>", "<bool>", "list[str]", "TEXT"):
        assert bare not in text, (cmd, bare)
    group = typer.main.get_command(app)
    command = group if not cmd else group.commands[cmd]
    for p in command.params:
        if p.type_descriptor.is_choice:
            choices = "|".join(str(getattr(c, "value", c)) for c in p.type_descriptor.choices)
            assert f"<{choices}>" in text, (cmd, p.name)


def test_enumerated_options_are_choices():
    """Every option whose help lists alternatives ("a, b or c") is validated as a choice, not free text."""
    group = typer.main.get_command(app)
    free_text = []
    for name, command in group.commands.items():
        for p in command.params:
            if getattr(p, "is_flag", False) or p.type_descriptor.is_choice:
                continue
            if p.type_descriptor.annotation is str and re.search(r"\b\w+, \w+ or \w+\b|^\w+ or \w+$", p.help or ""):
                free_text.append(f"{name} {p.opts[0]}")
    assert free_text == []


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if takes_scenario(c)])
def test_every_scenario_argument_says_shipped_names_work(cmd):
    text = help_text(cmd)
    assert "SCENARIO" in text and "the name of a shipped one" in text and "aidi scenarios" in text


def test_version_is_the_package_metadata():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0
    assert r.stdout.strip() == f"aidi {version('aidi')}"


def test_scenarios_lists_every_shipped_scenario_with_its_description():
    r = runner.invoke(app, ["scenarios", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["scenarios"]
    assert [row["name"] for row in rows] == SHIPPED
    for row in rows:
        raw = tomllib.loads(open(row["path"]).read())
        assert row["description"] == " ".join(raw["description"].split()) and row["description"]
    # wide enough that no description wraps inside its cell
    table = runner.invoke(app, ["scenarios"], env={"COLUMNS": "2000", "TERMINAL_WIDTH": "2000"})
    assert table.exit_code == 0
    for row in rows:
        assert row["name"] in table.stdout and row["description"] in table.stdout


def test_description_falls_back_to_the_leading_comment(tmp_path, monkeypatch):
    (tmp_path / "a.toml").write_text("# a lab supply, the  one-line summary\n# more detail\n" + BASE)
    (tmp_path / "b.toml").write_text(BASE)
    monkeypatch.setattr(loader, "SHIPPED_DIR", tmp_path)
    rows = loader.describe_shipped()
    assert [(r["name"], r["description"]) for r in rows] == [("a", "a lab supply, the one-line summary"), ("b", "")]


@pytest.mark.parametrize("text,parts", [
    (BASE.replace("capacitor_F", "capacitor_f"), ["power.capacitor_f: unknown key", "did you mean 'capacitor_F'?"]),
    (BASE + "[sim]\nuntill_s = 5\n", ["sim.untill_s: unknown key", "did you mean 'until_s'?"]),
    (BASE.replace("[power]", "[powr]"), ["powr: unknown section", "did you mean 'power'?"]),
    (BASE.replace('"constant"', '"thevenn"'), ["harvester.kind: unknown kind 'thevenn'", "did you mean 'thevenin'?"]),
    (BASE + '[device]\nplatform = "msp430fr5995"\n', ["device.platform", "did you mean 'msp430fr5994'?"]),
])
def test_unknown_keys_suggest_the_closest(tmp_path, text, parts):
    p = tmp_path / "scen.toml"
    p.write_text(text)
    error_line(["check", str(p)], "scen.toml", *parts, "(known: ")


def test_no_suggestion_when_nothing_is_close(tmp_path):
    p = tmp_path / "scen.toml"
    p.write_text(BASE + "[sim]\nzzzzqqq = 5\n")
    msg = error_line(["check", str(p)], "sim.zzzzqqq: unknown key (known: ")
    assert "did you mean" not in msg


def test_missing_scenario_lists_the_shipped_names():
    msg = error_line(["run", "nosuch"], "nosuch: scenario file not found", "shipped scenarios: " + ", ".join(SHIPPED))
    assert "did you mean" not in msg


@pytest.mark.parametrize("cmd", [["run"], ["check"], ["sweep", "--set", "power.capacitor_F=1e-4"]])
def test_misspelt_shipped_name_suggests_it(cmd):
    error_line([cmd[0], "lab-1mf", *cmd[1:]], "lab-1mf: scenario file not found", "did you mean 'lab-1mF'?")


def test_shipped_name_with_its_suffix_works():
    r = runner.invoke(app, ["check", "lab-1mF.toml", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["scenario"] == "lab-1mF"


def test_a_path_is_never_replaced_by_a_shipped_name(tmp_path):
    msg = error_line(["check", str(tmp_path / "lab-1mF.toml")], "scenario file not found")
    assert "did you mean" not in msg


@pytest.mark.slow
def test_console_script_version():
    r = subprocess.run([sys.executable, "-m", "aidi.analysis.cli", "--version"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"aidi {version('aidi')}"


@pytest.mark.parametrize("args,parts", [
    (["scenario"], ["No such command 'scenario'", "Did you mean 'scenarios'?"]),
    (["run", "lab-1mF", "--engin", "des"], ["No such option: --engin", "--engine"]),
    (["run", "lab-1mF", "--engine", "bogus"], ["'bogus' is not one of 'des', 'oracle'"]),
])
def test_misspelt_commands_and_options_suggest(args, parts):
    error_line(args, *parts)
