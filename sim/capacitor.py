"""The capacitor in closed form (numba): :class:`Circuit` (the capacitor and its source), :class:`Limits` (the
device's thresholds and the run's time bound), :func:`advance` (one move) returning a :class:`Move`.

Model
-----
One storage capacitor C at voltage V, energy E = C V^2 / 2.  Everything that
flows in or out is one of three kinds of term, so the net power into the
capacitor is a quadratic in V::

    dE/dt = C V dV/dt = Q(V) = b V^2 + a V + c

* a constant-power source (trace, pv, constant harvester)   -> c += P
* a Thevenin source V_s through R (current (V_s - V)/R)      -> a += V_s/R, b -= 1/R
* the load: the MCU's constant power P_mcu through a converter of efficiency
  eta, drawn from the capacitor as P_mcu / eta (the *load model*, the same in
  the SimPy model and the oracle)                           -> c -= P_mcu/eta
* leakage: a constant current I_leak                       -> a -= I_leak

Time and the integral of V over a move V1 -> V2 follow from
dt = C V dV / Q(V)::

    T(V1, V2)  = C * int_{V1}^{V2} V   / Q(V) dV      (seconds)
    M1(V1, V2) = C * int_{V1}^{V2} V^2 / Q(V) dV      (volt-seconds, int V dt)

both in closed form (logs / arctangent, written with log1p and series so that
short moves keep full precision).  Threshold-crossing times are T to the
threshold; the voltage after a given time is the root of T(V1, V) = dt, found by
a bracketed Newton iteration on that closed form (there is no explicit inverse
for a mix of constant-power and current terms).  No fixed-step polling.

Energy bookkeeping of a move of duration dt:

* consumed  = P_load * dt
* leaked    = I_leak * M1
* harvested = P_src * dt + (V_s M1 - M2) / R,  with M2 = int V^2 dt taken from
  the ODE itself: Delta E = b M2 + a M1 + c dt
* clipped   = Q(V_max) * dt while the voltage is held at V_max by the clamp.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

_GL_X, _GL_W = np.polynomial.legendre.leggauss(48)

#: reasons returned by :func:`advance`
HORIZON, HIT_LOW, HIT_HIGH, ALL_DONE = 0, 1, 2, 3


class Circuit(NamedTuple):
    """The capacitor and its source, fixed over a run: the parameter record of :func:`advance`.

    The source is piecewise constant: segment i starts at ``seg_t[i]`` and puts ``seg_p[i]`` of
    constant power plus a Thevenin current ``seg_g[i] (seg_vs[i] - V)`` into the capacitor.
    """

    capacitor_F: float  #: capacitance (F)
    leakage_A: float  #: constant leakage current (A)
    v_max: float  #: clamp voltage (V); the surplus above it is clipped
    seg_t: np.ndarray  #: segment start times (s), increasing, seg_t[0] == 0
    seg_p: np.ndarray  #: constant-power part of each segment (W)
    seg_g: np.ndarray  #: Thevenin conductance 1/R of each segment (S)
    seg_vs: np.ndarray  #: Thevenin source voltage of each segment (V)
    period: float  #: the segments repeat with this period (s); 0: the last one lasts forever
    check_s: float = 0.0  #: power good is decided only at t = k * check_s (s; 0: at the threshold itself)
    v_floor: float = 0.0  #: with check_s > 0: the MCU stops here whatever power good says (V)


def circuit(power, seg) -> Circuit:
    """The :class:`Circuit` of a PowerConfig and a harvester's Segments."""
    return Circuit(power.capacitor_F, power.leakage_A, power.v_max, seg.seg_t, seg.seg_p, seg.seg_g, seg.seg_vs,
                   seg.period, power.threshold_check_s, power.v_floor)


class Limits(NamedTuple):
    """The device around the capacitor: its converter and thresholds, and the run's time bound."""

    eta: float  #: converter efficiency: the MCU's P is drawn from the capacitor as P / eta
    v_on: float  #: the MCU boots when V rises to it (V)
    v_off: float  #: brown-out when V falls to it (V)
    until_s: float  #: the run's time bound (s)


def limits(power, until_s: float) -> Limits:
    """The :class:`Limits` of a PowerConfig and a run's until_s (s)."""
    return Limits(power.converter_efficiency, power.v_on, power.v_off, until_s)


