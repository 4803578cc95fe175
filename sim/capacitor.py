"""Capacitor physics in closed form (numba).

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


def circuit(power, seg) -> Circuit:
    """The :class:`Circuit` of a PowerConfig and a harvester's Segments."""
    return Circuit(power.capacitor_F, power.leakage_A, power.v_max, seg.seg_t, seg.seg_p, seg.seg_g, seg.seg_vs,
                   seg.period)


class Move(NamedTuple):
    """What :func:`advance` returns: one move of the capacitor."""

    elapsed_s: float  #: time the move took (s)
    v_end: float  #: capacitor voltage at its end (V)
    reason: int  #: why it stopped: HORIZON, HIT_LOW or HIT_HIGH
    harvested_J: float  #: energy the source put in (J)
    consumed_J: float  #: energy the load drew (J)
    leaked_J: float  #: energy lost to leakage (J)
    clipped_J: float  #: surplus discarded by the clamp at v_max (J)


class Merged(NamedTuple):
    """What :func:`run_units_merged` returns: the units from i0 executed until a cut or the end."""

    k: int  #: units completed
    t_k: float  #: time at the end of the k-th (s)
    v_k: float  #: voltage then (V)
    el_cut: float  #: when ``reason`` is HIT_LOW or HORIZON, how long unit i0 + k ran more (s)
    v_cut: float  #: and the voltage it left (V)
    reason: int  #: HIT_LOW (brown-out), HORIZON (until_s) or ALL_DONE
    harvested_J: float  #: energy sums over everything returned, the cut unit included (J)
    consumed_J: float
    leaked_J: float
    clipped_J: float


#: slots of ``params``, the scalars that the entry points called from Python (:func:`run_cycle`,
#: :func:`predict_move`, :func:`predict_units`) take packed in one float64 array: a call from Python
#: pays for every argument, and more for a NamedTuple than for an array
P_BOOT_S, P_BOOT_W, P_V_OFF, P_V_ON, P_UNTIL, P_CAP, P_I_LEAK, P_V_MAX, P_PERIOD = range(9)
N_PARAMS = 9


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


@njit(cache=True, error_model="numpy")
def run_units(v, t, i0, i_end, durations, p_cap, v_low, v_on, until, circ):
    """Execute units i0 .. i_end-1 back to back until one browns out or until_s.

    ``p_cap[i]`` is unit i's draw from the capacitor (W), ``durations[i]`` its duration (s);
    ``circ`` is the :class:`Circuit`.  Returns ``(k, elapsed, v_end, reason, sums)``: k units
    completed; ``elapsed[j]`` (s) and ``v_end[j]`` (V) for j <= k (entry k is the unit that browned
    out or was cut by until_s, when ``reason`` is HIT_LOW or HORIZON and k < i_end - i0); ``sums`` =
    (harvested, consumed, leaked, clipped) (J) over everything returned, the partial unit included;
    ``reason`` is ALL_DONE when every unit completed.
    """
    m = i_end - i0
    elapsed = np.empty(m)
    v_end = np.empty(m)
    sums = np.zeros(4)
    now = t
    for j in range(m):
        i = i0 + j
        d = durations[i]
        r = advance(v, now, min(d, until - now), p_cap[i], v_low, v_on, False, circ)
        elapsed[j] = r.elapsed_s
        v_end[j] = r.v_end
        v = r.v_end
        now += r.elapsed_s
        sums[0] += r.harvested_J
        sums[1] += r.consumed_J
        sums[2] += r.leaked_J
        sums[3] += r.clipped_J
        if r.reason == HIT_LOW:
            return j, elapsed, v_end, HIT_LOW, sums
        if r.elapsed_s < d:
            return j, elapsed, v_end, HORIZON, sums
    return m, elapsed, v_end, ALL_DONE, sums


