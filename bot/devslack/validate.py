"""Block Kit validation as Slack does it: the limits of SLACK.md section 2, answered as `invalid_blocks`.

Used by the local Slack (`bot.devslack.slack.DevSlack`) so that anything Slack would reject is rejected
here first, with Slack's error.
"""

from __future__ import annotations

import datetime
import json
import re
import urllib.parse
from typing import Any


def validate_blocks(blocks: list[dict[str, Any]], *, modal: bool = False) -> list[str]:
    """Slack-style errors for a message's (or modal's) blocks; empty when Slack would accept them."""
    errors: list[str] = []
    limit = 100 if modal else 50
    if len(blocks) > limit:
        errors.append(f"no more than {limit} items allowed [json-pointer:/blocks]")
    # block_id: unique in the message or view (https://docs.slack.dev/reference/block-kit/blocks); action_id:
    # "unique among all other action_ids in the containing block" (each element's reference, e.g.
    # https://docs.slack.dev/reference/block-kit/block-elements/button-element), so two blocks may share one.
    block_ids: set[str] = set()
    total_text = 0

    def text_obj(obj: Any, where: str, max_len: int, plain_only: bool = False) -> None:
        nonlocal total_text
        if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn") or "text" not in obj:
            errors.append(f"must provide a text object [json-pointer:{where}]")
            return
        if plain_only and obj["type"] != "plain_text":
            errors.append(f"must be plain_text [json-pointer:{where}]")
        if not obj["text"]:
            errors.append(f"must be more than 0 characters [json-pointer:{where}/text]")
        if len(obj["text"]) > max_len:
            errors.append(f"must be less than {max_len + 1} characters [json-pointer:{where}/text]")
        total_text += len(obj["text"])

    def check_option(option: dict[str, Any], where: str, plain_only: bool) -> None:
        # a select's options are plain_text; a checkbox's may be mrkdwn. Text and description: 75 each
        text_obj(option.get("text"), f"{where}/text", 75, plain_only=plain_only)
        if "description" in option:
            text_obj(option["description"], f"{where}/description", 75, plain_only=plain_only)
        if len(option.get("value", "")) > 150:
            errors.append(f"must be less than 151 characters [json-pointer:{where}/value]")

    def element(el: dict[str, Any], where: str) -> None:
        kind = el.get("type")
        if "action_id" in el:
            if len(el["action_id"]) > 255:
                errors.append(f"action_id too long [json-pointer:{where}/action_id]")
        if kind == "button":
            text_obj(el.get("text"), f"{where}/text", 75, plain_only=True)
            if len(el.get("value", "")) > 2000:
                errors.append(f"must be less than 2001 characters [json-pointer:{where}/value]")
            if el.get("style") not in (None, "primary", "danger"):
                errors.append(f"invalid style [json-pointer:{where}/style]")
            if "confirm" in el:
                c = el["confirm"]
                for key, max_len in (("title", 100), ("text", 300), ("confirm", 30), ("deny", 30)):
                    text_obj(c.get(key), f"{where}/confirm/{key}", max_len)
        elif kind in ("static_select", "multi_static_select"):
            options = el.get("options")
            groups = el.get("option_groups")
            if (options is None) == (groups is None):
                errors.append(f"must provide exactly one of options or option_groups [json-pointer:{where}]")
            for gi, group in enumerate(groups or []):
                if len(group.get("options", [])) > 100:
                    errors.append(f"no more than 100 items allowed [json-pointer:{where}/option_groups/{gi}]")
            all_options = options or [o for g in groups or [] for o in g.get("options", [])]
            if options is not None and not 1 <= len(options) <= 100:
                errors.append(f"must have 1-100 options [json-pointer:{where}/options]")
            for oi, option in enumerate(all_options):
                check_option(option, f"{where}/options/{oi}", plain_only=True)
            if "placeholder" in el:
                text_obj(el["placeholder"], f"{where}/placeholder", 150, plain_only=True)
            if kind == "static_select" and "initial_option" in el and el["initial_option"] not in all_options:
                errors.append(f"initial_option must be one of the options [json-pointer:{where}/initial_option]")
            if any(o not in all_options for o in el.get("initial_options", []) if kind == "multi_static_select"):
                errors.append(f"initial_options must be among the options [json-pointer:{where}/initial_options]")
        elif kind == "plain_text_input":
            if not 1 <= el.get("max_length", 3000) <= 3000:
                errors.append(f"max_length must be 1-3000 [json-pointer:{where}/max_length]")
            if not 0 <= el.get("min_length", 0) <= min(3000, el.get("max_length", 3000)):
                errors.append(f"min_length must be 0-3000 and at most max_length [json-pointer:{where}/min_length]")
            if len(el.get("initial_value", "")) > el.get("max_length", 3000):
                errors.append(f"initial_value longer than max_length [json-pointer:{where}/initial_value]")
        elif kind == "number_input":
            # https://docs.slack.dev/reference/block-kit/block-elements/number-input-element: values are strings
            if not isinstance(el.get("is_decimal_allowed"), bool):
                errors.append(f"is_decimal_allowed is required [json-pointer:{where}]")
            for key in ("initial_value", "min_value", "max_value"):
                if key in el and not _number(el[key], el.get("is_decimal_allowed")):
                    errors.append(f"{key} must be a number string [json-pointer:{where}/{key}]")
            if _number(el.get("min_value"), True) and _number(el.get("max_value"), True):
                if float(el["min_value"]) > float(el["max_value"]):
                    errors.append(f"min_value must not exceed max_value [json-pointer:{where}/min_value]")
        elif kind == "datepicker":
            # https://docs.slack.dev/reference/block-kit/block-elements/date-picker-element: YYYY-MM-DD
            if "initial_date" in el and not _iso_date(el["initial_date"]):
                errors.append(f"initial_date must be YYYY-MM-DD [json-pointer:{where}/initial_date]")
        elif kind == "conversations_select":
            # https://docs.slack.dev/reference/block-kit/block-elements/select-menu-element#conversations_select
            include = (el.get("filter") or {}).get("include", [])
            if any(i not in ("im", "mpim", "private", "public") for i in include):
                errors.append(f"filter.include must be im, mpim, private or public [json-pointer:{where}/filter]")
        elif kind == "users_select":  # a person picker; its state is `selected_user`
            if "placeholder" in el:
                text_obj(el["placeholder"], f"{where}/placeholder", 150, plain_only=True)
            if "initial_user" in el and not str(el["initial_user"]).startswith(("U", "W")):
                errors.append(f"invalid user id [json-pointer:{where}/initial_user]")
        elif kind in ("multi_users_select", "channels_select", "multi_channels_select", "multi_conversations_select"):
            if "placeholder" in el:
                text_obj(el["placeholder"], f"{where}/placeholder", 150, plain_only=True)
            if kind.startswith("multi_") and "max_selected_items" in el and int(el["max_selected_items"]) < 1:
                errors.append(f"max_selected_items must be at least 1 [json-pointer:{where}/max_selected_items]")
        elif kind == "timepicker":
            # https://docs.slack.dev/reference/block-kit/block-elements/time-picker-element: HH:mm, 24-hour
            if "initial_time" in el and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", str(el["initial_time"])):
                errors.append(f"initial_time must be HH:mm [json-pointer:{where}/initial_time]")
        elif kind in ("datetimepicker", "email_text_input", "url_text_input", "rich_text_input"):
            if "placeholder" in el:
                text_obj(el["placeholder"], f"{where}/placeholder", 150, plain_only=True)
        elif kind == "overflow":  # https://docs.slack.dev/reference/block-kit/block-elements/overflow-menu-element
            if not 1 <= len(el.get("options", [])) <= 5:
                errors.append(f"must have 1-5 options [json-pointer:{where}/options]")
            for oi, option in enumerate(el.get("options", [])):
                check_option(option, f"{where}/options/{oi}", plain_only=True)
        elif kind == "image":
            if not el.get("image_url") or not el.get("alt_text"):
                errors.append(f"image needs image_url and alt_text [json-pointer:{where}]")
        elif kind in ("checkboxes", "radio_buttons"):
            if not 1 <= len(el.get("options", [])) <= 10:
                errors.append(f"must have 1-10 options [json-pointer:{where}/options]")
            for oi, option in enumerate(el.get("options", [])):
                check_option(option, f"{where}/options/{oi}", plain_only=False)
        else:
            errors.append(f"unknown element type {kind!r} [json-pointer:{where}]")

    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        kind = block.get("type")
        bid = block.get("block_id")
        if bid is not None:
            if len(bid) > 255 or bid in block_ids:
                errors.append(f"block_id too long or duplicated [json-pointer:{where}/block_id]")
            block_ids.add(bid)
        if kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"section needs text or fields [json-pointer:{where}]")
            if "text" in block:
                text_obj(block["text"], f"{where}/text", 3000)
            fields = block.get("fields", [])
            if len(fields) > 10:
                errors.append(f"no more than 10 items allowed [json-pointer:{where}/fields]")
            for fi, f in enumerate(fields):
                text_obj(f, f"{where}/fields/{fi}", 2000)
            if "accessory" in block:  # one element beside the text (a button, a select, ...): alone in its block
                element(block["accessory"], f"{where}/accessory")
        elif kind == "header":
            text_obj(block.get("text"), f"{where}/text", 150, plain_only=True)
        elif kind == "context":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 10:
                errors.append(f"must have 1-10 elements [json-pointer:{where}/elements]")
            for ei, e in enumerate(elements):
                if isinstance(e, dict) and e.get("type") == "image":
                    element(e, f"{where}/elements/{ei}")
                else:
                    text_obj(e, f"{where}/elements/{ei}", 3000)
        elif kind == "actions":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 25:
                errors.append(f"must have 1-25 elements [json-pointer:{where}/elements]")
            action_ids: set[str] = set()
            for ei, e in enumerate(elements):
                element(e, f"{where}/elements/{ei}")
                aid = e.get("action_id")
                if aid is not None and aid in action_ids:
                    errors.append(f"duplicate action_id {aid} [json-pointer:{where}/elements/{ei}]")
                if aid is not None:
                    action_ids.add(aid)
        elif kind == "input":
            if not modal:
                errors.append(f"input blocks are for modals [json-pointer:{where}]")
            text_obj(block.get("label"), f"{where}/label", 2000, plain_only=True)
            if "hint" in block:
                text_obj(block["hint"], f"{where}/hint", 2000, plain_only=True)
            element(block.get("element") or {}, f"{where}/element")
        elif kind == "divider":
            pass
        elif kind == "image":  # https://docs.slack.dev/reference/block-kit/blocks/image-block
            element({**block, "type": "image"}, where)
        elif kind == "markdown":  # https://docs.slack.dev/reference/block-kit/blocks/markdown-block
            if not 1 <= len(block.get("text") or "") <= 12000:
                errors.append(f"text must be 1-12000 characters [json-pointer:{where}/text]")
        elif kind == "rich_text":
            if not isinstance(block.get("elements"), list):
                errors.append(f"rich_text needs elements [json-pointer:{where}/elements]")
        else:
            errors.append(f"unknown block type {kind!r} [json-pointer:{where}]")
    if not modal and total_text > 12000:
        errors.append("msg_blocks_too_long")
    return errors