class Move(NamedTuple):
    """What :func:`advance` returns: one move of the capacitor."""

    elapsed_s: float  #: time the move took (s)
    v_end: float  #: capacitor voltage at its end (V)
    reason: int  #: why it stopped: HORIZON, HIT_LOW or HIT_HIGH
    harvested_J: float  #: energy the source put in (J)
    consumed_J: float  #: energy the load drew (J)
    leaked_J: float  #: energy lost to leakage (J)
    clipped_J: float  #: surplus discarded by the clamp at v_max (J)


@njit(cache=True, error_model="numpy")
def plus(h, c, l, x, m):
    """(h, c, l, x) plus the harvested, consumed, leaked and clipped energy (J) of ``m`` (a :class:`Move` or any
    record with those fields), in that order."""
    return h + m.harvested_J, c + m.consumed_J, l + m.leaked_J, x + m.clipped_J


@njit(cache=True, error_model="numpy")
def phi(n, z):
    """phi_n(z) = sum_j (-z)^j / (n + j) = int_0^1 s^(n-1) / (1 + z s) ds, for z > -1."""
    if abs(z) < 0.25:
        total = 0.0
        term = 1.0
        for j in range(60):
            total += term / (n + j)
            term *= -z
            if abs(term) < 1e-18:
                break
        return total
    p = math.log1p(z) / z
    for m in range(1, n):
        p = (1.0 / m - p) / z
    return p


@njit(cache=True, error_model="numpy")
def q_of(a, b, c, v):
    return (b * v + a) * v + c


@njit(cache=True, error_model="numpy")
def _gl_integrals(a, b, c, cap, v1, v2):
    """Gauss-Legendre fallback for the (measure-zero) double-root case."""
    half = 0.5 * (v2 - v1)
    mid = 0.5 * (v2 + v1)
    t = 0.0
    m1 = 0.0
    for i in range(_GL_X.shape[0]):
        v = mid + half * _GL_X[i]
        f = v / q_of(a, b, c, v)
        t += _GL_W[i] * f
        m1 += _GL_W[i] * f * v
    return cap * half * t, cap * half * m1


@njit(cache=True, error_model="numpy")
def integrals(a, b, c, cap, v1, v2):
    """(T, M1) of the move v1 -> v2; the caller guarantees Q has no root in between."""
    w = v2 - v1
    if w == 0.0:
        return 0.0, 0.0
    if b == 0.0 and c == 0.0:  # constant current only: linear in V
        return cap * w / a, cap * (v2 * v2 - v1 * v1) / (2.0 * a)
    if b == 0.0:
        q1 = a * v1 + c
        z = a * w / q1
        l1 = w * phi(1, z)
        l2 = w * w * phi(2, z)
        l3 = w * w * w * phi(3, z)
        return cap / q1 * (v1 * l1 + l2), cap / q1 * (v1 * v1 * l1 + 2.0 * v1 * l2 + l3)
    disc = a * a - 4.0 * b * c
    if disc > 1e-12 * a * a:
        sq = math.sqrt(disc)
        qq = -0.5 * (a + math.copysign(sq, a))
        r1 = qq / b
        r2 = c / qq
        l1 = math.log1p(w / (v1 - r1))
        l2 = math.log1p(w / (v1 - r2)) if r2 != 0.0 else 0.0
        d = r1 - r2
        t = cap / (b * d) * (r1 * l1 - r2 * l2)
        m1 = cap / b * (w + (r1 * r1 * l1 - r2 * r2 * l2) / d)
        return t, m1
    if disc < -1e-12 * a * a:
        s = math.sqrt(-disc)
        x1 = (2.0 * b * v1 + a) / s
        x2 = (2.0 * b * v2 + a) / s
        # x2 - x1 from the move itself: the difference of the two would lose the digits of a short move
        j = 2.0 / s * math.atan2(2.0 * b * w / s, 1.0 + x1 * x2)
        q1 = q_of(a, b, c, v1)
        lnq = math.log1p(w * (b * (v1 + v2) + a) / q1)
        i1 = lnq / (2.0 * b) - a / (2.0 * b) * j
        i2 = w / b - a / b * i1 - c / b * j
        return cap * i1, cap * i2
    return _gl_integrals(a, b, c, cap, v1, v2)


