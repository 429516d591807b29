"""kern-bot settings: the environment and `.env` (pydantic-settings), and one-line errors through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent
NAMES = [
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "KERN_DB",
    "KERN_WORKFLOWS",
    "SLACK_API_URL",
    "KERN_LEASE_SECONDS",
    "KERN_DB_AUTO_UPGRADE",
    "KERN_LOG_FORMAT",
    "KERN_HEALTH_CACHE_SECONDS",
    "SLACK_CLIENT_ID",
    "SLACK_CLIENT_SECRET",
    "SLACK_SCOPES",
    "SLACK_REDIRECT_URI",
    "SLACK_STATE_EXPIRATION_SECONDS",
    "KERN_TOKEN_KEYS",
    "KERN_OPS_HOST",
    "KERN_OPS_PORT",
    "KERN_MAX_CONNECTIONS",
    "KERN_REQUEST_READ_SECONDS",
    "KERN_OPS_CHANNEL",
]
KEY = "a" * 43 + "="  # a well-formed Fernet key (32 bytes, URL-safe base64)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No setting in the environment, and a working directory without a .env."""
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings.load()
    assert (settings.db, settings.lease_seconds, settings.auto_upgrade, settings.log_format) == (
        "kern.db",
        30.0,
        False,
        "text",
    )
    assert settings.bot_token is None and settings.workflows is None
    assert settings.check("dev") is settings


def test_settings_from_env_and_dotenv(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# comment\nexport SLACK_BOT_TOKEN='xoxb-from-file'\nSLACK_SIGNING_SECRET=\"s3\"\nKERN_DB=x.db\n"
        "KERN_LEASE_SECONDS=12.5\nKERN_DB_AUTO_UPGRADE=yes\nKERN_WORKFLOWS=\n"
    )
    clean_env.setenv("KERN_DB", "postgresql://u@h/db")
    settings = Settings.load()
    assert settings.bot_token == "xoxb-from-file" and settings.signing_secret == "s3"
    assert settings.db == "postgresql://u@h/db"  # the environment wins
    assert settings.lease_seconds == 12.5 and settings.auto_upgrade is True
    assert settings.workflows is None  # KEY= is "not set"
    assert settings.check("serve") is settings
    assert "xoxb-from-file" not in repr(settings)  # secrets stay out of logs
    assert Settings.load(dotenv=None).bot_token is None  # the environment only


