"""flora's KV routes (reference §3.3, rows 20–26) as a blueprint under ``/api/kv``.

Every route needs an identity and access to the guild (``flora_http.auth``).
Route 27, ``POST /api/kv/export/{guild_id}`` (a server-side RocksDB
checkpoint nobody could download), is not implemented: it answers 404.

Differences from flora, all on failures:

=========================================  ==============================  =====================================
case                                       flora                           here
=========================================  ==============================  =====================================
invalid key, value, name, size, option     500 ``Internal server error``   400 ``Bad request: <flora's message>``
store not found                            500                             404 ``Resource not found: store not found``
duplicate store (POST /stores)             500 (unique violation)          409 ``Conflict: store already exists``
store or guild quota exceeded              500                             413 ``Payload too large: kv … quota exceeded``
write rate limit                           500                             429 ``Too many requests: …`` + Retry-After
backend misconfigured or unreachable       500                             503 ``Service unavailable: <why>``
``limit`` negative or not a number         400 (query string)              400 (same)
=========================================  ==============================  =====================================

``GET /api/kv/{g}/{s}/{key}`` for a missing key answers 200 ``{"value": null}``
as flora did (its CLI prints ``Key '<key>' not found`` from that). Keys may
contain ``/`` (sent percent-encoded or not).
"""

from __future__ import annotations

import logging
import math

from flask import Blueprint, Response, current_app, jsonify, request

from flora_http import errors
from flora_http.app import state
from flora_http.auth import require_guild_access
from flora_http.deployments import json_body

from .errors import KvError
from .limits import MAX_SAFE_INTEGER
from .service import KvService, service_for

log = logging.getLogger("flora.kv")

PREFIXES = {
    400: "Bad request",
    404: "Resource not found",
    409: "Conflict",
    413: "Payload too large",
    429: "Too many requests",
    503: "Service unavailable",
}


def _service() -> KvService:
    st = state()
    return service_for(current_app.extensions.setdefault("flora_kv", {}), st.db, st.config, st.plugins)


def _empty() -> Response:
    """200 with an empty body and no content type, like axum's ``()``."""
    resp = Response(status=200)
    resp.headers.pop("Content-Type", None)
    return resp


def _string_field(body: dict, field: str) -> str:
    if field not in body:
        raise errors.unprocessable(f"missing field `{field}`")
    if not isinstance(body[field], str):
        raise errors.unprocessable(f"{field}: expected a string")
    return body[field]


def _object_body() -> dict:
    body = json_body()
    if not isinstance(body, dict):
        raise errors.unprocessable("expected a JSON object")
    return body


def _query_limit() -> int | None:
    raw = request.args.get("limit")
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) > 2**32 - 1:
        raise errors.bad_request("Failed to deserialize query string: `limit` must be a non-negative integer")
    return int(raw)


def build_blueprint() -> Blueprint:
    bp = Blueprint("flora_kv", __name__, url_prefix="/api/kv")

    @bp.errorhandler(KvError)
    def _kv_error(exc: KvError):
        status = exc.status
        if status >= 500:
            log.error("kv request failed: %s", exc.message)
        resp = jsonify(message=f"{PREFIXES.get(status, 'Error')}: {exc.message}")
        resp.status_code = status
        if exc.retry_after is not None:
            resp.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return resp

    @bp.post("/stores")
    def create_store():
        body = _object_body()
        guild_id, store_name = _string_field(body, "guild_id"), _string_field(body, "store_name")
        require_guild_access(guild_id)
        return jsonify(store=_service().create_store(guild_id, store_name))

    @bp.get("/stores")
    def list_stores():
        guild_id = request.args.get("guild_id")
        if guild_id is None:
            raise errors.bad_request("Failed to deserialize query string: missing field `guild_id`")
        require_guild_access(guild_id)
        return jsonify(_service().list_stores(guild_id))

    @bp.delete("/stores/<guild_id>/<store_name>")
    def delete_store(guild_id: str, store_name: str):
        require_guild_access(guild_id)
        _service().delete_store(guild_id, store_name)
        return _empty()

    @bp.get("/<guild_id>/<store_name>/<path:key>")
    def get_value(guild_id: str, store_name: str, key: str):
        require_guild_access(guild_id)
        return jsonify(value=_service().get(guild_id, store_name, key))

    @bp.put("/<guild_id>/<store_name>/<path:key>")
    def set_value(guild_id: str, store_name: str, key: str):
        require_guild_access(guild_id)
        body = _object_body()
        value = _string_field(body, "value")
        expiration = body.get("expiration")
        if expiration is not None and (
            isinstance(expiration, bool) or not isinstance(expiration, int) or abs(expiration) > MAX_SAFE_INTEGER
        ):
            raise errors.unprocessable("expiration: expected an integer (unix seconds) or null")
        _service().set(guild_id, store_name, key, value, expiration, body.get("metadata"))
        return jsonify(success=True)

    @bp.delete("/<guild_id>/<store_name>/<path:key>")
    def delete_value(guild_id: str, store_name: str, key: str):
        require_guild_access(guild_id)
        _service().delete(guild_id, store_name, key)
        return _empty()

    @bp.post("/export/<guild_id>")
    def export(guild_id: str):
        identity = require_guild_access(guild_id)
        from .export import export_guild

        actor = getattr(identity, "user_id", None) or getattr(identity, "token_id", None)
        backup_id = export_guild(_service(), state().config.data_path, guild_id, actor)
        return jsonify(backup_id=backup_id)

    @bp.get("/<guild_id>/<store_name>")
    def list_keys(guild_id: str, store_name: str):
        require_guild_access(guild_id)
        limit = _query_limit()
        return jsonify(_service().list(guild_id, store_name, request.args.get("prefix"), limit, request.args.get("cursor")))

    return bp
