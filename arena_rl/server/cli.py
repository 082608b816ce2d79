"""The server's commands: ``python -m arena_rl serve [overrides]`` and ``... admin ...``.

``serve`` is a Hydra app over ``conf/serve.yaml`` (like ``scripts/tournament.py``: overrides,
``--cfg job``, ``hydra.run.dir=...``). ``admin`` talks to a running server's admin routes with
the admin token, given directly or read from the manifest directory's ``admin.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from arena_rl.scenarios.specs import CONF_DIR


def serve() -> int:
    """Serve the live Arena API; Hydra reads the overrides from ``sys.argv``."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from arena_rl.server.config import ServeConfigError, serve_settings
    from arena_rl.server.runtime import ArenaRuntime
    from arena_rl.server.serving import serve_forever

    @hydra.main(config_path=str(CONF_DIR), config_name="serve", version_base="1.3")
    def app(cfg: DictConfig) -> None:
        out = Path(HydraConfig.get().runtime.output_dir)
        try:
            settings = serve_settings(cfg, output_dir=out)
            runtime = ArenaRuntime(settings)
        except (ServeConfigError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        try:
            serve_forever(runtime, settings.host, settings.port)
        except OSError as exc:  # e.g. the port is taken
            print(f"error: cannot serve on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
            sys.exit(2)

    app()
    return 0


def _admin_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m arena_rl admin", description="Control a running arena_rl Arena server."
    )
    parser.add_argument(
        "command",
        choices=["state", "pause", "resume", "complete", "advance", "reset-breaker", "log"],
    )
    parser.add_argument(
        "--manifest-dir", type=Path, help="read url and admin token from admin.json"
    )
    parser.add_argument("--url", help="server URL, e.g. http://127.0.0.1:7860")
    parser.add_argument("--token", help="admin token (adm_...)")
    parser.add_argument("--days", type=float, default=1.0, help="advance: simulated days")
    parser.add_argument("--variant", help="reset-breaker: the variant id (var_...)")
    return parser


def admin(argv: Sequence[str]) -> int:
    """Run one admin command; print the response data as JSON; exit code 0 on success."""
    args = _admin_parser().parse_args(argv)
    url, token = args.url, args.token
    if args.manifest_dir is not None:
        try:
            saved = json.loads((args.manifest_dir / "admin.json").read_text())
        except (OSError, ValueError) as exc:
            print(f"error: cannot read {args.manifest_dir / 'admin.json'}: {exc}", file=sys.stderr)
            return 2
        url, token = url or saved["apiUrl"], token or saved["adminToken"]
    if not url or not token:
        print("error: give --manifest-dir, or both --url and --token", file=sys.stderr)
        return 2
    method, path, body = "POST", f"/api/arena/admin/{args.command}", None
    if args.command == "state":
        method = "GET"
    elif args.command == "advance":
        body = {"days": args.days}
    elif args.command == "reset-breaker":
        if not args.variant:
            print("error: reset-breaker needs --variant", file=sys.stderr)
            return 2
        body = {"variantId": args.variant}
    return _call(url, token, method, path, body)


def _call(url: str, token: str, method: str, path: str, body: dict[str, Any] | None) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, json=body, headers=headers, timeout=120
        )
        payload = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not response.is_success:
        print(f"error: HTTP {response.status_code}: {payload.get('error')}", file=sys.stderr)
        return 1
    print(json.dumps(payload.get("data"), indent=2))
    return 0
