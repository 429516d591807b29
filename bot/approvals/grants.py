"""Standing approvals of tool calls: "Always allow `tool` in this run" (or in this workflow, for a while).

A grant gives no more than its giver had. It is given only by someone who may answer the step by its own
rules (`Access.may_grant`: not someone the pause was handed to), it allows the tool only at the step it
was given at (the step's rules are what the giver answered by), and it decides a pause only where its
giver could answer that pause themselves (`Access.may_apply_grant`: never in a run its giver started where
the step forbids self-approval). Grants stored before they named their step are given it from their
audit line (migration 0007); one without allows nothing.

Without them, an agent that loops makes people click for every call. A grant is a row and a `grant` line
in kern's audit log, written together. When a run pauses on tool calls, the calls a live grant covers
are approved on its behalf (the card says by which grant, granted by whom); if none is left to a
person, the run continues. Revoking a grant (App Home, or `revoke`) stops it at once for later calls.
A grant "in this run" ends with its run (it is no longer listed, nor applied, once the run completed,
was cancelled or failed); one "in this workflow" at its expiry (`BotWorkflow.standing_approval`). Both
say so where they show.

Applying grants happens after the pause is stored, in the process that ran the step. If that process dies
just then, the pause stays as it is, with its buttons: a person approves it, nothing is lost.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot import blocks as ui
from bot.store import Card
from bot.store.tables import grants
from kern.db.base import BaseDb
from kern.db.hot import INSERT_AUDIT, Tx
from kern.db.schema import runs
from kern.ids import new_id
from kern.run import requirement as kinds
from kern.run.agent import RunRequirement
from kern.run.base import RunStatus

if TYPE_CHECKING:
    from bot.approvals.access import Access
    from bot.approvals.types import Loaded
    from bot.delivery.outbox import Outbox
    from bot.registry import BotWorkflow
    from bot.store import BotStore

    # Loads a card's run as a pause (`Interactions.load_run`); continues a run whose calls are all decided
    # (`ToolCalls.calls_decided`). The tool-call cards pass both in: grants know nothing of the surfaces.
    LoadRun = Callable[[BotWorkflow, Card], Awaitable[Loaded | None]]
    CallsDecided = Callable[[Loaded, str], Awaitable[None]]


class Grants:
    """Records, finds, applies and revokes standing approvals."""

    def __init__(
        self, store: BotStore, access: Access, outbox: Outbox, load_run: LoadRun, calls_decided: CallsDecided
    ) -> None:
        self.store = store
        self.access = access
        self.outbox = outbox
        self.load_run = load_run
        self.calls_decided = calls_decided
        self.db = store.db

    async def _tx(self, body: Any, write: bool = True) -> Any:
        from bot.store.migrations import BOT

        return await self.db.run_transaction(body, write=write, tables=BOT)

    async def grant(self, loaded: Loaded, tool_name: str, user: str, *, workflow_wide: bool) -> dict[str, Any]:
        """Record a grant (and its audit line, in one transaction); returns it."""
        now = time.time()
        lasts = loaded.entry.standing_seconds
        row = {
            "id": new_id(),
            "scope": "workflow" if workflow_wide else "run",
            "workflow": loaded.entry.name,
            "run_id": None if workflow_wide else loaded.run.run_id,
            "tool_name": tool_name,
            "step_name": loaded.req.step_name,
            "granted_by": user,
            "granted_at": now,
            "expires_at": now + lasts if workflow_wide and lasts else None,
        }

        def body(conn: Connection) -> None:
            conn.execute(grants.insert().values(**row, team_id=loaded.card.team_id))
            conn.execute(INSERT_AUDIT, _audit(loaded, user, "grant", row, now))

        await self._tx(body)
        return row

    async def covering(self, entry: BotWorkflow, card: Card, step: str, tool_name: str) -> dict[str, Any] | None:
        """The live grant that allows `tool_name` at the step named `step` in this card's run, if any
        (run-wide first, then workflow-wide). Only a grant given at that same step, in the run's workspace
        (a grant in one workspace allows nothing in another), by someone who may answer that step in this
        run by its own rules (`Access.may_apply_grant`: a grant never lets a starter approve their own
        run where that is forbidden, nor someone answer where they no longer may)."""
        c, now = grants.c, time.time()
        query = (
            sa.select(grants)
            .where(
                c.tool_name == tool_name,
                c.step_name == step,  # a grant without a step (NULL) matches none
                c.team_id == card.team_id,
                c.workflow == entry.name,
                c.revoked_at.is_(None),
                sa.or_(
                    sa.and_(c.scope == "run", c.run_id == card.run_id, _run_goes_on()),
                    sa.and_(c.scope == "workflow", c.expires_at > now),
                ),
            )
            .order_by(c.scope.desc(), c.granted_at)  # "run" before "workflow"
            .limit(20)
        )
        rows = await self._tx(lambda conn: [dict(r) for r in conn.execute(query).mappings()], write=False)
        access = self.access
        for row in rows:
            if await access.may_apply_grant(entry, card, row["granted_by"], row["step_name"]):
                return row
        return None

    async def active(self, workflow: str | None = None, team: str | None = None) -> list[dict[str, Any]]:
        """Grants not revoked and not expired, newest first (for the App Home and operators); of workspace
        `team` (None: of every workspace)."""
        return await active_grants(self.db, workflow, team=team)

    async def revoke(self, grant_id: str, user: str) -> bool:
        """Revoke a grant (compare-and-set: once); False if unknown or already revoked."""
        return await revoke_grant(self.db, grant_id, user)

    async def apply(self, entry: BotWorkflow, card: Card) -> None:
        """After a run paused: approve the tool calls live grants cover; continue if none is left."""
        loaded = await self.load_run(entry, card)
        if loaded is None or loaded.req.kind != kinds.EXECUTOR:
            return
        calls = loaded.req.executor_requirements or []
        rid = loaded.req.requirement_id
        decided = await self.store.tool_decisions(rid)
        applied = False

        def owes(tx: Tx) -> None:  # the call shown decided on the pause message, while others wait
            self.outbox.owing.redraw(tx, card.run_id, rid)

        for index, call in enumerate(calls):
            if index in decided or not _plain(call):
                continue
            grant = await self.covering(entry, card, loaded.req.step_name, call.tool_execution.tool_name)
            if grant is None:
                continue
            call.confirm(by=grant["granted_by"])
            given = f"by {ui.who(grant['granted_by'])} at {ui.slack_time(grant['granted_at'])}"
            summary = (
                f":white_check_mark: Approved automatically: `{ui.escape(call.tool_execution.tool_name)}` is always "
                f"allowed {scope_words(grant)} ({given})"
            )
            recorded = await self.store.record_tool_decision(
                rid, index, call.to_dict(), grant["granted_by"], summary, team=card.team_id, owes=owes
            )
            applied = applied or recorded
        if applied:  # else a person decided meanwhile, and their click continues the run
            await self.calls_decided(loaded, "kern")


async def active_grants(
    db: BaseDb, workflow: str | None = None, limit: int = 200, *, team: str | None = None
) -> list[dict[str, Any]]:
    """Grants not revoked and not expired, newest first; of workspace `team` (None: of every workspace)."""
    from bot.store.migrations import BOT

    c, now = grants.c, time.time()
    query = sa.select(grants).where(
        c.revoked_at.is_(None),
        sa.or_(c.expires_at.is_(None), c.expires_at > now),
        sa.or_(c.scope != "run", _run_goes_on()),  # a run's grant ends with its run
    )
    if workflow is not None:
        query = query.where(c.workflow == workflow)
    if team is not None:
        query = query.where(c.team_id == team)
    query = query.order_by(c.granted_at.desc()).limit(limit)
    return await db.run_transaction(
        lambda conn: [dict(r) for r in conn.execute(query).mappings()], write=False, tables=BOT
    )


async def revoke_grant(db: BaseDb, grant_id: str, user: str) -> bool:
    """Revoke a grant (compare-and-set: once); False if unknown or already revoked."""
    c, now = grants.c, time.time()

    def body(conn: Connection) -> bool:
        done = conn.execute(
            grants.update().where(c.id == grant_id, c.revoked_at.is_(None)).values(revoked_by=user, revoked_at=now)
        )
        if done.rowcount != 1:
            return False
        row = conn.execute(sa.select(grants).where(c.id == grant_id)).mappings().one()
        conn.execute(
            INSERT_AUDIT,
            {
                "run_id": row["run_id"] or "",
                "requirement_id": None,
                "workflow_name": row["workflow"],
                "step_name": None,
                "kind": "grant",
                "actor": user,
                "decision": "revoke_grant",
                "note": None,
                "data": {"grant": grant_id, "tool": row["tool_name"]},
                "at": now,
            },
        )
        return True

    from bot.store.migrations import BOT

    return bool(await db.run_transaction(body, tables=BOT))


def scope_words(grant: dict[str, Any]) -> str:
    """Where and until when a grant allows its tool, as a card says it: "in this run, until the run ends" or
    "in this workflow, until <time>"."""
    if grant["scope"] == "run":
        return "in this run, until the run ends"
    return (
        f"in this workflow, until {ui.slack_time(grant['expires_at'])}" if grant["expires_at"] else "in this workflow"
    )


def grant_line(grant: dict[str, Any]) -> str:
    """How the App Home lists a grant: the tool, its scope (the run, or the workflow) and expiry, its step,
    who gave it."""
    if grant["scope"] == "run":
        where = f"in this run (`{(grant['run_id'] or '')[:12]}`) of *{ui.escape(grant['workflow'])}*"
        until = "until the run ends"
    else:
        where = f"in this workflow, *{ui.escape(grant['workflow'])}* (every run)"
        until = f"until {ui.slack_time(grant['expires_at'])}" if grant["expires_at"] else "until revoked"
    step = grant.get("step_name")
    at = f" at *{ui.escape(step)}*" if step else " (given before grants named their step: it allows nothing)"
    return (
        f"`{ui.escape(grant['tool_name'])}` always allowed {where}{at}, {until} "
        f"· by {ui.who(grant['granted_by'])} at {ui.slack_time(grant['granted_at'])}"
    )


def _run_goes_on() -> sa.ColumnElement[bool]:
    """A run grant's run has not ended (still running or paused; a run gone from the store has ended)."""
    r = runs.c
    ended = (RunStatus.COMPLETED.value, RunStatus.CANCELLED.value, RunStatus.ERROR.value)
    return sa.exists().where(r.run_id == grants.c.run_id, r.status.not_in(ended))


def _plain(call: RunRequirement) -> bool:
    """A call that only needs approval (not input, a result or answers): the only kind a grant covers."""
    return call.kind == "confirmation" and call.tool_execution.requires_confirmation


def _audit(loaded: Loaded, user: str, decision: str, row: dict[str, Any], at: float) -> dict[str, Any]:
    return {
        "run_id": loaded.run.run_id,
        "requirement_id": loaded.req.requirement_id,
        "workflow_name": loaded.entry.name,
        "step_name": loaded.req.step_name,
        "kind": loaded.req.kind,
        "actor": user,
        "decision": decision,
        "note": None,
        "data": {k: row[k] for k in ("id", "scope", "tool_name", "expires_at")},
        "at": at,
    }
