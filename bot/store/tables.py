"""The bot's tables, declared once in SQLAlchemy Core: what the bot remembers besides kern's runs, kept in
the same database and versioned by its own Alembic set (bot/store/migrations).

Who writes what: run cards, pause messages and their DM copies (`bot.store`), owed messages
(`bot.store.outbox_rows`), votes, hand-overs, grants, timers and the approval records pauses wait on (their
own modules), seen requests (`bot.slack.dedupe`).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# TEAM: the Slack workspace (or Enterprise Grid org, for an org-wide install) a row belongs to: that of
# the run's card, on every row about a run; '' in single-workspace token mode, and on every row made
# before OAuth mode existed. Requests reach runs through cards, pause messages and grants, and those reads
# are scoped by it. (Seen requests are about no run: their key is the hash of a body, team included.)

cards = sa.Table(
    "kern_bot_cards",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("workflow", sa.String(256), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("started_by", sa.String(64), nullable=False),
    sa.Column("input", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
    sa.Index("ix_kern_bot_cards_started_by", "started_by", "created_at"),  # a person's runs, for the App Home
)

pauses = sa.Table(
    "kern_bot_pauses",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | decided
    sa.Column("decided_by", sa.String(64)),
    sa.Column("outcome", sa.Text),
    sa.Column("posted_at", sa.Float, nullable=False),
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
    sa.Index("ix_kern_bot_pauses_status", "status", "posted_at"),  # open pauses, newest first (App Home)
)

# Copies of a pause message sent by DM (notify="dm"): one per recipient, kept in step with the pause message.
pause_copies = sa.Table(
    "kern_bot_pause_copies",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("recipient", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("posted_at", sa.Float, nullable=False),
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
)

# People who opened the App Home, and the page of "Waiting on you" they are on (refreshed for them).
home_viewers = sa.Table(
    "kern_bot_home_viewers",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("page", sa.Integer, nullable=False),
    sa.Column("opened_at", sa.Float, nullable=False, index=True),
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
)

tool_decisions = sa.Table(
    "kern_bot_tool_decisions",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("call_index", sa.Integer, primary_key=True),
    sa.Column("decision", sa.JSON, nullable=False),
    sa.Column("decided_by", sa.String(64)),
    sa.Column("summary", sa.Text),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
)


# Votes on a pause that needs several people (N of M, bot/approvals/ballots.py): one row per person and pause.
votes = sa.Table(
    "kern_bot_votes",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("approve", sa.Boolean, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
)


# Pauses handed to someone else (bot/surfaces/handover.py): they may answer it too. One row per pause and person.
handovers = sa.Table(
    "kern_bot_handovers",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("to_user", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("by_user", sa.String(64), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
)


# Standing approvals of tool calls (bot/approvals/grants.py): a tool always allowed at one step (`step_name`, the step
# it was given at) in one run, or in a workflow until `expires_at`, unless revoked. A grant without a step
# (made before grants named theirs, see migration 0007) allows nothing.
grants = sa.Table(
    "kern_bot_grants",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),  # run | workflow
    sa.Column("workflow", sa.String(256), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("tool_name", sa.String(256), nullable=False),
    sa.Column("granted_by", sa.String(64), nullable=False),
    sa.Column("granted_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float),
    sa.Column("revoked_by", sa.String(64)),
    sa.Column("revoked_at", sa.Float),
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
    sa.Column("step_name", sa.String(256)),
    sa.Index("ix_kern_bot_grants_tool", "tool_name", "workflow"),
)


# Reminders and escalations (bot/runs/timers.py): one row per pause and kind, fired by a sweep (compare-and-set),
# cancelled when the pause is decided.
timers = sa.Table(
    "kern_bot_timers",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # remind | escalate
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),  # reminders sent so far
    sa.Column("done_at", sa.Float),  # fired for the last time, or cancelled
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
    sa.Index("ix_kern_bot_timers_due", "done_at", "due_at"),
)

# `@approval` records a tool-call pause waits on (bot/runs/approval_records.py): one row per record, written in
# the transaction that opens the pause and deleted in the one that decides or ends it, so a sweep finds the
# records resolved through kern's approvals API (not on Slack) with one join over the pauses still open.
pause_approvals = sa.Table(
    "kern_bot_pause_approvals",
    metadata,
    sa.Column("approval_id", sa.String(64), primary_key=True),
    sa.Column("requirement_id", sa.String(64), nullable=False, index=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
)

escalations = sa.Table(
    "kern_bot_escalations",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
)


# What the bot owes Slack: a row per message to post or update, written in the transaction that makes it
# owed (see bot/delivery/outbox.py), delivered until Slack accepts it.
outbox = sa.Table(
    "kern_bot_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # pause | card | close | notice
    sa.Column("requirement_id", sa.String(64)),
    sa.Column("detail", sa.JSON),
    sa.Column("status", sa.String(16), nullable=False),  # pending | done | failed (refused for good: error)
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("claimed_until", sa.Float),
    sa.Column("claimed_by", sa.String(32)),  # the process holding it (until claimed_until)
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
    # The deliverer's query: pending messages that are due.
    sa.Index("ix_kern_bot_outbox_due", "status", "next_at"),
)


# Requests already acted on (bot/slack/dedupe.py): the hash of a signed body, kept for Slack's replay window.
seen_requests = sa.Table(
    "kern_bot_seen_requests",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False, index=True),
)


# Work the bot acknowledged to Slack (bot/runs/jobs.py): a click, a `/kern run`. Written before the ack, keyed
# by the request (as seen_requests: a repeated delivery is a repeat), done in the transaction that applies
# it; until then held by one process (`next_at` is its hold's end), and any process's sweep takes it up
# once that hold expires, until it is applied or its person is told it was not.
jobs = sa.Table(
    "kern_bot_jobs",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # click | start
    sa.Column("payload", sa.Text, nullable=False),  # JSON: what the job needs to run again in any process
    sa.Column("status", sa.String(16), nullable=False),  # pending | done | dropped (its person was told)
    sa.Column("attempts", sa.Integer, nullable=False),  # failed attempts so far
    sa.Column("next_at", sa.Float, nullable=False),  # pending: due then (held until then); else: when it ended
    sa.Column("claimed_by", sa.String(32)),  # the process holding it
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_kern_bot_jobs_due", "status", "next_at"),
)


# HTTP mode's OAuth install (bot/slack/installations.py): one row per (enterprise, team, installer), plus the
# workspace's latest under installer ''. `data` is slack_sdk's Installation as JSON, bot token included,
# encrypted with KERN_TOKEN_KEYS (a Fernet token; rows of older versions in clear until migrated).
installations = sa.Table(
    "kern_bot_installations",
    metadata,
    sa.Column("enterprise_id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("team_key", sa.String(64), nullable=False),  # what the bot's rows record as their TEAM
    sa.Column("is_enterprise_install", sa.Boolean, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("installed_at", sa.Float, nullable=False),
    sa.Index("ix_kern_bot_installations_team_key", "team_key", "user_id"),
)

# The OAuth states consumed by /slack/oauth_redirect (their nonces: bot/slack/oauth_state.py), each kept until the
# state would have expired, so that none is consumed twice. Issuing a state writes nothing.
oauth_states = sa.Table(
    "kern_bot_oauth_states",
    metadata,
    sa.Column("state", sa.String(64), primary_key=True),
    sa.Column("expire_at", sa.Float, nullable=False, index=True),
)

# Slack's assistant threads (the assistant pane of a `BotAgent`), from their `assistant_thread_started`: who
# opened each, the channel they are looking at (its context, kept up to date by
# `assistant_thread_context_changed`), and whether its title was set (on its first message, once).
assistant_threads = sa.Table(
    "kern_bot_assistant_threads",
    metadata,
    sa.Column("team_id", sa.String(64), primary_key=True),  # see TEAM above
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("thread_ts", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("context_channel", sa.String(64)),
    sa.Column("titled", sa.Boolean, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
)


# The messages a conversation's answer streams into (bot/delivery/streams.py), recorded as each stream starts, so
# that whichever process delivers the turn's answer (bot/delivery/outbox.py, "answer") stops them with the
# finished text, or rewrites them when the process that streamed them died. `state`: streaming (started, not
# stopped), stopped (a full message of a long answer, continued in the next), kept (closed at a pause: an
# earlier part of the turn, left as it is), final (the answer delivered).
streams = sa.Table(
    "kern_bot_streams",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("ts", sa.String(32), primary_key=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("team_id", sa.String(64), nullable=False, server_default=""),  # see TEAM above
)


def card_team(run_id_param: str) -> sa.ColumnElement[str]:
    """The team of the card of the run bound to `run_id_param` ('' if it has none): what a row written
    where only the run is known (kern's watcher transactions) records as its team."""
    team = sa.select(cards.c.team_id).where(cards.c.run_id == sa.bindparam(run_id_param)).scalar_subquery()
    return sa.func.coalesce(team, "")
