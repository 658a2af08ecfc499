"""Discord login, web sessions, user-owned API tokens and the guild-admin check (flora §3.2,
§6.14, §6.15), through the real stack: the emulator's OAuth2 and a real ``flora serve``.

Guilds: A (alice has MANAGE_GUILD through a role), B (alice is a plain member), C (alice is not
in it). Every guild-scoped route — read from ``app.url_map`` — must refuse B and C with 403 and
flora's message, for alice's session and for her API token, and change nothing.
"""

from __future__ import annotations

import http.cookiejar
import json
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import BOT_TOKEN, free_port, http_json, start_flora, stop_flora

CLIENT_ID = "123456789012345678"
CLIENT_SECRET = "emulator-client-secret"
API_SECRET = "x" * 40
MASTER_KEY = "ab" * 32
REVISION = "00000000-0000-0000-0000-000000000001"


# -- the route inventory, from the app itself -------------------------------------------
def _app_rules() -> list[tuple[str, str]]:
    from flora_core.config import load_config
    from flora_core.plugins import Plugins
    from flora_core.storage import open_database
    from flora_http import create_app

    tmp = tempfile.mkdtemp(prefix="flora-auth-rules-")
    (Path(tmp) / "none.toml").write_text("")
    config = load_config(
        path=Path(tmp) / "none.toml",
        env={"FLORA_DATA_DIR": tmp, "DATABASE_URL": f"sqlite:///{tmp}/f.db", "SECRETS_MASTER_KEY": MASTER_KEY},
    )
    plugins = Plugins()
    db = open_database(config, plugins)
    try:
        app = create_app(config, plugins, db, runtime=object())
        return sorted((m, r.rule) for r in app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"})
    finally:
        db.close()


RULES = _app_rules()
# routes that take a guild id in the body or the query rather than the path
BODY_OR_QUERY_GUILD = {("POST", "/api/kv/stores"), ("GET", "/api/kv/stores")}
# routes with no guild at all (a new guild route must land in the parametrization, not here)
NO_GUILD = {
    ("GET", "/api/health"),
    ("GET", "/api/health/nodes"),
    ("GET", "/api/plugins"),
    ("GET", "/api/deployments"),
    ("GET", "/api/metrics"),
    ("GET", "/api/metrics/json"),
    ("GET", "/api/auth/login"),
    ("GET", "/api/auth/callback"),
    ("GET", "/api/auth/me"),
    ("POST", "/api/tokens"),
    ("GET", "/api/tokens"),
    ("DELETE", "/api/tokens/<token_id>"),
    ("GET", "/api/guilds"),
}
GUILD_RULES = [(m, r) for m, r in RULES if "<guild_id>" in r or (m, r) in BODY_OR_QUERY_GUILD]
# the build routes: the guild is a multipart field, or the build's own (test_build_routes_refuse_non_admins)
BUILD_RULES = {("POST", "/api/builds"), ("GET", "/api/builds/<build_id>"), ("GET", "/api/builds/<build_id>/logs")}
SAMPLE = {"store_name": "store", "path:key": "key", "key": "key", "name": "API_KEY", "revision_id": REVISION}


def test_every_route_is_classified():
    unknown = [
        (m, r)
        for m, r in RULES
        if r.startswith("/api/") and (m, r) not in NO_GUILD and (m, r) not in GUILD_RULES and (m, r) not in BUILD_RULES
    ]
    assert not unknown, f"classify these routes (guild-scoped or not): {unknown}"
    assert len(GUILD_RULES) >= 17


def _guild_request(method: str, rule: str, guild_id: str) -> tuple[str, str, dict | None]:
    path = rule.replace("<guild_id>", guild_id)
    for name, value in SAMPLE.items():
        path = path.replace(f"<{name}>", value)
    assert "<" not in path, path
    body = None
    if (method, rule) == ("GET", "/api/kv/stores"):
        path += f"?guild_id={guild_id}"
    elif (method, rule) == ("POST", "/api/kv/stores"):
        body = {"guild_id": guild_id, "store_name": "fresh"}
    elif method == "POST" and rule == "/api/deployments/<guild_id>":
        body = {"entry": "src/main.ts", "bundle": "console.log('hijack')", "files": [{"path": "src/main.ts", "contents": "x"}]}
    elif method == "PUT":
        body = {"value": "hijacked"}
    return method, path, body


# -- a browser that keeps cookies and lets us follow redirects by hand -------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def request(self, method: str, url: str, body=None, headers: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
        )
        try:
            resp = self.opener.open(req, timeout=30)
        except urllib.error.HTTPError as exc:
            resp = exc
        raw = resp.read().decode()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        return resp.status if hasattr(resp, "status") else resp.code, parsed, resp.headers

    def cookie(self, name: str):
        return next((c.value for c in self.jar if c.name == name), None)


