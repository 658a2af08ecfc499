"""gunicorn settings for the API in production:

    gunicorn -c flora_http/gunicorn.conf.py

The gevent worker monkey-patches each worker before it imports the app. The
bind address comes from flora's config (API_ADDRESS / API_PORT, or
``[api]`` in config.toml); pass ``-w N`` for more worker processes.
"""

import sys

from flora_core.config import ConfigError, load_config, require_redis_client

try:
    _config = load_config()
    require_redis_client(_config)  # the app's cache needs it: one line here, not a traceback per worker
except ConfigError as _exc:
    print(f"flora api: {_exc}", file=sys.stderr)
    sys.exit(2)

_host = f"[{_config.api_address}]" if ":" in _config.api_address else _config.api_address

wsgi_app = "flora_http.app:create_served_app()"
worker_class = "gevent"
bind = [f"{_host}:{_config.api_port}"]
accesslog = "-"
# SIGTERM (systemd's stop): workers get this long to finish their requests, then they are killed; an open
# log stream (/api/logs/{guild_id}/stream) never finishes on its own, and gunicorn's default is 30 s
graceful_timeout = 2


def post_fork(server, worker):
    """psycopg2 must yield to gevent in each worker when Postgres is in use (needs psycogreen)."""
    from gevent import monkey

    monkey.patch_all()  # the gevent worker does this too; do it before psycopg2 is imported
    try:
        from psycogreen.gevent import patch_psycopg
    except ImportError:
        return
    patch_psycopg()
