"""Process views of one tournament's event log: per arm, the users' directly-follows graph
(PNG and CSV), their journey variants (churned and retained) and the time to their first
7-day streak (CSV and PNG). Needs the ``process`` extra (pm4py).

    python scripts/process_views.py LOG_FOLDER [--out DIR]

writes into DIR (default ``LOG_FOLDER/process_views``) and prints each file it wrote. Another
scenario's log names its own journey events, e.g. pricing:
``--start 'prospect arrived' --goal subscribed --churned lost``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arena_rl.eventlog.process_views import JourneyMarks, write_process_views


def main(argv: list[str] | None = None) -> int:
    default = JourneyMarks()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path, help="a tournament's event log folder")
    parser.add_argument("--out", type=Path, help="where to write (default: LOG/process_views)")
    parser.add_argument("--start", default=default.start, help="the event a journey starts at")
    parser.add_argument("--goal", default=default.goal, help="the event whose first is timed")
    parser.add_argument("--churned", default=default.churned, help="the event that is churn")
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else args.log / "process_views"
    marks = JourneyMarks(args.start, args.goal, args.churned)
    try:
        written = write_process_views(args.log, out, marks)
    except (ImportError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
