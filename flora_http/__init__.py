"""flora's HTTP API: a Flask app whose routes all come from plugins (see :mod:`flora_http.app`).

Nothing is imported here eagerly: ``python -m flora_http.serve`` imports this
package before its own first line, and gevent's monkey-patching must come
before flask, sockets and threads are imported.
"""

__all__ = ["create_app", "state", "FloraState", "MAX_BODY_BYTES"]


def __getattr__(name):
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
