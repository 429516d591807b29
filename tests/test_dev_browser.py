"""kern-bot dev in headless Chromium (Debian's, driven by Playwright; no browser download): a person types
/kern commands, clicks Approve, fills a form with an invalid then a valid value, picks a route, and sees
each run complete; answers a pause from the app's Home tab (and pages it, and revokes a standing approval
there) and a DM'd one in the DM with the app. With KERN_UPDATE_SCREENSHOTS=1 it refreshes the screenshots
under docs/."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from bot import blocks as ui
from bot.registry import BotWorkflow
from bot.runs.sweeper import sweep_once
from kern.agent import Agent
from kern.examples.dual_confirmation import send_alert
from kern.models.openai import OpenAIChat
from kern.workflow import Step, Workflow
from tests.conftest import IN_CI
from tests.openai_stub import FakeOpenAI, call, text, tool_results

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parent.parent / "docs"

try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]


def require_browser() -> None:
    problem = None
    if async_playwright is None:
        problem = "the playwright package is not installed"
    elif not os.path.exists(CHROMIUM):
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if problem:
        if IN_CI:
            pytest.fail(problem + "; CI requires it.")
        pytest.skip(problem)


@pytest.fixture
async def browser_page(dev_page) -> AsyncIterator[tuple[Page, Path]]:  # noqa: F811 - imported below
    require_browser()
    slack, _http = dev_page
    shots = DOCS if os.environ.get("KERN_UPDATE_SCREENSHOTS") == "1" else Path(os.environ.get("TMPDIR", "/tmp"))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        tab = await browser.new_page(viewport={"width": 1000, "height": 900})
        await tab.goto(slack.base_url)
        yield tab, shots
        await browser.close()


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


_model: list[FakeOpenAI] = []


def extra_workflows(db: object) -> list[BotWorkflow]:
    """An agent whose tool call waits for approval, its model scripted (read by the dev_page fixture)."""
    if not _model:
        return []
    agent = Agent(
        name="AlertAgent", model=OpenAIChat(id="m", base_url=_model[0].base_url, api_key="t"), tools=[send_alert]
    )
    alert = Workflow(name="alert", steps=[Step(name="send_alert", agent=agent)])
    return [BotWorkflow(alert, name="alert", standing_approval=timedelta(hours=8))]


@pytest.fixture(autouse=True)
def _scripted_model(model: FakeOpenAI) -> Iterator[None]:
    model.script(
        call("send_alert", city="Tokyo", message="Heavy rain <tonight> & *wind*"),
        lambda body: text("Done: " + tool_results(body)[-1]),
    )
    _model[:] = [model]
    yield
    _model.clear()


async def command(tab: Page, text: str) -> None:
    await tab.fill("#composer", text)
    await tab.press("#composer", "Enter")


async def test_a_person_answers_every_kind_of_pause(browser_page: tuple[Page, Path]) -> None:
    tab, shots = browser_page
    channel = tab.locator("#channel")

    await command(tab, "/kern run deploy api")
    approve = tab.get_by_role("button", name="Approve", exact=True)
    await expect(approve).to_be_visible()
    await tab.screenshot(path=str(shots / "pause-confirmation.png"))
    await approve.click()
    await expect(channel).to_contain_text("Approved by @U1")
    await expect(channel).to_contain_text("Completed")

    await command(tab, "/kern run report")
    await tab.get_by_role("button", name="Provide input").click()
    modal = tab.locator("#modal")
    await expect(modal).to_contain_text("Report")
    await tab.locator('[data-block="f2"] input').fill("1.5")
    await tab.get_by_role("button", name="Submit").click()
    await expect(modal).to_contain_text("This field is required")  # refused by the page, as Slack's client does
    await expect(modal).to_contain_text("Enter a whole number")  # is_decimal_allowed: false
    await tab.screenshot(path=str(shots / "pause-user-input.png"))
    await tab.locator('[data-block="f0"] input').fill("Weekly")
    await tab.locator('[data-block="f2"] input').fill("3")
    await tab.get_by_role("button", name="Submit").click()
    await expect(modal).to_be_empty()
    await expect(channel).to_contain_text("Report 'Weekly' as pdf, 3 page(s), without charts.")

    await command(tab, "/kern run triage printer on fire")
    continue_button = tab.get_by_role("button", name="Continue")
    await expect(continue_button).to_be_visible()
    await tab.locator("#channel select").last.select_option(label="question")
    await tab.screenshot(path=str(shots / "pause-route.png"))
    await continue_button.click()
    await expect(channel).to_contain_text("Handled 'printer on fire' as question")

    await command(tab, "/kern run newsletter the browser test")
    await expect(tab.get_by_role("button", name="Reject with feedback")).to_be_visible()
    await tab.screenshot(path=str(shots / "pause-output-review.png"))
    await tab.get_by_role("button", name="Approve", exact=True).click()
    await expect(channel).to_contain_text("This week we shipped the browser test")
    await expect(channel.get_by_text("Completed")).to_have_count(4)

    await command(tab, "/kern run analysis")
    await expect(tab.get_by_role("button", name="No: run quick")).to_be_visible()
    await tab.screenshot(path=str(shots / "pause-condition.png"))
    await tab.get_by_role("button", name="No: run quick").click()
    await expect(channel).to_contain_text("Quick summary done")

    await command(tab, "/kern run flaky")
    await expect(tab.get_by_role("button", name="Retry")).to_be_visible()
    await tab.screenshot(path=str(shots / "pause-error.png"))
    await tab.get_by_role("button", name="Retry").click()
    await expect(channel).to_contain_text("Used: Fetched after a retry")

    await command(tab, "/kern run refine idea")
    await expect(channel).to_contain_text("Review iteration 1")
    await expect(channel).to_contain_text("Approving ends the loop with this output")
    await tab.screenshot(path=str(shots / "pause-iteration-review.png"))
    await tab.locator("#channel button", has_text="Approve").last.click()  # the loop ends with iteration 1
    await expect(channel.get_by_text("Completed")).to_have_count(7)
    await expect(channel).not_to_contain_text("Review iteration 2")

    await command(tab, "/kern run alert Tokyo")
    await expect(channel).to_contain_text("wants to call send_alert")
    await tab.screenshot(path=str(shots / "pause-tool-call.png"))
    await tab.locator("#channel button", has_text="Approve").last.click()
    await expect(channel).to_contain_text("Done: Alert sent for Tokyo: Heavy rain")
    await expect(channel.get_by_text("Completed")).to_have_count(8)


async def test_a_start_form_the_shortcut_and_emoji(browser_page: tuple[Page, Path], dev_page) -> None:  # noqa: F811
    tab, shots = browser_page
    slack, _http = dev_page
    channel, modal = tab.locator("#channel"), tab.locator("#modal")

    await command(tab, "/kern run research")  # a form generated from the workflow's pydantic input_schema
    await expect(modal).to_contain_text("Run research")
    await expect(modal.locator('[data-block="start_include_links"]')).to_contain_text("Yes")  # the checkbox's label
    await expect(modal.locator('[data-block="start_sources"] input')).to_have_value("3")  # the model's default
    await tab.locator('[data-block="start_topic"] input').fill("ab")
    await tab.locator('[data-block="start_sources"] input').fill("12")
    await tab.get_by_role("button", name="Start").click()
    await expect(modal).to_contain_text("Enter at least 3 characters")  # the element's min_length, in the page
    await expect(modal).to_contain_text("Enter a number between 1 and 10")  # its min_value and max_value
    await tab.locator('[data-block="start_topic"] input').fill("Durable workflows")
    await tab.locator('[data-block="start_sources"] input').fill("5")
    await tab.locator('[data-block="start_depth"] select').select_option(label="thorough")
    await tab.locator('[data-block="start_focus_areas"] textarea').fill("replay\nleases")
    await expect(modal).not_to_contain_text("at least 3 characters")  # an edited field's error goes
    await tab.screenshot(path=str(shots / "start-form.png"))
    await tab.get_by_role("button", name="Start").click()
    await expect(modal).to_be_empty()
    await expect(channel).to_contain_text("Run the research now?")
    await expect(channel).to_contain_text("⏸")  # :double_vertical_bar: on the card, as Slack shows it
    await channel.get_by_role("button", name="Approve with comment…").last.click()  # a form, then one approval
    await expect(modal).to_contain_text("Comment")
    await tab.locator("#modal textarea").fill("sources look <fine>")
    await modal.get_by_role("button", name="Approve", exact=True).click()  # the form's submit
    await expect(modal).to_be_empty()
    await expect(channel).to_contain_text("sources look <fine>")  # on the decided message, as typed
    await expect(channel).to_contain_text(
        "A thorough brief on 'Durable workflows' for engineering, from 5 sources, focusing on replay, leases"
    )

    await tab.get_by_role("button", name="Run a workflow").click()  # the global shortcut: a picker
    await expect(modal).to_contain_text("Post the run in")
    await tab.locator(f'[data-block="{ui.WORKFLOW_BLOCK}"] select').select_option(label="deploy")
    await tab.locator(f'[data-block="{ui.CHANNEL_BLOCK}"] select').select_option(label="# general")
    await tab.get_by_role("button", name="Next").click()
    await expect(modal).to_contain_text("Run deploy")
    await tab.locator('[data-block="start_input"] textarea').fill("web")
    await tab.get_by_role("button", name="Start").click()
    await expect(modal).to_be_empty()
    await expect(channel).to_contain_text("Deploy to production?")
    await tab.screenshot(path=str(shots / "kern-bot-dev-channel.png"))

    async with aiohttp.ClientSession() as http:  # shortcodes as Slack renders them; unknown ones stay text
        await http.post(
            slack.api_url + "chat.postMessage",
            headers={"Authorization": f"Bearer {slack.token}"},
            json={"channel": "C1", "text": "x", "blocks": [ui.section(":pencil2: :raised_hand: :not_an_emoji:")]},
        )
    await expect(channel).to_contain_text("✏️ ✋ :not_an_emoji:")


async def test_the_app_home_and_a_dm_d_pause(browser_page: tuple[Page, Path], dev_page) -> None:  # noqa: F811
    """The sidebar's three places: a pause answered from the app's Home tab, and one DM'd to its approvers
    (the `purchase` example) answered in the DM with the app, the thread copy in the channel closed too."""
    tab, shots = browser_page
    slack, _http = dev_page
    channel, dm, home = tab.locator("#channel"), tab.locator("#dm"), tab.locator("#home")

    await command(tab, "/kern run deploy api")
    await expect(channel).to_contain_text("Deploy to production?")
    await tab.locator('nav [data-pane="home"]').click()  # the app under Apps: its Home tab
    await expect(home).to_contain_text("Waiting on you")
    await expect(home).to_contain_text("Deploy to production?")
    await expect(home).to_contain_text("1 pause wait")
    await expect(tab.locator("#footer")).to_be_hidden()  # a Home tab has no composer
    await tab.screenshot(path=str(shots / "app-home.png"))
    await home.get_by_role("button", name="Approve", exact=True).click()
    await expect(home).to_contain_text("Nothing waits on you")  # refreshed once the pause closed
    await tab.locator('nav [data-pane="channel"]').click()
    await expect(channel).to_contain_text("Approved by @U1")
    await expect(channel).to_contain_text("Completed")

    await command(tab, "/kern run purchase a standing desk")  # notify="dm": U1 and UBOSS get a copy
    unread = tab.locator("#unread")
    await expect(unread).to_have_text("1")  # a new DM: the badge on the DM entry
    await expect(channel).to_contain_text("Approve this purchase?")  # the thread copy
    assert await channel.get_by_role("button", name="Approve", exact=True).count() == 1  # no DM copy in the channel
    await tab.locator('nav [data-pane="dm"]').click()
    await expect(dm).to_contain_text("Approve this purchase?")
    await expect(unread).to_have_text("")
    await expect(tab.get_by_role("tab", name="Messages")).to_have_attribute("aria-selected", "true")
    await tab.screenshot(path=str(shots / "dm-pause.png"))
    async with aiohttp.ClientSession() as http:  # a message with text only (as reminders are) shows its text
        await http.post(
            slack.api_url + "chat.postMessage",
            headers={"Authorization": f"Bearer {slack.token}"},
            json={"channel": slack.dms["U1"], "text": ":bell: A text-only line, *in mrkdwn*"},
        )
    await expect(dm).to_contain_text("🔔 A text-only line, in mrkdwn")
    await dm.get_by_role("button", name="Approve", exact=True).click()
    await expect(dm).to_contain_text("Approved by @U1")
    await expect(dm.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    await tab.get_by_role("tab", name="Home").click()  # the app's tabs: Home and Messages
    await expect(home).to_contain_text("Nothing waits on you")
    await tab.locator('nav [data-pane="channel"]').click()
    await expect(channel).to_contain_text("Ordered a standing desk.")
    await expect(channel.get_by_role("button", name="Approve", exact=True)).to_have_count(
        0
    )  # the thread copy closed too
    await slack.until(lambda: "Approved by <@U1>" in json.dumps(slack.dm_of("UBOSS")[0].blocks))  # the other copy
    await tab.locator('nav [data-pane="dm"]').click()
    await dm.get_by_role("link", name="open the run card").click()  # the DM copy's permalink
    await expect(channel).to_be_visible()
    await expect(channel.locator(".msg.linked")).to_contain_text("Workflow: purchase")

    await tab.locator("#user").select_option("U2")  # U2 is no approver of `purchase`: nothing in their DM
    await tab.locator('nav [data-pane="dm"]').click()
    await expect(dm.locator(".msg")).to_have_count(0)


async def test_the_home_pages_and_a_standing_approval_revoked(browser_page: tuple[Page, Path], dev_page) -> None:  # noqa: F811
    """The Home's Next / Previous buttons and a section's accessory (Revoke) are clicked from the view."""
    tab, _shots = browser_page
    slack, _http = dev_page
    channel, home = tab.locator("#channel"), tab.locator("#home")
    await command(tab, "/kern run alert Tokyo")
    # in this workflow: a grant in this run would end with the run, just below
    await channel.locator("button", has_text="… in this workflow (8 h)").click()
    await expect(channel).to_contain_text("Done: Alert sent for Tokyo")
    for n in range(13):  # more pauses than one page of the Home holds
        assert (await slack.command(f"run deploy svc{n}", user="U1"))[0] == 200

    def waiting() -> int:
        return sum(m.channel == "C1" and ui.CONFIRM in json.dumps(m.blocks) for m in slack.messages.values())

    await slack.until(lambda: waiting() == 13, within=30)

    await tab.locator('nav [data-pane="home"]').click()
    await expect(home).to_contain_text(re.compile(r"13 pauses wait on you, newest first\. Showing 1-\d+\."))
    await expect(home).to_contain_text("Standing approvals")
    shown = int(re.search(r"Showing 1-(\d+)\.", await home.inner_text())[1])  # as many as Slack's 100 blocks hold
    assert 1 <= shown < 13
    await home.get_by_role("button", name="Next").click()
    await expect(home).to_contain_text(f"Showing {shown + 1}-13.")
    await expect(home.get_by_role("button", name="Approve", exact=True)).to_have_count(13 - shown)  # the oldest
    await home.get_by_role("button", name="Previous").click()
    await expect(home).to_contain_text(f"Showing 1-{shown}.")
    await home.get_by_role("button", name="Revoke").click()  # beside the grant's text
    await expect(home).not_to_contain_text("Standing approvals")


async def test_a_hand_over_the_intro_and_a_hint(browser_page: tuple[Page, Path]) -> None:
    """The channel opens with the bot's intro; "Hand over…" opens its modal with a person picker (a
    users_select), refused while empty as Slack refuses it, then handed to U2: the pause says so; a later
    modal opens as usual; a command typed without its slash gets the bot's hint."""
    tab, shots = browser_page
    channel, modal = tab.locator("#channel"), tab.locator("#modal")
    await expect(channel.locator(".msg").first).to_contain_text("Hi, I'm kern.")  # posted by the bot at start

    await command(tab, "/kern run deploy api")
    await tab.get_by_role("button", name="Hand over…").click()
    await expect(modal).to_contain_text("Hand it to")
    submit = modal.get_by_role("button", name="Hand over", exact=True)
    await submit.click()
    await expect(modal.locator('[data-block="to"]')).to_contain_text("This field is required")
    picker = modal.locator('[data-block="to"] select')
    await expect(picker.locator("option")).to_have_text(["Choose a person", "@U1", "@U2", "@UBOSS"])
    await picker.select_option(label="@U2")
    await expect(modal).not_to_contain_text("This field is required")  # an edited field's error goes
    await modal.locator('[data-block="note"] textarea').fill("You know this service best.")
    await tab.screenshot(path=str(shots / "handover.png"))
    await submit.click()
    await expect(modal).to_be_empty()
    await expect(channel).to_contain_text("Handed to @U2 by @U1")
    await expect(channel).to_contain_text("handed you deploy to answer")

    await tab.get_by_role("button", name="Hand over…").click()  # nothing left behind blocks the next modal
    await expect(modal).to_contain_text("Hand it to")
    await modal.get_by_role("button", name="Cancel").click()
    await expect(modal).to_be_empty()

    await command(tab, "run deploy web")  # no slash: a message, and the bot's hint to its author
    await expect(channel).to_contain_text("Commands start with a slash: did you mean /kern run deploy web?")
    await expect(channel.locator(".msg", has_text="run deploy web").first).to_contain_text("U1")


