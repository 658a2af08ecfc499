"""Queries over the relational schema: deployments, revisions, tokens, logs."""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import time
import uuid
from collections.abc import Callable, Sequence

from . import Database, utcnow

DEPLOY_SOURCES = ("cli", "webui", "bootstrap", "api", "unknown")
# The first bundler version that checks what a bundle reads (flora_core.bundler.BUNDLER_VERSION);
# a revision's bundle from before it is never loaded or served, only rebuilt from its files.
TRUSTED_BUNDLER_VERSION = 2
LOG_RETENTION_PER_GUILD = 5000


def storable_text(text: str | None) -> str | None:
    """``text`` as every backend can store it: NUL (which PostgreSQL refuses in text) and lone
    surrogates (not UTF-8, so no backend takes them; a script's ``"\\ud800"`` reaches Python as one
    through JSON) become U+FFFD.

    For text a script controls that is only read back (log lines, error messages): one such line must
    not fail the write it is part of, and the supervisor writes every guild's lines of the last 0.25 s
    in one transaction."""
    if text is None:
        return None
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate pairs split into two code points are joined, lone ones replaced
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


# -- deployments ---------------------------------------------------------------
def _revision_out(row: dict | None) -> dict | None:
    if row is None:
        return None
    out = dict(row)
    for key in ("files", "source_map", "change_summary"):
        if out.get(key) is not None:
            out[key] = json.loads(out[key])
    return out


def record_revision(
    db: Database,
    guild_id: str,
    *,
    entry: str,
    status: str,
    bundle: str | None,
    deploy_source: str = "unknown",
    actor_type: str = "system",
    actor_user_id: str | None = None,
    actor_username: str | None = None,
    error_message: str | None = None,
    files: list | None = None,
    source_map: dict | None = None,
    base_revision_id: str | None = None,
    change_summary: dict | None = None,
    bundler_version: int | None = None,
) -> dict:
    """Insert a revision; a successful one also becomes the guild's deployment (one transaction)."""
    rev_id = str(uuid.uuid4())
    now = utcnow()
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO deployment_revisions (id, guild_id, entry, status, deployed_at, deploy_source, actor_type,"
            " actor_user_id, actor_username, error_message, base_revision_id, change_summary, files, bundle, source_map,"
            " bundler_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rev_id,
                guild_id,
                entry,
                status,
                now,
                deploy_source,
                actor_type,
                actor_user_id,
                storable_text(actor_username),
                storable_text(error_message),
                base_revision_id,
                json.dumps(change_summary) if change_summary is not None else None,
                json.dumps(files) if files is not None else None,
                bundle,
                json.dumps(source_map) if source_map is not None else None,
                bundler_version,
            ),
        )
        if status == "success":
            # One statement, not a read then an insert: two first deploys of a guild at once (two API
            # workers) would both find no row, and on PostgreSQL the second insert would fail.
            cur.execute(
                "INSERT INTO deployments (guild_id, entry, revision_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id) DO UPDATE SET entry = excluded.entry, revision_id = excluded.revision_id,"
                " updated_at = excluded.updated_at",
                (guild_id, entry, rev_id, now, now),
            )
    rev = get_revision(db, guild_id, rev_id)
    assert rev is not None  # written in the transaction above
    return rev


def get_revision(db: Database, guild_id: str, revision_id: str) -> dict | None:
    return _revision_out(db.fetchone("SELECT * FROM deployment_revisions WHERE guild_id = ? AND id = ?", (guild_id, revision_id)))


def latest_success(db: Database, guild_id: str) -> dict | None:
    return _revision_out(
        db.fetchone(
            "SELECT * FROM deployment_revisions WHERE guild_id = ? AND status = 'success' ORDER BY deployed_at DESC, id DESC LIMIT 1",
            (guild_id,),
        )
    )


def get_deployment(db: Database, guild_id: str) -> dict | None:
    return db.fetchone("SELECT * FROM deployments WHERE guild_id = ?", (guild_id,))


