"""Configuration from the environment and ``config.toml``; the environment wins.

Key names and defaults follow flora's (``[section] key`` in TOML, the
upper-case name in the environment). Values are validated once, here, and a
bad one becomes a :class:`ConfigError` whose message is one line.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A configuration value is missing or invalid (one line, for stderr)."""


def redacted(url: str) -> str:
    """A URL setting (``DATABASE_URL``, ``REDIS_URL``) for messages: its password replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url


def bool_value(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def int_range(lo: int, hi: int | None = None) -> Callable[[Any], int]:
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


def text(raw: Any) -> str:
    return str(raw)


def choice(*allowed: str) -> Callable[[Any], str]:
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


def _private_hosts(raw: Any) -> str:
    """``FETCH_ALLOWED_PRIVATE_HOSTS``: validated here (at start), kept as text (workers parse it again)."""
    from .netguard import parse_allowlist

    text = ",".join(str(x) for x in raw) if isinstance(raw, list) else str(raw)
    parse_allowlist(text)  # an invalid entry raises ValueError (InvalidAllowList) with a one-line message
    return text


def _redis_url(raw: Any) -> str:
    """``REDIS_URL``: a URL redis-py accepts (its scheme only is named in the error: the URL may hold a password)."""
    value = str(raw).strip()
    scheme = value.split("://", 1)[0] if "://" in value else None
    if scheme not in ("redis", "rediss", "unix"):
        got = f"a {scheme}:// URL" if scheme else "a value without a scheme"
        raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {got}")
    return value


@dataclass(frozen=True)
class Key:
    attr: str
    toml: str
    env: str
    parse: Callable[[Any], Any]
    default: Any


KEYS: list[Key] = [
    Key("discord_token", "discord.bot_token", "DISCORD_TOKEN", text, None),
    Key("discord_client_id", "discord.client_id", "DISCORD_CLIENT_ID", text, None),
    Key("discord_client_secret", "discord.client_secret", "DISCORD_CLIENT_SECRET", text, None),
    Key("discord_redirect_uri", "discord.redirect_uri", "DISCORD_REDIRECT_URI", text, "http://localhost:3000/auth/callback"),
    Key("discord_api_base", "discord.api_base", "FLORA_DISCORD_API_BASE", text, "https://discord.com/api/v10"),
    Key("shard_ids", "discord.shard_ids", "DISCORD_SHARD_IDS", _shard_ids, None),
    Key("shard_count", "discord.shard_count", "DISCORD_SHARD_COUNT", int_range(1), None),
    Key("data_dir", "data_dir", "FLORA_DATA_DIR", text, "./data"),
    Key("database_url", "database.url", "DATABASE_URL", text, None),
    Key("database_max_connections", "database.max_connections", "DATABASE_MAX_CONNECTIONS", int_range(1), 5),
    Key("redis_url", "cache.url", "REDIS_URL", _redis_url, None),
    Key("log_level", "log_level", "FLORA_LOG_LEVEL", text, "info"),
    Key("max_workers", "runtime.max_workers", "RUNTIME_MAX_WORKERS", int_range(1, 64), 4),
    Key("worker_queue_capacity", "runtime.worker_queue_capacity", "RUNTIME_WORKER_QUEUE_CAPACITY", int_range(1), 1024),
    Key("boot_timeout_secs", "runtime.boot_timeout_secs", "RUNTIME_BOOT_TIMEOUT_SECS", int_range(0), 5),
    Key("load_timeout_secs", "runtime.load_timeout_secs", "RUNTIME_LOAD_TIMEOUT_SECS", int_range(0), 30),
    Key("dispatch_timeout_secs", "runtime.dispatch_timeout_secs", "RUNTIME_DISPATCH_TIMEOUT_SECS", int_range(0), 3),
    Key("close_grace_secs", "runtime.close_grace_secs", "RUNTIME_CLOSE_GRACE_SECS", int_range(1, 600), 15),
    Key("rest_timeout_ms", "runtime.rest_timeout_ms", "RUNTIME_REST_TIMEOUT_MS", int_range(1), 8000),
    Key("guild_concurrency", "runtime.guild_concurrency", "RUNTIME_GUILD_CONCURRENCY", int_range(1), 4),
    Key("max_script_bytes", "runtime.max_script_bytes", "RUNTIME_MAX_SCRIPT_BYTES", int_range(1024), 8 * 1024 * 1024),
    Key("max_bundle_files", "runtime.max_bundle_files", "RUNTIME_MAX_BUNDLE_FILES", int_range(1), 200),
    Key("max_bundle_total_bytes", "runtime.max_bundle_total_bytes", "RUNTIME_MAX_BUNDLE_TOTAL_BYTES", int_range(1), 1024 * 1024),
    Key("bundler_sandbox", "runtime.bundler_sandbox", "BUNDLER_SANDBOX", choice("auto", "bwrap", "none"), "auto"),
    Key(
        "show_internal_stack_frames",
        "runtime.show_internal_stack_frames",
        "RUNTIME_SHOW_INTERNAL_STACK_FRAMES",
        bool_value,
        False,
    ),
    Key("isolate_memory_mb", "runtime.isolate_memory_mb", "RUNTIME_ISOLATE_MEMORY_MB", int_range(8, 1024), 64),
    Key("worker_max_rss_mb", "runtime.worker_max_rss_mb", "RUNTIME_WORKER_MAX_RSS_MB", int_range(64), 2048),
    Key("auto_defer_ms", "runtime.auto_defer_ms", "RUNTIME_AUTO_DEFER_MS", int_range(0, 2900), 2500),
    Key("suspend_backoff_secs", "runtime.suspend_backoff_secs", "RUNTIME_SUSPEND_BACKOFF_SECS", int_range(1, 3600), 5),
    Key("fetch_timeout_secs", "fetch.timeout_secs", "FETCH_TIMEOUT_SECS", int_range(1, 120), 10),
    Key("fetch_max_response_bytes", "fetch.max_response_bytes", "FETCH_MAX_RESPONSE_BYTES", int_range(1024), 5 * 1024 * 1024),
    Key("fetch_allowed_private_hosts", "fetch.allowed_private_hosts", "FETCH_ALLOWED_PRIVATE_HOSTS", _private_hosts, ""),
    Key("log_retention_per_guild", "logs.retention_per_guild", "LOG_RETENTION_PER_GUILD", int_range(100, 10_000_000), 5000),
    Key("api_request_timeout_secs", "api.request_timeout_secs", "API_REQUEST_TIMEOUT_SECS", int_range(0, 3600), 10),
    Key("api_address", "api.address", "API_ADDRESS", text, "0.0.0.0"),
    Key("api_port", "api.port", "API_PORT", int_range(0, 65535), 3000),
    Key("api_secret", "api.secret", "API_SECRET", text, None),
    Key("api_cookie_ttl_secs", "api.cookie_ttl_secs", "API_COOKIE_TTL_SECS", int_range(60), 2592000),
    Key("api_cookie_secure", "api.cookie_secure", "API_COOKIE_SECURE", bool_value, False),
    Key("api_operator_secret", "api.operator_secret", "API_OPERATOR_SECRET", text, None),
]


class Config:
    """Resolved configuration: flora's keys (:data:`KEYS`) as the typed attributes below, plugins' keys
    (``flora_register_config_keys``) as further attributes. A test keeps the annotations and KEYS equal."""

    discord_token: str | None
    discord_client_id: str | None
    discord_client_secret: str | None
    discord_redirect_uri: str
    discord_api_base: str
    shard_ids: list[int] | None
    shard_count: int | None
    data_dir: str
    database_url: str | None
    database_max_connections: int
    redis_url: str | None
    log_level: str
    max_workers: int
    worker_queue_capacity: int
    boot_timeout_secs: int
    load_timeout_secs: int
    dispatch_timeout_secs: int
    close_grace_secs: int
    rest_timeout_ms: int
    guild_concurrency: int
    max_script_bytes: int
    max_bundle_files: int
    max_bundle_total_bytes: int
    bundler_sandbox: str
    show_internal_stack_frames: bool
    isolate_memory_mb: int
    worker_max_rss_mb: int
    auto_defer_ms: int
    suspend_backoff_secs: int
    fetch_timeout_secs: int
    fetch_max_response_bytes: int
    fetch_allowed_private_hosts: str
    log_retention_per_guild: int
    api_request_timeout_secs: int
    api_address: str
    api_port: int
    api_secret: str | None
    api_cookie_ttl_secs: int
    api_cookie_secure: bool
    api_operator_secret: str | None

    warnings: list[str]  # lines for the operator, e.g. keys of config.toml that nothing reads

    sources: dict[str, str]  # attr -> where its value came from (an env name or a TOML path); defaults absent

    def __init__(self, values: dict[str, Any], warnings: list[str] | None = None, sources: dict[str, str] | None = None):
        self._values = dict(values)
        self.warnings = list(warnings or [])
        self.sources = dict(sources or {})
        for key, value in values.items():
            setattr(self, key, value)

    def __getattr__(self, name: str) -> Any:
        """A plugin's key (only reached for names that are not set: those raise as usual)."""
        raise AttributeError(f"no configuration key {name!r} (is the plugin that defines it enabled?)")

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
    def from_dict(cls, values: dict[str, Any]) -> Config:
        return cls(values)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` (attribute names) applied; their sources become ``"override"``."""
        return Config({**self._values, **changes}, self.warnings, {**self.sources, **dict.fromkeys(changes, "override")})

    def require(self, *attrs: str, hint: str = "") -> None:
        for attr in attrs:
            if not getattr(self, attr):
                key = next(k for k in all_keys() if k.attr == attr)
                msg = f"{key.env} is required (set it in the environment or as {key.toml} in config.toml)"
                raise ConfigError(msg + (f"; {hint}" if hint else ""))


REDIS_MISSING = "REDIS_URL is set but redis-py is not installed: pip install 'flora-runtime[redis]' (or unset REDIS_URL)"


def require_redis_client(config: Config) -> None:
    """With ``REDIS_URL`` set, redis-py must be installed (the ``redis`` extra): the API keeps its caches
    there and the workers their scope cache. Checked where a server starts (``flora serve``, ``flora api``,
    the API process, gunicorn's config), so a missing client is one line at start, not a failure later."""
    if not config.redis_url:
        return
    try:
        found = importlib.util.find_spec("redis") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(REDIS_MISSING)


def _lookup(table: dict, dotted: str) -> Any:
    node: Any = table
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


_plugin_keys: list[Key] | None = None


def all_keys(plugins=None) -> list[Key]:
    """flora's keys and those the enabled plugins register (``flora_register_config_keys``)."""
    global _plugin_keys
    if plugins is not None:
        return KEYS + plugins.config_keys()
    if _plugin_keys is None:  # once per process: the entry points do not change while it runs
        from .plugins import Plugins

        Plugins()  # remembers its keys (remember_plugin_keys)
    return KEYS + (_plugin_keys or [])


def remember_plugin_keys(keys: list[Key]) -> None:
    """The keys of the entry-point plugins, kept by the first ``Plugins()`` of the process, so that
    :func:`all_keys` never loads the plugins a second time."""
    global _plugin_keys
    if _plugin_keys is None:
        _plugin_keys = list(keys)


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None, plugins=None) -> Config:
    """Read ``config.toml`` (``FLORA_CONFIG`` or ``./config.toml``) and the environment, for flora's keys
    and the plugins' (those of ``plugins``, else of the plugins this process loads)."""
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
    sources: dict[str, str] = {}
    for key in all_keys(plugins):
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
        sources[key.attr] = source
    cfg = Config(values, _unknown_keys(table, toml_path, all_keys(plugins)) if table else [], sources)
    if (cfg.shard_ids is None) != (cfg.shard_count is None) and cfg.shard_ids is not None:
        raise ConfigError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT")
    if cfg.shard_ids and cfg.shard_count and any(s < 0 or s >= cfg.shard_count for s in cfg.shard_ids):
        raise ConfigError(f"DISCORD_SHARD_IDS must be between 0 and DISCORD_SHARD_COUNT-1 ({cfg.shard_count - 1})")
    if not cfg.discord_api_base.startswith(("http://", "https://")):
        raise ConfigError(f"invalid FLORA_DISCORD_API_BASE: expected an http(s) URL, got {cfg.discord_api_base!r}")
    return cfg


def _leaves(table: dict, prefix: str = "") -> list[str]:
    out: list[str] = []
    for name, value in table.items():
        path = f"{prefix}{name}"
        out.extend(_leaves(value, path + ".") if isinstance(value, dict) else [path])
    return out


def _unknown_keys(table: dict, toml_path: Path, keys: list[Key]) -> list[str]:
    """Refuse a key of ``config.toml`` that looks like a typo of a known one (one line naming both);
    return a warning for any other unknown key (it may belong to a plugin that is disabled)."""
    known = {key.toml: key for key in keys}
    by_env = {key.env: key for key in keys}
    warnings = []
    for path in _leaves(table):
        if path in known:
            continue
        if path in by_env:  # API_PORT = 3001 at the top level
            section, _, name = by_env[path].toml.rpartition(".")
            where = f"[{section}] {name}" if section else name
            raise ConfigError(
                f"unknown key {path} in {toml_path}: that is the environment variable's name; in config.toml write {where} = …"
            )
        close = difflib.get_close_matches(path, list(known), n=1, cutoff=0.75)
        if close:
            raise ConfigError(f"unknown key {path} in {toml_path}: did you mean {close[0]}?")
        warnings.append(f"{toml_path}: unknown key {path} ignored (no enabled plugin reads it)")
    return warnings


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value != "" else '""'


def reference_table(keys: list[Key]) -> str:
    """The Markdown table of ``docs/configuration.md`` (``python -m flora_core.config`` prints it)."""
    rows = ["| environment | `config.toml` | default |", "|---|---|---|"]
    for key in sorted(keys, key=lambda k: k.env):
        rows.append(f"| `{key.env}` | `{key.toml}` | `{_shown(key.default)}` |")
    return "\n".join(rows)


if __name__ == "__main__":  # the table of docs/configuration.md: flora's keys and those of the installed plugins
    from .plugins import Plugins

    print(reference_table(all_keys(Plugins())))