async def test_a_reminder_answered_from_its_own_buttons(browser_page: tuple[Page, Path], dev_page) -> None:  # noqa: F811
    """A reminder (the `purchase` example reminds after 2 minutes, by DM) carries the question and the
    pause's own buttons: approved from the reminder in the DM, it is redrawn as decided."""
    tab, shots = browser_page
    slack, _http = dev_page
    channel, dm = tab.locator("#channel"), tab.locator("#dm")
    await command(tab, "/kern run purchase a lamp")
    await expect(channel).to_contain_text("Approve this purchase?")
    bot = slack.kern_bot
    await sweep_once(bot.runner, bot.registry, now=time.time() + 121)  # two minutes on: the first reminder
    await bot.background.idle(10)
    await tab.locator('nav [data-pane="dm"]').click()
    reminder = dm.locator(".msg", has_text="Reminder 1 of 2")
    await expect(reminder).to_contain_text("this has waited 2 min for your answer")
    await expect(reminder).to_contain_text("Approve this purchase?")  # the question, not the step's id
    await expect(reminder).not_to_contain_text("UBOSS")  # it names its recipient alone
    await tab.screenshot(path=str(shots / "reminder.png"))
    await reminder.get_by_role("button", name="Approve", exact=True).click()
    answered = dm.locator(".msg", has_text="This reminder needs nothing more from you")  # redrawn in place
    await expect(answered).to_contain_text("Approved by @U1")
    await expect(answered.get_by_role("button")).to_have_count(0)
    await expect(reminder).to_have_count(0)
    await tab.locator('nav [data-pane="channel"]').click()
    await expect(channel).to_contain_text("Ordered a lamp.")


from tests.test_devslack_web import dev_page  # noqa: E402, F401 - kern-bot dev's page, bot and local Slack
