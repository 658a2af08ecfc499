"""The API's own routes as a plugin (entry point ``api_core``), registered like any plugin's blueprint.

Kept apart from ``core_routes`` so that loading plugins (the CLI does, for its commands) never imports Flask.
"""

from __future__ import annotations

from flora_core import hookimpl


@hookimpl
def flora_register_blueprints(register):
    from .core_routes import build_blueprint

    register(build_blueprint())
