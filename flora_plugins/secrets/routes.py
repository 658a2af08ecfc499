"""HTTP routes 17-19 of flora's API: list, set and delete a guild's secrets (never their values)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from flora_http import errors
from flora_http.app import state
from flora_http.auth import require_guild_access
from flora_http.deployments import json_body

from .store import SecretsError, box_from_config, delete_secret, list_secrets, put_secret


def _box():
    try:
        return box_from_config(state().config)
    except SecretsError as exc:
        raise errors.unavailable(str(exc)) from None


def parse_put_body(body) -> tuple[str, list[str]]:
    """``{value: string, allowed_hosts?: string[] | null}`` (422 for another shape, like flora's serde)."""
    if not isinstance(body, dict):
        raise errors.unprocessable("expected a JSON object")
    if "value" not in body:
        raise errors.unprocessable("missing field `value`")
    if not isinstance(body["value"], str):
        raise errors.unprocessable("value: expected a string")
    hosts = body.get("allowed_hosts")
    if hosts is None:
        hosts = []
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise errors.unprocessable("allowed_hosts: expected an array of strings")
    return body["value"], hosts


def build_blueprint() -> Blueprint:
    bp = Blueprint("flora_secrets", __name__, url_prefix="/api/secrets")

    @bp.get("/<guild_id>")
    def list_guild_secrets(guild_id: str):
        require_guild_access(guild_id)
        _box()
        return jsonify(list_secrets(state().db, guild_id))

    @bp.put("/<guild_id>/<name>")
    def put_guild_secret(guild_id: str, name: str):
        require_guild_access(guild_id)
        box = _box()
        value, hosts = parse_put_body(json_body())
        return jsonify(put_secret(state().db, box, guild_id, name, value, hosts))

    @bp.delete("/<guild_id>/<name>")
    def delete_guild_secret(guild_id: str, name: str):
        require_guild_access(guild_id)
        _box()
        delete_secret(state().db, guild_id, name)
        return jsonify({"deleted": True})  # also when there was no such secret, as in flora

    return bp