@njit(cache=True, error_model="numpy")
def m1_from_time(a, b, c, cap, v1, v2, dt, eq):
    """int V dt of a move v1 -> v2 lasting dt towards the root ``eq`` of Q (b != 0, real roots).

    Near the approached root, log((v2 - eq)/(v1 - eq)) computed from v2 has lost its digits;
    the time dt determines it exactly: T = C / (b (re - ro)) (re le - ro lo).
    """
    disc = a * a - 4.0 * b * c
    sq = math.sqrt(disc)
    qq = -0.5 * (a + math.copysign(sq, a))
    r1 = qq / b
    r2 = c / qq
    if abs(r1 - eq) <= abs(r2 - eq):
        re, ro = r1, r2
    else:
        re, ro = r2, r1
    w = v2 - v1
    lo_ = math.log1p(w / (v1 - ro)) if ro != 0.0 else 0.0
    le = (dt * b * (re - ro) / cap + ro * lo_) / re
    return cap / b * (w + (re * re * le - ro * ro * lo_) / (re - ro))


@njit(cache=True, error_model="numpy")
def equilibrium(a, b, c, v, up):
    """Nearest root of Q beyond v in the direction of motion (up=True: above v).

    Returns +inf (up) or -inf (down) when there is none.
    """
    best = math.inf if up else -math.inf
    if b == 0.0:
        if a != 0.0:
            r = -c / a
            if up and r > v and r < best:
                best = r
            if (not up) and r < v and r > best:
                best = r
        return best
    disc = a * a - 4.0 * b * c
    if disc < 0.0:
        return best
    sq = math.sqrt(disc)
    for r in ((-a + sq) / (2.0 * b), (-a - sq) / (2.0 * b)):
        if up and r > v and r < best:
            best = r
        if (not up) and r < v and r > best:
            best = r
    return best


@njit(cache=True, error_model="numpy")
def _toward_root_guess(a, b, c, cap, v1, dt, v_bound):
    """(voltage after dt, converged) when the move heads for a root ``v_bound`` of Q (two real roots).

    NaN when the move does not head for a root.

    With re the approached root and ro the other, T = C / (b (re - ro)) (re le - ro lo) where
    le = log((V - re) / (v1 - re)) and lo = log((V - ro) / (v1 - ro)).  For fixed lo this is
    explicit in le; lo barely changes as V closes on re, so a few fixed-point rounds give V to
    near float precision even for moves many time constants long, where Newton on T(V) crawls
    along the logarithmic singularity.
    """
    disc = a * a - 4.0 * b * c
    if b == 0.0 or not disc > 1e-12 * a * a or not math.isfinite(v_bound):
        return math.nan, False
    sq = math.sqrt(disc)
    qq = -0.5 * (a + math.copysign(sq, a))
    r1 = qq / b
    r2 = c / qq
    tol = 1e-12 * max(1.0, abs(v_bound))
    if abs(r1 - v_bound) <= tol:
        re, ro = r1, r2
    elif abs(r2 - v_bound) <= tol:
        re, ro = r2, r1
    else:
        return math.nan, False
    if re == 0.0 or v1 == ro or v1 == re:
        return math.nan, False
    k = cap / (b * (re - ro))
    lo_ = math.log1p((re - v1) / (v1 - ro))
    v = math.nan
    for _ in range(6):
        le = (dt / k + ro * lo_) / re
        if not le < 0.0:
            return math.nan, False
        v_new = re + (v1 - re) * math.exp(le)
        # the round contracts errors by rho = |ro / re| |V - re| / |V - ro|: stop when what is left is
        # below float resolution
        rho = abs(ro / re) * abs((v_new - re) / (v_new - ro))
        if rho < 0.5 and abs(v_new - v) * rho <= 1e-16 * abs(v_new) * (1.0 - rho):
            return v_new, True
        v = v_new
        lo_ = math.log1p((v - v1) / (v1 - ro))
    return v, False  # not converged: a starting point for Newton


@njit(cache=True, error_model="numpy")
def voltage_after(a, b, c, cap, v1, dt, v_bound):
    """Voltage after dt, knowing that the move v1 -> v_bound takes at least dt."""
    return solve_voltage(a, b, c, cap, v1, dt, v_bound)[0]


