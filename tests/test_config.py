"""Configuration: flora's keys and defaults, environment over config.toml, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flora_core.config import KEYS, ConfigError, load_config


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ./config.toml is read from the current folder
    return tmp_path


def test_defaults_follow_flora(tmp_path):
    config = load_config(env={})
    assert config.api_address == "0.0.0.0" and config.api_port == 3000
    assert config.max_workers == 4
    assert config.dispatch_timeout_secs == 3 and config.boot_timeout_secs == 5 and config.load_timeout_secs == 30
    assert config.max_script_bytes == 8 * 1024 * 1024
    assert config.max_bundle_files == 200 and config.max_bundle_total_bytes == 1024 * 1024
    assert config.max_cron_jobs == 32 and config.cron_timeout_secs == 5
    assert config.show_internal_stack_frames is False
    assert config.discord_token is None and config.redis_url is None
    assert config.discord_api_base == "https://discord.com/api/v10"
    assert config.data_path == tmp_path / "data"
    assert config.db_url == f"sqlite:///{tmp_path / 'data' / 'flora.db'}"
    assert config.control_socket == tmp_path / "data" / "run" / "runtime.sock"


def test_every_key_has_its_default_when_nothing_is_set():
    config = load_config(env={})
    for key in KEYS:
        assert getattr(config, key.attr) == key.default, key.env


def test_config_toml_is_read_and_environment_wins(tmp_path):
    (tmp_path / "config.toml").write_text(
        '[api]\nport = 4000\naddress = "127.0.0.1"\n'
        "[runtime]\nmax_workers = 8\ndispatch_timeout_secs = 7\nshow_internal_stack_frames = true\n"
        '[discord]\nbot_token = "from-file"\n'
    )
    config = load_config(env={"API_PORT": "5000", "DISCORD_TOKEN": "from-env", "RUNTIME_MAX_WORKERS": ""})
    assert config.api_port == 5000  # env wins
    assert config.discord_token == "from-env"
    assert config.max_workers == 8  # empty env value falls back to the file
    assert config.api_address == "127.0.0.1" and config.dispatch_timeout_secs == 7
    assert config.show_internal_stack_frames is True


def test_flora_config_names_another_file(tmp_path):
    (tmp_path / "elsewhere.toml").write_text("[api]\nport = 4100\n")
    assert load_config(env={"FLORA_CONFIG": str(tmp_path / "elsewhere.toml")}).api_port == 4100
    assert load_config(tmp_path / "elsewhere.toml", env={}).api_port == 4100


def test_missing_named_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*nope\.toml does not exist"):
        load_config(env={"FLORA_CONFIG": str(tmp_path / "nope.toml")})


def test_invalid_toml_is_one_line(tmp_path):
    (tmp_path / "config.toml").write_text("[api\nport = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(env={})
    assert "config.toml: invalid TOML" in str(err.value)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"RUNTIME_MAX_WORKERS": "0"}, "invalid RUNTIME_MAX_WORKERS: must be between 1 and 64, got 0"),
        ({"RUNTIME_MAX_WORKERS": "65"}, "invalid RUNTIME_MAX_WORKERS: must be between 1 and 64, got 65"),
        ({"RUNTIME_MAX_WORKERS": "four"}, "invalid RUNTIME_MAX_WORKERS: expected an integer, got 'four'"),
        ({"API_PORT": "70000"}, "invalid API_PORT: must be between 0 and 65535, got 70000"),
        ({"RUNTIME_DISPATCH_TIMEOUT_SECS": "-1"}, "invalid RUNTIME_DISPATCH_TIMEOUT_SECS: must be at least 0, got -1"),
        ({"RUNTIME_MAX_SCRIPT_BYTES": "10"}, "invalid RUNTIME_MAX_SCRIPT_BYTES: must be at least 1024, got 10"),
        ({"RUNTIME_WORKER_QUEUE_CAPACITY": "0"}, "invalid RUNTIME_WORKER_QUEUE_CAPACITY: must be at least 1, got 0"),
        ({"RUNTIME_ISOLATE_MEMORY_MB": "4"}, "invalid RUNTIME_ISOLATE_MEMORY_MB: must be between 8 and 1024, got 4"),
        ({"API_COOKIE_SECURE": "maybe"}, "invalid API_COOKIE_SECURE: expected true or false, got 'maybe'"),
        (
            {"RUNTIME_SHOW_INTERNAL_STACK_FRAMES": "2"},
            "invalid RUNTIME_SHOW_INTERNAL_STACK_FRAMES: expected true or false, got '2'",
        ),
        (
            {"DISCORD_SHARD_IDS": "a,b", "DISCORD_SHARD_COUNT": "2"},
            "invalid DISCORD_SHARD_IDS: expected a comma-separated list of shard numbers, got 'a,b'",
        ),
        ({"DISCORD_SHARD_IDS": "0,1"}, "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT"),
        (
            {"DISCORD_SHARD_IDS": "0,2", "DISCORD_SHARD_COUNT": "2"},
            "DISCORD_SHARD_IDS must be between 0 and DISCORD_SHARD_COUNT-1 (1)",
        ),
        ({"DISCORD_SHARD_COUNT": "0"}, "invalid DISCORD_SHARD_COUNT: must be at least 1, got 0"),
        ({"FLORA_DISCORD_API_BASE": "ftp://x"}, "invalid FLORA_DISCORD_API_BASE: expected an http(s) URL, got 'ftp://x'"),
        (
            {"REDIS_URL": "localhost:6379"},
            "invalid REDIS_URL: expected a redis://, rediss:// or unix:// URL, got a value without a scheme",
        ),
        # the URL may carry a password: only its scheme is repeated
        (
            {"REDIS_URL": "http://:hunter2@cache:6379/0"},
            "invalid REDIS_URL: expected a redis://, rediss:// or unix:// URL, got a http:// URL",
        ),
    ],
)
def test_invalid_values_have_one_line_messages(env, message):
    with pytest.raises(ConfigError) as err:
        load_config(env=env)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_invalid_value_in_the_file_names_key_and_file(tmp_path):
    (tmp_path / "config.toml").write_text("[runtime]\nmax_workers = 0\n")
    with pytest.raises(ConfigError) as err:
        load_config(env={})
    assert str(err.value) == "invalid runtime.max_workers in config.toml: must be between 1 and 64, got 0"


def test_valid_values_are_parsed():
    config = load_config(
        env={
            "API_COOKIE_SECURE": "yes",
            "RUNTIME_MAX_WORKERS": " 64 ",
            "DISCORD_SHARD_IDS": "0, 2",
            "DISCORD_SHARD_COUNT": "4",
            "DATABASE_URL": "postgres://u:p@db/flora",
            "FLORA_DISCORD_API_BASE": "http://127.0.0.1:9/api/v10",
        }
    )
    assert config.api_cookie_secure is True and config.max_workers == 64
    assert config.shard_ids == [0, 2] and config.shard_count == 4
    assert config.db_url == "postgres://u:p@db/flora"


def test_redis_urls_redis_py_accepts_are_kept():
    for url in ("redis://127.0.0.1:6379/0", "rediss://:pw@cache.internal:6380/2", "unix:///run/redis.sock?db=1"):
        assert load_config(env={"REDIS_URL": url}).redis_url == url


def test_redis_url_without_redis_py_is_one_line(monkeypatch):
    import sys

    from flora_core.config import require_redis_client

    require_redis_client(load_config(env={}))  # no REDIS_URL: redis-py is not needed
    require_redis_client(load_config(env={"REDIS_URL": "redis://127.0.0.1:6379/0"}))  # installed here
    monkeypatch.setitem(sys.modules, "redis", None)  # what `import redis` sees when it is not installed
    with pytest.raises(ConfigError) as err:
        require_redis_client(load_config(env={"REDIS_URL": "redis://127.0.0.1:6379/0"}))
    assert (
        str(err.value)
        == "REDIS_URL is set but redis-py is not installed: pip install 'flora-runtime[redis]' (or unset REDIS_URL)"
    )


def test_require_names_the_variable_the_toml_key_and_the_hint():
    config = load_config(env={})
    with pytest.raises(ConfigError) as err:
        config.require("discord_token", hint="run `flora dev`")
    assert (
        str(err.value)
        == "DISCORD_TOKEN is required (set it in the environment or as discord.bot_token in config.toml); run `flora dev`"
    )
    load_config(env={"DISCORD_TOKEN": "t"}).require("discord_token")


def test_relative_data_dir_is_resolved_against_the_current_folder(tmp_path):
    config = load_config(env={"FLORA_DATA_DIR": "state"})
    assert config.data_path == Path(tmp_path / "state")


def test_config_annotations_and_keys_agree():
    """Every core key is a typed attribute of Config, and nothing else is."""
    from flora_core.config import KEYS, Config

    assert set(Config.__annotations__) - {"warnings", "sources"} == {k.attr for k in KEYS}


def test_a_missing_plugin_key_says_which_plugin_to_enable(monkeypatch):
    from flora_core.config import Config

    with pytest.raises(AttributeError, match="is the plugin that defines it enabled"):
        Config({}).kv_backend  # noqa: B018 - the attribute access is the test


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[api]\nprot = 3001\n", "unknown key api.prot in {path}: did you mean api.port?"),
        (
            "API_PORT = 3001\n",
            "unknown key API_PORT in {path}: that is the environment variable's name; in config.toml write [api] port = …",
        ),
        ("[runtime]\nmax_worker = 2\n", "unknown key runtime.max_worker in {path}: did you mean runtime.max_workers?"),
    ],
)
def test_a_typo_in_config_toml_is_one_line_naming_the_closest_key(tmp_path, toml, message):
    path = tmp_path / "config.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert str(err.value) == message.format(path=path)


def test_an_unknown_section_is_a_warning_not_an_error(tmp_path):
    # a disabled plugin's section must not stop flora (a broken plugin never takes the host down)
    path = tmp_path / "config.toml"
    path.write_text('[api]\nport = 3005\n[acme_weather]\ncity = "Oslo"\n', encoding="utf-8")
    config = load_config(path, env={})
    assert config.api_port == 3005
    assert config.warnings == [f"{path}: unknown key acme_weather.city ignored (no enabled plugin reads it)"]


def test_the_cli_refuses_a_config_typo_with_exit_2(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "config.toml").write_text("[api]\nprot = 3001\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLORA_", "API_"))}
    out = subprocess.run(
        [sys.executable, "-m", "flora_cli", "tokens", "list"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert (out.returncode, out.stderr) == (2, "Error: unknown key api.prot in config.toml: did you mean api.port?\n")
    assert not (tmp_path / "data").exists()  # nothing was created on the way to the error
