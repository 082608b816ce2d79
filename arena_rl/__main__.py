"""``python -m arena_rl serve [hydra overrides]`` and ``python -m arena_rl admin ...``."""

from arena_rl.server.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