@pytest.mark.parametrize(
    ("env", "mode", "message"),
    [
        ({}, "serve", "SLACK_BOT_TOKEN is missing"),
        ({"SLACK_BOT_TOKEN": "xoxp-user"}, "serve", "SLACK_BOT_TOKEN must be a bot token starting with xoxb-"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "serve", "SLACK_SIGNING_SECRET is missing"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "socket", "SLACK_APP_TOKEN is missing"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"}, "socket", "SLACK_APP_TOKEN must be an app-level"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "KERN_DB": "mysql://x"},
            "serve",
            "KERN_DB must be a SQLite file path or a postgresql:// URL",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "KERN_WORKFLOWS": "nocolon"},
            "serve",
            "KERN_WORKFLOWS must look like package.module:attribute",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": "ftp://x"},
            "serve",
            "SLACK_API_URL must be an http",
        ),
        ({"KERN_LEASE_SECONDS": "soon"}, "dev", "KERN_LEASE_SECONDS must be a positive number of seconds, got 'soon'"),
        ({"KERN_LEASE_SECONDS": "0"}, "dev", "KERN_LEASE_SECONDS must be a positive number of seconds, got '0'"),
        ({"KERN_DB_AUTO_UPGRADE": "maybe"}, "dev", "KERN_DB_AUTO_UPGRADE must be 1 .* or 0, got 'maybe'"),
        ({"KERN_LOG_FORMAT": "xml"}, "dev", "KERN_LOG_FORMAT must be text or json, got 'xml'"),
        ({"SLACK_CLIENT_ID": "1.2", "SLACK_SIGNING_SECRET": "s"}, "serve", "SLACK_CLIENT_SECRET is missing"),
        ({"SLACK_CLIENT_SECRET": "c", "SLACK_SIGNING_SECRET": "s"}, "serve", "SLACK_CLIENT_ID is missing"),
        (
            {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c", "SLACK_BOT_TOKEN": "xoxb-1"},
            "serve",
            "SLACK_BOT_TOKEN and SLACK_CLIENT_ID are both set",
        ),
        (
            {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c", "KERN_TOKEN_KEYS": KEY},
            "serve",
            "SLACK_SIGNING_SECRET is missing",
        ),
        (
            {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c", "SLACK_SIGNING_SECRET": "s"},
            "serve",
            "KERN_TOKEN_KEYS is missing: OAuth mode .* keeps each workspace's bot token encrypted with it. "
            "Make a key with python -c .*Fernet.generate_key",
        ),
        (
            {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c", "KERN_TOKEN_KEYS": f"{KEY},not-a-key"},
            "serve",
            "KERN_TOKEN_KEYS key #2 is not a Fernet key",
        ),
        ({"KERN_OPS_PORT": "http"}, "dev", "KERN_OPS_PORT must be a port number"),
        ({"KERN_MAX_CONNECTIONS": "0"}, "dev", "KERN_MAX_CONNECTIONS must be a whole number"),
        ({"KERN_REQUEST_READ_SECONDS": "0"}, "dev", "KERN_REQUEST_READ_SECONDS must be a positive"),
        (
            {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c", "SLACK_APP_TOKEN": "xapp-1"},
            "socket",
            "OAuth mode runs over HTTP",
        ),
        (
            {
                "SLACK_CLIENT_ID": "1.2",
                "SLACK_CLIENT_SECRET": "c",
                "SLACK_SIGNING_SECRET": "s",
                "SLACK_SCOPES": " , ",
                "KERN_TOKEN_KEYS": KEY,
            },
            "serve",
            "SLACK_SCOPES is empty",
        ),
        (
            {
                "SLACK_CLIENT_ID": "1.2",
                "SLACK_CLIENT_SECRET": "c",
                "SLACK_SIGNING_SECRET": "s",
                "SLACK_REDIRECT_URI": "x",
                "KERN_TOKEN_KEYS": KEY,
            },
            "serve",
            "SLACK_REDIRECT_URI must be an http",
        ),
        ({"SLACK_STATE_EXPIRATION_SECONDS": "-1"}, "dev", "SLACK_STATE_EXPIRATION_SECONDS must be a positive"),
        ({"KERN_OPS_CHANNEL": "#ops"}, "dev", "KERN_OPS_CHANNEL must be a channel id"),
    ],
)
def test_bad_settings_name_the_setting(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], mode: str, message: str
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(SettingsError, match=message) as error:
        Settings.load().check(mode)
    assert "\n" not in str(error.value)


def test_oauth_mode_needs_no_bot_token(clean_env: pytest.MonkeyPatch) -> None:
    oauth = {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c", "SLACK_SIGNING_SECRET": "s", "KERN_TOKEN_KEYS": KEY}
    for name, value in oauth.items():
        clean_env.setenv(name, value)
    settings = Settings.load().check("serve")
    assert KEY not in repr(settings)
    assert settings.oauth and settings.bot_token is None and "chat:write" in settings.scopes.split(",")
    assert "client_secret" not in repr(settings)  # never printed
    assert not Settings.load(dotenv=None).model_copy(update={"client_id": None}).oauth


def cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`kern-bot ARGS` in `tmp_path`, with only `env` set."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_stops_with_one_line(tmp_path: Path) -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "KERN_WORKFLOWS": "no_such_module:flows",
        "KERN_DB": str(tmp_path / "k.db"),
    }
    result = cli(tmp_path, env, "serve")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "kern-bot: KERN_WORKFLOWS=no_such_module:flows: cannot import 'no_such_module' "
        "(No module named 'no_such_module')."
    ]


@pytest.mark.parametrize(
    ("dotenv", "env", "line"),
    [
        ("", {}, "kern-bot: SLACK_BOT_TOKEN is missing: set it to the app's Bot User OAuth Token (xoxb-...)."),
        (
            "SLACK_BOT_TOKEN=xoxb-1\nSLACK_SIGNING_SECRET=s\nKERN_LEASE_SECONDS=ten\n",
            {},
            "kern-bot: KERN_LEASE_SECONDS must be a positive number of seconds, got 'ten'.",
        ),
        (
            "SLACK_BOT_TOKEN=xoxb-1\nSLACK_SIGNING_SECRET=s\n",
            {"KERN_LOG_FORMAT": "yaml"},
            "kern-bot: KERN_LOG_FORMAT must be text or json, got 'yaml'.",
        ),
    ],
)
def test_cli_settings_errors(tmp_path: Path, dotenv: str, env: dict[str, str], line: str) -> None:
    """A bad or missing setting, in .env or the environment: `kern-bot serve` exits 2 with one line."""
    (tmp_path / ".env").write_text(dotenv)
    result = cli(tmp_path, {"KERN_DB": str(tmp_path / "k.db"), **env}, "serve")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [line]


def test_cli_refuses_oauth_mode_without_a_key(tmp_path: Path) -> None:
    oauth = {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c", "SLACK_SIGNING_SECRET": "s"}
    result = cli(tmp_path, {"KERN_DB": str(tmp_path / "k.db"), **oauth}, "serve")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("kern-bot: KERN_TOKEN_KEYS is missing: OAuth mode (SLACK_CLIENT_ID is set)")
    assert 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"' in line


async def test_cli_refuses_a_key_that_does_not_decrypt_the_stored_installations(tmp_path: Path) -> None:
    """Installations encrypted with one key, `kern-bot serve` started with another: one line, exit 2."""
    from cryptography.fernet import Fernet
    from slack_sdk.oauth.installation_store import Installation

    from bot.installations import DbInstallationStore
    from bot.migrations import BOT
    from bot.token_keys import TokenCipher
    from kern.db.sqlite import SqliteDb

    db = SqliteDb(db_file=tmp_path / "k.db")
    await db.upgrade(BOT)
    first, other = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    await DbInstallationStore(db, TokenCipher([first])).async_save(
        Installation(app_id="A1", team_id="T1", bot_token="xoxb-1", bot_id="B1", bot_user_id="UB", user_id="U1")
    )
    await db.close()
    env = {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c", "SLACK_SIGNING_SECRET": "s", "KERN_DB": db.db_file}
    result = cli(tmp_path, {**env, "KERN_TOKEN_KEYS": other}, "serve", "--port", "0")  # type: ignore[dict-item]
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "kern-bot: KERN_TOKEN_KEYS does not decrypt 2 stored installation(s) (the installation of team T1 (user -); "
        "the installation of team T1 (user U1)): put back the key they were encrypted with, after the new ones."
    ]
    # a rotation: the new key first, the old one after it; `kern-bot db upgrade` re-encrypts with the new one
    rotated = cli(tmp_path, {**env, "KERN_TOKEN_KEYS": f"{other},{first}"}, "db", "upgrade")  # type: ignore[dict-item]
    assert rotated.returncode == 0 and "installations: 0 encrypted, 2 re-encrypted" in rotated.stdout, rotated
    assert cli(tmp_path, {**env, "KERN_TOKEN_KEYS": other}, "db", "upgrade").returncode == 0  # type: ignore[dict-item]
    assert cli(tmp_path, {**env, "KERN_TOKEN_KEYS": first}, "db", "upgrade").returncode == 2  # type: ignore[dict-item]
    # one workspace's rows under a key nobody has (a bad row): the others are served, that one is named
    db = SqliteDb(db_file=tmp_path / "k.db")
    lost = Fernet.generate_key().decode()
    await DbInstallationStore(db, TokenCipher([lost])).async_save(
        Installation(app_id="A1", team_id="T2", bot_token="xoxb-2", bot_id="B2", bot_user_id="UB", user_id="U2")
    )
    await db.close()
    served = cli(tmp_path, {**env, "KERN_TOKEN_KEYS": other}, "db", "upgrade")  # type: ignore[dict-item]
    assert served.returncode == 0, served.stderr
    assert "KERN_TOKEN_KEYS does not decrypt 2 stored installation(s) (the installation of team T2" in served.stderr
    assert "xoxb" not in served.stderr + served.stdout