@njit(cache=True, error_model="numpy")
def solve_voltage(a, b, c, cap, v1, dt, v_bound):
    """(V after dt, T, M1) where (T, M1) = integrals(v1, V') at the last Newton point V', which is
    within float resolution of V; T and M1 are NaN when V came without a Newton evaluation."""
    t_ev = math.nan
    m_ev = math.nan
    lo = v1
    hi = v_bound
    v = v1 + (v_bound - v1) * 0.5
    # initial guess from the local rate
    q1 = q_of(a, b, c, v1)
    short = False
    if v1 > 0.0:  # second-order Taylor step of dV/dt = f(V) = Q(V) / (C V)
        f = q1 / (cap * v1)
        df = ((2.0 * b * v1 + a) * v1 - q1) / (cap * v1 * v1)
        guess = v1 + dt * f + 0.5 * dt * dt * f * df
        if (guess - lo) * (guess - hi) < 0.0:
            v = guess
            short = abs(dt * df) < 1.0  # Newton converges from here in a step or two
    if not short:
        guess, converged = _toward_root_guess(a, b, c, cap, v1, dt, v_bound)
        if (guess - lo) * (guess - hi) < 0.0:
            if converged:  # the fixed point solved T(v1, V) = dt to float precision
                return guess, t_ev, m_ev
            v = guess
        elif math.isfinite(guess) and (guess - v_bound) * (v_bound - v1) >= 0.0:
            return v_bound, t_ev, m_ev  # on the root to float precision (or an ulp past it)
    prev = math.inf
    prev_newton = False
    for _ in range(200):
        if v == v_bound:  # converged onto the bound (an equilibrium, to float precision)
            return v, math.nan, math.nan
        t, m = integrals(a, b, c, cap, v1, v)
        f = t - dt
        if f == 0.0:
            return v, t, m
        if not math.isfinite(f):
            f = math.inf
        # f is increasing along the direction of motion
        if f < 0.0:
            lo = v
        else:
            hi = v
        q = q_of(a, b, c, v)
        newton = v != 0.0 and q != 0.0 and math.isfinite(f)
        nv = v - f * q / (cap * v) if newton else 0.5 * (lo + hi)
        if (nv - lo) * (nv - hi) > 0.0:  # strictly outside the bracket: bisect
            nv = 0.5 * (lo + hi)
            newton = False
        step = abs(nv - v)
        scale = max(1.0, abs(v))
        if step <= 1e-15 * scale:  # step below float resolution: converged
            return nv, t, m
        # two Newton steps in a row: the error left after this one is about step^3 / prev^2
        # (quadratic convergence, e_k+1 = K e_k^2 with K = step / prev^2); below resolution: done
        if newton and prev_newton and step < prev and step * step * step <= 1e-16 * scale * prev * prev:
            return nv, t, m
        prev = step
        prev_newton = newton
        v = nv
    return v, math.nan, math.nan


@njit(cache=True, error_model="numpy")
def harvest_segment(t, seg_t, period):
    """Index of the harvester segment active at time t and the time it ends."""
    n = seg_t.shape[0]
    if period > 0.0:
        k = math.floor(t / period)
        tl = t - k * period
        base = k * period
    else:
        tl = t
        base = 0.0
    i = np.searchsorted(seg_t, tl, side="right") - 1
    if i < 0:
        i = 0
    if i + 1 < n:
        end = base + seg_t[i + 1]
    elif period > 0.0:
        end = base + period
    else:
        end = math.inf
    if end <= t:  # float round-off at a breakpoint
        return harvest_segment(np.nextafter(end, math.inf), seg_t, period)
    return i, end


@njit(cache=True, error_model="numpy")
def _cannot_reach(a, b, c, cap, v, target, span):
    """True if V cannot move from v to target within span: |dV/dt| = |Q(V)| / (C V) is bounded on the
    way (Q has no root in between, so |Q| peaks at an end or at the vertex) and too small."""
    v_min = min(v, target)
    if not v_min > 0.0:
        return False
    q_max = max(abs(q_of(a, b, c, v)), abs(q_of(a, b, c, target)))
    if b != 0.0:
        vx = -a / (2.0 * b)
        if (vx - v) * (vx - target) < 0.0:
            q_max = max(q_max, abs(q_of(a, b, c, vx)))
    return q_max * span < cap * v_min * abs(target - v) * (1.0 - 1e-9)


