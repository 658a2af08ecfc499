"""flora-webhooks against a real flora (flora's test kit: flora_server, flora_guild, flora_emulator)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

SCRIPT = """
on("webhook", async (ctx) => {
  const e = ctx.msg;
  await rest.sendMessage({ channelId: "%s", content: `${e.name}: ${JSON.stringify(e.body)} via ${e.headers["x-github-event"] ?? "-"}` });
});
"""


@pytest.fixture
def flora_server_env():
    return {"WEBHOOKS_MAX_BODY_BYTES": "1024", "WEBHOOKS_PER_MINUTE": "3"}


def post(url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def create(flora_server, guild_id: str, name: str) -> tuple[str, str]:
    out = flora_server.cli("webhooks", "create", "--guild-id", guild_id, name).stdout.splitlines()
    path = out[0].split("/api/hooks/", 1)[1]
    return f"{flora_server.api_url}/hooks/{path}", out[1].split()[1]


def test_a_webhook_call_becomes_an_event_in_the_guilds_script(flora_server, flora_guild):
    flora_server.deploy(flora_guild.id, {"src/main.ts": SCRIPT % flora_guild.channel_id})
    url, secret = create(flora_server, flora_guild.id, "github")
    status, body = post(
        url,
        b'{"ref": "main"}',
        {
            "Content-Type": "application/json",
            "X-Flora-Webhook-Secret": secret,
            "X-GitHub-Event": "push",
            "Cookie": "not-forwarded=1",
        },
    )
    assert status == 202 and body["id"] >= 1
    assert flora_guild.wait_reply() == 'github: {"ref":"main"} via push'
    status, _ = post(f"{url}?secret={secret}", b"plain text", {"Content-Type": "text/plain"})
    assert status == 202
    assert flora_guild.wait_reply(count=2) == 'github: "plain text" via -'


def test_bad_secrets_big_bodies_and_floods_are_refused(flora_server, flora_guild):
    url, secret = create(flora_server, flora_guild.id, "form")
    assert post(url, b"{}", {"X-Flora-Webhook-Secret": "wrong"}) == (
        401,
        {"message": "invalid webhook secret (or no such webhook)"},
    )
    assert post(url.replace("/form", "/nope"), b"{}", {"X-Flora-Webhook-Secret": secret})[0] == 401
    status, body = post(url, b"x" * 2048, {"X-Flora-Webhook-Secret": secret})
    assert status == 413 and body["message"] == "webhook body larger than 1024 bytes"
    assert post(url, b"{bad", {"Content-Type": "application/json", "X-Flora-Webhook-Secret": secret})[0] == 400
    for _ in range(3):
        assert post(url, b"{}", {"X-Flora-Webhook-Secret": secret})[0] == 202
    status, body = post(url, b"{}", {"X-Flora-Webhook-Secret": secret})
    assert status == 429 and "per minute" in body["message"]


def test_the_cli_lists_and_deletes(flora_server, flora_guild):
    _, secret = create(flora_server, flora_guild.id, "ci")
    assert flora_server.cli("webhooks", "list", "--guild-id", flora_guild.id).stdout.split() == ["ci"]
    assert flora_server.cli("webhooks", "delete", "--guild-id", flora_guild.id, "ci").stdout.strip() == "Deleted webhook ci"
    bad = flora_server.cli("webhooks", "create", "--guild-id", flora_guild.id, "Bad Name", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: invalid webhook name 'Bad Name'")


def test_the_event_is_declared_for_type_checks(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "flora_cli", "types"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "// ---- webhooks (plugin webhooks) ----" in out.stdout and "webhook: BaseContext<FloraWebhookEvent>" in out.stdout
