"""The command line: ``python -m arena_rl tournament|serve|admin ...``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: python -m arena_rl tournament [hydra overrides ...]
       python -m arena_rl serve [hydra overrides ...]
       python -m arena_rl admin {state,pause,resume,complete,advance,reset-breaker,log} ...
       python -m arena_rl live replay LOG [--tournament N] [--speed DAYS_PER_S] [--port P]
       python -m arena_rl personas {validate,population,study} ...

  tournament  seeded tournaments of agents (conf/config.yaml; e.g. '+agents=[ucb,pid]'), as
              scripts/tournament.py runs them

  serve   serve the live Arena API from the simulator (conf/serve.yaml; e.g. variants=2
          time.mode=manual port=0); strategy tokens land in <manifest_dir>/<variant>.json
  admin   control a running server: see `python -m arena_rl admin --help`
  live replay  replay a finished tournament's event log into the live page (docs/live.md)
  personas  check a persona file, turn it into a population preset, or run a focus-group
            study of an economy change: see `python -m arena_rl personas --help`
            (docs/personas.md)
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("tournament", "serve"):
        sys.argv = [f"{sys.argv[0]} {args[0]}", *args[1:]]  # Hydra reads its overrides here
    if args and args[0] == "tournament":
        from arena_rl.tournament.app import main as tournament

        tournament()
        return 0
    if args and args[0] == "serve":
        from arena_rl.server.cli import serve

        return serve()
    if args and args[0] == "admin":
        from arena_rl.server.cli import admin

        return admin(args[1:])
    if args[:2] == ["live", "replay"]:
        from arena_rl.live.replay import main as replay

        return replay(args[2:])
    if args and args[0] == "personas":
        from arena_rl.personas.cli import main as personas

        return personas(args[1:])
    print(USAGE, file=sys.stderr)
    return 0 if args[:1] in (["-h"], ["--help"]) else 2