def list_deployments(db: Database) -> list[dict]:
    return db.fetchall("SELECT guild_id, entry, created_at, updated_at FROM deployments ORDER BY guild_id")


def current_bundles(db: Database) -> dict[str, str]:
    """Guild id -> bundle of its current deployment (what the runtime loads at start).

    Only bundles made by a bundler that checks what it reads (:data:`TRUSTED_BUNDLER_VERSION`);
    older ones are first rebuilt by :func:`verified_bundle` or stay unloaded.
    """
    rows = db.fetchall(
        "SELECT d.guild_id AS guild_id, r.bundle AS bundle FROM deployments d"
        " JOIN deployment_revisions r ON r.id = d.revision_id WHERE r.bundler_version >= ?",
        (TRUSTED_BUNDLER_VERSION,),
    )
    return {r["guild_id"]: r["bundle"] for r in rows if r["bundle"]}


def current_bundle(db: Database, guild_id: str) -> str | None:
    row = db.fetchone(
        "SELECT r.bundle AS bundle FROM deployments d JOIN deployment_revisions r ON r.id = d.revision_id"
        " WHERE d.guild_id = ? AND r.bundler_version >= ?",
        (guild_id, TRUSTED_BUNDLER_VERSION),
    )
    return row["bundle"] if row else None


def bundle_trusted(rev: dict) -> bool:
    """Whether the revision's bundle may be loaded or served as it is."""
    return bool(rev.get("bundle")) and (rev.get("bundler_version") or 0) >= TRUSTED_BUNDLER_VERSION


def legacy_current_revisions(db: Database) -> list[dict]:
    """Current deployments whose bundle was made before the bundler checked what it reads."""
    rows = db.fetchall(
        "SELECT r.* FROM deployments d JOIN deployment_revisions r ON r.id = d.revision_id"
        " WHERE r.bundler_version IS NULL OR r.bundler_version < ?",
        (TRUSTED_BUNDLER_VERSION,),
    )
    return [_revision_out(r) or {} for r in rows]


class LegacyBundle(Exception):
    """A revision bundled before the bundler checked what it reads, with no files to rebuild it from."""


def verified_bundle(db: Database, rev: dict, rebundle: Callable[[str, list], str], version: int) -> str:
    """The revision's bundle, rebuilt from its files (and stored) when an older bundler made it.

    ``rebundle(entry, files)`` raises the bundler's error when the files are refused now.
    """
    if bundle_trusted(rev):
        return rev["bundle"]
    if not rev.get("files"):
        raise LegacyBundle(
            "it was bundled by a flora that did not yet check what a bundle may read, and it has "
            "no source files to rebuild it from; deploy the script again"
        )
    bundle = rebundle(rev["entry"], rev["files"])
    with db.transaction() as cur:
        cur.execute("UPDATE deployment_revisions SET bundle = ?, bundler_version = ? WHERE id = ?", (bundle, version, rev["id"]))
    rev.update(bundle=bundle, bundler_version=version)
    return bundle


# -- API tokens ----------------------------------------------------------------
_ALNUM = string.ascii_letters + string.digits


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


TOKEN_SCOPES = ("read", "deploy", "admin")  # each allows what the ones before it allow
_TOKEN_COLUMNS = "token_id, label, user_id, created_at, last_used_at, scope, guild_ids"


def _token_row(row: dict) -> dict:
    row["guild_ids"] = row["guild_ids"].split(",") if row.get("guild_ids") else None
    return row


