"""The API app factory: a Flask app whose routes all come from plugins.

This process never imports V8 (mini-racer deadlocks under gevent): whatever
needs an isolate is asked of the runtime over the runtime bus (``flora_core/bus.py``).
State lives in ``app.extensions["flora"]`` (a :class:`FloraState`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from flask import Flask, current_app

from flora_core.bundler import Bundler
from flora_core.bus import BusClient, open_bus
from flora_core.config import Config, load_config
from flora_core.plugins import Plugins
from flora_core.storage import Database, open_database

from .cache import Cache, open_api_cache
from .errors import install_error_handlers

MAX_BODY_BYTES = 8 * 1024 * 1024  # flora's DefaultBodyLimit
_BUILD_LOGS = re.compile(r"^/api/builds/[^/]+/logs/?$")


@dataclass
class FloraState:
    config: Config
    plugins: Plugins
    db: Database
    runtime: BusClient
    bundler: Bundler
    cache: Cache  # shared by the API processes of this data folder (flora_http/cache.py)


def state() -> FloraState:
    """The flora state of the app serving the current request."""
    return current_app.extensions["flora"]


def create_app(
    config: Config | None = None,
    plugins: Plugins | None = None,
    db: Database | None = None,
    runtime=None,
    cache: Cache | None = None,
) -> Flask:
    """Build the API app; every route is a blueprint registered by a plugin (``api_core`` for flora's own)."""
    config = config if config is not None else load_config()
    cache = cache if cache is not None else open_api_cache(config)  # ConfigError if REDIS_URL lacks redis-py
    plugins = plugins if plugins is not None else Plugins()
    db = db if db is not None else open_database(config, plugins)
    runtime = runtime if runtime is not None else open_bus(config, plugins).client()
    bundler = Bundler.from_config(config)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # keep flora's field order
    app.url_map.strict_slashes = False  # `/api/deployments` and `/api/deployments/` both answer
    app.extensions["flora"] = FloraState(config=config, plugins=plugins, db=db, runtime=runtime, bundler=bundler, cache=cache)
    install_error_handlers(app)

    @app.after_request
    def _request_id(response):
        response.headers["X-Request-ID"] = str(uuid.uuid4())
        return response

    for blueprint in plugins.blueprints():
        app.register_blueprint(blueprint)

    from .openapi import build_blueprint as docs_blueprint  # /api-docs: built from the routes registered above

    app.register_blueprint(docs_blueprint())
    return app


def with_request_timeout(app, seconds: int):
    """flora's whole-request timeout (10 s → 408), for the gevent servers; 0 turns it off.

    Log streams (``…/stream``, a build's ``…/logs``, which ends with its build) are long-lived by design and exempt. Needs gevent (the API's servers).
    """
    if not seconds:
        return app
    import gevent

    def timed(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.endswith("/stream") or _BUILD_LOGS.match(path):
            return app(environ, start_response)
        started = []

        def tracking_start_response(status, headers, exc_info=None):
            started.append(True)
            return start_response(status, headers, exc_info)

        try:
            with gevent.Timeout(seconds):
                return list(app(environ, tracking_start_response))
        except gevent.Timeout:
            if started:
                raise
            body = b'{"message": "Request timed out"}'
            start_response("408 Request Timeout", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

    return timed


def create_served_app():
    """The app as the gevent servers run it (``flora_http.serve`` and gunicorn): with the request timeout."""
    app = create_app()
    config = app.extensions["flora"].config
    return with_request_timeout(app, config.api_request_timeout_secs)
