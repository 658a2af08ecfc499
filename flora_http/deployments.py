"""Deploying a guild's script: flora's DeploymentRequest rules and the deploy sequence.

Sequence (flora's, ``handlers/deployments/upsert.rs``): validate → pick the
bundle (given as-is, or the files bundled here) → load it into the runtime
first → record the revision. A failed load is recorded as a ``failed``
revision; a successful one becomes the guild's deployment in the same
transaction. If the runtime cannot be reached nothing is recorded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from flask import request

from flora_core.bundler import BUNDLER_VERSION, BundleError
from flora_core.bus import RuntimeUnavailable
from flora_core.storage import repo

from . import errors
from .auth import Identity

log = logging.getLogger("flora.api.deployments")

DEPLOY_SOURCE_HEADER = "x-flora-deploy-source"


@dataclass
class DeploymentRequest:
    entry: str
    files: list[dict] | None
    bundle: str | None
    source_map: dict | None
    build_id: str | None


def _path_contents(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise errors.unprocessable(f"{where}: expected an object with `path` and `contents`")
    for field in ("path", "contents"):
        if field not in value:
            raise errors.unprocessable(f"{where}: missing field `{field}`")
        if not isinstance(value[field], str):
            raise errors.unprocessable(f"{where}.{field}: expected a string")
    return {"path": value["path"], "contents": value["contents"]}


def _optional_str(body: dict, field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise errors.unprocessable(f"{field}: expected a string or null")
    return value


def json_body():
    """The request's JSON body; 415 without a JSON content type, 400 when malformed."""
    if not request.is_json:
        raise errors.ApiError(415, "Unsupported media type: Expected request with `Content-Type: application/json`")
    raw = request.get_data(cache=False)  # 413 beyond MAX_CONTENT_LENGTH
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"Failed to parse the request body as JSON: {exc}") from None


def parse_request(body) -> DeploymentRequest:
    """Shape check (422, like a failed serde deserialization); values are checked by :func:`validate`."""
    if not isinstance(body, dict):
        raise errors.unprocessable("expected a JSON object")
    if "entry" not in body:
        raise errors.unprocessable("missing field `entry`")
    if not isinstance(body["entry"], str):
        raise errors.unprocessable("entry: expected a string")
    files = body.get("files")
    if files is not None:
        if not isinstance(files, list):
            raise errors.unprocessable("files: expected an array or null")
        files = [_path_contents(f, f"files[{i}]") for i, f in enumerate(files)]
    source_map = body.get("source_map")
    if source_map is not None:
        source_map = _path_contents(source_map, "source_map")
    return DeploymentRequest(
        entry=body["entry"],
        files=files,
        bundle=_optional_str(body, "bundle"),
        source_map=source_map,
        build_id=_optional_str(body, "build_id"),
    )


def validate(req: DeploymentRequest) -> None:
    """flora's ``validate_request``, with its literal messages."""
    if not req.entry.strip():
        raise errors.bad_request("`entry` must not be empty")
    if req.files is not None:
        if not req.files:
            raise errors.bad_request("`files` must not be empty")
        for f in req.files:
            if not f["path"].strip():
                raise errors.bad_request("`files[].path` must not be empty")
            if not f["contents"].strip():
                raise errors.bad_request("`files[].contents` must not be empty")
    elif req.bundle is None:
        raise errors.bad_request("Either `files` or `bundle` is required")
    # flora only checks a blank bundle when no files come with it, then would
    # load the blank bundle; a blank bundle is refused either way here.
    if req.bundle is not None and not req.bundle.strip():
        raise errors.bad_request("`bundle` must not be empty")
    if req.source_map is not None:
        if not req.source_map["path"].strip():
            raise errors.bad_request("`source_map.path` must not be empty")
        if not req.source_map["contents"].strip():
            raise errors.bad_request("`source_map.contents` must not be empty")
        if not req.source_map["path"].endswith(".map"):
            raise errors.bad_request("`source_map.path` must end with `.map`")


def deploy_source() -> str:
    """``x-flora-deploy-source``: absent → ``unknown``; must be ASCII and one of flora's values."""
    value = request.headers.get(DEPLOY_SOURCE_HEADER)
    if value is None:
        return "unknown"
    if not value.isascii():
        raise errors.bad_request(f"`{DEPLOY_SOURCE_HEADER}` must be ASCII")
    if value not in repo.DEPLOY_SOURCES:
        raise errors.bad_request(f"`{DEPLOY_SOURCE_HEADER}` must be one of {'|'.join(repo.DEPLOY_SOURCES)}")
    return value


