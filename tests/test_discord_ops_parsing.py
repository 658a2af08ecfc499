"""Fast tests of the discord_ops input parsing (no V8, no flora process): components (reference §2.5),
embeds (§1.9), mentions and flags (§1.8), attachments (§2.6) and the attachment download guard."""

from __future__ import annotations

import asyncio
import base64
from types import SimpleNamespace

import pytest
from aiohttp import web

from flora_core import netguard
from flora_core.errors import OpError
from flora_plugins.discord_ops.attachments import default_filename, load_attachments, parse_attachments
from flora_plugins.discord_ops.components import build_components, build_modal_components, parse_emoji
from flora_plugins.discord_ops.download import DownloadError, check_url, download
from flora_plugins.discord_ops.messages import (
    EMPTY_MESSAGE,
    allowed_mentions,
    build_embed,
    edited_message,
    flags,
    new_message,
)
from flora_plugins.discord_ops.ops_messages import reaction_emoji
from flora_plugins.discord_ops.transport import backoff

CAP = 1024


def error(fn, *args, **kwargs) -> OpError:
    with pytest.raises(OpError) as info:
        fn(*args, **kwargs)
    return info.value


def message_of(fn, *args, **kwargs) -> str:
    exc = error(fn, *args, **kwargs)
    assert exc.code == "INVALID_INPUT"
    return exc.message


# -- components --------------------------------------------------------------------------

BUTTON = {"type": 2, "custom_id": "b", "label": "B"}
SELECT = {"type": 3, "custom_id": "s", "options": [{"label": "A", "value": "a"}]}