def login(server, emu, user_id: str) -> Browser:
    b = Browser()
    status, _, headers = b.request("GET", f"{server.api}/auth/login")
    assert status == 302, status
    authorize = headers["Location"]
    assert authorize.startswith(f"{emu.url}/oauth2/authorize?"), authorize
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize).query)
    assert query["client_id"] == [CLIENT_ID] and query["response_type"] == ["code"]
    assert query["state"] == [b.cookie("flora_oauth_state")]
    emu.oauth_login_as(user_id)
    status, _, headers = b.request("GET", authorize)
    assert status == 302, status
    callback = headers["Location"]
    assert callback.startswith(server.env["DISCORD_REDIRECT_URI"] + "?")
    status, body, headers = b.request("GET", callback)
    assert status == 302 and headers["Location"].endswith("/"), (status, body)
    set_cookie = " ".join(headers.get_all("Set-Cookie"))
    assert "flora_session=" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert b.cookie("flora_session") and not b.cookie("flora_oauth_state")
    return b


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN, oauth_client_secret=CLIENT_SECRET)
    emu.start()
    server = None
    try:
        alice = emu.create_user("alice", global_name="Alice A")
        bob = emu.create_user("bob")
        a, b, c = emu.create_guild("Guild A"), emu.create_guild("Guild B"), emu.create_guild("Guild C")
        managers = emu.create_role(a["id"], "managers", permissions=str(0x20))
        emu.add_member(a["id"], alice["id"], roles=[managers["id"]])
        emu.add_member(b["id"], alice["id"])
        emu.add_member(b["id"], bob["id"])
        emu.add_member(c["id"], bob["id"])
        port = free_port()  # the redirect URI must name the API's port
        server = start_flora(
            emu,
            tmp_path_factory.mktemp("auth"),
            API_PORT=port,
            DISCORD_CLIENT_ID=CLIENT_ID,
            DISCORD_CLIENT_SECRET=CLIENT_SECRET,
            API_SECRET=API_SECRET,
            SECRETS_MASTER_KEY=MASTER_KEY,
            DISCORD_REDIRECT_URI=f"http://127.0.0.1:{port}/api/auth/callback",
        )
        yield {"emu": emu, "server": server, "alice": alice, "bob": bob, "A": a["id"], "B": b["id"], "C": c["id"]}
    finally:
        if server is not None:
            stop_flora(server)
        emu.stop()


@pytest.fixture(scope="module")
def alice(world):
    b = login(world["server"], world["emu"], world["alice"]["id"])
    status, body, _ = b.request("POST", f"{world['server'].api}/tokens", {"label": "alice-cli"})
    assert status == 200, body
    b.token = body["token"]
    return b


# -- OAuth, sessions, tokens ---------------------------------------------------------------
def test_login_and_me(world, alice):
    api = world["server"].api
    status, body, _ = alice.request("GET", f"{api}/auth/me")
    assert status == 200 and body == {
        "user": {"id": world["alice"]["id"], "username": "alice", "global_name": "Alice A", "avatar": None}
    }
    status, body = http_json("GET", f"{api}/auth/me", token=alice.token)
    assert status == 200 and body == {"user": {"id": world["alice"]["id"], "username": "", "global_name": None, "avatar": None}}
    assert http_json("GET", f"{api}/auth/me") == (401, {"message": "Unauthorized: Login required"})


