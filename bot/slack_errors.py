"""What a Slack Web API error means for whoever sent the call: try again later, stop, or the workspace's
token no longer works.

Slack answers a refused call with a machine-readable `error` (each method's page lists them, e.g.
https://docs.slack.dev/reference/methods/chat.postMessage). Three kinds, decided here once:

- TRANSIENT: Slack could not do it now (rate limited, a server error, no answer in time, the network):
  the same call later may succeed, so what is owed is retried with backoff, honouring Retry-After.
- AUTH: the workspace's token is refused (revoked, uninstalled, a deactivated workspace): nothing works for
  that workspace until it is reinstalled, so its calls wait (retried slowly) and /health names it.
- PERMANENT: anything else Slack said about this call (a channel gone, archived or not joined, a message
  deleted, blocks it refuses, a missing scope): the same call will be refused again, so it is not retried;
  the outbox records it and tells a person.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["transient", "auth", "permanent"]

# Slack's words for "not now" (https://docs.slack.dev/apis/web-api/rate-limits: 429 `ratelimited`; each
# method's errors: internal_error, fatal_error, service_unavailable, request_timeout, team_added_to_org
# "retry your request in a few moments"), and this bot's own words for a call that got no answer.
TRANSIENT = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
        "timeout",  # no answer within the gateway's bound (bot/gateway.py)
        "network_error",  # the call did not reach Slack, or its answer did not come back
    }
)
# The workspace's token no longer works ("not_installed": OAuth mode, no installation for the workspace).
AUTH = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_installed",
        "team_not_found",
    }
)
# Errors whose call may have been done by Slack although the caller was not told so (its answer was lost,
# or Slack says "some aspect of the operation succeeded"): a post retried after one of these first looks
# for its earlier self (bot/presenter.py).
OUTCOME_UNKNOWN = frozenset({"timeout", "network_error", "fatal_error", "internal_error", "request_timeout"})


def classify(error: str, status: int | None = None) -> Kind:
    """The kind of `error` (Slack's error code, or this bot's `timeout` / `network_error`); an HTTP status of
    429 or 5xx is transient whatever its body says."""
    if status is not None and (status == 429 or status >= 500):
        return "transient"
    if error in TRANSIENT:
        return "transient"
    if error in AUTH:
        return "auth"
    return "permanent"