@njit(cache=True, error_model="numpy")
def _unpack(params, seg4):
    """The :class:`Circuit` of a packed ``params`` (slots P_*) and ``seg4`` = (seg_t, seg_p, seg_g, seg_vs) stacked."""
    return Circuit(params[P_CAP], params[P_I_LEAK], params[P_V_MAX], seg4[0], seg4[1], seg4[2], seg4[3],
                   params[P_PERIOD])


@njit(cache=True, error_model="numpy")
def _plain(m):
    """A :class:`Move` as a plain tuple in its field order: numba boxes a NamedTuple for Python several times
    slower than a tuple; the Python side rebuilds it with ``Move._make``."""
    return m.elapsed_s, m.v_end, m.reason, m.harvested_J, m.consumed_J, m.leaked_J, m.clipped_J


@njit(cache=True, error_model="numpy")
def predict_move(v, t, horizon, p_load, v_low, stop_high, params, seg4):
    """:func:`advance` (with v_high = v_on) for a caller in Python, the circuit packed (see P_BOOT_S...).

    Returns the :class:`Move`'s fields as a plain tuple: wrap it with ``Move._make``.
    """
    return _plain(advance(v, t, horizon, p_load, v_low, params[P_V_ON], stop_high, _unpack(params, seg4)))


@njit(cache=True, error_model="numpy")
def predict_units(v, t, i0, durations, p_cap, params, seg4):
    """:func:`run_units` from i0 to the end (v_low = v_off, until_s) for a caller in Python, the circuit packed."""
    return run_units(v, t, i0, durations.shape[0], durations, p_cap, params[P_V_OFF], params[P_V_ON],
                     params[P_UNTIL], _unpack(params, seg4))


@njit(cache=True, error_model="numpy")
def run_cycle(v, t, charge, release, i0, durations, p_cap, params, seg4):
    """One power cycle's predictions in one call: the charge to V_on (if ``charge``), the boot, and
    (if the boot completes at or after ``release``) the units from i0 to the end, as :func:`advance`
    and :func:`run_units` would give them called one after the other.

    ``params`` holds the scalars in the slots P_BOOT_S (boot duration, s), P_BOOT_W (boot draw
    from the capacitor, W), P_V_OFF, P_V_ON (V), P_UNTIL (until_s, s), P_CAP (F), P_I_LEAK (A),
    P_V_MAX (V), P_PERIOD (s), and ``seg4`` = (seg_t, seg_p, seg_g, seg_vs) stacked: packed,
    because a call from Python pays for every argument, once per power cycle.

    Returns (charge result, boot result, units result); the first two are :class:`Move` fields
    as plain tuples (wrap them with ``Move._make``), the units result is :func:`run_units`'s.  A
    part that does not happen is a move of zero elapsed time, and the units result has k = -1
    when the units do not start.
    """
    boot_s, boot_p, v_low, v_on, until = (
        params[P_BOOT_S], params[P_BOOT_W], params[P_V_OFF], params[P_V_ON], params[P_UNTIL])
    circ = _unpack(params, seg4)
    i_end = durations.shape[0]
    none = Move(0.0, v, HORIZON, 0.0, 0.0, 0.0, 0.0)
    rc = none
    if charge:
        rc = advance(v, t, until - t, 0.0, -1.0, v_on, True, circ)
        t += rc.elapsed_s
        v = rc.v_end
        if rc.reason != HIT_HIGH:
            return _plain(rc), _plain(none), (-1, np.empty(0), np.empty(0), HORIZON, np.zeros(4))
    rb = advance(v, t, min(boot_s, until - t), boot_p, v_low, v_on, False, circ)
    t += rb.elapsed_s
    v = rb.v_end
    if rb.reason == HIT_LOW or rb.elapsed_s < boot_s or t < release:
        return _plain(rc), _plain(rb), (-1, np.empty(0), np.empty(0), HORIZON, np.zeros(4))
    return _plain(rc), _plain(rb), run_units(v, t, i0, i_end, durations, p_cap, v_low, v_on, until, circ)