def test_callback_state_checks(world):
    api = world["server"].api
    url = f"{api}/auth/callback?code=abc&state=s1"
    assert http_json("GET", url) == (401, {"message": "Unauthorized: Missing OAuth state"})
    assert http_json("GET", url, headers={"Cookie": "flora_oauth_state=s2"}) == (
        401,
        {"message": "Unauthorized: OAuth state mismatch"},
    )
    assert http_json("GET", url, headers={"Cookie": "flora_oauth_state=s1"}) == (
        401,
        {"message": "Unauthorized: Expired OAuth state"},
    )
    # a real state is one-shot: replaying a completed callback is refused
    b = Browser()
    _, _, headers = b.request("GET", f"{api}/auth/login")
    world["emu"].oauth_login_as(world["bob"]["id"])
    _, _, headers = b.request("GET", headers["Location"])
    callback = headers["Location"]
    state = b.cookie("flora_oauth_state")
    assert b.request("GET", callback)[0] == 302
    assert http_json("GET", callback, headers={"Cookie": f"flora_oauth_state={state}"}) == (
        401,
        {"message": "Unauthorized: Expired OAuth state"},
    )
    # a wrong code is refused by Discord (the emulator) and no session is made
    _, _, headers = b.request("GET", f"{api}/auth/login")
    state = b.cookie("flora_oauth_state")
    status, body = http_json(
        "GET", f"{api}/auth/callback?code=nope&state={state}", headers={"Cookie": f"flora_oauth_state={state}"}
    )
    assert status == 401 and "OAuth code exchange failed" in body["message"]


def test_session_required_routes(world, alice):
    api = world["server"].api
    assert http_json("GET", f"{api}/tokens", token=alice.token) == (401, {"message": "Unauthorized: Login required"})
    assert http_json("POST", f"{api}/tokens", {}, token=alice.token) == (401, {"message": "Unauthorized: Login required"})
    forged = "A" * 24 + ".bad-signature"
    assert http_json("GET", f"{api}/tokens", headers={"Cookie": f"flora_session={forged}"}) == (
        401,
        {"message": "Unauthorized: Session expired"},
    )
    assert http_json("GET", f"{api}/guilds", token=alice.token) == (
        403,
        {"message": "Forbidden: User session required for guild listing"},
    )
    assert http_json("GET", f"{api}/guilds") == (401, {"message": "Unauthorized: Login required"})


def test_guild_listing(world, alice):
    status, body, _ = alice.request("GET", f"{world['server'].api}/guilds")
    assert status == 200, body
    assert [(g["id"], g["name"]) for g in body] == [(world["A"], "Guild A")]
    assert body[0]["permissions"] & 0x20 and isinstance(body[0]["permissions"], int)


def test_tokens_are_owned(world, alice):
    server, api = world["server"], world["server"].api
    bob = login(server, world["emu"], world["bob"]["id"])
    status, body, _ = bob.request("POST", f"{api}/tokens", {"label": None})
    assert status == 200
    bob_token = body["token"]
    bob_id = bob_token.split(".")[0]
    status, mine, _ = alice.request("GET", f"{api}/tokens")
    assert status == 200 and [t["label"] for t in mine] == ["alice-cli"]
    assert set(mine[0]) == {"token_id", "label", "created_at", "last_used_at"}
    assert bob_id not in [t["token_id"] for t in mine]
    # alice cannot revoke bob's token, nor the operator's
    assert alice.request("DELETE", f"{api}/tokens/{bob_id}")[:2] == (404, {"message": "Resource not found: Token not found"})
    operator_id = server.token.split(".")[0]
    assert alice.request("DELETE", f"{api}/tokens/{operator_id}")[:2] == (404, {"message": "Resource not found: Token not found"})
    assert http_json("GET", f"{api}/auth/me", token=bob_token)[0] == 200
    assert http_json("GET", f"{api}/deployments", token=server.token)[0] == 200
    # bob revokes his own: 200 null, and the token stops working
    assert bob.request("DELETE", f"{api}/tokens/{bob_id}")[:2] == (200, None)
    assert http_json("GET", f"{api}/auth/me", token=bob_token)[0] == 401
    assert [t["token_id"] for t in bob.request("GET", f"{api}/tokens")[1]] == []


