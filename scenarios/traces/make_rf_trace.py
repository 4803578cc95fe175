"""Regenerate rf_powercast.csv: an RF-like intermittent harvesting trace (seeded).

Bursts of received power when a 915 MHz transmitter is in view (lognormal around
1.5 mW, durations exponential with mean 0.4 s), separated by gaps with a weak
floor (~20 uW, mean 1.2 s), 10 minutes, written only at change points.
"""

from pathlib import Path

import numpy as np


def main(seed: int = 7, duration_s: float = 600.0) -> None:
    rng = np.random.default_rng(seed)
    t, rows = 0.0, []
    while t < duration_s:
        on = rng.exponential(0.4)
        rows.append((t, float(rng.lognormal(np.log(1.5e-3), 0.5))))
        t += on
        off = rng.exponential(1.2)
        rows.append((t, float(rng.uniform(5e-6, 40e-6))))
        t += off
    out = Path(__file__).with_name("rf_powercast.csv")
    with out.open("w") as f:
        f.write("time_s,power_W\n")
        for ti, p in rows:
            f.write(f"{ti:.6f},{p:.6e}\n")


if __name__ == "__main__":
    main()
