"""Calibration: each behavioural effect the population model claims, simulated, beside its
published range.

Usage: ``python scripts/calibrate.py [--users 20000] [--seeds 8] [--preset default]``

For every row of :data:`arena_rl.scenarios.gamification.calibration.EFFECTS` (the same table as
docs/calibration.md) runs the matching experiment once per seed on twins arms of ``--users``
users each, and prints the mean with a 95 % t-interval over seeds, the published range, and
whether the estimate lies inside it (or, for direction-only rows, on the published side). The
last column is the status the doc records; a mismatch is flagged with ``!``.
"""

from __future__ import annotations

import argparse
import math
import time

from arena_rl.scenarios.gamification.calibration import EFFECTS, Estimate, Setup, estimate


def _fmt(x: float) -> str:
    """A bound or estimate, with infinities as ±inf."""
    return f"{x:+.3g}" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def _row(est: Estimate) -> str:
    e = est.effect
    flag = " " if est.status == e.status else "!"
    published = f"[{_fmt(e.low)}, {_fmt(e.high)}]"
    return (
        f"{e.key:<20} {est.mean:>+8.3f} [{est.low:+.3f}, {est.high:+.3f}]"
        f"  {published:<16} {est.status:<9} {flag}{e.status:<9} {e.unit}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000, help="users per arm")
    parser.add_argument("--seeds", type=int, default=8, help="seeds (replications)")
    parser.add_argument("--preset", default="default", help="population preset")
    args = parser.parse_args()
    setup = Setup.default(users_per_arm=args.users, preset=args.preset)
    seeds = range(args.seeds)
    print(f"preset {args.preset}, {args.users:,} users per arm, {args.seeds} seeds, 95 % CI")
    header = f"{'effect':<20} {'simulated [95 % CI]':>28}  {'published':<16} {'status':<9}"
    print(f"{header}  {'doc':<9} unit")
    start, mismatches = time.perf_counter(), 0
    for effect in EFFECTS:
        est = estimate(effect, setup, seeds)
        mismatches += est.status != effect.status
        print(_row(est))
    print("\nsources:")
    for effect in EFFECTS:
        print(f"  {effect.key:<20} {effect.published} ({effect.source})")
    print(f"\n{len(EFFECTS)} effects in {time.perf_counter() - start:.1f} s; "
          f"{mismatches} differ from the status docs/calibration.md records")  # fmt: skip


if __name__ == "__main__":
    main()
