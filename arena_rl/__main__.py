"""``python -m arena_rl tournament|serve|admin ...``: see :mod:`arena_rl.cli`."""

from arena_rl.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
