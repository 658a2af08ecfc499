"""``python -m flora_dev.emulator --port 8765 [--seed]``: run the emulator standalone."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from . import seed_dev_world
from .server import EmulatorServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m flora_dev.emulator", description="Local Discord API v10 + gateway emulator.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    p.add_argument("--token", default="emu-token", help="bot token the emulator accepts")
    p.add_argument("--seed", action="store_true", help='create guild "flora dev" (#general, #bot-commands, alice=admin, bob)')
    p.add_argument("--heartbeat-ms", type=int, default=41250)
    p.add_argument("--shards", type=int, default=1, help="shards recommended by /gateway/bot")
    p.add_argument("--ack-timeout", type=float, default=3.0, help="seconds to answer an interaction (<= 0 disables)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    server = EmulatorServer(
        args.token,
        heartbeat_interval_ms=args.heartbeat_ms,
        recommended_shards=args.shards,
        interaction_ack_timeout=args.ack_timeout if args.ack_timeout > 0 else None,
    )
    await server.start(args.host, args.port)
    seeded = seed_dev_world(server) if args.seed else None
    print(f"flora emulator listening on {server.url}", flush=True)
    print(f"  api base : {server.api_base}", flush=True)
    print(f"  gateway  : {server.ws_url}", flush=True)
    print(f"  token    : {args.token}   application id: {server.application_id}", flush=True)
    print(f"  control  : {server.url}/_emu/state", flush=True)
    if seeded:
        print(
            "  seeded   : "
            + json.dumps(
                {
                    "guild_id": seeded["guild"]["id"],
                    "channels": {k: v["id"] for k, v in seeded["channels"].items()},
                    "users": {k: v["id"] for k, v in seeded["users"].items()},
                }
            ),
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
