"""Encryption at rest of what OAuth mode stores about each workspace (its installation, bot token included),
with the keys of KERN_TOKEN_KEYS: `cryptography`'s Fernet (AES-128-CBC and HMAC-SHA256, authenticated),
several keys through MultiFernet so they can be rotated.

The first key encrypts; every key decrypts. To rotate: put a new key first (keeping the old ones after it)
on every process, re-encrypt the stored rows with it (`kern-bot db encrypt-tokens`, or any `kern-bot serve`
start), then drop the old keys. A key is 32 random bytes, URL-safe base64:
`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.

A stored value is either a Fernet token (it starts with `gAAAAA`: version byte 0x80 in base64) or, for a
row written before encryption, the clear JSON (it starts with `{`): that one is still read, and is then
encrypted in place (bot/installations.py).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from kern.exceptions import KernError

SETTING = "KERN_TOKEN_KEYS"
GENERATE = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


class TokenKeyError(KernError):
    """A stored installation that none of the keys decrypts (a wrong or removed key), or a bad key."""


def parse_keys(text: str) -> list[str]:
    """The keys of a KERN_TOKEN_KEYS value (comma-separated, first one encrypts).

    Raises ValueError naming the position of a key that is not a Fernet key (never the key itself)."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise ValueError(f"is empty: set one key or more, comma-separated; make one with {GENERATE}")
    for number, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ValueError(
                f"key #{number} is not a Fernet key (32 random bytes, URL-safe base64); make one with {GENERATE}"
            ) from None
    return keys


class TokenCipher:
    """Encrypts and decrypts stored installations with the keys of KERN_TOKEN_KEYS."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise TokenKeyError(f"{SETTING} holds no key")
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._first = Fernet(keys[0])

    @staticmethod
    def is_clear(stored: str) -> bool:
        """True for a value written before encryption (JSON), False for a Fernet token."""
        return stored.lstrip().startswith("{")

    def encrypt(self, text: str) -> str:
        """`text` encrypted with the first key."""
        return self._fernet.encrypt(text.encode()).decode("ascii")

    def decrypt(self, stored: str, what: str) -> str:
        """The clear text of `stored` (returned as is if it was never encrypted).

        Raises TokenKeyError naming `what` and the setting when no key decrypts it."""
        if self.is_clear(stored):
            return stored
        try:
            return self._fernet.decrypt(stored.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise TokenKeyError(
                f"none of the keys in {SETTING} decrypts {what}: it was encrypted with a key that is not "
                f"there (restore that key, after the new ones) or the row was changed"
            ) from None

    def is_current(self, stored: str) -> bool:
        """True when `stored` is encrypted with the first key (nothing to rotate)."""
        if self.is_clear(stored):
            return False
        try:
            self._first.decrypt(stored.encode("ascii"))
        except InvalidToken:
            return False
        return True
