"""The send-time envelope: the stored body as it is when the config changes nothing,
else with the current instance fields and redaction, in the same compact UTF-8 form."""

from __future__ import annotations

import json

from harvester.sei.envelope import Envelope
from harvester.sei.mapping import REDACTED, MappingRules
from harvester.sei.payload import compact_json

RULES = MappingRules(
    instance_name="Jenkins",
    instance_guid="g-1",
    instance_url="https://ci/",
    result_map={},
    redact_parameters=("*TOKEN*",),
)


def stored(**fields: object) -> str:
    body = {"instance_name": "Jenkins", "instance_guid": "g-1", "instance_url": "https://ci/"}
    return compact_json({**body, "job_full_name": "été", **fields})


def test_a_body_the_config_does_not_change_is_sent_byte_for_byte() -> None:
    body = stored()
    assert Envelope(RULES)(body) is body


def test_changed_instance_fields_and_a_new_redaction_reach_a_stored_body() -> None:
    parameters = [{"type": "StringParameterValue", "name": "API_TOKEN", "value": "s3cret"}]
    sent = Envelope(RULES)(stored(instance_guid="old", job_run_params=parameters))
    data = json.loads(sent)
    assert data["instance_guid"] == "g-1"
    assert data["job_run_params"][0]["value"] == REDACTED
    assert '"job_full_name":"été"' in sent  # compact, non-ASCII kept


def test_a_lone_surrogate_in_a_changed_body_still_goes_out_as_utf8() -> None:
    # The stored body escapes it ("\ud800"); re-written by the envelope, it must stay escaped,
    # or encoding the POST's body fails for that build on every attempt.
    body = stored(instance_name="old", branch_name="a\ud800b")
    sent = Envelope(RULES)(body)
    assert sent.encode("utf-8")
    assert json.loads(sent)["branch_name"] == "a\ud800b"
