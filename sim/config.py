"""Typed configuration of a simulated device: capacitor, thresholds, run bounds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PowerConfig:
    """Energy store and power thresholds.

    capacitor_F: storage capacitance (F); v_on: the MCU boots when V rises to it (V);
    v_off: brown-out when V falls to it (V); v_max: clamp, surplus counted as clipped (V);
    leakage_A: every constant current drawn from the capacitor at all times (A): its own leakage plus
    board_sleep_A; v_initial: voltage at t = 0 (V);
    converter_efficiency: the MCU's power P is drawn from the capacitor as P / efficiency.
    frontend: a shepherd-core virtual-source preset (:mod:`aidi.sim.frontend`; None: the ideal or
    constant-efficiency converter above); v_input_V: the harvester's operating voltage for a source without one
    (V); load_v_nominal_V: the supply at which the platform's powers are given (V, its v_nominal), so that a
    front end's regulated output rescales them (:func:`aidi.sim.frontend.loads`).
    board_sleep_A: the part of leakage_A that is the board's quiescent draw (:class:`aidi.sim.platform.Board`),
    reported under ``by_category.board`` (consumed) instead of ``leaked``.
    threshold_check_s: power good (boot at v_on, brown-out at v_off) is decided only at t = k * threshold_check_s
    (s; 0: at the threshold itself), as a front end that checks its thresholds periodically
    (:func:`aidi.sim.capacitor.advance`); v_floor: with a check interval, the capacitor voltage at which the MCU
    stops whatever power good says (V: its minimum supply plus the output's drop, :mod:`aidi.sim.frontend`).
    """

    capacitor_F: float
    v_on: float
    v_off: float
    v_max: float
    leakage_A: float = 0.0
    v_initial: float = 0.0
    converter_efficiency: float = 1.0
    frontend: str | None = None
    v_input_V: float | None = None
    load_v_nominal_V: float = 3.0
    board_sleep_A: float = 0.0
    threshold_check_s: float = 0.0
    v_floor: float = 0.0

    def __post_init__(self):
        if not (0.0 <= self.threshold_check_s < float("inf")):
            raise ValueError(f"threshold_check_s must be a finite time >= 0 s, got {self.threshold_check_s!r}")
        if not 0.0 <= self.board_sleep_A <= self.leakage_A:
            raise ValueError(f"board_sleep_A ({self.board_sleep_A:g} A) must lie in [0, leakage_A = "
                             f"{self.leakage_A:g} A]: leakage_A holds it")

    @property
    def board_share(self) -> float:
        """The board's fraction of the capacitor's constant-current drain (0 without a board)."""
        return self.board_sleep_A / self.leakage_A if self.board_sleep_A > 0 else 0.0

    @property
    def e_store_J(self) -> float:
        """Energy the capacitor gives between V_on and V_off (before the converter), J: :func:`aidi.sim.capacitor.e_cycle`."""
        from .capacitor import e_cycle  # lazy: reading a scenario does not load numba

        # its Python function: a scalar needs no compiled dispatcher (numba loads each from its cache, 0.1-0.3 s)
        return e_cycle.py_func(self.capacitor_F, self.v_on, self.v_off)

    @property
    def e_cycle_J(self) -> float:
        """Energy one power cycle can give the MCU (after the converter), J: ``e_store_J * converter_efficiency``."""
        return self.e_store_J * self.converter_efficiency


#: the dispatch policy of a scenario without ``[execution] dispatch`` (see SimConfig.dispatch): energy_aware, measured
#: on every shipped scenario (README, Dispatch): it ties greedy where no power cycle ends (lab-1mF), costs one voltage
#: measurement (46 us) on continuous power, and is faster with no lost unit wherever greedy loses units
DEFAULT_DISPATCH = "energy_aware"


@dataclass(frozen=True)
class SimConfig:
    """Run bounds: how many inferences, released every period_s (0: back to back), until_s bound; and the
    dispatch policy.

    dispatch: "greedy" starts a unit whenever the MCU is on; "energy_aware" measures V before a unit (unless
    its lower bound on V from the last measurement is already there, :func:`aidi.sim.dispatch.dispatch_unit`)
    and sleeps in LPM3 until V reaches the unit's start threshold (:func:`aidi.sim.dispatch.start_thresholds`);
    dispatch_margin: the threshold's energy E_need is multiplied by 1 + dispatch_margin (a fraction).
    """

    inferences: int = 1
    until_s: float = 7 * 86400.0
    seed: int = 0
    period_s: float = 0.0
    deadline_s: float | None = None
    dispatch: str = DEFAULT_DISPATCH
    dispatch_margin: float = 0.05

    @property
    def energy_aware(self) -> bool:
        return self.dispatch == "energy_aware"
