"""`kern.utils.http`: the reference API's module of shared HTTP clients.

kern keeps no process-wide HTTP client (each model holds its own), so there is nothing here to share.
`_global_async_client` exists because test set-ups written for the reference reset it between tests;
kern never reads it.
"""

from __future__ import annotations

from typing import Any

_global_async_client: Any = None
