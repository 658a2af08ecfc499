"""Configuration from the environment and ``config.toml``; the environment wins.

Key names and defaults follow flora's (``[section] key`` in TOML, the
upper-case name in the environment). Values are validated once, here, and a
bad one becomes a :class:`ConfigError` whose message is one line.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


class ConfigError(Exception):
    """A configuration value is missing or invalid (one line, for stderr)."""


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _int_range(lo: int, hi: int | None = None) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise ValueError(f"must be {bound}, got {value}")
        return value

    return parse


def _str(raw: Any) -> str:
    return str(raw)


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


def _shard_ids(raw: Any) -> list[int] | None:
    if raw in (None, ""):
        return None
    items = raw if isinstance(raw, list) else str(raw).split(",")
    try:
        return [int(str(x).strip()) for x in items if str(x).strip() != ""]
    except ValueError:
        raise ValueError(f"expected a comma-separated list of shard numbers, got {raw!r}") from None


@dataclass(frozen=True)
class Key:
    attr: str
    toml: str
    env: str
    parse: Callable[[Any], Any]
    default: Any


KEYS: list[Key] = [
    Key("discord_token", "discord.bot_token", "DISCORD_TOKEN", _str, None),
    Key("discord_client_id", "discord.client_id", "DISCORD_CLIENT_ID", _str, None),
    Key("discord_client_secret", "discord.client_secret", "DISCORD_CLIENT_SECRET", _str, None),
    Key("discord_redirect_uri", "discord.redirect_uri", "DISCORD_REDIRECT_URI", _str, "http://localhost:3000/auth/callback"),
    Key("discord_api_base", "discord.api_base", "FLORA_DISCORD_API_BASE", _str, "https://discord.com/api/v10"),
    Key("shard_ids", "discord.shard_ids", "DISCORD_SHARD_IDS", _shard_ids, None),
    Key("shard_count", "discord.shard_count", "DISCORD_SHARD_COUNT", _int_range(1), None),
    Key("data_dir", "data_dir", "FLORA_DATA_DIR", _str, "./data"),
    Key("database_url", "database.url", "DATABASE_URL", _str, None),
    Key("database_max_connections", "database.max_connections", "DATABASE_MAX_CONNECTIONS", _int_range(1), 5),
    Key("redis_url", "cache.url", "REDIS_URL", _str, None),
    Key("secrets_master_key", "secrets.master_key", "SECRETS_MASTER_KEY", _str, None),
    Key("log_level", "log_level", "FLORA_LOG_LEVEL", _str, "info"),
    Key("max_workers", "runtime.max_workers", "RUNTIME_MAX_WORKERS", _int_range(1, 64), 4),
    Key("worker_queue_capacity", "runtime.worker_queue_capacity", "RUNTIME_WORKER_QUEUE_CAPACITY", _int_range(1), 1024),
    Key("boot_timeout_secs", "runtime.boot_timeout_secs", "RUNTIME_BOOT_TIMEOUT_SECS", _int_range(0), 5),
    Key("load_timeout_secs", "runtime.load_timeout_secs", "RUNTIME_LOAD_TIMEOUT_SECS", _int_range(0), 30),
    Key("dispatch_timeout_secs", "runtime.dispatch_timeout_secs", "RUNTIME_DISPATCH_TIMEOUT_SECS", _int_range(0), 3),
    Key("close_grace_secs", "runtime.close_grace_secs", "RUNTIME_CLOSE_GRACE_SECS", _int_range(1, 600), 15),
    Key("rest_timeout_ms", "runtime.rest_timeout_ms", "RUNTIME_REST_TIMEOUT_MS", _int_range(1), 8000),
    Key("guild_concurrency", "runtime.guild_concurrency", "RUNTIME_GUILD_CONCURRENCY", _int_range(1), 4),
    Key("max_script_bytes", "runtime.max_script_bytes", "RUNTIME_MAX_SCRIPT_BYTES", _int_range(1024), 8 * 1024 * 1024),
    Key("max_bundle_files", "runtime.max_bundle_files", "RUNTIME_MAX_BUNDLE_FILES", _int_range(1), 200),
    Key("max_bundle_total_bytes", "runtime.max_bundle_total_bytes", "RUNTIME_MAX_BUNDLE_TOTAL_BYTES", _int_range(1), 1024 * 1024),
    Key("bundler_sandbox", "runtime.bundler_sandbox", "BUNDLER_SANDBOX", _choice("auto", "bwrap", "none"), "auto"),
    Key("max_cron_jobs", "runtime.max_cron_jobs", "RUNTIME_MAX_CRON_JOBS", _int_range(0), 32),
    Key("cron_timeout_secs", "runtime.cron_timeout_secs", "RUNTIME_CRON_TIMEOUT_SECS", _int_range(0), 5),
    Key("show_internal_stack_frames", "runtime.show_internal_stack_frames", "RUNTIME_SHOW_INTERNAL_STACK_FRAMES", _bool, False),
    Key("isolate_memory_mb", "runtime.isolate_memory_mb", "RUNTIME_ISOLATE_MEMORY_MB", _int_range(8, 1024), 64),
    Key("worker_max_rss_mb", "runtime.worker_max_rss_mb", "RUNTIME_WORKER_MAX_RSS_MB", _int_range(64), 2048),
    Key("auto_defer_ms", "runtime.auto_defer_ms", "RUNTIME_AUTO_DEFER_MS", _int_range(0, 2900), 2500),
    Key("suspend_backoff_secs", "runtime.suspend_backoff_secs", "RUNTIME_SUSPEND_BACKOFF_SECS", _int_range(1, 3600), 5),
    Key("kv_backend", "kv.backend", "KV_BACKEND", _str, "sqlitedict"),
    Key("kv_url", "kv.url", "KV_URL", _str, None),
    Key("fetch_timeout_secs", "fetch.timeout_secs", "FETCH_TIMEOUT_SECS", _int_range(1, 120), 10),
    Key("fetch_max_response_bytes", "fetch.max_response_bytes", "FETCH_MAX_RESPONSE_BYTES", _int_range(1024), 5 * 1024 * 1024),
    Key("fetch_allowed_private_hosts", "fetch.allowed_private_hosts", "FETCH_ALLOWED_PRIVATE_HOSTS", _str, ""),
    Key("log_retention_per_guild", "logs.retention_per_guild", "LOG_RETENTION_PER_GUILD", _int_range(100, 10_000_000), 5000),
    Key("api_request_timeout_secs", "api.request_timeout_secs", "API_REQUEST_TIMEOUT_SECS", _int_range(0, 3600), 10),
    Key("api_address", "api.address", "API_ADDRESS", _str, "0.0.0.0"),
    Key("api_port", "api.port", "API_PORT", _int_range(0, 65535), 3000),
    Key("api_secret", "api.secret", "API_SECRET", _str, None),
    Key("api_cookie_ttl_secs", "api.cookie_ttl_secs", "API_COOKIE_TTL_SECS", _int_range(60), 2592000),
    Key("api_cookie_secure", "api.cookie_secure", "API_COOKIE_SECURE", _bool, False),
    Key("api_operator_secret", "api.operator_secret", "API_OPERATOR_SECRET", _str, None),
]


class Config:
    """Resolved configuration. Attribute names are listed in :data:`KEYS`."""

    def __init__(self, values: dict[str, Any]):
        self._values = dict(values)
        for key, value in values.items():
            setattr(self, key, value)

    # Derived paths -----------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'flora.db'}"

    @property
    def control_socket(self) -> Path:
        """Unix socket on which the runtime answers the API (the embedded bus)."""
        return self.data_path / "run" / "runtime.sock"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        return cls(values)

    def require(self, *attrs: str, hint: str = "") -> None:
        for attr in attrs:
            if not getattr(self, attr):
                key = next(k for k in KEYS if k.attr == attr)
                msg = f"{key.env} is required (set it in the environment or as {key.toml} in config.toml)"
                raise ConfigError(msg + (f"; {hint}" if hint else ""))


def _lookup(table: dict, dotted: str) -> Any:
    node: Any = table
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
    """Read ``config.toml`` (``FLORA_CONFIG`` or ``./config.toml``) and the environment."""
    env = dict(os.environ if env is None else env)
    toml_path = Path(path or env.get("FLORA_CONFIG") or "config.toml")
    table: dict = {}
    if toml_path.exists():
        try:
            table = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{toml_path}: invalid TOML: {exc}") from None
    elif path is not None or "FLORA_CONFIG" in env:
        raise ConfigError(f"config file {toml_path} does not exist")
    values: dict[str, Any] = {}
    for key in KEYS:
        raw = env.get(key.env)
        source = key.env
        if raw is None or raw == "":
            raw = _lookup(table, key.toml)
            source = f"{key.toml} in {toml_path}"
        if raw is None:
            values[key.attr] = key.default
            continue
        try:
            values[key.attr] = key.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"invalid {source}: {exc}") from None
    cfg = Config(values)
    if (cfg.shard_ids is None) != (cfg.shard_count is None) and cfg.shard_ids is not None:
        raise ConfigError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT")
    if cfg.shard_ids and cfg.shard_count and any(s < 0 or s >= cfg.shard_count for s in cfg.shard_ids):
        raise ConfigError(f"DISCORD_SHARD_IDS must be between 0 and DISCORD_SHARD_COUNT-1 ({cfg.shard_count - 1})")
    if cfg.secrets_master_key:
        key = cfg.secrets_master_key
        if not (len(key) == 64 and all(c in "0123456789abcdefABCDEF" for c in key)) and len(key.encode()) != 32:
            raise ConfigError(f"SECRETS_MASTER_KEY must be 32 bytes (got {len(key.encode())}): "
                              "give 64 hex characters or exactly 32 bytes")
    if not cfg.discord_api_base.startswith(("http://", "https://")):
        raise ConfigError(f"invalid FLORA_DISCORD_API_BASE: expected an http(s) URL, got {cfg.discord_api_base!r}")
    return cfg