# -- the guild-admin check -------------------------------------------------------------
def _seed(world):
    """State in B and C (made with the operator token) that the refused calls must not touch."""
    server = world["server"]
    snapshot = {}
    for gid in (world["B"], world["C"]):
        body = {"entry": "src/main.ts", "bundle": "console.log('seed')", "files": [{"path": "src/main.ts", "contents": "seed"}]}
        assert http_json("POST", f"{server.api}/deployments/{gid}", body, token=server.token)[0] == 200
        assert (
            http_json("POST", f"{server.api}/kv/stores", {"guild_id": gid, "store_name": "store"}, token=server.token)[0] == 200
        )
        assert http_json("PUT", f"{server.api}/kv/{gid}/store/key", {"value": "v"}, token=server.token)[0] == 200
        assert http_json("PUT", f"{server.api}/secrets/{gid}/API_KEY", {"value": "s"}, token=server.token)[0] == 200
        snapshot[gid] = _observe(server, gid)
    return snapshot


def _observe(server, gid):
    out = {}
    for path in (
        f"deployments/{gid}/history",
        f"kv/stores?guild_id={gid}",
        f"kv/{gid}/store/key",
        f"secrets/{gid}",
        f"deployments/{gid}",
    ):
        status, body = http_json("GET", f"{server.api}/{path}", token=server.token)
        assert status == 200, (path, body)
        out[path] = body
    return out


@pytest.fixture(scope="module")
def seeded(world):
    return _seed(world)


def test_admin_can_deploy_with_own_token_and_session(world, alice):
    server, a = world["server"], world["A"]
    body = {"entry": "src/main.ts", "bundle": "console.log('alice')", "files": [{"path": "src/main.ts", "contents": "alice"}]}
    status, resp = http_json("POST", f"{server.api}/deployments/{a}", body, token=alice.token)
    assert status == 200, resp
    status, hist = http_json("GET", f"{server.api}/deployments/{a}/history", token=alice.token)
    assert status == 200 and hist[0]["actor"]["user_id"] == world["alice"]["id"]
    status, dep, _ = alice.request("GET", f"{server.api}/deployments/{a}")
    assert status == 200 and dep["guild_id"] == a
    status, listed = http_json("GET", f"{server.api}/deployments", token=alice.token)
    assert status == 200 and [d["guild_id"] for d in listed] == [a]


@pytest.mark.parametrize("method,rule", GUILD_RULES, ids=[f"{m} {r}" for m, r in GUILD_RULES])
def test_guild_routes_refuse_non_admins(world, alice, seeded, method, rule):
    server = world["server"]
    expected = {
        ("session", "B"): "Forbidden: Admin permission required",
        ("session", "C"): "Forbidden: User is not in guild",
        ("token", "B"): "Forbidden: Admin permission required",
        ("token", "C"): "Forbidden: Member fetch failed: 404 Unknown Member",
    }
    for (who, which), message in expected.items():
        gid = world[which]
        m, path, body = _guild_request(method, rule, gid)
        url = server.api[: -len("/api")] + path
        if who == "session":
            status, resp, _ = alice.request(m, url, body)
        else:
            status, resp = http_json(m, url, body, token=alice.token)
        assert (status, resp) == (403, {"message": message}), (who, which, m, path)
    for gid in (world["B"], world["C"]):
        assert _observe(server, gid) == seeded[gid]


