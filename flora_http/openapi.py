"""``/api-docs/openapi.json``: an OpenAPI 3.0 document built from the app's own routes.

Every URL rule the app serves under ``/api`` appears, core and plugin routes
alike: :func:`document` walks ``app.url_map`` and takes each endpoint's
metadata from :data:`ROUTE_DOCS` (flora's own routes and the bundled plugins)
or from the view function's ``__flora_openapi__`` attribute (set with the
:func:`doc` decorator, available to any plugin); anything else gets a generic
entry. ``servers`` is ``[{"url": "/api"}]`` and paths are relative to it, as in
flora. ``/api-docs`` (and flora's ``/api-docs/scalar``) is a plain HTML list of
the routes, with no external assets.
"""

from __future__ import annotations

import html
import re

from flask import Blueprint, Response, current_app, jsonify

from flora_core import __version__

API_PREFIX = "/api"
_CONVERTER = re.compile(r"<(?:[a-zA-Z_][a-zA-Z0-9_]*(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


def doc(**meta):
    """Attach OpenAPI metadata to a view: ``summary``, ``tags``, ``query``, ``request`` (a JSON body's schema),
    ``form`` (a multipart body's), ``responses``, ``auth``."""

    def wrap(view):
        view.__flora_openapi__ = meta
        return view

    return wrap


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(item: dict) -> dict:
    return {"type": "array", "items": item}


_PATH_FILE = {
    "type": "object",
    "required": ["path", "contents"],
    "properties": {"path": {"type": "string"}, "contents": {"type": "string"}},
}

SCHEMAS = {
    "Error": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}},
    "DeploymentFile": _PATH_FILE,
    "DeploymentSourceMapFile": _PATH_FILE,
    "DeploymentRequest": {
        "type": "object",
        "required": ["entry"],
        "properties": {
            "entry": {"type": "string"},
            "files": {"type": "array", "items": _ref("DeploymentFile"), "nullable": True},
            "bundle": {"type": "string", "nullable": True},
            "source_map": {"allOf": [_ref("DeploymentSourceMapFile")], "nullable": True},
            "build_id": {"type": "string", "nullable": True},
        },
    },
    "DeploymentResponse": {
        "type": "object",
        "required": ["guild_id", "created_at", "updated_at", "entry"],
        "properties": {
            "guild_id": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "entry": {"type": "string"},
            "files": _array(_ref("DeploymentFile")),
            "source_map": _ref("DeploymentSourceMapFile"),
            "bundle": {"type": "string"},
        },
    },
    "DeploymentActor": {
        "type": "object",
        "required": ["actor_type"],
        "properties": {
            "user_id": {"type": "string"},
            "username": {"type": "string"},
            "actor_type": {"type": "string", "enum": ["session", "token", "system"]},
        },
    },
    "DeploymentChangeSummary": {
        "type": "object",
        "required": ["added_files", "removed_files", "modified_files"],
        "properties": {k: _array({"type": "string"}) for k in ("added_files", "removed_files", "modified_files")},
    },
    "DeploymentRevisionResponse": {
        "type": "object",
        "required": ["id", "guild_id", "entry", "status", "deployed_at", "deploy_source", "actor"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "guild_id": {"type": "string"},
            "entry": {"type": "string"},
            "status": {"type": "string", "enum": ["success", "failed"]},
            "deployed_at": {"type": "string", "format": "date-time"},
            "deploy_source": {"type": "string", "enum": ["cli", "webui", "bootstrap", "api", "unknown"]},
            "actor": _ref("DeploymentActor"),
            "error_message": {"type": "string"},
            "build_id": {"type": "string"},
            "base_revision_id": {"type": "string", "format": "uuid"},
            "change_summary": _ref("DeploymentChangeSummary"),
            "files": _array(_ref("DeploymentFile")),
            "source_map": _ref("DeploymentSourceMapFile"),
            "bundle": {"type": "string"},
        },
    },
    "LogEntry": {
        "type": "object",
        "required": ["timestamp", "level", "target", "guild_id", "message"],
        "properties": {
            "timestamp": {"type": "integer", "format": "int64"},
            "level": {"type": "string"},
            "target": {"type": "string"},
            "guild_id": {"type": "string", "nullable": True},
            "message": {"type": "string"},
        },
    },
    "CreateBuildRequest": {
        "type": "object",
        "required": ["guild_id", "entry", "project_zip"],
        "properties": {
            "guild_id": {"type": "string"},
            "entry": {"type": "string"},
            "project_zip": {
                "type": "string",
                "format": "binary",
                "description": "the project as a zip: at most 1,000 files, 10 MiB a file, "
                "200 MiB in all; no symbolic links, absolute or `..` paths",
            },
        },
    },
    "CreateBuildResponse": {
        "type": "object",
        "required": ["build_id", "status"],
        "properties": {"build_id": {"type": "string", "format": "uuid"}, "status": {"type": "string", "enum": ["queued"]}},
    },
    "BuildArtifactResponse": {
        "type": "object",
        "required": ["bundle", "source_map"],
        "properties": {"bundle": {"type": "string"}, "source_map": {"type": "string"}},
    },
    "BuildStatusResponse": {
        "type": "object",
        "required": ["build_id", "guild_id", "entry", "status", "logs"],
        "properties": {
            "build_id": {"type": "string"},
            "guild_id": {"type": "string"},
            "entry": {"type": "string"},
            "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "logs": _array({"type": "string"}),
            "started_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": "string", "format": "date-time"},
            "artifact": _ref("BuildArtifactResponse"),
            "error": {"type": "string"},
        },
    },
    "MetricsSnapshot": {
        "type": "object",
        "description": "flora's fields; null where the runtime does not expose the number",
        "properties": {
            k: {"type": "integer", "format": "int64", "nullable": True, "minimum": 0}
            for k in (
                "isolate_count",
                "dispatch_total",
                "dispatch_errors",
                "timeout_errors",
                "oom_errors",
                "isolate_restarts",
                "runtime_restarts",
                "migration_success",
                "migration_timeout",
                "migration_quiesce_duration_us",
                "avg_latency_us",
                "p50_latency_us",
                "p95_latency_us",
                "p99_latency_us",
            )
        },
    },
    "KvStore": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "guild_id": {"type": "string"},
            "store_name": {"type": "string"},
            "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
        },
    },
    "SecretSummary": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "allowed_hosts": _array({"type": "string"})},
    },
}

