"""The API app factory: a Flask app whose routes all come from plugins.

This process never imports V8 (mini-racer deadlocks under gevent): whatever
needs an isolate is asked of the runtime through :class:`RuntimeClient`.
State lives in ``app.extensions["flora"]`` (a :class:`FloraState`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from flora_core.bundler import Bundler
from flora_core.config import Config, load_config
from flora_core.control import RuntimeClient
from flora_core.plugins import Plugins
from flora_core.storage import Database, open_database

from .errors import install_error_handlers

MAX_BODY_BYTES = 8 * 1024 * 1024  # flora's DefaultBodyLimit


@dataclass
class FloraState:
    config: Config
    plugins: Plugins
    db: Database
    runtime: Any  # RuntimeClient or anything with load()/restore()
    bundler: Bundler


def state() -> FloraState:
    """The flora state of the app serving the current request."""
    return current_app.extensions["flora"]


def create_app(config: Config | None = None, plugins: Plugins | None = None, db: Database | None = None, runtime=None) -> Flask:
    """Build the API app; every route is a blueprint registered by a plugin (``api_core`` for flora's own)."""
    config = config if config is not None else load_config()
    plugins = plugins if plugins is not None else Plugins()
    db = db if db is not None else open_database(config, plugins)
    runtime = runtime if runtime is not None else RuntimeClient(config.control_socket)
    bundler = Bundler(config.data_path / "cache" / "bundles", config.max_bundle_files, config.max_bundle_total_bytes)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # keep flora's field order
    app.url_map.strict_slashes = False  # `/api/deployments` and `/api/deployments/` both answer
    app.extensions["flora"] = FloraState(config=config, plugins=plugins, db=db, runtime=runtime, bundler=bundler)
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