def change_summary(files: list[dict] | None, base_files: list[dict] | None) -> dict | None:
    """Files added / removed / modified by path against the previous successful revision."""
    if files is None and base_files is None:
        return None
    new = {f["path"]: f["contents"] for f in files or []}
    old = {f["path"]: f["contents"] for f in base_files or []}
    return {
        "added_files": sorted(p for p in new if p not in old),
        "removed_files": sorted(p for p in old if p not in new),
        "modified_files": sorted(p for p in new if p in old and new[p] != old[p]),
    }


def deployment_response(row: dict) -> dict:
    """DeploymentResponse as answered by POST (guild_id, created_at, updated_at, entry)."""
    return {"guild_id": row["guild_id"], "created_at": row["created_at"], "updated_at": row["updated_at"], "entry": row["entry"]}


def revision_as_deployment(rev: dict, include_bundle: bool) -> dict:
    """DeploymentResponse for GET: the latest successful revision (created_at = updated_at = deployed_at)."""
    out = {"guild_id": rev["guild_id"], "created_at": rev["deployed_at"], "updated_at": rev["deployed_at"], "entry": rev["entry"]}
    if rev.get("files") is not None:
        out["files"] = rev["files"]
    if rev.get("source_map") is not None:
        out["source_map"] = rev["source_map"]
    if include_bundle and repo.bundle_trusted(rev):  # an older bundler's output may hold files it should not have read
        out["bundle"] = rev["bundle"]
    return out


def deploy(st, guild_id: str, req: DeploymentRequest, source: str, identity: Identity) -> dict:
    """Run the deploy sequence; returns the DeploymentResponse or raises :class:`errors.ApiError`."""
    bundler_version: int | None = BUNDLER_VERSION
    if req.bundle is not None:
        source_map = req.source_map
        if len(req.bundle.encode("utf-8")) > st.config.max_script_bytes:
            bundle = req.bundle  # recorded below as a failed deploy, as flora does (never bundled: never served)
            bundler_version = None
        else:
            try:
                bundle = st.bundler.script_from_bundle(req.bundle, st.config.max_script_bytes)
            except BundleError as exc:
                raise errors.bad_request(f"invalid deployment bundle: {exc}") from None
    else:
        try:
            bundle = st.bundler.bundle(req.entry, req.files)
        except BundleError as exc:
            raise errors.bad_request(f"invalid deployment files: {exc}") from None
        source_map = None  # flora discards the request's map when it bundles itself

    previous = repo.latest_success(st.db, guild_id)
    record = dict(
        entry=req.entry,
        bundle=bundle,
        deploy_source=source,
        actor_type=identity.kind,
        actor_user_id=identity.user_id,
        files=req.files,
        source_map=source_map,
        base_revision_id=previous["id"] if previous else None,
        change_summary=change_summary(req.files, previous.get("files") if previous else None),
        bundler_version=bundler_version,
    )

    limit = st.config.max_script_bytes
    if len(bundle.encode("utf-8")) > limit:
        # flora finds this inside the runtime load, so it is a failed deploy like any other.
        ok, error = False, f"script exceeds size limit (max {limit} bytes)"
    else:
        try:
            ok, error = st.runtime.load(guild_id, bundle)
        except RuntimeUnavailable as exc:
            raise errors.runtime_unavailable(exc) from None

    if not ok:
        error = error or "unknown error"
        repo.record_revision(st.db, guild_id, status="failed", error_message=error, **record)
        raise errors.bad_request(f"deployment failed: {error}")

    try:
        repo.record_revision(st.db, guild_id, status="success", **record)
        row = repo.get_deployment(st.db, guild_id)
    except Exception:
        log.exception("guild %s: the runtime loaded the deployment but storing it failed; restoring", guild_id)
        try:
            st.runtime.restore(guild_id)
        except Exception as exc:  # noqa: BLE001 - already answering 500
            log.error("guild %s: restoring the previous deployment failed: %s", guild_id, exc)
        raise errors.internal() from None
    return deployment_response(row)