def create_token(
    db: Database,
    label: str | None = None,
    user_id: str | None = None,
    *,
    scope: str = "admin",
    guild_ids: Sequence[str] | None = None,
) -> tuple[str, dict]:
    """Create an API token ``<id>.<secret>``; only its SHA-256 is stored. Returns (plaintext, row).

    ``scope`` (``read``, ``deploy``, ``admin``) limits what it may do, ``guild_ids`` which guilds it
    reaches (``None``: every guild its owner may manage)."""
    if scope not in TOKEN_SCOPES:
        raise ValueError(f"unknown token scope {scope!r} (one of {', '.join(TOKEN_SCOPES)})")
    guilds = sorted(dict.fromkeys(str(g) for g in guild_ids)) if guild_ids else None
    token_id = "".join(secrets.choice(_ALNUM) for _ in range(12))
    secret = "".join(secrets.choice(_ALNUM) for _ in range(32))
    token = f"{token_id}.{secret}"
    now = utcnow()
    db.execute(
        "INSERT INTO api_tokens (token_id, token_hash, label, user_id, created_at, scope, guild_ids)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (token_id, _hash_token(token), label, user_id, now, scope, ",".join(guilds) if guilds else None),
    )
    return token, {
        "token_id": token_id,
        "label": label,
        "user_id": user_id,
        "created_at": now,
        "last_used_at": None,
        "scope": scope,
        "guild_ids": guilds,
    }


