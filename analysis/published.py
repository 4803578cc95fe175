"""aidi against published hardware measurements: Stateful-CNN's MSP430FR5994 runs (``aidi published``).

EMCLab-Sinica/Stateful-CNN reports in ``data/data.csv`` (commit 37708ef) ten
runs per row of its networks on an MSP430FR5994 LaunchPad at 16 MHz with LEA on
continuous power, weights in the on-chip FRAM and every activation in an
external SPI FRAM (CY15B104Q): the ONNX-zoo MNIST LeNet took 2.179 s, the KWS
DNN_S 0.655 s (the "Baseline" rows: no intermittence support).  The shipped
scenarios ``stateful-cnn-mnist`` and ``stateful-cnn-kws`` describe that setup
(``[device] board = "msp-exp430fr5994"``, ``activations = "spi-fram"``).

:func:`compare` predicts each with aidi and splits the prediction by
component: the seconds of the plan's units by energy category (compute, data
movement, of which the SPI transfers, preservation), the rest of the run
(boot, energy-aware dispatch's voltage measurement), and the board's energy
(it costs no time).  The same network with every tensor on-chip is given
beside it, so the SPI FRAM's share shows.
"""

from __future__ import annotations

from ..sim.taskgraph import UNIT_CATEGORIES

#: (shipped scenario, measured latency s): Stateful-CNN data/data.csv at commit 37708ef, msp430, Baseline, power 0
PUBLISHED = (("stateful-cnn-mnist", 2.179), ("stateful-cnn-kws", 0.655))
SOURCE = ("EMCLab-Sinica/Stateful-CNN data/data.csv at commit 37708ef: MSP430FR5994 LaunchPad, 16 MHz, LEA, "
          "continuous power, weights in on-chip FRAM, activations in an external SPI FRAM (CY15B104Q), 10 runs")
#: the aim: a prediction within this fraction of the measurement
TOLERANCE = 0.25


def unit_seconds(plan) -> dict[str, float]:
    """Seconds of a :class:`~aidi.models.schedule.NetPlan`'s units by :data:`~aidi.sim.taskgraph.UNIT_CATEGORIES`
    (cycles / MCLK)."""
    return {c: float(sum(lp.unit_cost[:, k, 0].sum() for lp in plan.layers)) / plan.platform.mclk_hz
            for k, c in enumerate(UNIT_CATEGORIES)}


def _components(built, res) -> dict[str, float]:
    """Seconds by component of a run: the units' categories, ``other`` (the rest: boot, dispatch) and
    ``board`` (0: the board draws power, it takes no time)."""
    secs = unit_seconds(built.plan)
    return {**secs, "other": res["latency_s"] - sum(secs.values()), "board": 0.0}


def compare_one(name: str, measured_s: float) -> dict:
    """aidi's prediction of shipped scenario ``name`` against ``measured_s`` (s), by component (see the module
    docstring).  ``spi_s``: the SPI transfers' seconds (the data movement of the same designs planned with every
    tensor on-chip, subtracted); ``onchip_s``: the scenario re-planned with every tensor on-chip.  Raises
    UserError for a scenario that does not run."""
    from ..models import hardware
    from . import pipeline

    sc = pipeline.load_scenario(name)
    built = pipeline.build(sc)
    res, _ = pipeline.simulate(built, engine="oracle")
    onchip = sc.with_values(**{"device.weights": "fram", "device.activations": "fram"})
    same = hardware.plan(list(built.plan.geoms), list(built.plan.designs), onchip.device.make_platform(),
                         sc.device.sram_budget_bytes, sc.execution.backend).plan
    secs, secs_same = unit_seconds(built.plan), unit_seconds(same)
    built0 = pipeline.build(onchip)
    res0, _ = pipeline.simulate(built0, engine="oracle")
    latency = res["latency_s"]
    e = res["energy_J"]["by_category"]
    return {
        "scenario": name,
        "measured_s": measured_s,
        "predicted_s": latency,
        "ratio": latency / measured_s,
        "within_tolerance": abs(latency / measured_s - 1.0) <= TOLERANCE,
        "components_s": _components(built, res),
        "spi_s": secs["data_movement"] - secs_same["data_movement"],
        "onchip_s": res0["latency_s"],
        "onchip_components_s": _components(built0, res0),
        "energy_J": {**{c: e[c] for c in UNIT_CATEGORIES}, "board": e["board"], "consumed": res["energy_J"]["consumed"]},
        "designs": res["designs"],
    }


def compare(published=PUBLISHED) -> dict:
    """Every published row: ``{"source", "tolerance", "rows": [compare_one(...), ...]}``."""
    return {"source": SOURCE, "tolerance": TOLERANCE, "rows": [compare_one(n, m) for n, m in published]}


def print_comparison(out: dict) -> None:
    """The comparison as a rich table (seconds by component, the measurement, the ratio)."""
    from rich.table import Table

    from .console import console

    t = Table(title=f"aidi vs {out['source'].split(':')[0]} (continuous power)")
    for col in ("scenario", "measured s", "aidi s", "ratio", "compute", "data mvt", "of it SPI", "preserv.",
                "other", "board mJ", "all on-chip s"):
        t.add_column(col, justify="left" if col == "scenario" else "right", no_wrap=True)
    for r in out["rows"]:
        c = r["components_s"]
        t.add_row(r["scenario"], f"{r['measured_s']:.3f}", f"{r['predicted_s']:.3f}", f"{r['ratio']:.2f}",
                  f"{c['compute']:.3f}", f"{c['data_movement']:.3f}", f"{r['spi_s']:.3f}", f"{c['preservation']:.4f}",
                  f"{c['other']:.4f}", f"{r['energy_J']['board'] * 1e3:.3f}", f"{r['onchip_s']:.3f}")
    console().print(t)
    console().print(f"source: {out['source']}")