@njit(cache=True, error_model="numpy")
def _units_before(now, until, d, m):
    """How many of m back-to-back units of duration d starting at ``now`` finish by until_s (the SimPy
    model's test: a unit starting at t runs whole if until - t >= d), and the clock after them."""
    k = 0
    while k < m and until - now >= d:
        now += d
        k += 1
    return k, now


@njit(cache=True, error_model="numpy")
def run_units_merged(v, t, i0, i_end, durations, p_mcu, eta, run_end, per_len, per_end, v_low, v_on, until, circ):
    """:func:`run_units` for the oracle, with runs of identical units and periodic patterns merged.

    ``run_end[i]`` is the end (exclusive) of the run of consecutive units with the same duration
    and power as unit i; ``p_mcu[i] / eta`` is unit i's draw from the capacitor.

    * A run of identical units is one move: the capacitor cannot tell m back-to-back units of
      duration d at power p from one activity of m*d at p.  A run costs one :func:`advance` when it
      completes and two more when a brown-out (or until_s) cuts it: one to the start of the unit it
      cuts, one for that unit.
    * A stretch from i of whole repeats of a short pattern of runs (``per_len[i]`` units, up to
      ``per_end[i]``, e.g. four first-channel tiles then four accumulating tiles) is stepped
      pattern by pattern, one move per run, until the capacitor comes back to the same voltage, to
      float resolution, after one pattern; the patterns left then repeat the same trajectory, so
      their time and energy are the last pattern's times their number (never past until_s or a
      change of the source; a pattern that completed cannot brown out when repeated from the same
      state).  A run that would not complete is left to the run-by-run case.

    The clock advances unit by unit, as the SimPy model's does, so that both engines take the same
    decision when until_s falls on the end of a unit.

    ``circ`` is the :class:`Circuit`; times in s, voltages in V, ``p_mcu`` in W.

    Returns a :class:`Merged`: k units completed, ending at time ``t_k`` with V = ``v_k``; when
    ``reason`` is HIT_LOW or HORIZON, unit i0 + k ran ``el_cut`` seconds more and left V = ``v_cut``;
    the energy sums (J) cover everything returned.
    """
    seg_t, period = circ.seg_t, circ.period
    e_h = 0.0
    e_c = 0.0
    e_l = 0.0
    e_x = 0.0
    now = t
    i = i0
    no_pattern_at = -1  # a pattern stopped here on a run that does not complete: take that run below
    while i < i_end:
        e = min(run_end[i], i_end)
        n_per = per_len[i]
        if n_per > 0 and i != no_pattern_at and (min(per_end[i], i_end) - i) // n_per >= 4:
            reps = (min(per_end[i], i_end) - i) // n_per
            done = 0
            while done < reps:
                # one pattern, run by run; a run that would not complete is left to the general case below
                vv, nn, hh, cc, ll, xx = v, now, e_h, e_c, e_l, e_x
                _k, seg_end = harvest_segment(now, seg_t, period)  # the source is constant until then
                j = i
                p_end = i + n_per
                whole = True
                while j < p_end:
                    ej = min(run_end[j], p_end)
                    d = durations[j]
                    k, tt = _units_before(nn, until, d, ej - j)
                    if k < ej - j:
                        whole = False
                        break
                    r = advance(vv, nn, (ej - j) * d, p_mcu[j] / eta, v_low, v_on, False, circ)
                    if r.reason == HIT_LOW:
                        whole = False
                        break
                    nn = tt
                    vv = r.v_end
                    hh += r.harvested_J
                    cc += r.consumed_J
                    ll += r.leaked_J
                    xx += r.clipped_J
                    j = ej
                # steady: back to the same voltage, under the same source all along
                steady = whole and abs(vv - v) <= 1e-15 * abs(vv) and nn <= seg_end
                span = nn - now
                dh, dc, dl, dx = hh - e_h, cc - e_c, ll - e_l, xx - e_x
                v, now, e_h, e_c, e_l, e_x = vv, nn, hh, cc, ll, xx  # the runs that completed
                i = j
                if not whole:
                    no_pattern_at = i
                    break
                done += 1
                if steady and done < reps:  # the patterns left repeat this one: jump over them
                    fit = reps - done
                    room = min(seg_end, until) - now
                    if (fit + 1) * span > room:  # keep a pattern clear of until_s and of the next segment
                        fit = max(int(room / span) - 1, 0)
                    e_h += fit * dh
                    e_c += fit * dc
                    e_l += fit * dl
                    e_x += fit * dx
                    for k in range(i, i + fit * n_per):  # the clock adds unit by unit, as the SimPy model's
                        now += durations[k]
                    i += fit * n_per
                    break
            continue
        d = durations[i]
        p = p_mcu[i] / eta
        # the units of the run that start early enough to finish before until_s (the SimPy model's test,
        # on its clock: a sum unit by unit)
        k, tt = _units_before(now, until, d, e - i)
        if k > 0:
            r = advance(v, now, k * d, p, v_low, v_on, False, circ)
            if r.reason != HIT_LOW:
                now = tt
                v = r.v_end
                e_h += r.harvested_J
                e_c += r.consumed_J
                e_l += r.leaked_J
                e_x += r.clipped_J
                i += k
                if i == e:
                    continue
            else:
                # a brown-out after about j whole units: move to the start of that unit in one step; on the
                # end of a unit to rounding, step every unit like the SimPy model, whose rounding decides
                x = r.elapsed_s / d
                j = min(int(x), k - 1) if abs(x - round(x)) > 1e-9 * x else 0
                if j > 0:
                    r = advance(v, now, j * d, p, v_low, v_on, False, circ)
                    if r.reason != HIT_LOW:
                        v = r.v_end
                        e_h += r.harvested_J
                        e_c += r.consumed_J
                        e_l += r.leaked_J
                        e_x += r.clipped_J
                        now = _units_before(now, until, d, j)[1]
                        i += j
                    # else rounding put the cut in an earlier unit: step from the start of the run
        while i < e:  # unit by unit to the cut (a brown-out or until_s)
            r = advance(v, now, min(d, until - now), p, v_low, v_on, False, circ)
            e_h += r.harvested_J
            e_c += r.consumed_J
            e_l += r.leaked_J
            e_x += r.clipped_J
            if r.reason == HIT_LOW:
                return Merged(i - i0, now, v, r.elapsed_s, r.v_end, HIT_LOW, e_h, e_c, e_l, e_x)
            if r.elapsed_s < d:
                return Merged(i - i0, now, v, r.elapsed_s, r.v_end, HORIZON, e_h, e_c, e_l, e_x)
            now += r.elapsed_s
            v = r.v_end
            i += 1
    return Merged(i_end - i0, now, v, 0.0, v, ALL_DONE, e_h, e_c, e_l, e_x)


