"""kern-bot settings (pydantic-settings): from the environment, or a `.env` file in the working directory.

The environment wins over the file. Every error is one line naming the setting and the fix (`SettingsError`),
which the CLI prints before it exits.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.token_keys import GENERATE, TokenCipher, parse_keys
from bot.token_keys import SETTING as KEYS
from kern.db.base import BaseDb

CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")  # a channel's id (not its name), as settings must give it


class SettingsError(ValueError):
    """A missing or bad setting; the message is one line naming it and the fix."""


class Settings(BaseSettings):
    """What kern-bot needs to run; each field names the variable it is read from."""

    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        case_sensitive=True,
        env_ignore_empty=True,  # KEY= in a .env means "not set", as before
        str_strip_whitespace=True,
    )

    bot_token: str | None = Field(None, validation_alias="SLACK_BOT_TOKEN", repr=False)
    signing_secret: str | None = Field(None, validation_alias="SLACK_SIGNING_SECRET", repr=False)
    app_token: str | None = Field(None, validation_alias="SLACK_APP_TOKEN", repr=False)
    db: str = Field("kern.db", validation_alias="KERN_DB")
    workflows: str | None = Field(None, validation_alias="KERN_WORKFLOWS")
    api_url: str | None = Field(None, validation_alias="SLACK_API_URL")
    lease_seconds: float = Field(30.0, validation_alias="KERN_LEASE_SECONDS")
    # KERN_DB_AUTO_UPGRADE=1: upgrade the database's tables at start-up
    auto_upgrade: bool = Field(False, validation_alias="KERN_DB_AUTO_UPGRADE")
    log_format: Literal["text", "json"] = Field("text", validation_alias="KERN_LOG_FORMAT")
    # How long an acknowledged click or start is retried while it fails before its person is told it did
    # not happen (bot/runs/jobs.py).
    give_up_seconds: float = Field(300.0, validation_alias="KERN_GIVE_UP_SECONDS")
    # How long /health trusts its last answer from Slack's auth.test (health checks must not hammer Slack).
    health_cache_seconds: float = Field(15.0, validation_alias="KERN_HEALTH_CACHE_SECONDS")
    # OAuth mode (HTTP only, several workspaces): the app's credentials instead of SLACK_BOT_TOKEN.
    client_id: str | None = Field(None, validation_alias="SLACK_CLIENT_ID")
    client_secret: str | None = Field(None, validation_alias="SLACK_CLIENT_SECRET", repr=False)
    # Comma-separated bot scopes asked for at install: the manifests' (manifests/http.json).
    scopes: str = Field(
        "commands,chat:write,chat:write.public,im:write,usergroups:read,channels:read,groups:read,"
        "channels:history,groups:history,im:history,app_mentions:read,files:read,files:write",
        validation_alias="SLACK_SCOPES",
    )
    # The OAuth redirect URL registered with the app (https://<host>/slack/oauth_redirect); optional when
    # the app has exactly one registered.
    redirect_uri: str | None = Field(None, validation_alias="SLACK_REDIRECT_URI")
    # A channel where messages Slack refused for good are told (else each run's starter is told by DM).
    ops_channel: str | None = Field(None, validation_alias="KERN_OPS_CHANNEL")
    # How long an install link (its OAuth state) stays valid.
    state_seconds: float = Field(600.0, validation_alias="SLACK_STATE_EXPIRATION_SECONDS")
    # OAuth mode: the keys that encrypt stored installations (bot/token_keys.py), comma-separated Fernet
    # keys; the first encrypts, all decrypt (rotation: put a new one first).
    token_keys: str | None = Field(None, validation_alias="KERN_TOKEN_KEYS", repr=False)
    # The operations port (`kern-bot serve`, `dev`): GET /health with details and GET /metrics. The public
    # port (the one Slack calls) answers only GET /health, with ok or not ok.
    ops_host: str = Field("127.0.0.1", validation_alias="KERN_OPS_HOST")
    ops_port: int = Field(3030, validation_alias="KERN_OPS_PORT")
    # The public port's guard against slow or idle connections (bot/slack/connections.py).
    max_connections: int = Field(512, validation_alias="KERN_MAX_CONNECTIONS")
    read_seconds: float = Field(10.0, validation_alias="KERN_REQUEST_READ_SECONDS")

    @property
    def oauth(self) -> bool:
        """True in OAuth mode (SLACK_CLIENT_ID set): each workspace's token comes from its installation."""
        return bool(self.client_id)

    @field_validator(
        "lease_seconds", "health_cache_seconds", "state_seconds", "read_seconds", "give_up_seconds", mode="before"
    )
    @classmethod
    def _positive_seconds(cls, value: object) -> float:
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            seconds = -1.0
        if not seconds > 0:
            raise ValueError(f"must be a positive number of seconds, got {value!r}.")
        return seconds

    @field_validator("token_keys", mode="after")
    @classmethod
    def _token_keys(cls, value: str | None) -> str | None:
        if value is not None:
            parse_keys(value)
        return value

    @field_validator("ops_port", mode="before")
    @classmethod
    def _port(cls, value: object) -> int:
        text = str(value).strip()
        if not (text.isdigit() and 0 <= int(text) <= 65535):
            raise ValueError(f"must be a port number (0 to 65535; 0 picks a free one), got {value!r}.")
        return int(text)

    @field_validator("max_connections", mode="before")
    @classmethod
    def _count(cls, value: object) -> int:
        text = str(value).strip()
        if not (text.isdigit() and int(text) >= 1):
            raise ValueError(f"must be a whole number of connections (1 or more), got {value!r}.")
        return int(text)

    @property
    def cipher(self) -> TokenCipher:
        """The cipher of KERN_TOKEN_KEYS (OAuth mode). Raises SettingsError if it is not set."""
        if not self.token_keys:
            raise SettingsError(
                f"{KEYS} is missing: OAuth mode (SLACK_CLIENT_ID is set) keeps each workspace's bot token "
                f"encrypted with it. Make a key with {GENERATE} and set {KEYS} to it."
            )
        return TokenCipher(parse_keys(self.token_keys))

    @field_validator("auto_upgrade", mode="before")
    @classmethod
    def _flag(cls, value: object) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes"):
            return True
        if text in ("0", "false", "no"):
            return False
        raise ValueError(f"must be 1 (upgrade at start-up) or 0, got {value!r}.")

    @field_validator("ops_channel", mode="before")
    @classmethod
    def _channel_id(cls, value: object) -> str | None:
        if value is None:
            return None
        if not CHANNEL_ID.match(str(value)):
            raise ValueError(f"must be a channel id (C… or G…, from the channel's details in Slack), got {value!r}.")
        return str(value)

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: object) -> str:
        if value not in ("text", "json"):
            raise ValueError(f"must be text or json, got {value!r}.")
        return str(value)

    @classmethod
    def load(cls, dotenv: str | Path | None = ".env") -> Settings:
        """The settings from the environment and `dotenv` (None: the environment only).

        Raises SettingsError (one line naming the variable) for a value that does not parse."""
        try:
            return cls(_env_file=dotenv)  # type: ignore[call-arg]
        except ValidationError as exc:
            raise SettingsError(_one_line(exc)) from None

    def check(self, mode: str) -> Settings:
        """Raise `SettingsError` naming the first missing or malformed setting for `mode`
        ("serve" for HTTP, "socket" for Socket Mode, "dev", "db")."""
        if self.client_id and not self.client_secret:
            raise SettingsError("SLACK_CLIENT_SECRET is missing: OAuth mode (SLACK_CLIENT_ID is set) needs both.")
        if self.client_secret and not self.client_id:
            raise SettingsError("SLACK_CLIENT_ID is missing: OAuth mode (SLACK_CLIENT_SECRET is set) needs both.")
        if self.oauth and self.bot_token:
            raise SettingsError(
                "SLACK_BOT_TOKEN and SLACK_CLIENT_ID are both set: unset SLACK_BOT_TOKEN for OAuth mode "
                "(several workspaces), or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for token mode."
            )
        if self.oauth and mode in ("serve", "db"):
            self.cipher  # noqa: B018 (raises SettingsError when KERN_TOKEN_KEYS is missing)
        if self.oauth and mode == "socket":
            raise SettingsError("SLACK_CLIENT_ID is set: OAuth mode runs over HTTP (kern-bot serve), not Socket Mode.")
        if self.oauth and not [s for s in self.scopes.split(",") if s.strip()]:
            raise SettingsError("SLACK_SCOPES is empty: list the bot scopes, comma-separated (manifests/http.json).")
        if self.redirect_uri and not self.redirect_uri.startswith(("http://", "https://")):
            raise SettingsError(f"SLACK_REDIRECT_URI must be an http(s) URL, got {self.redirect_uri!r}.")
        if mode in ("serve", "socket") and not self.oauth:
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


def _one_line(exc: ValidationError) -> str:
    """The first problem of a ValidationError as `VARIABLE must ...`."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else "?"
    info = Settings.model_fields.get(field)
    name = str(info.validation_alias) if info is not None and info.validation_alias else field
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] != "value_error":  # pydantic's own wording, e.g. for a value that is not a string
        message = f"is not valid ({message}), got {error.get('input')!r}."
    return f"{name} {message}"