@njit(cache=True, error_model="numpy")
def advance(v, t, horizon, p_load, v_low, v_high, stop_high, circ):
    """Integrate the capacitor of ``circ`` (a :class:`Circuit`) from (t, v) for at most ``horizon`` seconds
    (:func:`advance_continuous`), with power good decided at the check instants k * ``circ.check_s``
    (:func:`next_check`) when that is > 0, as a power-management IC that looks at its thresholds periodically
    (shepherd-core's ``interval_check_thresholds_ms``, ``VirtualConverterModel.update_states_and_output``):

    * MCU on (``v_low`` > 0, the power-good fall V_off): V may fall below ``v_low`` between two checks; the MCU
      keeps drawing ``p_load`` and the move stops (HIT_LOW) at the first check instant that finds V <= v_low, or
      when V reaches ``circ.v_floor``, the MCU's own minimum supply (it stops there whatever power good says).
      A move that starts below ``v_low`` is in that state already (the previous activity crossed).  ``v_high``
      with ``stop_high`` (energy_aware's start threshold, a comparator) still stops at the instant.
    * MCU off (``v_low`` <= 0) charging to ``v_high`` with ``stop_high`` (the power-good rise V_on): it stops
      (HIT_HIGH) at the first check instant that finds V >= v_high.

    Returns a :class:`Move` (its energies over the whole move)."""
    if circ.check_s <= 0.0 or (v_low <= 0.0 and not stop_high):
        return advance_continuous(v, t, horizon, p_load, v_low, v_high, stop_high, circ)
    return _advance_checked(v, t, horizon, p_load, v_low, v_high, stop_high, circ, v_low > 0.0)


@njit(cache=True, error_model="numpy")
def next_check(t, check_s):
    """The first check instant k * check_s (s, k >= 0 an integer) at or after ``t`` (s); an instant within
    1e-9 of a period before ``t`` counts as ``t`` (the rounding of sums of activity times)."""
    return math.ceil(t / check_s - 1e-9) * check_s


@njit(cache=True, error_model="numpy")
def _moved(el, v, reason, m, h, c, l, x):
    """A :class:`Move` of ``el`` s ending at ``v`` for ``reason``, with the energies (h, c, l, x) plus ``m``'s."""
    h, c, l, x = plus(h, c, l, x, m)
    return Move(el, v, reason, h, c, l, x)


@njit(cache=True, error_model="numpy")
def _after(el, r, rest, horizon):
    """The time (s) after the move ``r`` that followed ``el`` s of a move of ``horizon`` s: exactly ``horizon`` when
    ``r`` ran the ``rest`` of it (so that a caller's ``elapsed < duration`` test sees a whole activity)."""
    return horizon if (r.reason == HORIZON and r.elapsed_s >= rest) else el + r.elapsed_s


@njit(cache=True, error_model="numpy")
def _advance_checked(v, t, horizon, p_load, v_low, v_high, stop_high, circ, on):
    """:func:`advance` with power good decided only at a check instant (see there): with the MCU ``on``, falling
    (HIT_LOW) at a check that finds V <= v_low or at ``circ.v_floor``; off, rising (HIT_HIGH) at a check that
    finds V >= v_high."""
    e_h = e_c = e_l = e_x = 0.0
    el = 0.0
    event = HIT_LOW if on else HIT_HIGH
    while True:
        if (v > v_low) if on else (v < v_high):  # on the side of the threshold power good stays on
            rest = horizon - el
            r = advance_continuous(v, t + el, rest, p_load, v_low if on else -1.0, v_high, stop_high, circ)
            el = _after(el, r, rest, horizon)
            if r.reason != event:
                return _moved(el, r.v_end, r.reason, r, e_h, e_c, e_l, e_x)
            e_h, e_c, e_l, e_x = plus(e_h, e_c, e_l, e_x, r)
            v = r.v_end
        # across the threshold: power good changes at the next check, unless V is back by then
        now = t + el
        wait = next_check(now, circ.check_s) - now
        if wait <= 1e-9 * circ.check_s:  # a check now
            return Move(el, v, event, e_h, e_c, e_l, e_x)
        rest = horizon - el
        r = advance_continuous(v, now, min(wait, rest), p_load, circ.v_floor if on else -1.0, v_high,
                               stop_high and on, circ)
        el = _after(el, r, rest, horizon)
        if r.reason != HORIZON or wait > rest:  # the MCU's floor, the comparator, or the end of the activity
            return _moved(el, r.v_end, r.reason, r, e_h, e_c, e_l, e_x)
        e_h, e_c, e_l, e_x = plus(e_h, e_c, e_l, e_x, r)
        v = r.v_end
        if (v <= v_low) if on else (v >= v_high):  # the check
            return Move(el, v, event, e_h, e_c, e_l, e_x)