#: the phases of :func:`dispatch_unit`, in order: the voltage measurement, the LPM3 wait for the start
#: threshold, the wake-up from it, the unit
PH_MEASURE, PH_WAIT, PH_WAKE, PH_UNIT = range(4)
#: floats :func:`dispatch_unit` fills
N_DISPATCH_OUT = 13


@njit(cache=True, error_model="numpy")
def known_after(k, drop):
    """energy_aware's lower bound on V (V) after a unit started at V >= ``k`` (V) whose
    :func:`aidi.sim.workload.known_drops` entry is ``drop`` = 2 E_need / C (V^2): sqrt(k^2 - drop), and 0
    (unknown) when that is not positive.  A lower bound of the real V for any source power >= 0."""
    x = k * k - drop
    return math.sqrt(x) if x > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def dispatch_unit(v, t, until, d, p_unit, v_start, known, drop, costs, eta, v_low, circ, out):
    """One unit under energy_aware dispatch, from (t, v).

    ``known`` (V) is the MCU's lower bound on V (0: unknown).  If ``known`` >= ``v_start`` the unit starts
    at once, unmeasured.  Otherwise the MCU measures V (``costs[0]`` s at ``costs[1]`` W); if V < ``v_start``
    it sleeps in LPM3 (``costs[2]`` W) until V reaches it (a comparator interrupt) and wakes up (``costs[3]``
    s at ``costs[4]`` W); then it runs the unit (``d`` s at ``p_unit`` W).  Powers are the MCU's, drawn from
    the capacitor through the converter (/ ``eta``); a brown-out at ``v_low`` or until_s stops the sequence.

    The bound after the unit is :func:`known_after` of the voltage it started from as the
    MCU knows it (``known`` unmeasured, the measured V, or ``v_start`` after a wait) and ``drop`` = 2 E_need / C
    (V^2, :func:`aidi.sim.workload.known_drops`): E_need covers the unit and its leakage whatever the source
    gives, so it is a lower bound of the real V.

    Fills ``out`` (N_DISPATCH_OUT floats): elapsed (s) of each phase (PH_*) in out[0:4], the voltage after it
    in out[4:8] (a phase not run: 0 s, the voltage before it), (harvested, consumed, leaked, clipped) (J) over
    everything in out[8:12], and the MCU's bound on V after the unit (V; 0 if it did not complete) in out[12].
    Returns (the last phase run, why it ended: ALL_DONE (the unit completed), HIT_LOW (brown-out) or HORIZON
    (until_s), whether it waited, whether it measured).
    """
    for k in range(4):
        out[k] = 0.0
        out[4 + k] = v
    out[8] = out[9] = out[10] = out[11] = out[12] = 0.0
    waited = False
    measured = known < v_start
    ref = known  # the voltage the MCU knows the unit starts from (at least)
    phase = PH_MEASURE if measured else PH_UNIT
    while phase <= PH_UNIT:
        out[4 + phase] = v
        if phase == PH_WAIT:
            if v >= v_start:
                ref = v
                out[4 + PH_WAKE] = v
                phase = PH_UNIT
                continue
            waited = True
            ref = v_start
            r = advance(v, t, until - t, costs[2] / eta, v_low, v_start, True, circ)
            dur = math.inf
        else:
            if phase == PH_MEASURE:
                dur, p = costs[0], costs[1]
            elif phase == PH_WAKE:
                dur, p = costs[3], costs[4]
            else:
                dur, p = d, p_unit
            r = advance(v, t, min(dur, until - t), p / eta, v_low, v_start, False, circ)
        out[phase] = r.elapsed_s
        out[4 + phase] = r.v_end
        out[8] += r.harvested_J
        out[9] += r.consumed_J
        out[10] += r.leaked_J
        out[11] += r.clipped_J
        t += r.elapsed_s
        v = r.v_end
        if r.reason == HIT_LOW:
            return phase, HIT_LOW, waited, measured
        if phase == PH_WAIT:
            if r.reason != HIT_HIGH:
                return phase, HORIZON, waited, measured
        elif r.elapsed_s < dur:
            return phase, HORIZON, waited, measured
        phase += 1
    out[12] = known_after(ref, drop)
    return PH_UNIT, ALL_DONE, waited, measured


@njit(cache=True, error_model="numpy")
def predict_dispatch(v, t, d, p_unit, v_start, known, drop, costs, eta, params, seg4, out):
    """:func:`dispatch_unit` (v_low = v_off, until_s) for a caller in Python, the circuit packed."""
    return dispatch_unit(v, t, params[P_UNTIL], d, p_unit, v_start, known, drop, costs, eta, params[P_V_OFF],
                         _unpack(params, seg4), out)
