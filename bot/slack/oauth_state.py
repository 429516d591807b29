"""OAuth states for the install (Bolt's `AsyncOAuthStateStore`), signed rather than stored, so that an
anonymous GET of /slack/install writes nothing.

A state is `<issued at>.<nonce>.<signature>`: the signature is an HMAC-SHA256, with a key derived from the
app's client secret (SLACK_CLIENT_SECRET, the same on every replica), over the time and a random nonce.
The callback accepts a state whose signature checks and that is no older than `expiration_seconds`, and
records its nonce (one row, kept until the state would have expired anyway): a state already recorded is
refused, so a state is consumed once. Rows are written only by callbacks that carry a state this app
signed, never by the install page; expired ones are deleted by the next callback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

import sqlalchemy as sa
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from bot.store.tables import oauth_states
from bot.store.transactions import insert_once
from kern.db.base import BaseDb

log = logging.getLogger("kern_bot")
SKEW = 60.0  # seconds a state may seem to come from the future (clocks of replicas differ a little)
_PRUNE = oauth_states.delete().where(oauth_states.c.expire_at <= sa.bindparam("b_now"))


def _signature(key: bytes, signed: str) -> str:
    digest = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class SignedStateStore(AsyncOAuthStateStore):
    """States signed with a key derived from `secret`, valid `expiration_seconds`, consumed once in `db`."""

    def __init__(self, db: BaseDb, secret: str, expiration_seconds: float = 600.0) -> None:
        self.db = db
        self.expiration_seconds = expiration_seconds
        self._key = hmac.new(secret.encode(), b"kern-bot oauth state v1", hashlib.sha256).digest()

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        """A new state for one install: no write, nothing kept."""
        signed = f"{int(time.time())}.{secrets.token_urlsafe(16)}"
        return f"{signed}.{_signature(self._key, signed)}"

    def check(self, state: str) -> tuple[str, float] | None:
        """(nonce, when the state expires) for a state this app signed that has not expired; else None."""
        issued, _, rest = (state or "").partition(".")
        nonce, _, signature = rest.partition(".")
        if not (issued.isdigit() and nonce and signature):
            return None
        if not hmac.compare_digest(signature, _signature(self._key, f"{issued}.{nonce}")):
            return None
        now, at = time.time(), float(issued)
        if not (at - SKEW <= now < at + self.expiration_seconds):
            return None
        return nonce, at + self.expiration_seconds + SKEW

    async def async_consume(self, state: str) -> bool:
        """True once for a state this app signed and that has not expired; False for any other, and for
        one consumed already (by any process on the database)."""
        checked = self.check(state)
        if checked is None:
            return False
        nonce, expire_at = checked
        prune = self.db.prepare(_PRUNE)
        return await insert_once(
            self.db,
            oauth_states,
            {"state": nonce, "expire_at": expire_at},
            also=lambda tx: tx.execute(prune, {"b_now": time.time()}),
        )
