"""``/api-docs/openapi.json`` and ``/api-docs``: built from the app's registered routes.

The schemathesis run is skipped when schemathesis is not installed (it is not a
runtime dependency); offline, in process, against a real SQLite database and the
runtime stand-in, with a valid token: no operation may answer 5xx.
"""

from __future__ import annotations

import re

import pytest
from flask import Blueprint
from test_http_api import (  # noqa: F401 - fixtures
    GUILD,
    auth,
    client,
    config,
    db,
    make_config,
    plugins,
    runtime,
    shared_data_dir,
    token,
)

from flora_core.plugins import Plugins
from flora_http import create_app
from flora_http.openapi import doc


def _rules(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or rule.rule == "/api":
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)[len("/api") :]
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                yield path, method.lower(), rule


def test_every_api_rule_is_documented(client):
    resp = client.get("/api-docs/openapi.json")
    assert resp.status_code == 200
    spec = resp.get_json()
    assert spec["openapi"].startswith("3.0") and spec["servers"] == [{"url": "/api"}]
    app = client.application
    rules = list(_rules(app))
    assert len(rules) >= 20
    for path, method, rule in rules:
        assert method in spec["paths"].get(path, {}), f"{method.upper()} {rule.rule} missing"
        op = spec["paths"][path][method]
        assert op["summary"] and "200" in op["responses"]
        assert {p["name"] for p in op.get("parameters", []) if p["in"] == "path"} == set(rule.arguments)
    documented = {(p, m) for p, item in spec["paths"].items() for m in item}
    assert documented == {(p, m) for p, m, _ in rules}  # and nothing that isn't served
    # a few shapes
    history = spec["paths"]["/deployments/{guild_id}/history"]["get"]
    assert {p["name"] for p in history["parameters"]} == {
        "guild_id",
        "limit",
        "cursor_deployed_at",
        "cursor_id",
        "include_bundle",
    }
    assert history["responses"]["200"]["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/DeploymentRevisionResponse"
    }
    assert spec["paths"]["/deployments/{guild_id}"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DeploymentRequest"
    }
    assert spec["paths"]["/metrics/json"]["get"]["security"] == [{"operatorToken": []}]
    assert spec["paths"]["/health"]["get"]["security"] == []
    for ref in re.findall(r'"\$ref": "#/components/schemas/(\w+)"', resp.get_data(as_text=True)):
        assert ref in spec["components"]["schemas"]


def test_plugin_routes_get_generic_or_declared_entries(config, db):
    class HelloPlugin:
        from flora_core import hookimpl

        @hookimpl
        def flora_register_blueprints(self, register):
            bp = Blueprint("flora_hello_test", __name__, url_prefix="/api/hello")

            @bp.route("/<name>", methods=["GET", "POST"])
            def greet(name):
                return {"hello": name}

            @bp.get("/about")
            @doc(summary="About hello", tags=["hello"])
            def about():
                return {}

            register(bp)

    plugins = Plugins()
    plugins.add(HelloPlugin(), "hello-test")
    app = create_app(config, plugins, db, runtime=object())
    spec = app.test_client().get("/api-docs/openapi.json").get_json()
    generic = spec["paths"]["/hello/{name}"]
    assert set(generic) == {"get", "post"}
    assert generic["get"]["tags"] == ["flora_hello_test"] and generic["post"]["requestBody"]["required"] is False
    assert spec["paths"]["/hello/about"]["get"]["summary"] == "About hello"


def test_docs_page_lists_routes_without_network(client):
    for path in ("/api-docs", "/api-docs/", "/api-docs/scalar"):
        resp = client.get(path)
        assert resp.status_code == 200 and resp.mimetype == "text/html"
        page = resp.get_data(as_text=True)
        assert "/api/deployments/{guild_id}/rollback/{revision_id}" in page and "/api/kv/stores" in page
        assert "http://" not in page and "https://" not in page and "<script" not in page


def test_schemathesis_finds_no_server_errors_and_no_schema_violations(make_config, plugins, db, runtime, token):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, settings
    from schemathesis.checks import content_type_conformance, response_schema_conformance

    app = create_app(make_config(SECRETS_MASTER_KEY="ab" * 32), plugins, db, runtime.client())
    schema = schemathesis.openapi.from_wsgi("/api-docs/openapi.json", app)
    schema = schema.exclude(operation_id="flora_api.guild_log_stream.get")  # endless by design
    headers = {"Authorization": f"Bearer {token}"}
    failures = []
    checked = 0
    statuses = []
    for result in schema.get_all_operations():
        operation = result.ok()

        strategy = operation.as_strategy()

        from hypothesis import given

        @settings(max_examples=8, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):
            nonlocal checked
            response = case.call(headers=headers)
            checked += 1
            statuses.append((case.method, response.status_code))
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")
                return
            try:  # what the document promises for this status must hold
                case.validate_response(response, checks=[response_schema_conformance, content_type_conformance])
            except Exception as exc:  # noqa: BLE001 - collected and reported together
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: schema violation: {str(exc)[:300]}"
                )

        run()
    assert checked > 50
    ok = {m for m, s in statuses if s == 200}
    assert "GET" in ok and ok & {"POST", "PUT", "DELETE"}  # real operations ran: the base path is right
    print("\n".join(failures))
    assert not failures