@njit(cache=True, error_model="numpy")
def advance_continuous(v, t, horizon, p_load, v_low, v_high, stop_high, circ):
    """Integrate the capacitor of ``circ`` (a :class:`Circuit`) from (t, v) for at most ``horizon`` seconds.

    The load draws ``p_load`` W from the capacitor.  Stops early when V falls to
    ``v_low`` (reason HIT_LOW) or, if ``stop_high``, rises to ``v_high``
    (reason HIT_HIGH).  Above, the voltage is clamped at ``circ.v_max`` and the
    surplus counted as clipped.  Times in s, voltages in V.

    Returns a :class:`Move`: (elapsed_s, v_end, reason, harvested_J, consumed_J, leaked_J, clipped_J).
    """
    cap, i_leak, v_max, period = circ.capacitor_F, circ.leakage_A, circ.v_max, circ.period
    seg_t, seg_p, seg_g, seg_vs = circ.seg_t, circ.seg_p, circ.seg_g, circ.seg_vs
    elapsed = 0.0
    e_h = 0.0
    e_c = 0.0
    e_l = 0.0
    e_x = 0.0
    if v_low > 0.0 and v <= v_low:
        return Move(0.0, v, HIT_LOW, e_h, e_c, e_l, e_x)
    if stop_high and v >= v_high:
        return Move(0.0, v, HIT_HIGH, e_h, e_c, e_l, e_x)
    while elapsed < horizon:
        now = t + elapsed
        i, seg_end = harvest_segment(now, seg_t, period)
        last = horizon - elapsed <= seg_end - now
        span = horizon - elapsed if last else seg_end - now
        p_src = seg_p[i]
        g = seg_g[i]
        vs = seg_vs[i]
        a = g * vs - i_leak
        b = -g
        c = p_src - p_load
        q = q_of(a, b, c, v)
        if v <= 0.0:  # direction of motion at 0 V: sign of lim Q(V)/V
            q = c if c != 0.0 else a
        # clamp at V_max, or floor at 0 V
        at_eq = abs(q) <= 1e-13 * (abs(a * v) + abs(b * v * v) + abs(c))  # at an equilibrium, to rounding
        if (v >= v_max and q >= 0.0) or (v <= 0.0 and q <= 0.0) or (v > 0.0 and at_eq):  # held still
            p_h = p_src + g * (vs - v) * v
            e_h += p_h * span
            e_c += p_load * span if v > 0.0 else min(p_load, p_h) * span  # at 0 V the load gets what arrives
            e_l += i_leak * v * span
            if v >= v_max:
                e_x += q * span
            elapsed = horizon if last else elapsed + span
            continue
        up = q > 0.0
        eq = equilibrium(a, b, c, v, up)
        if up:
            target = v_high if (stop_high and v_high <= v_max) else v_max
            reach = target < eq
        else:
            target = v_low if v_low > 0.0 else 0.0
            reach = target > eq or (target == 0.0 and eq == 0.0 and c == 0.0)
        t_hit = math.inf
        m1_hit = 0.0
        if reach and not _cannot_reach(a, b, c, cap, v, target, span):
            t_hit, m1_hit = integrals(a, b, c, cap, v, target)
        if t_hit <= span:
            dt = t_hit
            m1 = m1_hit
            v_new = target
        elif b != 0.0 and c == 0.0:
            # currents only (Thevenin source, leakage, no constant-power term): C dV/dt = b V + a is linear,
            # V(t) = V_eq + (V0 - V_eq) exp(-k t): explicit, and int V dt with expm1 stays exact near V_eq
            dt = span
            k = -b / cap
            v_eq = -a / b
            v_new = v_eq + (v - v_eq) * math.exp(-k * dt)
            m1 = v_eq * dt - (v - v_eq) * math.expm1(-k * dt) / k
        else:
            dt = span
            bound = target if reach else eq
            v_new, t_ev, m_ev = solve_voltage(a, b, c, cap, v, dt, bound)
            if b != 0.0 and not reach and a * a - 4.0 * b * c > 0.0 and eq != 0.0:
                m1 = m1_from_time(a, b, c, cap, v, v_new, dt, eq)  # approaching a root: time-exact form
            elif t_ev == t_ev and v_new != bound:
                # Newton's last point is within float resolution of v_new: int V dt to there, plus v_new
                # for the (tiny) rest of dt
                m1 = m_ev + v_new * (dt - t_ev)
            else:
                v_int = v_new
                if not reach and v_new == bound:  # on the equilibrium to float precision: stop a float before
                    v_int = np.nextafter(bound, v)
                t_act, m1 = integrals(a, b, c, cap, v, v_int) if v_int != v else (0.0, 0.0)
                if t_act < dt:  # V settled on an equilibrium to float precision: it sits there the rest of dt
                    m1 += v_new * (dt - t_act)
            if b == 0.0 and a != 0.0:
                # the ODE itself gives int V dt = (Delta E - c dt) / a; better conditioned than the log form
                # whenever the leakage term is not swamped by the constant-power term
                num = 0.5 * cap * (v_new * v_new - v * v) - c * dt
                if abs(num) >= 1e-6 * max(abs(c * dt), 1e-300):
                    m1 = num / a
        de = 0.5 * cap * (v_new * v_new - v * v)
        e_c += p_load * dt
        e_l += i_leak * m1
        e_h += p_src * dt
        if g != 0.0:
            m2 = (de - a * m1 - c * dt) / b
            e_h += g * (vs * m1 - m2)
        v = v_new
        if t_hit <= span:
            elapsed += dt
            if not up and v_low > 0.0:
                return Move(elapsed, v, HIT_LOW, e_h, e_c, e_l, e_x)
            if up and stop_high and target == v_high:
                return Move(elapsed, v, HIT_HIGH, e_h, e_c, e_l, e_x)
        else:
            elapsed = horizon if last else elapsed + dt
    return Move(elapsed, v, HORIZON, e_h, e_c, e_l, e_x)


