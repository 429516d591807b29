"""The kinds of acknowledged job (bot/runs/jobs.py): how each is run, in whichever process takes it up, and how
its person is told what became of it.

- A click (`CLICK`): its body, as Slack signed it, dispatched to Bolt again, so its listener decides it
  as the first time. Its signature was checked when it arrived, so Bolt does not check it again (it may
  have aged past Slack's 5-minute window by the time a sweep runs it).
- A start (`START`, from `/kern run`): `Runner.start` with the run id fixed when it was accepted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import urllib.parse
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.registry import Registry
from bot.runs.jobs import CLICK, START, Job, Jobs, NotHere
from bot.runs.runner import Runner
from bot.slack.gateway import SlackGateway
from bot.slack.inbound import RequestRejected, parse
from bot.slack.workspaces import TeamClients, acting_for
from kern.exceptions import StoreError

log = logging.getLogger("kern_bot")


def click_job(key: str, body: str, content_type: str) -> Job:
    """The job of a click whose signed `body` arrived with `content_type`."""
    return Job(key, CLICK, {"body": body, "type": content_type})


def register(
    jobs: Jobs, app: AsyncApp, runner: Runner, registry: Registry, gateway: SlackGateway, teams: TeamClients
) -> None:
    """Give `jobs` its handlers and tellers."""

    async def run_click(job: Job) -> None:
        try:
            request = parse(job.payload["body"], "", {"content-type": job.payload["type"]}, mode="socket_mode")
        except RequestRejected as exc:  # nothing of it can happen: done
            log.warning("click dropped: %s", exc.reason)
            return
        await app.async_dispatch(request)

    async def tell_clicker(job: Job, text: str) -> None:
        body = _click_body(job)
        user = (body.get("user") or {}).get("id")
        if not user:
            return
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
        message = body.get("message") or {}
        team = teams.key(
            (body.get("enterprise") or {}).get("id"),
            (body.get("team") or {}).get("id"),
            body.get("is_enterprise_install"),
        )
        with acting_for(team):
            await gateway.tell(
                channel, user, text, message.get("thread_ts") or message.get("ts"), body.get("response_url")
            )

    async def run_start(job: Job) -> None:
        p = job.payload
        entry = registry.by_workflow_name(p["kern_workflow"])
        if entry is None:  # not offered by this process: left for one that offers it (or told at give-up)
            raise NotHere(f"workflow {p['kern_workflow']!r} is not offered here")
        with acting_for(p["team"]):
            since = job.created_at if job.taken_up else None  # an earlier attempt may have posted its card
            await runner.start(
                entry, p["text"], p["user"], p["channel"], p.get("response_url"), run_id=p["run_id"], since=since
            )

    async def tell_starter(job: Job, text: str) -> None:
        """Privately (the "Starting…" reply may be gone: the card replaced it), and on the card if there is one."""
        p = job.payload
        with acting_for(p["team"]):
            await gateway.tell(p["channel"], p["user"], text, None, p.get("response_url"))
            entry = registry.get(p["workflow"])
            with contextlib.suppress(StoreError):  # the database that failed the start may fail this read too
                card = await runner.store.card(p["run_id"])
                if entry is not None and card is not None:
                    await runner.presenter.status_line(entry, card, text, None)

    jobs.handlers.update({CLICK: run_click, START: run_start})
    jobs.tellers.update({CLICK: tell_clicker, START: tell_starter})


def _click_body(job: Job) -> dict[str, Any]:
    """The click's payload, as far as it can be read (a body that cannot be parsed is told nothing)."""
    form = urllib.parse.parse_qs(job.payload["body"])
    try:
        body = json.loads(form.get("payload", ["{}"])[0])
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