def test_build_routes_refuse_non_admins(world, alice):
    """POST /api/builds checks the guild of its form; reading a build, the build's guild."""
    from test_builds import PROJECT, make_zip, multipart

    server = world["server"]
    expected = {
        ("session", "B"): "Forbidden: Admin permission required",
        ("session", "C"): "Forbidden: User is not in guild",
        ("token", "B"): "Forbidden: Admin permission required",
        ("token", "C"): "Forbidden: Member fetch failed: 404 Unknown Member",
    }
    for (who, which), message in expected.items():
        body, ctype = multipart({"guild_id": world[which], "entry": "src/main.ts"}, make_zip(PROJECT))
        req = urllib.request.Request(f"{server.api}/builds", data=body, method="POST", headers={"Content-Type": ctype})
        if who == "token":
            req.add_header("Authorization", f"Bearer {alice.token}")
        try:
            resp = (alice.opener if who == "session" else urllib.request.build_opener()).open(req, timeout=30)
        except urllib.error.HTTPError as exc:
            resp = exc
        assert (resp.code, json.loads(resp.read())) == (403, {"message": message}), (who, which)
    for which in ("B", "C"):  # a build of a guild alice may not manage, made by the server's own token
        body, ctype = multipart({"guild_id": world[which], "entry": "src/main.ts"}, make_zip(PROJECT))
        req = urllib.request.Request(
            f"{server.api}/builds",
            data=body,
            method="POST",
            headers={"Content-Type": ctype, "Authorization": f"Bearer {server.token}"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            build_id = json.loads(resp.read())["build_id"]
        for path in (f"builds/{build_id}", f"builds/{build_id}/logs"):
            for who in ("session", "token"):
                if who == "session":
                    status, resp_body, _ = alice.request("GET", f"{server.api}/{path}")
                else:
                    status, resp_body = http_json("GET", f"{server.api}/{path}", token=alice.token)
                assert (status, resp_body) == (403, {"message": expected[(who, which)]}), (who, which, path)
        assert http_json("GET", f"{server.api}/builds/{build_id}", token=server.token)[0] == 200


def test_operator_token_keeps_full_access(world, seeded):
    server = world["server"]
    for gid in (world["A"], world["B"], world["C"]):
        assert http_json("GET", f"{server.api}/logs/{gid}", token=server.token)[0] == 200
        assert http_json("GET", f"{server.api}/kv/stores?guild_id={gid}", token=server.token)[0] == 200


def test_emulator_oauth_token_endpoint(world):
    emu = world["emu"]
    url = f"{emu.api_base}/oauth2/token"

    def post(form):
        req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    base = {"client_id": "any", "redirect_uri": "http://x/cb"}
    assert post({**base, "client_secret": "wrong", "grant_type": "authorization_code", "code": "c"}) == (
        400,
        {"error": "invalid_grant", "error_description": 'Invalid "code" in request.'},
    )
    assert post({**base, "client_secret": CLIENT_SECRET, "grant_type": "authorization_code", "code": "nope"})[0] == 400
    grant = emu.in_loop(emu.server.oauth.issue, world["bob"]["id"])
    status, refreshed = post(
        {**base, "client_secret": CLIENT_SECRET, "grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
    )
    assert status == 200 and refreshed["token_type"] == "Bearer" and refreshed["access_token"] != grant["access_token"]
    req = urllib.request.Request(
        f"{emu.api_base}/users/@me/guilds", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        guilds = json.loads(resp.read())
    assert sorted(g["id"] for g in guilds) == sorted([world["B"], world["C"]])
    assert all(isinstance(g["permissions"], str) for g in guilds)
    # the bot's own token still sees the bot's guilds
    req = urllib.request.Request(f"{emu.api_base}/users/@me", headers={"Authorization": f"Bot {BOT_TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["bot"] is True


def test_short_api_secret_is_a_clear_error(tmp_path, monkeypatch):
    from flora_core.config import load_config
    from flora_core.plugins import Plugins
    from flora_core.storage import open_database
    from flora_http import create_app

    monkeypatch.chdir(tmp_path)
    config = load_config(
        env={
            "FLORA_DATA_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path}/f.db",
            "API_SECRET": "short",
            "DISCORD_CLIENT_ID": CLIENT_ID,
            "DISCORD_CLIENT_SECRET": "s",
        }
    )
    plugins = Plugins()
    db = open_database(config, plugins)
    try:
        resp = create_app(config, plugins, db, runtime=object()).test_client().get("/api/auth/login")
        assert resp.status_code == 403 and resp.get_json() == {
            "message": "Forbidden: Discord login is not configured: API_SECRET must be at least 32 characters"
        }
    finally:
        db.close()


def test_expired_oauth_token_is_refreshed_and_dead_session_is_dropped(world):
    import sqlite3

    server, emu = world["server"], world["emu"]
    b = login(server, emu, world["bob"]["id"])
    sid = b.cookie("flora_session").split(".")[0]
    dbfile = server.data_dir / "flora.db"
    with sqlite3.connect(dbfile) as conn:
        old = conn.execute("SELECT access_token FROM sessions WHERE id = ?", (sid,)).fetchone()[0]
        conn.execute("UPDATE sessions SET expires_at = 0 WHERE id = ?", (sid,))
    status, body, _ = b.request("GET", f"{server.api}/auth/me")
    assert status == 200 and body["user"]["id"] == world["bob"]["id"]
    with sqlite3.connect(dbfile) as conn:
        new, expires = conn.execute("SELECT access_token, expires_at FROM sessions WHERE id = ?", (sid,)).fetchone()
    assert new != old and expires > time.time()
    # the refresh token was used up by Discord: when the access token expires again and the
    # refresh fails, the session is gone (401 Session expired on session-only routes)
    emu.in_loop(emu.server.oauth.refresh.clear)
    with sqlite3.connect(dbfile) as conn:
        conn.execute("UPDATE sessions SET expires_at = 0 WHERE id = ?", (sid,))
    assert b.request("GET", f"{server.api}/tokens")[:2] == (401, {"message": "Unauthorized: Session expired"})
    with sqlite3.connect(dbfile) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sessions WHERE id = ?", (sid,)).fetchone()[0] == 0


# -- the whole operator story of issue 5, in one test ----------------------------------------
def test_login_token_deploys_history_rollback_and_live_logs(world, alice):
    """Log in through Discord OAuth (the emulator), make a token, deploy a good and a broken script,
    read the history, roll back, and watch the rolled-back script's output arrive over SSE."""
    from test_api_logs_stream import _next_event, _open_stream

    server, emu, a = world["server"], world["emu"], world["A"]
    channel = emu.create_channel(a, "story")
    good = "on('messageCreate', (ctx) => { if (!ctx.msg.author.bot) console.log('v1 heard', ctx.msg.content); });"
    status, body = http_json(
        "POST",
        f"{server.api}/deployments/{a}",
        {"entry": "src/main.ts", "files": [{"path": "src/main.ts", "contents": good}]},
        token=alice.token,
        headers={"x-flora-deploy-source": "cli"},
    )
    assert status == 200, body
    broken = "on('messageCreate', (ctx) => { console.log('v2' ;"
    status, body = http_json(
        "POST",
        f"{server.api}/deployments/{a}",
        {"entry": "src/main.ts", "files": [{"path": "src/main.ts", "contents": broken}]},
        token=alice.token,
    )
    assert status == 400 and body["message"].startswith("Bad request: invalid deployment files: src/main.ts:1:")

    status, history = http_json("GET", f"{server.api}/deployments/{a}/history?limit=5", token=alice.token)
    assert status == 200
    ours = [r for r in history if r["deploy_source"] == "cli" and r["actor"].get("user_id") == world["alice"]["id"]]
    assert ours and ours[0]["status"] == "success"
    target = ours[0]["id"]

    status, rolled = http_json("POST", f"{server.api}/deployments/{a}/rollback/{target}", token=alice.token)
    assert status == 200 and rolled["status"] == "success" and rolled["deploy_source"] == "api"
    status, history = http_json("GET", f"{server.api}/deployments/{a}/history?limit=1", token=alice.token)
    assert history[0]["id"] == rolled["id"]

    conn, resp = _open_stream(server.api, a, alice.token)
    try:
        assert resp.status == 200
        emu.user_says(channel["id"], world["alice"]["id"], "after the rollback")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            event = _next_event(resp)
            if "v1 heard after the rollback" in event:
                break
        else:
            raise AssertionError("the rolled-back script's output never reached the stream")
    finally:
        conn.close()
