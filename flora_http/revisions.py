"""Deployment history, single revisions and rollback (flora §3.3 rows 14–16, §6.6).

History is keyset-paged exactly as flora: ``limit`` (default 25, clamped to
1..100), and a cursor made of both ``cursor_deployed_at`` (RFC 3339) and
``cursor_id`` (UUID) of the previous page's last item; rows strictly before
``(deployed_at, id)`` in ``deployed_at DESC, id DESC`` order come next.

Rollback redeploys a ``success`` revision of the same guild through the
runtime like any deploy and records a new revision (``deploy_source`` from
``x-flora-deploy-source``, ``unknown``/absent → ``api``).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from flask import request

from flora_core.bundler import BUNDLER_VERSION, BundleError
from flora_core.bus import RuntimeUnavailable
from flora_core.storage import repo

from . import errors
from .auth import Identity
from .deployments import change_summary, deploy_source

log = logging.getLogger("flora.api.deployments")

HISTORY_LIMIT_DEFAULT = 25
HISTORY_LIMIT_MAX = 100


def revision_response(rev: dict, include_bundle: bool) -> dict:
    """flora's DeploymentRevisionResponse; ``None`` fields are omitted."""
    actor = {"user_id": rev.get("actor_user_id"), "username": rev.get("actor_username"), "actor_type": rev["actor_type"]}
    out = {
        "id": rev["id"],
        "guild_id": rev["guild_id"],
        "entry": rev["entry"],
        "status": rev["status"],
        "deployed_at": rev["deployed_at"],
        "deploy_source": rev["deploy_source"],
        "actor": {k: v for k, v in actor.items() if v is not None},
        "error_message": rev.get("error_message"),
        "build_id": rev.get("build_id"),
        "base_revision_id": rev.get("base_revision_id"),
        "change_summary": rev.get("change_summary"),
        "files": rev.get("files"),
        "source_map": rev.get("source_map"),
        "bundle": rev["bundle"] if include_bundle and repo.bundle_trusted(rev) else None,
    }
    return {k: v for k, v in out.items() if v is not None}


def parse_uuid(raw: str, message: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except (ValueError, AttributeError, TypeError):
        raise errors.bad_request(message) from None


def _history_limit() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return HISTORY_LIMIT_DEFAULT
    try:
        value = int(raw)
    except ValueError:
        raise errors.bad_request("Failed to deserialize query string: `limit` must be an integer") from None
    return max(1, min(HISTORY_LIMIT_MAX, value))


def _cursor_timestamp(raw: str) -> str:
    """An RFC 3339 timestamp, normalised to the stored form (UTC, microseconds, ``+00:00``)."""
    for candidate in (raw, raw.replace(" ", "+")):  # an unencoded `+` arrives as a space
        try:
            parsed = dt.datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            break
        return parsed.astimezone(dt.UTC).isoformat(timespec="microseconds")
    raise errors.bad_request("Invalid cursor_deployed_at: expected an RFC 3339 timestamp")


def history_cursor() -> tuple[str, str] | None:
    at = request.args.get("cursor_deployed_at")
    rid = request.args.get("cursor_id")
    if at is None and rid is None:
        return None
    if at is None or rid is None:
        raise errors.bad_request("`cursor_deployed_at` and `cursor_id` must be provided together")
    return _cursor_timestamp(at), parse_uuid(rid, "Invalid cursor_id")


def history(st, guild_id: str, include_bundle: bool) -> list[dict]:
    limit = _history_limit()
    cursor = history_cursor()
    return [revision_response(r, include_bundle) for r in repo.revision_history(st.db, guild_id, limit, cursor)]


def get_revision(st, guild_id: str, revision_id: str, include_bundle: bool) -> dict:
    rid = parse_uuid(revision_id, "Invalid revision ID")
    rev = repo.get_revision(st.db, guild_id, rid)
    if rev is None:
        raise errors.not_found("Deployment revision not found")
    return revision_response(rev, include_bundle)


def rollback_source() -> str:
    """The deploy-source header, validated as for a deploy; absent or ``unknown`` means ``api`` (flora)."""
    value = deploy_source()
    return "api" if value == "unknown" else value


def rollback(st, guild_id: str, revision_id: str, identity: Identity) -> dict:
    """Redeploy a successful revision; answers the new revision (without bundle)."""
    rid = parse_uuid(revision_id, "Invalid revision ID")
    source = rollback_source()
    target = repo.get_revision(st.db, guild_id, rid)
    if target is None or target["status"] != "success" or not target.get("bundle"):
        raise errors.bad_request("Rollback target must be a successful revision")
    try:
        bundle = repo.verified_bundle(st.db, target, st.bundler.bundle, BUNDLER_VERSION)
    except (BundleError, repo.LegacyBundle) as exc:
        raise errors.bad_request(f"Rollback target cannot be rebuilt: {exc}") from None
    previous = repo.latest_success(st.db, guild_id)
    record = dict(
        entry=target["entry"],
        bundle=bundle,
        bundler_version=BUNDLER_VERSION,
        deploy_source=source,
        actor_type=identity.kind,
        actor_user_id=identity.user_id,
        files=target.get("files"),
        source_map=target.get("source_map"),
        base_revision_id=previous["id"] if previous else None,
        change_summary=change_summary(target.get("files"), previous.get("files") if previous else None),
    )
    try:
        ok, error = st.runtime.load(guild_id, bundle)
    except RuntimeUnavailable as exc:
        raise errors.runtime_unavailable(exc) from None
    if not ok:
        error = error or "unknown error"
        repo.record_revision(st.db, guild_id, status="failed", error_message=error, **record)
        raise errors.bad_request(f"rollback failed: {error}")
    try:
        rev = repo.record_revision(st.db, guild_id, status="success", **record)
    except Exception:
        log.exception("guild %s: the runtime loaded the rollback but storing it failed; restoring", guild_id)
        try:
            st.runtime.restore(guild_id)
        except Exception as exc:  # noqa: BLE001 - already answering 500
            log.error("guild %s: restoring the previous deployment failed: %s", guild_id, exc)
        raise errors.internal() from None
    return revision_response(rev, include_bundle=False)
