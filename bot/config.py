"""kern-bot settings: from the environment, or a `.env` file beside the working directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kern.db.base import BaseDb
from kern.db.migrations import auto_upgrade_from_env


class SettingsError(ValueError):
    """A missing or bad setting; the message is one line naming it and the fix."""


def read_dotenv(path: str | Path = ".env") -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments, blank lines, `export ` and quotes allowed)."""
    file = Path(path)
    if not file.is_file():
        return {}
    values: dict[str, str] = {}
    for number, raw in enumerate(file.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{file}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _seconds(name: str, value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise SettingsError(f"{name} must be a positive number of seconds, got {value!r}.")
    return seconds


@dataclass(frozen=True)
class Settings:
    """What kern-bot needs to run. `mode` is "serve" (HTTP), "socket" (Socket Mode) or "dev"."""

    bot_token: str | None = None
    signing_secret: str | None = None
    app_token: str | None = None
    db: str = "kern.db"
    workflows: str | None = None
    api_url: str | None = None
    lease_seconds: float = 30.0
    auto_upgrade: bool = False  # KERN_DB_AUTO_UPGRADE=1: upgrade the database's tables at start-up

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, dotenv: str | Path | None = ".env") -> Settings:
        """The environment wins over the .env file."""
        values = {**(read_dotenv(dotenv) if dotenv else {}), **(os.environ if env is None else env)}

        def get(name: str) -> str | None:
            value = values.get(name, "").strip()
            return value or None

        return cls(
            bot_token=get("SLACK_BOT_TOKEN"),
            signing_secret=get("SLACK_SIGNING_SECRET"),
            app_token=get("SLACK_APP_TOKEN"),
            db=get("KERN_DB") or "kern.db",
            workflows=get("KERN_WORKFLOWS"),
            api_url=get("SLACK_API_URL"),
            lease_seconds=_seconds("KERN_LEASE_SECONDS", get("KERN_LEASE_SECONDS"), 30.0),
            auto_upgrade=auto_upgrade_from_env(values),
        )

    def check(self, mode: str) -> Settings:
        """Raise `SettingsError` naming the first missing or malformed setting for `mode`."""
        if mode in ("serve", "socket"):
            if not self.bot_token:
                raise SettingsError("SLACK_BOT_TOKEN is missing: set it to the app's Bot User OAuth Token (xoxb-...).")
            if not self.bot_token.startswith("xoxb-"):
                raise SettingsError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-.")
        if mode == "serve" and not self.signing_secret:
            raise SettingsError("SLACK_SIGNING_SECRET is missing: copy it from the app's Basic Information page.")
        if mode == "socket":
            if not self.app_token:
                raise SettingsError(
                    "SLACK_APP_TOKEN is missing: Socket Mode needs an app-level token (xapp-...) "
                    "with the connections:write scope."
                )
            if not self.app_token.startswith("xapp-"):
                raise SettingsError("SLACK_APP_TOKEN must be an app-level token starting with xapp-.")
        if self.api_url and not self.api_url.startswith(("http://", "https://")):
            raise SettingsError(f"SLACK_API_URL must be an http(s) URL, got {self.api_url!r}.")
        if self.workflows and ":" not in self.workflows:
            raise SettingsError(f"KERN_WORKFLOWS must look like package.module:attribute, got {self.workflows!r}.")
        if self.db.startswith(("postgres://", "postgresql://", "postgresql+")):
            return self
        if "://" in self.db:
            raise SettingsError(f"KERN_DB must be a SQLite file path or a postgresql:// URL, got {self.db!r}.")
        return self

    def open_db(self) -> BaseDb:
        """The kern store KERN_DB names."""
        if self.db.startswith(("postgres://", "postgresql://", "postgresql+")):
            from kern.db.postgres import PostgresDb

            return PostgresDb(db_url=self.db, lease_seconds=self.lease_seconds)
        from kern.db.sqlite import SqliteDb

        return SqliteDb(db_file=self.db, lease_seconds=self.lease_seconds)
