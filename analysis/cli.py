"""The ``aidi`` command line (typer).  Every command with ``--json`` prints exactly one JSON object."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from . import jsonout
from .errors import UserError, one_line_errors

class _OneLineUsageErrors(typer.core.TyperGroup):
    """A bad option value, an unknown option or a missing argument is one line on stderr, exit status 2.

    Help shows what a value looks like, never a bare type: an enumerated option its choices, a flag nothing,
    any other text option a metavar (its own, else its name)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        for cmd in [self, *self.commands.values()]:
            for param in cmd.params:
                _tidy_metavar(param)
            cmd.get_help_option = _tidy_help_option(cmd.get_help_option)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:  # typer >= 0.2x vendors click as typer._click
            from typer._click import exceptions as cx
        except ImportError:  # pragma: no cover - older typer on plain click
            from click import exceptions as cx

        _tolerant_streams()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except cx.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except cx.UsageError as exc:
            msg = " ".join(exc.format_message().replace("Value error, ", "").split())
            where = exc.ctx.command_path if exc.ctx is not None else "aidi"
            print(f"aidi: error: {msg} (see {where} --help)", file=sys.stderr)
            sys.exit(2)
        except cx.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _tolerant_streams() -> None:
    """Let stdout and stderr replace what their encoding cannot show instead of raising.

    On an ASCII or Latin-1 console (``PYTHONIOENCODING=ascii``, ``LANG=C`` without UTF-8 mode) a "µ" or
    "–" in a scenario's name or a message would raise ``UnicodeEncodeError`` in the middle of a table;
    with ``errors="replace"`` it prints as "?" (rich also draws its tables with ASCII borders there).
    ``--json`` output is ASCII already (non-ASCII is escaped), so nothing in it is replaced.  Every
    command passes through here before it prints anything.
    """
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="replace")
            except (ValueError, OSError):  # a closed or detached stream: nothing will be printed to it
                pass


def _tidy_metavar(param) -> None:
    if not isinstance(param, typer.core.TyperOption) or param.metavar is not None:
        return
    if param.is_flag:
        param.metavar = ""
    elif param.type_descriptor.annotation is str and not param.type_descriptor.is_choice:
        param.metavar = param.opts[0].lstrip("-").upper().replace("-", "_")  # --format -> FORMAT


def _tidy_help_option(get_help_option):
    def wrapped(ctx):
        opt = get_help_option(ctx)
        if opt is not None:
            _tidy_metavar(opt)
        return opt
    return wrapped


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  cls=_OneLineUsageErrors)

#: the SCENARIO argument of every command that takes one (loader.load: a file, or a shipped name)
SCENARIO_HELP = "a scenario TOML file, or the name of a shipped one (`aidi scenarios` lists them)"
DASK_OPTION = dict(metavar="ADDRESS|local", help="a Dask scheduler address (host:port), or 'local' for a LocalCluster")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"aidi {version('aidi')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            typer.echo("aidi (not installed: no package metadata)")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print aidi's version (package metadata) and exit")) -> None:
    """Deep inference on battery-less MSP430FR5994 devices: simulate, check, sweep, search, emit C.

    SCENARIO is a scenario TOML file or the name of a shipped scenario: `aidi scenarios` lists them.
    """


