"""flora's own API routes, registered as a plugin like any third-party blueprint."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from flora_core.storage import repo

from . import builds, deployments, errors, logstream, metrics, oauth, revisions
from .app import state
from .auth import require_bot_in_guild, require_guild_access, require_identity

LOG_LIMIT_DEFAULT = 100
LOG_LIMIT_MAX = 1000


def _bool_arg(name: str) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise errors.bad_request(f"Failed to deserialize query string: `{name}` must be true or false")


def _limit_arg() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return LOG_LIMIT_DEFAULT
    if not raw.isdigit():
        raise errors.bad_request("Failed to deserialize query string: `limit` must be a non-negative integer")
    return min(int(raw), LOG_LIMIT_MAX)


def build_blueprint() -> Blueprint:
    bp = Blueprint("flora_api", __name__, url_prefix="/api")

    @bp.get("/health")
    def health():
        return Response("ok", mimetype="text/plain")

    @bp.get("/health/nodes")
    def health_nodes():
        return metrics.nodes_response(state())

    oauth.register_routes(bp)  # /auth/*, /tokens*, /guilds

    @bp.get("/plugins")
    def plugins():
        require_identity()
        return jsonify(state().plugins.describe())

    @bp.get("/deployments")
    def list_deployments():
        require_identity()
        visible = []
        for row in repo.list_deployments(state().db):
            try:
                require_guild_access(row["guild_id"])
            except errors.ApiError as exc:
                if exc.status in (400, 403):  # flora skips guilds the caller may not manage
                    continue
                raise
            visible.append(deployments.deployment_response(row))
        return jsonify(visible)

    @bp.get("/deployments/<guild_id>")
    def get_deployment(guild_id: str):
        require_guild_access(guild_id)
        include_bundle = _bool_arg("include_bundle")
        revision = repo.latest_success(state().db, guild_id)
        if revision is None:
            raise errors.not_found("deployment not found")
        return jsonify(deployments.revision_as_deployment(revision, include_bundle))

    @bp.post("/deployments/<guild_id>")
    def upsert_deployment(guild_id: str):
        identity = require_guild_access(guild_id)
        req = deployments.parse_request(deployments.json_body())
        deployments.validate(req)
        require_bot_in_guild(guild_id)  # a script for a guild the bot is not in would never run
        source = deployments.deploy_source()
        return jsonify(deployments.deploy(state(), guild_id, req, source, identity))

    @bp.get("/deployments/<guild_id>/history")
    def deployment_history(guild_id: str):
        require_guild_access(guild_id)
        return jsonify(revisions.history(state(), guild_id, _bool_arg("include_bundle")))

    @bp.get("/deployments/<guild_id>/revisions/<revision_id>")
    def deployment_revision(guild_id: str, revision_id: str):
        require_guild_access(guild_id)
        return jsonify(revisions.get_revision(state(), guild_id, revision_id, _bool_arg("include_bundle")))

    @bp.post("/deployments/<guild_id>/rollback/<revision_id>")
    def deployment_rollback(guild_id: str, revision_id: str):
        identity = require_guild_access(guild_id)
        require_bot_in_guild(guild_id)
        return jsonify(revisions.rollback(state(), guild_id, revision_id, identity))

    @bp.post("/builds")
    def create_build():
        require_identity()
        guild_id, entry, data = builds.form_fields()
        require_guild_access(guild_id)
        return jsonify(builds.create(state(), guild_id, entry, data))

    @bp.get("/builds/<build_id>")
    def get_build(build_id: str):
        require_identity()
        row = builds.lookup(build_id)
        require_guild_access(row["guild_id"])
        return jsonify(builds.status_response(state().db, row))

    @bp.get("/builds/<build_id>/logs")
    def build_logs(build_id: str):
        require_identity()
        row = builds.lookup(build_id)
        require_guild_access(row["guild_id"])
        return builds.stream_response(state().db, build_id)

    @bp.get("/logs/<guild_id>")
    def guild_logs(guild_id: str):
        require_guild_access(guild_id)
        limit = _limit_arg()
        rows = repo.recent_logs(state().db, guild_id, limit) if limit else []
        return jsonify(
            [
                {
                    "timestamp": int(r["timestamp"]),
                    "level": r["level"],
                    "target": r["target"],
                    "guild_id": r["guild_id"],
                    "message": r["message"],
                }
                for r in rows
            ]
        )

    @bp.get("/logs/<guild_id>/stream")
    def guild_log_stream(guild_id: str):
        require_guild_access(guild_id)
        return logstream.stream_response(state().db, guild_id)

    @bp.get("/metrics")
    def metrics_text():
        metrics.require_operator(state().config)
        return metrics.prometheus_response(state())

    @bp.get("/metrics/json")
    def metrics_json():
        metrics.require_operator(state().config)
        return metrics.json_response(state())

    return bp