def test_bare_buttons_and_selects_are_wrapped_in_an_action_row():
    assert build_components([BUTTON, {"type": 5, "custom_id": "u"}]) == [
        {"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "b", "label": "B"}]},
        {"type": 1, "components": [{"type": 5, "custom_id": "u"}]},
    ]


def test_action_row_keeps_only_its_select_and_allows_one():
    row = {"type": 1, "components": [BUTTON, SELECT]}
    assert build_components([row]) == [
        {"type": 1, "components": [{"type": 3, "custom_id": "s", "options": [{"label": "A", "value": "a"}]}]}
    ]
    two = {"type": 1, "components": [SELECT, {"type": 6, "custom_id": "r"}]}
    assert message_of(build_components, [two]) == "Action row supports only one select menu"
    bad = {"type": 1, "components": [{"type": 10, "content": "x"}]}
    assert message_of(build_components, [bad]) == "Unsupported action row component type 10"


@pytest.mark.parametrize(
    "comp, message",
    [
        ({"type": 2, "style": 5}, "Link button requires url"),
        ({"type": 2, "style": 6}, "Premium button requires sku_id"),
        ({"type": 2, "style": 1}, "Button requires custom_id"),
        ({"type": 2}, "Button requires custom_id"),
        ({"type": 3, "custom_id": "s"}, "String select requires options"),
        ({"type": 7}, "Select menu requires custom_id"),
        ({"type": 11, "media": {"url": "https://x"}}, "Thumbnail components are only valid as section accessories"),
        ({"type": 4, "custom_id": "t"}, "Unsupported component type 4"),
        ({"type": 19, "custom_id": "f"}, "Unsupported component type 19"),
        ({"type": 99}, "Unsupported component type 99"),
        ({"custom_id": "x"}, "Component missing numeric type"),
        ({"type": "2"}, "Component missing numeric type"),
        ("button", "Component missing numeric type"),
    ],
)
def test_component_errors_carry_floras_messages(comp, message):
    assert message_of(build_components, [comp]) == message


def test_button_styles():
    link, premium, custom = build_components(
        [
            {
                "type": 1,
                "components": [
                    {"type": 2, "style": 5, "url": "https://example.com", "custom_id": "dropped", "emoji": "<a:dance:12>"},
                    {"type": 2, "style": 6, "sku_id": "123"},
                    {"type": 2, "style": 9, "custom_id": "odd", "disabled": True, "emoji": {"id": "5", "name": "x"}},
                ],
            }
        ]
    )[0]["components"]
    assert link == {"type": 2, "style": 5, "url": "https://example.com", "emoji": {"id": "12", "name": "dance", "animated": True}}
    assert premium == {"type": 2, "style": 6, "sku_id": "123"}
    assert custom == {"type": 2, "style": 9, "custom_id": "odd", "disabled": True, "emoji": {"id": "5", "name": "x"}}


def test_emoji_forms():
    assert parse_emoji("👍") == {"name": "👍"}
    assert parse_emoji("<:blob:42>") == {"id": "42", "name": "blob", "animated": False}
    assert message_of(parse_emoji, 42) == "Emoji must be a string or an emoji object"


def test_select_defaults_are_merged_by_type_and_bad_ids_dropped():
    [row] = build_components(
        [
            {
                "type": 7,
                "custom_id": "m",
                "min_values": 1,
                "max_values": 3,
                "default_values": [{"id": "1", "type": "user"}, {"id": "x", "type": "role"}, {"id": "3", "type": "channel"}],
                "default_users": ["1", "4"],
                "default_roles": ["2", "nope"],
                "default_channels": ["9"],
            }
        ]
    )
    assert row["components"][0] == {
        "type": 7,
        "custom_id": "m",
        "min_values": 1,
        "max_values": 3,
        "default_values": [{"id": "1", "type": "user"}, {"id": "4", "type": "user"}, {"id": "2", "type": "role"}],
    }
    [row] = build_components([{"type": 8, "custom_id": "c", "channel_types": [0, 5], "default_channels": ["9"]}])
    assert row["components"][0] == {
        "type": 8,
        "custom_id": "c",
        "channel_types": [0, 5],
        "default_values": [{"id": "9", "type": "channel"}],
    }


def test_section_rules():
    text = {"type": 10, "content": "hi"}
    ok = {"type": 9, "components": [text], "accessory": {"type": 11, "media": {"url": "https://x/y.png"}, "spoiler": True}}
    assert build_components([ok]) == [
        {"type": 9, "components": [text], "accessory": {"type": 11, "media": {"url": "https://x/y.png"}, "spoiler": True}}
    ]
    with_button = dict(ok, accessory=BUTTON)
    assert build_components([with_button])[0]["accessory"]["custom_id"] == "b"
    assert message_of(build_components, [dict(ok, accessory=None)]) == "Component missing numeric type"
    assert message_of(build_components, [{k: v for k, v in ok.items() if k != "accessory"}]) == "Component missing numeric type"
    assert message_of(build_components, [dict(ok, accessory=SELECT)]) == "Unsupported section accessory type 3"
    assert message_of(build_components, [dict(ok, components=[BUTTON])]).startswith("Section components must be text displays")


@pytest.mark.parametrize("spacing, wire", [(1, 1), ("small", 1), (2, 2), ("large", 2), (7, 7), (None, None)])
def test_separator_spacing(spacing, wire):
    comp = {"type": 14, "divider": False}
    if spacing is not None:
        comp["spacing"] = spacing
    out = build_components([comp])[0]
    assert out.get("spacing") == wire and out["divider"] is False


def test_separator_errors():
    assert message_of(build_components, [{"type": 14, "divider": True, "spacing": "huge"}]).startswith(
        "Invalid separator spacing 'huge'"
    )
    assert message_of(build_components, [{"type": 14}]) == "Separator requires divider"


def test_container_children_and_v2_content():
    container = {
        "type": 17,
        "accent_color": 0xFF0000,
        "spoiler": False,
        "components": [
            {"type": 10, "content": "t"},
            {"type": 1, "components": [BUTTON]},
            {
                "type": 12,
                "items": [
                    {"media": {"url": "https://x/1.png"}, "description": "one"},
                    {"media": {"url": "https://x/2.png"}, "spoiler": True},
                ],
            },
            {"type": 13, "file": {"url": "attachment://r.txt"}},
            {"type": 14, "divider": True},
            {"type": 9, "components": [{"type": 10, "content": "s"}], "accessory": BUTTON},
        ],
    }
    out = build_components([container])[0]
    assert out["accent_color"] == 0xFF0000 and [c["type"] for c in out["components"]] == [10, 1, 12, 13, 14, 9]
    assert out["components"][2]["items"] == [
        {"media": {"url": "https://x/1.png"}, "description": "one"},
        {"media": {"url": "https://x/2.png"}, "spoiler": True},
    ]
    assert message_of(build_components, [{"type": 17, "components": [BUTTON]}]) == "Unsupported container component type 2"
    assert (
        message_of(build_components, [{"type": 17, "components": [{"type": 18, "label": "x"}]}])
        == "Unsupported container component type 18"
    )
    assert message_of(build_components, [{"type": 12, "items": [{"media": {}}]}]) == "Media gallery item requires media.url"
    assert message_of(build_components, [{"type": 13, "file": {}}]) == "File component requires file.url"


def test_labels_wrap_inputs_selects_and_file_uploads():
    labels = [
        {"type": 18, "label": "Name", "description": "d", "component": {"type": 4, "custom_id": "n", "max_length": 10}},
        {"type": 18, "label": "Pick", "component": {"type": 6, "custom_id": "r", "required": True}},
        {"type": 18, "label": "File", "component": {"type": 19, "custom_id": "f", "max_values": 2}},
    ]
    assert build_modal_components(labels) == [
        {
            "type": 18,
            "label": "Name",
            "description": "d",
            "component": {"type": 4, "custom_id": "n", "style": 1, "max_length": 10},
        },
        {"type": 18, "label": "Pick", "component": {"type": 6, "custom_id": "r", "required": True}},
        {"type": 18, "label": "File", "component": {"type": 19, "custom_id": "f", "max_values": 2}},
    ]
    assert message_of(build_modal_components, [{"type": 18, "label": "x", "component": None}]) == "Component missing numeric type"
    assert (
        message_of(build_modal_components, [{"type": 18, "label": "x", "component": BUTTON}])
        == "Unsupported label component type 2"
    )
    assert (
        message_of(build_modal_components, [{"type": 18, "component": {"type": 4, "custom_id": "n"}}]) == "Label requires label"
    )


def test_modal_components():
    legacy = build_modal_components(
        [
            {"type": 4, "custom_id": "a", "label": "A", "style": 2},
            {"type": 1, "components": [{"type": 4, "custom_id": "b"}]},
            {"type": 10, "content": "read me"},
        ]
    )
    assert legacy == [
        {"type": 1, "components": [{"type": 4, "custom_id": "a", "style": 2, "label": "A"}]},
        {"type": 1, "components": [{"type": 4, "custom_id": "b", "style": 1}]},
        {"type": 10, "content": "read me"},
    ]
    assert message_of(build_modal_components, [BUTTON]) == "Unsupported modal component type 2"
    assert message_of(build_modal_components, []) == "Invalid input for components: a modal needs at least one component"
    assert message_of(build_modal_components, [{"type": 1, "components": [BUTTON]}]).startswith(
        "Modal action rows must hold exactly one input text"
    )


# -- embeds, mentions, flags, bodies -------------------------------------------------------


def test_embed_server_rules():
    raw = {
        "title": "T",
        "color": 0xFFFFFF,
        "timestamp": "2024-05-01T12:00:00.123+02:00",
        "footer": {"iconUrl": "https://i"},
        "author": {"url": "https://a"},
        "image": {"url": ""},
        "thumbnail": {"url": "https://t"},
        "fields": [{"name": "n", "value": 1}, {"name": "m", "value": "v", "inline": True}],
    }
    assert build_embed(raw, 0) == {
        "title": "T",
        "color": 0xFFFFFF,
        "timestamp": "2024-05-01T12:00:00.123+02:00",
        "thumbnail": {"url": "https://t"},
        "fields": [{"name": "n", "value": "1", "inline": False}, {"name": "m", "value": "v", "inline": True}],
    }
    full = build_embed(
        {"footer": {"text": "f", "iconUrl": "https://i"}, "author": {"name": "a", "iconUrl": "https://ai", "url": "https://a"}}, 0
    )
    assert full == {
        "footer": {"text": "f", "icon_url": "https://i"},
        "author": {"name": "a", "url": "https://a", "icon_url": "https://ai"},
    }
    assert (
        message_of(build_embed, {"timestamp": "not a date"}, 0)
        == "Invalid input for embeds[].timestamp: expected an ISO 8601 timestamp"
    )
    assert build_embed({"description": "x" * 10000}, 0)["description"] == "x" * 10000  # lengths are Discord's business


def test_allowed_mentions_and_flags():
    assert allowed_mentions({"parse": ["everyone", "nope", "roles"], "users": ["1", "a", 2], "repliedUser": True}) == {
        "parse": ["everyone", "roles"],
        "users": ["1", "2"],
        "replied_user": True,
    }
    assert allowed_mentions({}) == {"parse": []}
    assert flags(64 | 1024 | 32768) == 64 | 32768
    assert message_of(flags, -1) == "Invalid input for flags: expected a non-negative integer"


def test_empty_payload_messages():
    assert message_of(new_message, {"content": ""}, empty_message=EMPTY_MESSAGE) == f"Invalid input for message: {EMPTY_MESSAGE}"
    assert message_of(new_message, {"embeds": []}, empty_message=EMPTY_MESSAGE) == f"Invalid input for message: {EMPTY_MESSAGE}"
    plain = message_of(
        new_message, {}, empty_message="Followup must include content, embeds, attachments, or components", plain_empty_error=True
    )
    assert plain == "Followup must include content, embeds, attachments, or components"
    # an update may clear the components; an edit may clear the content
    assert new_message({"components": []}, empty_message="x", components_may_be_empty=True).body == {"components": []}
    assert edited_message({"content": ""}, attachments=False, empty_message="e").body == {"content": ""}
    assert message_of(edited_message, {}, attachments=False, empty_message="e") == "Invalid input for message: e"
    assert new_message({"content": "x", "ephemeral": True}, empty_message="x", extra_flags=64).body == {
        "content": "x",
        "flags": 64,
    }


def test_reaction_emoji_path_forms():
    assert reaction_emoji("👍") == "👍"
    assert reaction_emoji("<:blob:123>") == "blob:123"
    assert reaction_emoji("<a:dance:123>") == "dance:123"
    for bad in ("<:blob>", "<x:blob:1>", "", None, "a/b"):
        assert message_of(reaction_emoji, bad).startswith("Invalid input for emoji:")


def test_read_retry_backoff_is_bounded_as_floras():
    assert all(0 <= backoff(0) <= 0.25 for _ in range(50))
    assert all(0 <= backoff(5) <= 2.0 for _ in range(50))


# -- attachments ---------------------------------------------------------------------------


def parse(raw, allowed=frozenset()):
    return parse_attachments(raw, cap=CAP, guard=netguard.Guard(",".join(allowed)))


def test_attachment_variants_in_both_casings():
    data = base64.b64encode(b"hello").decode()
    specs = parse(
        [
            {"Base64": {"data": data, "filename": "a.txt", "description": "d"}},
            {"base64": {"data": data, "filename": "dir/b.txt"}},
            {"Url": {"url": "https://example.com/files/c.png?x=1"}},
            {"url": {"url": "https://example.com/", "filename": "named.bin"}},
        ]
    )
    assert [(s.filename, s.description, s.data, s.url) for s in specs] == [
        ("a.txt", "d", b"hello", None),
        ("b.txt", None, b"hello", None),
        (None, None, None, "https://example.com/files/c.png?x=1"),
        ("named.bin", None, None, "https://example.com/"),
    ]
    assert default_filename("https://example.com/files/c%20d.png?x=1") == "c d.png"
    assert default_filename("https://example.com/") == "attachment"


@pytest.mark.parametrize(
    "raw, message",
    [
        ([{"Base64": {"data": "***", "filename": "x"}}], "Invalid input for attachments[].data: invalid base64"),
        ([{"Base64": {"data": "aGk="}}], "Invalid input for attachments[].filename: required for a Base64 attachment"),
        (
            [{"Base64": {"data": base64.b64encode(b"x" * (CAP + 1)).decode(), "filename": "big"}}],
            f"Invalid input for attachments[].data: attachment is larger than {CAP} bytes",
        ),
        ([{"File": {}}], "Invalid input for attachments: unknown attachment variant 'File' (expected Url or Base64)"),
        (
            [{"Url": {}, "Base64": {}}],
            'Invalid input for attachments: each attachment must be {"Url": {...}} or {"Base64": {...}}',
        ),
        (
            [{"Url": {"url": "ftp://example.com/x"}}],
            "Invalid input for attachments[].url: only http and https URLs can be downloaded",
        ),
        (
            [{"Url": {"url": "http://127.0.0.1:8080/x"}}],
            "Invalid input for attachments[].url: 127.0.0.1 is a private or local address",
        ),
        (
            [{"Url": {"url": "http://[::ffff:10.0.0.1]/x"}}],
            "Invalid input for attachments[].url: ::ffff:a00:1 is a private or local address",
        ),
        (
            [{"Url": {"url": "http://169.254.169.254/latest/meta-data"}}],
            "Invalid input for attachments[].url: 169.254.169.254 is a private or local address",
        ),
        (
            [{"Url": {"url": "http://user:pw@example.com/x"}}],
            "Invalid input for attachments[].url: URLs with credentials are not allowed",
        ),
        ([{"Url": {"url": "https://example.com/x"}}] * 11, "Invalid input for attachments: at most 10 attachments per message"),
        ("nope", "Invalid input for attachments: expected an array"),
    ],
)
def test_attachment_errors(raw, message):
    assert message_of(parse, raw) == message


def test_private_hosts_can_be_allow_listed():
    assert parse([{"Url": {"url": "http://127.0.0.1:8080/x"}}], {"127.0.0.1"})[0].url == "http://127.0.0.1:8080/x"
    allow = netguard.parse_allowlist("*.corp.internal")
    assert allow.allows("files.corp.internal") and allow.allows("corp.internal")
    assert not allow.allows("evilcorp.internal")
    with pytest.raises(DownloadError):
        check_url("http://[fe80::1]/x", netguard.Guard())


@pytest.fixture
def file_server():
    """A small HTTP server on 127.0.0.1 serving /file (100 bytes), /big, and redirects."""
    loop = asyncio.new_event_loop()

    async def handle_file(request):
        return web.Response(body=b"x" * 100)

    async def handle_big(request):
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"y" * 1000)  # no Content-Length: the cap is enforced while reading
        return resp

    async def handle_redirect(request):
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/file", handle_file)
    app.router.add_get("/big", handle_big)
    app.router.add_get("/redirect", handle_redirect)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield loop, f"http://127.0.0.1:{port}", port
    finally:
        loop.run_until_complete(runner.cleanup())
        loop.close()


