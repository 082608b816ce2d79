"""The live Arena API served from the simulator, for agents written with the TendedLoop SDK.

``python -m arena_rl serve`` starts it (``docs/server.md``); in code, build an
:class:`ArenaRuntime` from :class:`ServeSettings` and run it with :func:`serve_in_thread`.
"""

from arena_rl.server.app import create_app
from arena_rl.server.runtime import ArenaRuntime
from arena_rl.server.serving import RunningServer, serve_in_thread
from arena_rl.server.settings import ServeSettings

__all__ = ["ArenaRuntime", "RunningServer", "ServeSettings", "create_app", "serve_in_thread"]