_BOOL_Q = {"type": "boolean"}
_JSON = "application/json"

# endpoint -> metadata (flora's own routes and the bundled plugins)
ROUTE_DOCS: dict[str, dict] = {
    "flora_api.health": {
        "summary": "Health check",
        "tags": ["health"],
        "auth": None,
        "responses": {"200": {"text/plain": {"type": "string"}}},
    },
    "flora_api.health_nodes": {
        "summary": "Runtime nodes and the owner of each shard",
        "tags": ["health"],
        "auth": None,
        "responses": {"200": {"application/json": {"type": "object"}}},
    },
    "flora_api.plugins": {
        "summary": "Installed plugins",
        "tags": ["plugins"],
        "responses": {"200": {_JSON: _array({"type": "object"})}},
    },
    "flora_api.list_deployments": {
        "summary": "List deployments the caller may manage",
        "tags": ["deployments"],
        "responses": {"200": {_JSON: _array(_ref("DeploymentResponse"))}},
    },
    "flora_api.get_deployment": {
        "summary": "Current deployment (latest successful revision)",
        "tags": ["deployments"],
        "query": {"include_bundle": _BOOL_Q},
        "responses": {"200": {_JSON: _ref("DeploymentResponse")}, "404": None},
    },
    "flora_api.upsert_deployment": {
        "summary": "Deploy a script",
        "tags": ["deployments"],
        "headers": {"x-flora-deploy-source": {"type": "string", "enum": ["cli", "webui", "bootstrap", "api", "unknown"]}},
        "request": _ref("DeploymentRequest"),
        "responses": {"200": {_JSON: _ref("DeploymentResponse")}, "415": None, "422": None, "503": None},
    },
    "flora_api.deployment_history": {
        "summary": "Deployment revisions, newest first (keyset paging)",
        "tags": ["deployments"],
        "query": {
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
            "cursor_deployed_at": {"type": "string", "format": "date-time"},
            "cursor_id": {"type": "string", "format": "uuid"},
            "include_bundle": _BOOL_Q,
        },
        "responses": {"200": {_JSON: _array(_ref("DeploymentRevisionResponse"))}},
    },
    "flora_api.deployment_revision": {
        "summary": "One deployment revision",
        "tags": ["deployments"],
        "path": {"revision_id": {"type": "string", "format": "uuid"}},
        "query": {"include_bundle": _BOOL_Q},
        "responses": {"200": {_JSON: _ref("DeploymentRevisionResponse")}, "404": None},
    },
    "flora_api.deployment_rollback": {
        "summary": "Roll back to a successful revision",
        "tags": ["deployments"],
        "path": {"revision_id": {"type": "string", "format": "uuid"}},
        "headers": {"x-flora-deploy-source": {"type": "string", "enum": ["cli", "webui", "bootstrap", "api", "unknown"]}},
        "responses": {"200": {_JSON: _ref("DeploymentRevisionResponse")}, "503": None},
    },
    "flora_api.create_build": {
        "summary": "Build a project uploaded as a zip (multipart); follow it with its logs",
        "tags": ["builds"],
        "form": _ref("CreateBuildRequest"),
        "responses": {"200": {_JSON: _ref("CreateBuildResponse")}, "413": None, "429": None, "503": None},
    },
    "flora_api.get_build": {
        "summary": "A build's status, logs and artifact",
        "tags": ["builds"],
        "responses": {"200": {_JSON: _ref("BuildStatusResponse")}, "404": None},
    },
    "flora_api.build_logs": {
        "summary": "A build's log (Server-Sent Events: `event: log` per line, replayed then live, "
        'then `event: done` with `{"status"}`)',
        "tags": ["builds"],
        "streaming": True,
        "responses": {"200": {"text/event-stream": {"type": "string"}}, "404": None},
    },
    "flora_api.guild_logs": {
        "summary": "Recent guild log entries (oldest first)",
        "tags": ["logs"],
        "query": {"limit": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 100}},
        "responses": {"200": {_JSON: _array(_ref("LogEntry"))}},
    },
    "flora_api.guild_log_stream": {
        "summary": "Live guild log entries (Server-Sent Events, `data: <LogEntry>`)",
        "tags": ["logs"],
        "streaming": True,
        "responses": {"200": {"text/event-stream": {"type": "string"}}},
    },
    "flora_api.metrics_text": {
        "summary": "Prometheus metrics",
        "tags": ["metrics"],
        "auth": "operator",
        "responses": {"200": {"text/plain": {"type": "string"}}},
    },
    "flora_api.metrics_json": {
        "summary": "Metrics snapshot",
        "tags": ["metrics"],
        "auth": "operator",
        "responses": {"200": {_JSON: _ref("MetricsSnapshot")}},
    },
    "flora_kv.create_store": {
        "summary": "Create a KV store",
        "tags": ["kv"],
        "request": {
            "type": "object",
            "required": ["guild_id", "store_name"],
            "properties": {"guild_id": {"type": "string"}, "store_name": {"type": "string"}},
        },
    },
    "flora_kv.list_stores": {
        "summary": "List a guild's KV stores",
        "tags": ["kv"],
        "query": {"guild_id": {"type": "string"}},
        "required_query": ["guild_id"],
        "responses": {"200": {_JSON: _array(_ref("KvStore"))}},
    },
    "flora_kv.delete_store": {"summary": "Delete a KV store and its data", "tags": ["kv"]},
    "flora_kv.get_value": {"summary": "Read a KV value", "tags": ["kv"]},
    "flora_kv.set_value": {
        "summary": "Write a KV value",
        "tags": ["kv"],
        "request": {
            "type": "object",
            "required": ["value"],
            "properties": {"value": {"type": "string"}, "expiration": {"type": "integer", "nullable": True}, "metadata": {}},
        },
    },
    "flora_kv.delete_value": {"summary": "Delete a KV value", "tags": ["kv"]},
    "flora_kv.list_keys": {
        "summary": "List KV keys",
        "tags": ["kv"],
        "query": {"prefix": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}, "cursor": {"type": "string"}},
    },
    "flora_secrets.list_guild_secrets": {
        "summary": "List a guild's secrets (names and hosts only)",
        "tags": ["secrets"],
        "responses": {"200": {_JSON: _array(_ref("SecretSummary"))}},
    },
    "flora_secrets.put_guild_secret": {
        "summary": "Create or replace a secret",
        "tags": ["secrets"],
        "request": {
            "type": "object",
            "required": ["value"],
            "properties": {"value": {"type": "string"}, "allowed_hosts": _array({"type": "string"})},
        },
        "responses": {"200": {_JSON: _ref("SecretSummary")}},
    },
    "flora_secrets.delete_guild_secret": {"summary": "Delete a secret", "tags": ["secrets"]},
}

