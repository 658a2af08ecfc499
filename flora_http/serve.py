"""``python -m flora_http.serve``: the API process, served by gevent.

gevent's monkey-patching must come before any other import, and belongs to
this process alone (never to a process that hosts V8 or the asyncio gateway).
"""

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from flora_core.config import ConfigError, load_config, require_redis_client  # noqa: E402
from flora_core.plugins import PluginError  # noqa: E402
from flora_core.storage import StorageError  # noqa: E402

log = logging.getLogger("flora.api")


def patch_psycopg() -> None:
    """Make psycopg2 cooperative under gevent when Postgres is in use (needs psycogreen)."""
    try:
        from psycogreen.gevent import patch_psycopg as _patch
    except ImportError:
        return
    _patch()


def _log_level(raw: str) -> int:
    level = logging.getLevelName(str(raw).split(",")[0].split("=")[-1].strip().upper())
    return level if isinstance(level, int) else logging.INFO


def main() -> int:
    try:
        config = load_config()
        require_redis_client(config)
    except ConfigError as exc:
        print(f"flora api: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=_log_level(config.log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.database_url and not config.database_url.startswith("sqlite"):
        patch_psycopg()

    from flora_http.app import create_app, with_request_timeout

    try:
        app = create_app(config)
    except ConfigError as exc:
        print(f"flora api: {exc}", file=sys.stderr)
        return 2
    except (StorageError, PluginError) as exc:
        print(f"flora api: {exc}", file=sys.stderr)
        return 1

    server = WSGIServer(
        (config.api_address, config.api_port),
        with_request_timeout(app, config.api_request_timeout_secs),
        log=logging.getLogger("flora.api.access"),
        error_log=logging.getLogger("flora.api.errors"),
    )
    try:
        server.start()
    except OSError as exc:
        print(f"flora api: cannot listen on {config.api_address}:{config.api_port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    host, port = server.address[:2]
    log.info("flora api listening on http://%s:%s/api", host, port)

    def stop(signum):
        log.info("flora api stopping (signal %s)", signum)
        server.stop(timeout=5)

    gevent.signal_handler(signal.SIGTERM, stop, signal.SIGTERM)
    gevent.signal_handler(signal.SIGINT, stop, signal.SIGINT)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