def run_download(loop, url, allowed, cap=CAP):
    return loop.run_until_complete(download(url, cap=cap, timeout=5, guard=netguard.Guard(",".join(allowed))))


def test_download_respects_allow_list_cap_and_redirects(file_server):
    loop, base, port = file_server
    body, _ = run_download(loop, f"{base}/file", {"127.0.0.1"})
    assert body == b"x" * 100
    with pytest.raises(DownloadError, match="127.0.0.1 is a private or local address"):
        run_download(loop, f"{base}/file", set())
    # a name resolving to loopback is refused at connect time unless the name itself is listed
    with pytest.raises(DownloadError, match="localhost resolves to a private or local address"):
        run_download(loop, f"http://localhost:{port}/file", {"127.0.0.1"})
    assert run_download(loop, f"http://localhost:{port}/file", {"localhost"})[0] == b"x" * 100
    with pytest.raises(DownloadError, match=f"larger than {CAP} bytes"):
        run_download(loop, f"{base}/big", {"127.0.0.1"})
    # every redirect hop is checked again
    with pytest.raises(DownloadError, match="10.9.8.7 is a private or local address"):
        run_download(loop, f"{base}/redirect?to=http://10.9.8.7/x", {"127.0.0.1"})
    with pytest.raises(DownloadError, match="localhost resolves to a private or local address"):
        run_download(loop, f"{base}/redirect?to=http://localhost:{port}/file", {"127.0.0.1"})
    with pytest.raises(DownloadError, match="download failed with HTTP 404"):
        run_download(loop, f"{base}/missing", {"127.0.0.1"})


def test_load_attachments_downloads_after_parsing(file_server):
    loop, base, _ = file_server
    config = SimpleNamespace(fetch_max_response_bytes=CAP, fetch_allowed_private_hosts="127.0.0.1", fetch_timeout_secs=5)
    specs = parse_attachments(
        [{"Url": {"url": f"{base}/file", "description": "d"}}, {"Base64": {"data": "aGk=", "filename": "hi.txt"}}],
        cap=CAP,
        guard=netguard.Guard("127.0.0.1"),
    )
    files = loop.run_until_complete(load_attachments(SimpleNamespace(config=config), specs))
    assert [(f.filename, f.description, len(f.data)) for f in files] == [("file", "d", 100), ("hi.txt", None, 2)]