def _number(value: Any, decimal: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        number = float(value)
    except ValueError:
        return False
    return bool(decimal) or number == int(number)


def _iso_date(value: Any) -> bool:
    try:
        datetime.date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str) and len(value) == 10


def validate_view(view: dict[str, Any]) -> list[str]:
    errors = []
    title = (view.get("title") or {}).get("text", "")
    if not 1 <= len(title) <= 24:
        errors.append("title must be 1-24 characters [json-pointer:/view/title]")
    for key in ("submit", "close"):
        if key in view and len(view[key].get("text", "")) > 24:
            errors.append(f"{key} must be at most 24 characters [json-pointer:/view/{key}]")
    if any(b.get("type") == "input" for b in view.get("blocks", [])) and "submit" not in view:
        errors.append("a view with input blocks needs submit [json-pointer:/view/submit]")
    if len(view.get("private_metadata", "")) > 3000:
        errors.append("private_metadata must be at most 3000 characters")
    if not view.get("blocks"):
        errors.append("a modal needs at least one block")
    if len(json.dumps(view)) > 250_000:
        return ["view_too_large"]
    return errors + validate_blocks(view.get("blocks", []), modal=True)


# What each input element's state holds when the person left it empty (Slack sends null, or an empty list).
_STATE_KEYS = {
    "static_select": "selected_option",
    "external_select": "selected_option",
    "radio_buttons": "selected_option",
    "multi_static_select": "selected_options",
    "multi_external_select": "selected_options",
    "checkboxes": "selected_options",
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "datetimepicker": "selected_date_time",
    "rich_text_input": "rich_text_value",
}
REQUIRED = "This field is required."
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def submission_errors(view: dict[str, Any], values: dict[str, dict[str, Any]]) -> dict[str, str]:
    """What Slack's client refuses before a modal is submitted, by input block_id (the error it shows under
    that input; nothing is sent to the app): a required input left empty, a text shorter than `min_length`
    or longer than `max_length`, a number that is not one, not whole where `is_decimal_allowed` is false,
    or outside `min_value`/`max_value`, an email or URL input whose text is not one
    (https://docs.slack.dev/reference/block-kit/blocks/input-block: `optional` defaults to false; each
    element's reference page for its own limits)."""
    errors: dict[str, str] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block.get("element") or {}
        state = (values.get(block.get("block_id", "")) or {}).get(element.get("action_id", "")) or {}
        problem = _input_problem(element, state, optional=bool(block.get("optional")))
        if problem:
            errors[block.get("block_id", "")] = problem
    return errors


