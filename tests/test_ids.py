"""Run, session, pause and message ids keep the form `uuid.uuid4().hex` gave them."""

from __future__ import annotations

import uuid

from kern.ids import new_id
from kern.run.workflow import WorkflowRunOutput


def test_new_ids_are_version_4_uuids_as_32_hex_digits_and_distinct() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert value == parsed.hex and len(value) == 32
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_run_without_ids_gets_new_ones() -> None:
    run = WorkflowRunOutput()
    assert uuid.UUID(hex=run.run_id).version == 4 and uuid.UUID(hex=run.session_id).version == 4
    assert run.run_id != run.session_id
