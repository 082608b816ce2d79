"""Replay a policy over a finished run's decision points and estimate what it would earn.

    python scripts/replay.py log=outputs/2026-12-03/10-15-00 policy=ucb
    python scripts/replay.py log=<MLflow run id> policy=pid +policy_params.setpoint=25
    python scripts/replay.py log=outputs/.../eventlog/00000 policy=rule tracking.enabled=false

The app itself is :mod:`arena_rl.eventlog.app`; ``docs/replay.md`` explains what it prints.
"""

from arena_rl.eventlog.app import main

if __name__ == "__main__":
    main()
