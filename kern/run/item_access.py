"""Dict-style access to a few documented attributes, for code written against the reference API.

There, a paused run's executor requirements can arrive as plain dicts (read back from storage or a REST
body), so code resolves them either way: `executor_req["confirmation"] = True` or `executor_req.confirm()`.
kern always hands out objects; this mixin lets the dict form work on them too, through the same
attributes (and so the same checks), limited to the documented keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar


class ItemAccess:
    """`obj[key]`, `obj[key] = value`, `key in obj`, `obj.get(key)` and `obj.keys()` over `ITEM_KEYS`."""

    ITEM_KEYS: ClassVar[tuple[str, ...]] = ()

    def _item_key(self, key: str) -> str:
        if key not in self.ITEM_KEYS:
            raise KeyError(f"{type(self).__name__} has no key {key!r}; its keys are: {', '.join(self.ITEM_KEYS)}")
        return key

    def __getitem__(self, key: str) -> Any:
        return getattr(self, self._item_key(key))

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, self._item_key(key), value)

    def __contains__(self, key: object) -> bool:
        return key in self.ITEM_KEYS

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.ITEM_KEYS else default

    def keys(self) -> Iterator[str]:
        return iter(self.ITEM_KEYS)