@app.command()
def scenarios(as_json: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """List the shipped scenarios: the names every command takes instead of a file, and what each is."""
    from aidi.scenarios import loader

    rows = loader.describe_shipped()
    if as_json:
        _print_json({"scenarios": rows})
        return
    from rich.table import Table

    from .console import console

    t = Table(title="shipped scenarios (aidi run NAME, aidi check NAME, ...)")
    t.add_column("name", no_wrap=True)
    t.add_column("description")
    for r in rows:
        t.add_row(r["name"], r["description"])
    console().print(t)


def _print_json(obj: dict) -> None:
    """One line of strict JSON (RFC 8259): an undefined value (NaN, infinity) is ``null``."""
    sys.stdout.write(jsonout.dumps(obj) + "\n")


# enumerated options: typer validates them as choices and lists them in --help
class Engine(str, Enum):
    des = "des"
    oracle = "oracle"


class Backend(str, Enum):
    portable = "portable"
    lea = "lea"


class Controller(str, Enum):
    random = "random"
    evolution = "evolution"
    rl = "rl"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Space(str, Enum):
    inas = "inas"
    mbconv = "mbconv"


class Dataset(str, Enum):
    digits = "digits"
    cifar10 = "cifar10"
    tinyimagenet = "tinyimagenet"
    fashion_mnist = "fashion-mnist"
    mnist = "mnist"


FORCE_HELP = "write into a non-empty folder that aidi did not make (files of the same names are replaced)"
FORMAT_OPTION = dict(help="figure files, comma-separated from html,svg,pdf,png (static ones need Chrome/Chromium: "
                          "Debian package chromium, or BROWSER_PATH); report.html is always written")


@app.command()
def run(
    scenario: Path = typer.Argument(..., metavar="SCENARIO", help=SCENARIO_HELP),
    engine: Engine = typer.Option(Engine.des, help="des (SimPy model) or oracle (compiled numba loop)"),
    functional: Optional[bool] = typer.Option(None, "--functional/--no-functional",
                                              help="also compute the network's output bit-exactly (des only; "
                                                   "default: on with des, off with oracle)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    out: Optional[Path] = typer.Option(None, help="write events.csv, events.parquet, voltage and energy figures, "
                                                  "report.html"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    fmt: str = typer.Option("html", "--format", **FORMAT_OPTION),
) -> None:
    """Simulate one scenario: latency, power cycles, where the energy goes."""
    from aidi.models.design_cache import default_store

    from . import figures, outdir, pipeline, report
    from .progress import Progress

    from .api import run_options

    engine = engine.value
    with one_line_errors():  # an option's error names the option, not the scenario
        functional = run_options(engine, functional, cli=True)
    with one_line_errors(str(scenario)), Progress("aidi run") as prog:
        formats = figures.formats_for_out(fmt, out)
        if out is not None:
            outdir.prepare(out, force)
        sc = pipeline.load_scenario(scenario)
        built = pipeline.build(sc, store=default_store())
        # the task starts after loading and planning, where bad input is found: an error there stays one line
        task = prog.task("steps (simulate" + (", write figures)" if out is not None else ")"), 1 + (out is not None))
        res, events = pipeline.simulate(built, engine=engine, functional=functional,
                                        log=out is not None and engine == "des")
        task.advance()
        if out is not None:
            report.write_run(out, built, res, events, formats)
            task.advance()
        task.close()
    if as_json:
        _print_json(res)
    else:
        report.print_run_summary(built, res, out)


@app.command()
def check(
    scenario: Path = typer.Argument(..., metavar="SCENARIO", help=SCENARIO_HELP),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    guaranteed: bool = typer.Option(False, "--guaranteed",
                                    help="exit 1 also when the worst-case latency bound is missing or misses the "
                                         "deadline"),
) -> None:
    """Schedulability: does every unit fit one power cycle, the SRAM budget and the deadline (simulated, and
    guaranteed by a worst-case latency bound under the source's guaranteed minimum power)?

    Exit status: 0 schedulable, 1 not schedulable, 2 bad input.
    """
    from aidi.models.design_cache import default_store

    from . import check as chk
    from . import pipeline, report

    with one_line_errors(str(scenario)):
        built = pipeline.build(pipeline.load_scenario(scenario), store=default_store())
        res = chk.analyse(built)
    if as_json:
        _print_json(res)
    else:
        report.print_check(res)
        for line in chk.guarantee_lines(res):
            typer.echo(line)
    ok = res["schedulable"] and (res["guaranteed"] or not guaranteed)
    raise typer.Exit(0 if ok else 1)


@app.command()
def explore(
    scenario: Path = typer.Argument(..., metavar="SCENARIO", help=SCENARIO_HELP),
    top: int = typer.Option(5, "--top", help="alternatives shown per layer (>= 1)"),
    exhaustive: bool = typer.Option(False, "--exhaustive", help="simulate every design combination (small networks)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Execution designs the latency optimizer chooses per layer, the alternatives and why others were rejected."""
    from . import explore as exp
    from .api import explore_options

    with one_line_errors():
        explore_options(top, cli=True)
    with one_line_errors(str(scenario)):
        res = exp.explore(scenario, top_k=top, exhaustive=exhaustive)
    if as_json:
        _print_json(res.to_dict())
    else:
        exp.print_explore(res)


@app.command()
def sweep(
    scenario: Path = typer.Argument(..., metavar="SCENARIO", help=SCENARIO_HELP),
    set_: list[str] = typer.Option(..., "--set", metavar="KEY=V1,V2,...",
                                   help="values of one key (repeat for a grid), e.g. power.capacitor_F=1e-4,1e-3"),
    workers: int = typer.Option(1, help="local worker processes, >= 1 (or Dask workers with --dask local)"),
    dask: Optional[str] = typer.Option(None, "--dask", **DASK_OPTION),
    engine: Engine = typer.Option(Engine.oracle, help="oracle or des"),
    reoptimize: bool = typer.Option(False, "--reoptimize",
                                    help="choose each point's \"auto\" designs under its own power (default: keep "
                                         "the scenario's own designs at every power point: one workload, built once)"),
    as_json: bool = typer.Option(False, "--json"),
    out: Optional[Path] = typer.Option(None, help="write sweep.csv, sweep.parquet and the sweep figure here"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    fmt: str = typer.Option("html", "--format", **FORMAT_OPTION),
) -> None:
    """Run a grid of scenario variants in parallel; tidy table, figure and feasibility boundary.

    Every point is a row: one that cannot run says why in `error`, one that runs but does not complete in
    `reason`.  Exit status: 0 when some point completes, 1 when none does (the table, JSON and files are
    written all the same), 2 for bad input (an option, a value, or a base scenario whose harvester data or
    model cannot be read, unless a --set key of that section replaces it), refused before any point runs.
    """
    from . import figures, outdir, pipeline, report
    from . import sweep as sw
    from .api import sweep_options, sweep_summary
    from .progress import Progress

    engine = engine.value
    with one_line_errors():
        sweep_options(engine, workers, dask, cli=True)
    with one_line_errors(str(scenario)):
        formats = figures.formats_for_out(fmt, out)
        grid = sw.parse_sets(set_)
        sc = pipeline.load_scenario(scenario)
        sw.check_inputs(sc, grid, reoptimize)  # bad input is refused before any point runs, as aidi run does
        if out is not None:
            outdir.prepare(out, force)
        with Progress("aidi sweep") as prog, prog.task("points", len(sw.points(grid))) as task:
            df = sw.run_sweep(sc.path, grid, workers=workers, dask=dask, engine=engine, progress=task.callback(),
                              reoptimize=reoptimize)
    key = next(iter(grid))
    summary = sweep_summary(sc.name, grid, df, reoptimize)  # the Python API's SweepResult.json
    if out is not None:
        df.to_csv(out / "sweep.csv", index=False)
        df.to_parquet(out / "sweep.parquet", index=False)
        with one_line_errors(str(scenario)), figures.FigureWriter(out, formats) as fw:
            fw.figure(sw.figure(df, key, f"{sc.name}: sweep of {key}"), out / "sweep")
    if as_json:
        _print_json(summary)
    else:
        report.print_sweep(df, summary, out)
        for line in sw.describe_designs(df, sc.name, reoptimize):
            print(line)
    if not df["completed"].any():  # a result, not bad input: every row says why
        print(f"aidi: no point of the sweep completed ({len(df)} tried; each row's error or reason says why)",
              file=sys.stderr)
        raise typer.Exit(1)


@app.command("emit-c")
def emit_c(
    scenario: Path = typer.Argument(..., metavar="SCENARIO", help=SCENARIO_HELP),
    out: Path = typer.Option(..., help="folder for the C project"),
    backend: Optional[Backend] = typer.Option(None, help="portable (plain C kernels) or lea (TI DSPLib calls); "
                                                          "default: the scenario's [execution] backend, as `aidi run` "
                                                          "simulates it"),
    build: bool = typer.Option(False, "--build", help="also build and check it (make host check; msp430-sim if the "
                                                      "toolchain is installed)"),
    microbench: bool = typer.Option(False, "--microbench", help="also the firmware that times the cost model's "
                                                               "primitives (make microbench-sim); with --build, "
                                                               "run it on mspdebug into OUT/microbench-counts.txt "
                                                               "for `aidi calibrate`"),
    as_json: bool = typer.Option(False, "--json"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Write the C runtime for the scenario's network and execution design (same input as `aidi run`)."""
    from aidi.models.design_cache import default_store

    from . import emit as em
    from . import outdir, pipeline

    backend = None if backend is None else backend.value
    with one_line_errors(str(scenario)):
        outdir.prepare(out, force)
        built = pipeline.build(pipeline.load_scenario(scenario), store=default_store())
        res = em.emit(built, out, backend=backend, build=build, microbench=microbench)
        if microbench and build:
            from .calibrate import microbench_counts
            res["microbench"] = microbench_counts(out)
    if as_json:
        _print_json(res)
    else:
        em.print_summary(res)
        if "microbench" in res:
            print(res["microbench"].get("counts_file") and f"microbench counts written to "
                  f"{res['microbench']['counts_file']} (aidi calibrate reads them)"
                  or f"microbench: skipped ({res['microbench']['skipped']})")


@app.command()
def calibrate(
    counts: Path = typer.Argument(..., metavar="COUNTS", help="the microbench's counts (aidi emit-c --microbench)"),
    energytrace: Optional[Path] = typer.Option(None, "--energytrace", metavar="CSV",
                                               help="an EnergyTrace CSV export recorded during the microbench "
                                                    "(Time (ns), Current (nA), Voltage (mV), Energy (uJ))"),
    out: Path = typer.Option(Path("my-board.toml"), "--out", help="the platform file to write (a scenario names "
                                                                   "it: [device] platform = \"my-board.toml\")"),
    base: str = typer.Option("msp430fr5994", "--base", help="the preset the constants not measured come from"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fit a platform's constants to a board's measurements (NNLS) and write them as a platform TOML file."""
    from . import calibrate as cal

    with one_line_errors():  # every message names its file
        res = cal.run(counts, energytrace, out, base)
    if as_json:
        _print_json({k: v for k, v in res.items() if k != "lines"})
        return
    for line in res["lines"]:
        print(line)
    print(f"platform written to {res['platform_file']}")


@app.command("import")
def import_(
    model: Path = typer.Argument(..., metavar="MODEL.onnx", help="an ONNX model (float; batch 1; one input, one output)"),
    out: Path = typer.Option(..., help="folder for scenario.toml, model.onnx and the .npy files it names"),
    calibration: Optional[Path] = typer.Option(None, metavar="F.npy", help="N inputs in the model's own layout, "
                                               "stacked on a leading axis: the Q15 scales are chosen on them "
                                               "(default: inputs uniform in [-1, 1], said in the notes)"),
    sample_input: Optional[Path] = typer.Option(None, "--sample-input", metavar="F.npy",
                                                help="one input in the model's layout (batch axis optional): the "
                                                     "one run --functional computes and emit-c embeds"),
    power: str = typer.Option("lab-1mF", metavar="SCENARIO", help="the shipped scenario (or file) whose device, "
                                                                   "power and harvester sections the folder gets"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Import an ONNX model: write OUT/scenario.toml and print the node-to-layer mapping and how the Q15 model
    agrees with onnxruntime's float run (top-1 and the largest output error) on the calibration inputs."""
    from . import importer, outdir

    with one_line_errors(str(model)):
        outdir.prepare(out, force)
        res = importer.write_scenario(model, out, calibration, sample_input, power)
    if as_json:
        _print_json(res)
    else:
        importer.print_summary(res)


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), help="where report.html and the figures go"),
    quick: bool = typer.Option(False, "--quick", help="small budgets (for tests)"),
    as_json: bool = typer.Option(False, "--json"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    fmt: str = typer.Option("html", "--format", **FORMAT_OPTION),
) -> None:
    """The embedded defaults end to end: simulate, sweep, search, emit C; writes OUT/report.html."""
    from . import figures, outdir
    from .console import console
    from .demo import run_demo

    with one_line_errors("demo"):
        formats = figures.parse_formats(fmt)
        figures.require_static(formats)
        outdir.prepare(out, force)
        summary = run_demo(out, quick=quick, console=console(stderr=True, wide=True) if as_json else None, formats=formats)
    if as_json:
        _print_json(summary)


@app.command()
def nas(
    scenario: Path = typer.Argument(..., metavar="SCENARIO",
                                    help=SCENARIO_HELP + "; its harvester, capacitor, SRAM budget and deadline"),
    controller: Controller = typer.Option(Controller.evolution,
                                          help="random, evolution (regularized/aging) or rl (LSTM + REINFORCE)"),
    budget: int = typer.Option(48, help="evaluations (per requirement and method with --compare)"),
    seed: int = typer.Option(0, help="seed of data split, supernet, controller and fine-tuning"),
    requirement: Optional[float] = typer.Option(None, help="latency requirement (s); default: the scenario's sim.deadline_s"),
    compare: bool = typer.Option(False, "--compare", help="ours vs iNAS-style vs HW-NAS-style at three requirements"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    out: Optional[Path] = typer.Option(None, help="output folder (default out/nas/<scenario>)"),
    workers: int = typer.Option(1, help="local worker processes for the simulations (or Dask workers with --dask local)"),
    dask: Optional[str] = typer.Option(None, "--dask", **DASK_OPTION),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder of cifar10 / tinyimagenet / fashion-mnist / "
                                            "mnist (never downloaded; fashion-mnist defaults to Debian's "
                                            "/usr/share/datasets/fashion-mnist)"),
    dataset: Dataset = typer.Option(Dataset.digits, help="digits (bundled), cifar10, tinyimagenet, fashion-mnist or "
                                                         "mnist (IDX files)"),
    space: Space = typer.Option(Space.inas, help="inas: the data set's chain of convolutions (iNAS's space); mbconv: "
                                                 "MCUNet/OFA-style inverted-residual stages with their own "
                                                 "Once-for-All supernet (every method searches it with --compare)"),
    quick: bool = typer.Option(False, "--quick", help="tiny training epochs (tests, smoke runs)"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    fmt: str = typer.Option("html", "--format", help="the Pareto figure's files (--compare: the accuracy vs latency "
                                                     "figure), comma-separated from html,svg,pdf,png (static ones "
                                                     "need Chrome/Chromium: Debian package chromium, or BROWSER_PATH)"),
    search_budget_s: Optional[float] = typer.Option(None, "--search-budget-s",
                                                    help="--compare: wall-clock search budget (s) of every method "
                                                         "and requirement, supernet training included (default: "
                                                         "ours' measured time at that requirement)"),
    train_images: Optional[int] = typer.Option(None, "--train-images",
                                               help="at most N training images (split into train and validation) "
                                                    "and N/2 test images, drawn by the seed (cifar10, fashion-mnist, "
                                                    "mnist)"),
    inas_requirement: str = typer.Option("calibrated", "--inas-requirement",
                                         help="--compare: the iNAS-style search's requirement: calibrated (times "
                                              "iNAS's estimate / our oracle on the smallest and largest member) "
                                              "or as-is"),
    device: Device = typer.Option(Device.cpu, help="where to train: auto (CUDA if torch sees it), cpu or cuda"),
    views: str = typer.Option("equal-time,quality,truth", "--views", metavar="V,V,...",
                              help="--compare: equal-time (each method's model as its search left it), quality "
                                   "(every pick retrained with the final recipe, mean ± std over seeds), truth "
                                   "(a trained sample of the space: the true front and each method's regret)"),
    final_epochs: Optional[int] = typer.Option(None, "--final-epochs",
                                               help="--compare: epochs of the final recipe (default 10, 1 with "
                                                    "--quick)"),
    final_seeds: str = typer.Option("0,1,2", "--final-seeds", metavar="S,S,...",
                                    help="--compare: seeds of the final recipe (the truth sample uses the first)"),
    truth_members: Optional[int] = typer.Option(None, "--truth-members",
                                                help="--compare: members in the ground-truth sample (default 30)"),
    final_train_images: Optional[int] = typer.Option(None, "--final-train-images",
                                                     help="--compare: at most N training images (and N/2 test) "
                                                          "for the final recipe (default: all)"),
    q15_images: int = typer.Option(0, "--q15-images",
                                   help="--compare: also the Q15 accuracy of every retrained model on N test images"),
) -> None:
    """Search a network and its intermittent execution design; Pareto front, chosen model saved as a scenario."""
    from . import figures, nas_run
    from .progress import Progress

    from .api import nas_options

    controller, dataset = controller.value, dataset.value
    with one_line_errors():
        nas_options(controller, dataset, budget, workers, seed, requirement, dask, cli=True)
    with one_line_errors(str(scenario)):
        formats = figures.parse_formats(fmt)
        figures.require_static(formats)
        with Progress("aidi nas") as prog:
            tasks: dict = {}

            def tick(*a):  # (done, total) from a search, (tag, done, total) from --compare and training
                tag, done, total = a if len(a) == 3 else ("search: evaluations", *a)
                if tag not in tasks:
                    tasks[tag] = prog.task(tag, total)
                tasks[tag].update(done, total)

            kw = dict(controller=controller, budget=budget, seed=seed, requirement_s=requirement, workers=workers,
                      dask=dask, dataset=dataset, data_dir=data_dir, out=out, quick=quick, progress=tick,
                      log=prog.log, force=force,
                      train_progress=lambda done, total: tick("supernet training: batches", done, total),
                      train_images=train_images, formats=formats, space=space.value, device=device.value)
            if search_budget_s is not None and not compare:
                raise UserError("--search-budget-s: only with --compare")
            if compare:
                from .ablation import parse_ints

                summary = nas_run.run_compare(
                    scenario, search_budget_s=search_budget_s, inas_requirement=inas_requirement,
                    views=tuple(v.strip() for v in views.split(",") if v.strip()), final_epochs=final_epochs,
                    final_seeds=tuple(parse_ints(final_seeds, "--final-seeds")), truth_members=truth_members,
                    final_train_images=final_train_images, q15_images=q15_images, **kw)
            else:
                summary = nas_run.run_nas(scenario, **kw)
    if as_json:
        _print_json(summary)
    elif compare:
        nas_run.print_compare(summary)
    else:
        nas_run.print_nas(summary)


class Ablation(str, Enum):
    kd = "kd"


@app.command("nas-ablation")
def nas_ablation(
    which: Ablation = typer.Argument(..., help="kd: supernets with and without knowledge distillation"),
    dataset: Dataset = typer.Option(Dataset.digits, help="digits (bundled), cifar10, tinyimagenet, fashion-mnist or "
                                                         "mnist"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder of the data set (as for aidi nas)"),
    seeds: str = typer.Option("0,1", metavar="S,S,...", help="training seeds (the first also splits the data)"),
    archs: int = typer.Option(8, "--archs", help="members in the fixed sample read off every supernet"),
    epochs: Optional[str] = typer.Option(None, metavar="F,K,D,W",
                                         help="supernet epochs of the full, kernel, depth and width phases"),
    finetune_epochs: Optional[int] = typer.Option(None, "--finetune-epochs", help="fine-tuning epochs per member"),
    alpha: Optional[float] = typer.Option(None, help="the KD arm's alpha (default: SupernetConfig's, 0.5 if that is 0)"),
    quick: bool = typer.Option(False, "--quick", help="tiny epochs and a data subset (tests, smoke runs)"),
    train_images: Optional[int] = typer.Option(None, "--train-images", help="at most N training images (and N/2 test)"),
    device: Device = typer.Option(Device.cpu, help="where to train: auto (CUDA if torch sees it), cpu or cuda"),
    out: Path = typer.Option(Path("out/nas-ablation"), help="folder for kd-ablation.json and kd-ablation.txt"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Ablation of the supernet's training: inherited and fine-tuned accuracy with and without KD."""
    from .ablation import parse_ints, run_kd_ablation
    from .progress import Progress

    with one_line_errors("nas-ablation"):
        seed_list = parse_ints(seeds, "--seeds")
        ep = parse_ints(epochs, "--epochs", count=4) if epochs is not None else None
        with Progress("aidi nas-ablation") as prog:
            task = prog.task("supernets and members", 1)
            res = run_kd_ablation(dataset.value, data_dir, seed_list, archs, ep, finetune_epochs, alpha, quick,
                                  train_images, device.value, out, force, log=prog.log,
                                  progress=lambda d, t: task.update(d, t))
    if as_json:
        _print_json(res)
    else:
        from .ablation import table_text

        sys.stdout.write(table_text(res) + f"wrote {res['out']}/kd-ablation.json, kd-ablation.txt\n")


@app.command()
def inas(
    layers: str = typer.Option(..., "--layers", help="K,F,K,F,... kernel and filters of each conv layer (iNAS's CIFAR-10 "
                                                     "space: 32x32x3 input, valid padding, stride 1, then GAP and FC(10))"),
    capacitor_f: float = typer.Option(..., "--capacitor-F", help="energy buffer capacitance (F), e.g. 1e-3"),
    r_ohm: float = typer.Option(..., "--r-ohm", help="R_ehm of the 3.0 V supply (ohm), e.g. 52"),
    as_published: bool = typer.Option(False, "--energy-constants-as-latency",
                                      help="iNAS as published: six addressing-overhead latencies built from energy "
                                           "constants (J added to s); default: the corrected model"),
    with_ours: bool = typer.Option(False, "--ours", help="also our optimizer's designs and our oracle's latency for "
                                                         "the same network and supply (seconds more)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """iNAS's own cost model and explorer, reproduced: per-layer designs, latency and power cycles."""
    from . import inas as m

    with one_line_errors("inas"):
        try:
            spec = [int(v) for v in layers.split(",")]
        except ValueError:
            raise m.InasError(f"--layers: expected integers K,F,K,F,..., got {layers!r}") from None
        net = m.inas_network(spec)
        supply = m.Supply(capacitor_f, r_ohm)
        res = m.summary(m.explore_network(net, supply, energy_constants_as_latency=as_published))
        res = {"layers_spec": spec, "capacitor_F": capacitor_f, "r_ohm": r_ohm,
               "model": "as published (energy constants as latency)" if as_published else "corrected", **res}
        if with_ours:
            res["ours"] = m.ours(spec, supply)
    if as_json:
        _print_json(res)
    else:
        _print_inas(res, layers)
    if not res["feasible"]:  # like `aidi check`: 1 = no feasible design for some layer
        bad = ", ".join(r["name"] for r in res["layers"] if not r["feasible"])
        print(f"aidi: no iNAS design fits the energy buffer and {m.INAS_SRAM_BYTES} B SRAM for {bad}", file=sys.stderr)
        raise typer.Exit(1)


def _print_inas(res: dict, layers: str) -> None:
    from rich.table import Table

    from .console import console

    capacitor_f, r_ohm = res["capacitor_F"], res["r_ohm"]

    t = Table(title=f"iNAS explorer, {res['model']}: {layers} at {capacitor_f:g} F / {r_ohm:g} ohm")
    t.add_column("layer")
    t.add_column("design", no_wrap=True)
    for col in ("latency (s)", "power cycles", "E_pc max (uJ)", "E_pc min (uJ)"):
        t.add_column(col)
    for r in res["layers"]:
        t.add_row(r["name"], r["design"] or "none feasible", f"{r['latency_s']:.5g}" if r["latency_s"] else "-",
                  f"{r['power_cycles']:g}", f"{r.get('E_pc_max_J', 0) * 1e6:.4g}", f"{r.get('E_pc_min_J', 0) * 1e6:.4g}")
    con = console()
    con.print(t)
    lat = "infeasible" if res["latency_s"] is None else f"{res['latency_s']:.6g} s"
    con.print(f"network latency {lat}, energy {res['energy_J']:.4g} J, {res['power_cycles']:g} power cycles; "
              f"explored {res['candidates']} designs in {res['explore_wall_s']:.2f} s")
    if "ours" in res:
        o = res["ours"]
        if "error" in o:
            con.print(f"ours: {o['error']}")
            return
        lat = f"{o['latency_s']:.6g} s" if o["completed"] else "did not complete"
        cycles = f"{o['power_cycles']} power cycle{'' if o['power_cycles'] == 1 else 's'}"
        designs = ", ".join(f"{x['name']} {x['design']}" for x in o["layers"])
        con.print(f"ours (optimizer + oracle, same supply): {lat}, energy {o['energy_J']:.4g} J, {cycles}; "
                  f"designs {designs}")


@app.command()
def published(as_json: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """aidi against published hardware: Stateful-CNN's MSP430FR5994 measurements (MNIST LeNet, KWS DNN_S, activations
    in an external SPI FRAM), the prediction split by component (compute, data movement and its SPI part,
    preservation, board)."""
    from . import published as pub

    with one_line_errors():
        out = pub.compare()
    if as_json:
        _print_json(out)
    else:
        pub.print_comparison(out)


@app.command()
def bench(quick: bool = typer.Option(False, "--quick", help="small sizes"),
          as_json: bool = typer.Option(False, "--json"),
          only: Optional[list[str]] = typer.Option(None, "--only", metavar="NAME",
                                                   help="run only this benchmark (repeat for several), e.g. sweep")) -> None:
    """Benchmarks, each next to a baseline measured in the same run."""
    from . import bench as b

    with one_line_errors():
        res = b.run_all(quick, only=only)
    if as_json:
        _print_json(res)
    else:
        b.print_table(res)


def main() -> None:  # console script entry point
    # Registered first, so it runs last of the exit handlers (dask's, kaleido's, tempfile's run before it):
    # the interpreter's final cyclic collections then skip every object alive now.  After a numba
    # dispatch those are hundreds of thousands of typing objects, and the collections took 0.4-0.6 s of a
    # 2 s cost-only `aidi run` (measured in the README's start-up figures); memory is returned to the
    # system at exit either way.
    import atexit
    import gc

    atexit.register(gc.freeze)
    app()


if __name__ == "__main__":
    main()
