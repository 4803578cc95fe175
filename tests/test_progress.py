"""Progress of long work (issue 15 item 19): on stderr, a bar on a terminal, log lines elsewhere;
``--json`` stdout stays one JSON object."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from typer.testing import CliRunner

from aidi.analysis import bench
from aidi.analysis.cli import app
from aidi.analysis.demo import STEPS
from aidi.analysis.progress import ENV, Progress, mode_for

runner = CliRunner()


def log_progress(interval_s: float = 0.0) -> tuple[Progress, io.StringIO]:
    buf = io.StringIO()
    return Progress("aidi test", stream=buf, mode="log", interval_s=interval_s), buf


def test_log_lines_with_total_and_time_left():
    p, buf = log_progress()
    with p, p.task("points", 4) as t:
        for _ in range(4):
            t.advance()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4
    assert re.fullmatch(r"aidi test: points 1/4 \(25%\), 0:00:00 elapsed, about 0:00:00 left", lines[0])
    assert re.fullmatch(r"aidi test: points 4/4 \(100%\), 0:00:00 elapsed", lines[-1])


def test_log_lines_are_rate_limited_and_a_quick_failure_prints_none():
    p, buf = log_progress(interval_s=60.0)
    with p:
        t = p.task("points", 3)
        t.advance()
        t.advance()
        assert buf.getvalue() == ""  # unfinished and under the interval: nothing (a failure stays one line)
        t.advance()
    assert buf.getvalue().splitlines() == ["aidi test: points 3/3 (100%), 0:00:00 elapsed"]


def test_time_left_is_estimated_from_the_rate():
    p, buf = log_progress()
    t = p.task("steps", 10)
    t.t0 -= 20.0  # 2 of 10 steps took 20 s: 80 s left
    t.update(2)
    assert buf.getvalue().splitlines()[-1] == "aidi test: steps 2/10 (20%), 0:00:20 elapsed, about 0:01:20 left"


def test_callback_and_log():
    p, buf = log_progress()
    t = p.task("evaluations", 0)
    cb = t.callback()
    cb(4, 8)  # the total may come with the first report
    p.log("supernet ready")
    assert buf.getvalue().splitlines() == ["aidi test: evaluations 4/8 (50%), 0:00:00 elapsed, about 0:00:00 left",
                                           "aidi test: supernet ready"]


def test_mode_follows_the_stream_and_the_environment(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv(ENV, raising=False)
    assert mode_for(io.StringIO()) == "log" and mode_for(Tty()) == "bar"
    monkeypatch.setenv(ENV, "off")
    assert mode_for(Tty()) == "off"
    buf = io.StringIO()
    with Progress("x", stream=buf) as p, p.task("a", 1) as t:
        t.advance()
        p.log("hidden")
    assert buf.getvalue() == ""
    monkeypatch.setenv(ENV, "loud")
    with pytest.raises(ValueError, match="AIDI_PROGRESS: expected one of auto, bar, log, off, got 'loud'"):
        mode_for(buf)


def test_bar_has_the_total_up_front_so_time_left_is_known_early():
    """The NAS bar showed -:--:-- throughout: its task was created at the first report, without a total."""
    buf = io.StringIO()
    with Progress("aidi test", stream=buf, mode="bar") as p:
        t = p.task("evaluations", 12)
        rich_task = p._bar.tasks[0]
        assert rich_task.total == 12
        t.update(4)
        time.sleep(0.05)
        t.update(8)
        assert rich_task.time_remaining is not None and rich_task.time_remaining > 0
        t.close()
    assert buf.getvalue()  # rendered on the given stream (stderr by default), not stdout


def test_bench_reports_each_benchmark(monkeypatch):
    monkeypatch.setattr(bench, "BENCHMARKS", {"a": lambda quick: {"x": 1.0}, "b": lambda quick: {"y": 2}})
    p, buf = log_progress()
    assert bench.run_all(True, progress=p) == {"a": {"x": 1.0}, "b": {"y": 2}}
    lines = buf.getvalue().splitlines()
    assert lines[0] == "aidi test: benchmark 1/2: a" and lines[2] == "aidi test: benchmark 2/2: b"
    assert lines[-1].startswith("aidi test: benchmarks 2/2 (100%)")

    r = runner.invoke(app, ["bench", "--quick", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"a": {"x": 1.0}, "b": {"y": 2}}
    assert "aidi bench: benchmark 1/2: a" in r.stderr and "aidi bench: benchmarks 2/2 (100%)" in r.stderr


@pytest.mark.parametrize("cmd, line", [
    (["sweep", "rf-intermittent", "--set", "capacitor_F=4.7e-6,1e-5,1e-4"], "aidi sweep: points 3/3 (100%)"),
    (["run", "rf-intermittent", "--no-functional"], "aidi run: steps (simulate) 1/1 (100%)"),
])
def test_json_stdout_stays_json_and_stderr_has_log_lines(cmd, line, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    r = runner.invoke(app, cmd + ["--json"])
    assert r.exit_code == 0, r.output
    json.loads(r.stdout)  # exactly one JSON object
    assert r.stdout.count("\n") == 1
    assert line in r.stderr, r.stderr
    assert "\x1b[" not in r.stderr  # plain lines off a terminal


def test_supernet_training_reports_its_batches(tmp_path, monkeypatch):
    from aidi.models.data import load_dataset
    from aidi.models.nas import supernet as S
    from aidi.models.nas.space import digits_space

    monkeypatch.setenv("AIDI_CACHE_DIR", str(tmp_path))
    data = S.split_validation(load_dataset("digits", 0), 0)
    cfg = S.SupernetConfig.quick(full_epochs=1, kernel_epochs=0, depth_epochs=1, width_epochs=0)
    seen = []
    S.train_supernet(digits_space(), data, 0, cfg, use_cache=False, progress=lambda d, t: seen.append((d, t)))
    per_epoch = -(-len(data.x_train) // cfg.batch)
    assert seen[0] == (0, 2 * per_epoch) and seen[-1] == (2 * per_epoch, 2 * per_epoch)
    assert [d for d, _ in seen] == list(range(2 * per_epoch + 1))


@pytest.mark.slow
def test_nas_reports_training_and_search_with_totals(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("AIDI_CACHE_DIR", str(tmp_path / "cache"))  # train the supernet here
    out = tmp_path / "nas"
    r = runner.invoke(app, ["nas", "lab-1mF", "--quick", "--budget", "4", "--json", "--out", str(out)])
    assert r.exit_code == 0, r.output
    json.loads(r.stdout)
    assert re.search(r"aidi nas: supernet training: batches (\d+)/\1 \(100%\)", r.stderr), r.stderr
    assert "aidi nas: search: evaluations 4/4 (100%)" in r.stderr
    assert [p.name for p in out.rglob("*.js")] == ["plotly.min.js"]
    assert 'src="plotly.min.js"' in (out / "pareto.html").read_text()