def _rich_text_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("text", "")) + "".join(_rich_text_of(v) for v in value.get("elements", []))
    return ""


def _input_problem(element: dict[str, Any], state: dict[str, Any], *, optional: bool) -> str | None:
    kind = element.get("type", "")
    key = _STATE_KEYS.get(kind)
    if key is not None:
        given = state.get(key)
        empty = given in (None, "", []) or (kind == "rich_text_input" and not _rich_text_of(given).strip())
        return REQUIRED if empty and not optional else None
    text = state.get("value")
    if text is None or text == "":
        return None if optional else REQUIRED
    text = str(text)
    if kind == "plain_text_input":
        if len(text) < int(element.get("min_length", 0)):
            return f"Enter at least {element['min_length']} characters."
        if len(text) > int(element.get("max_length", 3000)):
            return f"Enter no more than {element.get('max_length', 3000)} characters."
    elif kind == "number_input":
        try:
            number = float(text)
        except ValueError:
            return "Enter a number."
        if number != number or number in (float("inf"), float("-inf")):
            return "Enter a number."
        if not element.get("is_decimal_allowed") and (not number.is_integer() or "." in text or "e" in text.lower()):
            return "Enter a whole number."
        low, high = element.get("min_value"), element.get("max_value")
        if (low is not None and number < float(low)) or (high is not None and number > float(high)):
            if low is not None and high is not None:
                return f"Enter a number between {low} and {high}."
            return f"Enter a number of at least {low}." if low is not None else f"Enter a number of at most {high}."
    elif kind == "email_text_input" and not EMAIL.match(text):
        return "Enter a valid email address."
    elif kind == "url_text_input":
        parsed = urllib.parse.urlparse(text)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            return "Enter a valid URL (https://…)."
    return None