@njit(cache=True, error_model="numpy")
def charge_trace(v, t, times, v_high, circ):
    """Voltage (V) at each of ``times`` (s, from t on) while the capacitor of ``circ`` charges from (t, v) with
    the MCU off (no load) up to ``v_high``: :func:`advance` to each time, in one call from Python."""
    out = np.empty(times.shape[0])
    for k in range(times.shape[0]):
        out[k] = advance(v, t, times[k] - t, 0.0, -1.0, v_high, True, circ).v_end
    return out


@njit(cache=True, error_model="numpy")
def source_max_power(seg_p, seg_g, seg_vs, v_lo, v_hi):
    """Largest power a source (segment arrays) can put into the capacitor for V in [v_lo, v_hi] (W)."""
    p = seg_p.max()
    g = seg_g.max()
    if g > 0.0:
        vs = seg_vs.max()
        v = min(max(vs / 2.0, v_lo), v_hi)
        p += g * (vs - v) * v
    return p


@njit(cache=True, error_model="numpy")
def never_reaches(v, v_high, i_leak, seg_p, seg_g, seg_vs):
    """True if, with the MCU off, a time-invariant source (segment 0) can never lift V from v to v_high:
    V is falling or held, or it rises towards an equilibrium at or below v_high."""
    g = seg_g[0]
    a = g * seg_vs[0] - i_leak
    b = -g
    c = seg_p[0]
    q = q_of(a, b, c, v)
    if v <= 0.0:  # direction of motion at 0 V: sign of lim Q(V)/V
        q = c if c != 0.0 else a
    if q <= 0.0:
        return True
    return equilibrium(a, b, c, v, True) <= v_high


@njit(cache=True)
def e_cycle(cap, v_on, v_off):
    """Energy (J) the capacitor gives between V_on and V_off: C (V_on^2 - V_off^2) / 2."""
    return 0.5 * cap * (v_on * v_on - v_off * v_off)
