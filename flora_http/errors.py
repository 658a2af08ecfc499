"""Errors as values at the HTTP boundary: every failure answers ``{"message": ...}``.

Messages carry flora's prefixes (``Bad request: …``, ``Unauthorized: …``,
``Forbidden: …``, ``Resource not found: …``); a 500 says only
``Internal server error`` and the detail goes to the log.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("flora.api")

# Werkzeug's own errors (routing, body limit, …) rendered in flora's words.
_HTTP_MESSAGES = {
    400: "Bad request: {description}",
    401: "Unauthorized: Login required",
    403: "Forbidden: {description}",
    404: "Resource not found: no route for this path",
    405: "Method not allowed",
    408: "Request timeout",
    413: "Payload too large: the request body exceeds the {limit} limit",
    415: "Unsupported media type: Expected request with `Content-Type: application/json`",
}


class ApiError(Exception):
    """An error answered to the client as ``status`` and ``{"message": message}``."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, f"Bad request: {message}")


def unauthorized(message: str) -> ApiError:
    return ApiError(401, f"Unauthorized: {message}")


def forbidden(message: str) -> ApiError:
    return ApiError(403, f"Forbidden: {message}")


def not_found(message: str) -> ApiError:
    return ApiError(404, f"Resource not found: {message}")


def unprocessable(message: str) -> ApiError:
    """A JSON body of the wrong shape (axum's 422 for a failed deserialization)."""
    return ApiError(422, f"Unprocessable entity: Failed to deserialize the JSON body into the target type: {message}")


def unavailable(message: str) -> ApiError:
    return ApiError(503, message)


def runtime_unavailable(exc: Exception) -> ApiError:
    """503 for a bus request that did not reach a runtime (``flora_core.bus.RuntimeUnavailable``); when no
    node owns the guild's shard the message says just that."""
    from flora_core.bus import NoRuntimeNode

    return ApiError(503, str(exc) if isinstance(exc, NoRuntimeNode) else f"runtime unavailable: {exc}")


def internal() -> ApiError:
    return ApiError(500, "Internal server error")


def _body_limit_text(app: Flask) -> str:
    limit = app.config.get("MAX_CONTENT_LENGTH") or 0
    return f"{limit // (1024 * 1024)} MiB" if limit and limit % (1024 * 1024) == 0 else f"{limit} bytes"


def install_error_handlers(app: Flask) -> None:
    """Turn every error (ours, Werkzeug's, unexpected ones) into a JSON body."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        resp = jsonify(message=exc.message)
        resp.status_code = exc.status
        resp.headers.update(exc.headers)
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = exc.code or 500
        template = _HTTP_MESSAGES.get(code)
        if template is None:
            message = "Internal server error" if code >= 500 else f"{exc.name}: {exc.description}"
        else:
            message = template.format(description=exc.description, limit=_body_limit_text(app))
        resp = jsonify(message=message)
        resp.status_code = code
        if code == 405 and getattr(exc, "valid_methods", None):
            resp.headers["Allow"] = ", ".join(exc.valid_methods)
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        state = app.extensions.get("flora")
        why = state.db.unavailable(exc) if state is not None else None
        if why is not None:  # the database is away: say so (503), the operator's log has one line
            log.error("database unavailable: %s", why)
            resp = jsonify(message=f"database unavailable: {why}")
            resp.status_code = 503
            return resp
        log.exception("unhandled error in %s", type(exc).__name__)
        resp = jsonify(message="Internal server error")
        resp.status_code = 500
        return resp