def verify_token(db: Database, token: str) -> dict | None:
    """Return the token's row (and touch ``last_used_at``) if ``token`` is valid."""
    if not token or len(token) < 20 or "." not in token:
        return None
    row = db.fetchone(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?", (_hash_token(token),))
    if row is None:
        return None
    db.execute("UPDATE api_tokens SET last_used_at = ? WHERE token_id = ?", (utcnow(), row["token_id"]))
    return _token_row(row)


def list_tokens(db: Database) -> list[dict]:
    return [_token_row(r) for r in db.fetchall(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at DESC")]


def revoke_token(db: Database, token_id: str) -> bool:
    return db.execute("DELETE FROM api_tokens WHERE token_id = ?", (token_id,)) > 0


def list_user_tokens(db: Database, user_id: str) -> list[dict]:
    """The tokens owned by a Discord user, newest first."""
    return db.fetchall(
        "SELECT token_id, label, created_at, last_used_at FROM api_tokens WHERE user_id = ? ORDER BY created_at DESC",
        (user_id,),
    )


def revoke_user_token(db: Database, token_id: str, user_id: str) -> bool:
    """Delete ``token_id`` only if ``user_id`` owns it."""
    return db.execute("DELETE FROM api_tokens WHERE token_id = ? AND user_id = ?", (token_id, user_id)) > 0


# -- OAuth state and web sessions -----------------------------------------------
def create_oauth_state(db: Database, state: str, ttl: int = 600) -> None:
    now = int(time.time())
    db.execute("DELETE FROM oauth_states WHERE expires_at <= ?", (now,))
    db.execute("INSERT INTO oauth_states (state, expires_at) VALUES (?, ?)", (state, now + ttl))


def consume_oauth_state(db: Database, state: str) -> bool:
    """One-shot: True if ``state`` was issued and is not expired (it is deleted either way)."""
    row = db.fetchone("SELECT expires_at FROM oauth_states WHERE state = ?", (state,))
    if row is None:
        return False
    deleted = db.execute("DELETE FROM oauth_states WHERE state = ?", (state,)) > 0
    return deleted and int(row["expires_at"]) > int(time.time())


_SESSION_COLS = (
    "id, user_id, username, global_name, avatar, access_token, refresh_token, expires_at, session_expires_at, created_at"
)


def create_session(
    db: Database, sid: str, user: dict, access_token: str, refresh_token: str | None, expires_at: int, session_expires_at: int
) -> None:
    db.execute(
        f"INSERT INTO sessions ({_SESSION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            sid,
            str(user["id"]),
            user.get("username") or "",
            user.get("global_name"),
            user.get("avatar"),
            access_token,
            refresh_token,
            int(expires_at),
            int(session_expires_at),
            utcnow(),
        ),
    )


def get_session(db: Database, sid: str) -> dict | None:
    return db.fetchone(f"SELECT {_SESSION_COLS} FROM sessions WHERE id = ?", (sid,))


def update_session_tokens(
    db: Database, sid: str, access_token: str, refresh_token: str | None, expires_at: int, session_expires_at: int
) -> None:
    db.execute(
        "UPDATE sessions SET access_token = ?, refresh_token = ?, expires_at = ?, session_expires_at = ? WHERE id = ?",
        (access_token, refresh_token, int(expires_at), int(session_expires_at), sid),
    )


def delete_session(db: Database, sid: str) -> None:
    db.execute("DELETE FROM sessions WHERE id = ?", (sid,))


# -- guild logs ----------------------------------------------------------------
def append_logs(db: Database, entries: list[dict], keep: int | None = None) -> None:
    """Store log entries ``{guild_id, timestamp, level, target, message}``; keep the newest ``keep`` per guild."""
    keep = keep or LOG_RETENTION_PER_GUILD
    if not entries:
        return
    with db.transaction() as cur:
        for e in entries:
            cur.execute(
                "INSERT INTO guild_logs (guild_id, timestamp, level, target, message) VALUES (?, ?, ?, ?, ?)",
                (
                    e.get("guild_id"),
                    int(e.get("timestamp") or time.time() * 1000),
                    storable_text(e["level"]),
                    storable_text(e["target"]),
                    storable_text(e["message"]),
                ),
            )
        for guild_id in {e.get("guild_id") for e in entries if e.get("guild_id")}:
            cur.execute(
                "DELETE FROM guild_logs WHERE guild_id = ? AND id <= (SELECT id FROM guild_logs WHERE guild_id = ?"
                " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (guild_id, guild_id, keep),
            )


def recent_logs(db: Database, guild_id: str, limit: int = 100) -> list[dict]:
    """The newest ``limit`` entries of a guild, oldest first."""
    rows = db.fetchall(
        "SELECT timestamp, level, target, guild_id, message FROM guild_logs WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
        (guild_id, int(limit)),
    )
    return list(reversed(rows))


# -- revision history (flora §6.6) -----------------------------------------------
def revision_history(
    db: Database,
    guild_id: str,
    limit: int,
    cursor: tuple[str, str] | None = None,
) -> list[dict]:
    """A guild's revisions newest first (``deployed_at DESC, id DESC``), keyset-paged.

    ``cursor`` is ``(deployed_at, id)`` of the last item of the previous page;
    only rows strictly before it are returned.
    """
    sql = "SELECT * FROM deployment_revisions WHERE guild_id = ?"
    params: list = [guild_id]
    if cursor is not None:
        sql += " AND (deployed_at < ? OR (deployed_at = ? AND id < ?))"
        params += [cursor[0], cursor[0], cursor[1]]
    sql += " ORDER BY deployed_at DESC, id DESC LIMIT ?"
    params.append(int(limit))
    return [_revision_out(r) or {} for r in db.fetchall(sql, tuple(params))]


def count_revisions_by_status(db: Database) -> dict[str, int]:
    """``{status: count}`` over every guild's deployment revisions."""
    rows = db.fetchall("SELECT status, COUNT(*) AS n FROM deployment_revisions GROUP BY status")
    return {r["status"]: int(r["n"]) for r in rows}


def logs_after(db: Database, guild_id: str, after_id: int, limit: int = 500) -> list[dict]:
    """Log entries of a guild with ``id > after_id``, oldest first (with their ``id``)."""
    return db.fetchall(
        "SELECT id, timestamp, level, target, guild_id, message FROM guild_logs WHERE guild_id = ? AND id > ?"
        " ORDER BY id LIMIT ?",
        (guild_id, int(after_id), int(limit)),
    )


def last_log_id(db: Database) -> int:
    """The highest ``guild_logs.id`` written so far (0 when empty)."""
    row = db.fetchone("SELECT MAX(id) AS m FROM guild_logs")
    return int(row["m"] or 0) if row else 0


def count_runtime_logs(db: Database, patterns: dict[str, str]) -> dict[str, int]:
    """``{name: count}`` of ``flora:runtime`` log rows whose message matches each SQL LIKE pattern."""
    out = {}
    for name, pattern in patterns.items():
        row = db.fetchone("SELECT COUNT(*) AS n FROM guild_logs WHERE target = 'flora:runtime' AND message LIKE ?", (pattern,))
        out[name] = int(row["n"]) if row else 0
    return out