_ERROR = {_JSON: _ref("Error")}
_STATUS_TEXT = {
    "400": "Bad request",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "Not found",
    "413": "Payload too large",
    "415": "Unsupported media type",
    "422": "Unprocessable entity",
    "429": "Too many requests",
    "500": "Internal server error",
    "503": "Runtime unavailable",
}


def openapi_path(rule: str) -> str:
    """``/api/kv/<g>/<path:key>`` → ``/kv/{g}/{key}`` (relative to the ``/api`` server)."""
    path = _CONVERTER.sub(r"{\1}", rule)
    return path[len(API_PREFIX) :] or "/"


def _media(content: dict | None) -> dict:
    return {ctype: ({"schema": schema} if schema is not None else {}) for ctype, schema in (content or {}).items()}


def _operation(rule, method: str, meta: dict) -> dict:
    generic = not meta
    tag = rule.endpoint.split(".")[0]
    op: dict = {
        "operationId": f"{rule.endpoint}.{method.lower()}",
        "summary": meta.get("summary") or f"{method} {openapi_path(rule.rule)} ({rule.endpoint})",
        "tags": meta.get("tags") or [tag],
    }
    params = []
    for name in sorted(rule.arguments):
        schema = (meta.get("path") or {}).get(name)
        if schema is None:
            schema = {"type": "string", "pattern": "^[0-9]{1,20}$"} if name == "guild_id" else {"type": "string"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name, schema in (meta.get("query") or {}).items():
        params.append({"name": name, "in": "query", "required": name in meta.get("required_query", ()), "schema": schema})
    for name, schema in (meta.get("headers") or {}).items():
        params.append({"name": name, "in": "header", "required": False, "schema": schema})
    if params:
        op["parameters"] = params
    if meta.get("request") is not None:
        op["requestBody"] = {"required": True, "content": {_JSON: {"schema": meta["request"]}}}
    elif meta.get("form") is not None:
        op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": meta["form"]}}}
    elif generic and method in ("POST", "PUT", "PATCH"):
        op["requestBody"] = {"required": False, "content": {_JSON: {"schema": {}}}}
    responses: dict = {}
    for code, content in (meta.get("responses") or {"200": {_JSON: {}}}).items():
        if content is None:
            responses[code] = {"description": _STATUS_TEXT.get(code, "Error"), "content": _media(_ERROR)}
        else:
            responses[code] = {
                "description": "OK" if code.startswith("2") else _STATUS_TEXT.get(code, ""),
                "content": _media(content),
            }
    auth = meta.get("auth", "token")
    for code in (
        (["400"] if rule.arguments or meta.get("query") or meta.get("request") or meta.get("form") else [])
        + (["401", "403"] if auth else [])
        + ["500"]
    ):
        responses.setdefault(code, {"description": _STATUS_TEXT[code], "content": _media(_ERROR)})
    op["responses"] = responses
    if auth == "operator":
        op["security"] = [{"operatorToken": []}]
    elif auth:
        op["security"] = [{"apiToken": []}]
    else:
        op["security"] = []
    if meta.get("streaming"):
        op["x-flora-streaming"] = True
    return op


def document(app) -> dict:
    paths: dict = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not (rule.rule == API_PREFIX or rule.rule.startswith(API_PREFIX + "/")):
            continue
        view = app.view_functions.get(rule.endpoint)
        meta = getattr(view, "__flora_openapi__", None) or ROUTE_DOCS.get(rule.endpoint) or {}
        item = paths.setdefault(openapi_path(rule.rule), {})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            item[method.lower()] = _operation(rule, method, meta)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "flora",
            "version": __version__,
            "description": "flora's HTTP API (Python runtime, compatible with uwu/flora)",
        },
        "servers": [{"url": API_PREFIX}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`<token_id>.<secret>` from `flora tokens create`. A token may be limited to "
                    "guilds (`--guild-id`, 403 `this token does not reach this guild` elsewhere) and to a scope "
                    "(`--scope`): `read` allows GET, `deploy` also deploys and rollbacks, `admin` (the default) "
                    "everything, e.g. KV and secrets writes (403 `this token's scope is read; this needs deploy`)",
                },
                "operatorToken": {"type": "http", "scheme": "bearer", "description": "API_OPERATOR_SECRET"},
            },
        },
    }


def _html_page(spec: dict) -> str:
    rows = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            rows.append(
                f"<tr><td class=m>{method.upper()}</td><td><code>{html.escape(API_PREFIX + path)}</code></td>"
                f"<td>{html.escape(op['summary'])}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>flora API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:.2em .8em;border-bottom:1px solid #ddd}"
        ".m{font-weight:bold}</style></head><body>"
        f"<h1>flora API {html.escape(spec['info']['version'])}</h1>"
        '<p>Machine-readable: <a href="/api-docs/openapi.json">/api-docs/openapi.json</a></p>'
        "<table><tr><th>Method</th><th>Path</th><th>Summary</th></tr>" + "".join(rows) + "</table></body></html>"
    )


def build_blueprint() -> Blueprint:
    bp = Blueprint("flora_docs", __name__, url_prefix="/api-docs")

    @bp.get("/openapi.json")
    def openapi_json():
        return jsonify(document(current_app))

    @bp.get("/")
    @bp.get("/scalar")
    def docs_page():
        return Response(_html_page(document(current_app)), mimetype="text/html")

    return bp
