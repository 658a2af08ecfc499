"""Guild secrets in the relational database, encrypted at rest.

Each value is sealed with ChaCha20-Poly1305 under ``SECRETS_MASTER_KEY``, a
fresh random 96-bit nonce per write, and ``<guild id> NUL <name>`` as
associated data: a row copied to another guild or renamed does not decrypt.
Only this module sees plaintext; the API, the CLI and scripts get names and
allowed hosts.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from flora_core.storage import utcnow

log = logging.getLogger("flora.secrets")

GENERATE_HINT = 'generate one with: python3 -c "import secrets; print(secrets.token_hex(32))"'
DISABLED_MESSAGE = f"secrets are disabled: set SECRETS_MASTER_KEY (64 hex characters; {GENERATE_HINT})"
NONCE_BYTES = 12
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class SecretsError(Exception):
    """A secret could not be stored or read; the message is for the user."""


class SecretsDisabled(SecretsError):
    def __init__(self):
        super().__init__(DISABLED_MESSAGE)


def parse_master_key(raw: str | bytes | None) -> bytes | None:
    """flora's rule: 64 hex characters, or exactly 32 raw bytes; ``None``/empty means disabled."""
    if raw is None or raw == "" or raw == b"":
        return None
    if isinstance(raw, str) and _HEX64.match(raw):
        return bytes.fromhex(raw)
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(data) != 32:
        # flora's text, then how to make a good one
        raise SecretsError(
            f"SECRETS_MASTER_KEY must be 32 bytes (got {len(data)}): 64 hex characters or 32 raw bytes; {GENERATE_HINT}"
        )
    return data


def box_from_config(config) -> SecretBox:
    """The cipher for ``config.secrets_master_key``; :class:`SecretsDisabled` without one."""
    key = parse_master_key(getattr(config, "secrets_master_key", None))
    if key is None:
        raise SecretsDisabled()
    return SecretBox(key)


class SecretBox:
    def __init__(self, key: bytes):
        self._aead = ChaCha20Poly1305(key)

    @staticmethod
    def _ad(guild_id: str, name: str) -> bytes:
        return f"{guild_id}\x00{name}".encode()

    def seal(self, guild_id: str, name: str, value: str) -> tuple[str, str]:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode("utf-8"), self._ad(guild_id, name))
        return base64.b64encode(nonce).decode(), base64.b64encode(sealed).decode()

    def open(self, guild_id: str, name: str, nonce: str, ciphertext: str) -> str:
        """The plaintext; :class:`SecretsError` if the row was sealed with another key or altered."""
        try:
            plain = self._aead.decrypt(base64.b64decode(nonce), base64.b64decode(ciphertext), self._ad(guild_id, name))
            return plain.decode("utf-8")
        except (InvalidTag, ValueError, UnicodeDecodeError):
            raise SecretsError(f"secret '{name}' cannot be decrypted (was it stored with another SECRETS_MASTER_KEY?)") from None


@dataclass(frozen=True)
class Secret:
    name: str
    value: str
    allowed_hosts: tuple[str, ...]


def _hosts(raw) -> list[str]:
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return []
    return [h for h in value if isinstance(h, str)] if isinstance(value, list) else []


def list_secrets(db, guild_id: str) -> list[dict]:
    """``[{name, allowed_hosts}]`` of a guild, by name; no decryption, so no key needed."""
    rows = db.fetchall("SELECT name, allowed_hosts FROM guild_secrets WHERE guild_id = ? ORDER BY name", (guild_id,))
    return [{"name": r["name"], "allowed_hosts": _hosts(r["allowed_hosts"])} for r in rows]


def put_secret(db, box: SecretBox, guild_id: str, name: str, value: str, allowed_hosts: list[str]) -> dict:
    """Create or replace a secret; returns ``{name, allowed_hosts}``."""
    nonce, sealed = box.seal(guild_id, name, value)
    now = utcnow()
    db.execute(
        "INSERT INTO guild_secrets (guild_id, name, nonce, ciphertext, allowed_hosts, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (guild_id, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext,"
        " allowed_hosts = excluded.allowed_hosts, updated_at = excluded.updated_at",
        (guild_id, name, nonce, sealed, json.dumps(list(allowed_hosts)), now, now),
    )
    return {"name": name, "allowed_hosts": list(allowed_hosts)}


def delete_secret(db, guild_id: str, name: str) -> bool:
    return db.execute("DELETE FROM guild_secrets WHERE guild_id = ? AND name = ?", (guild_id, name)) > 0


def load_secrets(db, box: SecretBox, guild_id: str) -> tuple[dict[str, Secret], dict[str, str]]:
    """Decrypted secrets of a guild, and ``{name: warning}`` for rows that could not be decrypted.

    Such rows (another master key, tampering) are skipped, as flora does: for
    the script that secret does not exist. The warnings also go to the
    operator's log here; callers may add them to the guild's log.
    """
    rows = db.fetchall("SELECT name, nonce, ciphertext, allowed_hosts FROM guild_secrets WHERE guild_id = ?", (guild_id,))
    out: dict[str, Secret] = {}
    warnings: dict[str, str] = {}
    for row in rows:
        try:
            value = box.open(guild_id, row["name"], row["nonce"], row["ciphertext"])
        except SecretsError as exc:
            warnings[row["name"]] = f"{exc}; skipped"
            log.warning("guild %s: %s; skipped", guild_id, exc)
            continue
        out[row["name"]] = Secret(row["name"], value, tuple(_hosts(row["allowed_hosts"])))
    return out, warnings
