"""The mapping of ARCHITECTURE "Where each payload field is computed", part two: causes (trigger_chain, the user_id walk), times, and
the strict outbound guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from harvester.jenkins.models import Cause
from harvester.sei.mapping import CauseWalk, iso_millis, trigger_of
from harvester.sei.payload import PAYLOAD, Trigger, payload_json
from tests.unit.test_mapping import finished, mapped


def cause(cls: str, **fields: Any) -> Cause:
    return Cause.model_validate({"_class": cls, **fields})


@pytest.mark.parametrize(
    ("cls", "fields", "expected"),
    [
        ("hudson.model.Cause$UserIdCause", {"userId": "bob"}, {"id": "bob", "type": "UserIdCause"}),
        (
            "hudson.model.Cause$UserIdCause",
            {"userId": None},
            {"id": "anonymous", "type": "UserIdCause"},
        ),
        (
            "hudson.triggers.SCMTrigger$SCMTriggerCause",
            {},
            {"id": "SCMTrigger", "type": "SCMTriggerCause"},
        ),
        (
            "com.cloudbees.jenkins.GitHubPushCause",
            {},
            {"id": "SCMTrigger", "type": "GitHubPushCause"},
        ),
        ("jenkins.branch.BranchEventCause", {}, {"id": "SCMTrigger", "type": "BranchEventCause"}),
        ("x.GitLabWebHookCause", {}, {"id": "SCMTrigger", "type": "GitLabWebHookCause"}),
        (
            "jenkins.branch.BranchIndexingCause",
            {},
            {"id": "BranchIndexing", "type": "BranchIndexingCause"},
        ),
        (
            "hudson.triggers.TimerTrigger$TimerTriggerCause",
            {},
            {"id": "TimerTrigger", "type": "TimerTriggerCause"},
        ),
        (
            "hudson.model.Cause$UpstreamCause",
            {"upstreamProject": "mbp/feature%2Fx", "upstreamBuild": 12},
            {"id": "mbp/feature/x", "type": "UpstreamCause", "job_run_number": "12"},
        ),
        (
            "org.jenkinsci.plugins.workflow.cps.replay.ReplayCause",
            {},
            {"id": "Replay", "type": "ReplayCause"},
        ),
    ],
)
def test_trigger_chain_entries(cls: str, fields: dict[str, Any], expected: dict[str, str]) -> None:
    trigger = trigger_of(cause(cls, **fields))
    assert trigger is not None
    TypeAdapter(Trigger).validate_python(trigger)
    assert trigger == expected


def test_only_cause_action_causes_count() -> None:
    raw = finished(
        actions=[
            {
                "_class": "jenkins.model.InterruptedBuildAction",
                "causes": [
                    {"_class": "jenkins.model.CauseOfInterruption$UserInterruption", "userId": "x"}
                ],
            },
            {
                "_class": "hudson.model.CauseAction",
                "causes": [{"_class": "hudson.triggers.TimerTrigger$TimerTriggerCause"}],
            },
        ]
    )
    assert mapped(raw)["trigger_chain"] == [{"id": "TimerTrigger", "type": "TimerTriggerCause"}]


def test_cause_walk() -> None:
    user = cause("hudson.model.Cause$UserIdCause", userId="carol")
    scm = cause("hudson.triggers.SCMTrigger$SCMTriggerCause")
    upstream = cause("hudson.model.Cause$UpstreamCause", upstreamProject="up", upstreamBuild=3)
    walk = CauseWalk()
    walk.feed([scm, user])
    assert (walk.user_id, walk.next_upstream) == ("carol", None)
    walk = CauseWalk()
    walk.feed([upstream])
    assert walk.next_upstream == ("up", 3)
    walk.feed([scm])
    assert (walk.next_upstream, walk.user_id) == (None, "SCMTrigger")
    walk = CauseWalk()
    walk.feed([cause("hudson.triggers.TimerTrigger$TimerTriggerCause")])
    assert walk.user_id == "SYSTEM"
    # at most 10 levels, and loops end
    walk = CauseWalk()
    levels = 0
    while True:
        walk.feed(
            [cause("hudson.model.Cause$UpstreamCause", upstreamProject="up", upstreamBuild=levels)]
        )
        levels += 1
        if walk.next_upstream is None:
            break
    assert levels == 10
    walk = CauseWalk()
    walk.feed([upstream])
    walk.feed([upstream])
    assert walk.next_upstream is None


def test_iso_millis() -> None:
    assert iso_millis(1795891248123) == "2026-11-28T18:40:48.123Z"
    assert iso_millis(1795891248000) == "2026-11-28T18:40:48.000Z"
    # Exactly datetime's isoformat, over the range of epoch milliseconds a build can have.
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for millis in [1, 999, 1000, 86_399_999, *range(951_782_400_000, 10**13, 7_777_777_777)]:
        expected = (epoch + timedelta(milliseconds=millis)).isoformat(timespec="milliseconds")
        assert iso_millis(millis) == expected.replace("+00:00", "Z"), millis


@pytest.mark.parametrize(
    "change",
    [
        {"unexpected": 1},
        {"repo_url": None},  # absent, never null
        {"branch_name": ""},
        {"trigger_chain": []},
        {"pipeline": ""},  # the receiver's 400
        {"build_number": "7"},  # no coercion
        {"trigger_chain": [{"id": "x", "type": "y", "job_run_number": 3}]},
        {"job_run": {"stages": [{"id": "1"}]}},
    ],
)
def test_the_outbound_guard_is_strict(change: dict[str, Any]) -> None:
    payload = mapped(finished())
    PAYLOAD.validate_python(payload)
    with pytest.raises(ValidationError):
        PAYLOAD.validate_python({**payload, **change})


def test_a_payload_body_is_compact_utf8_and_survives_a_lone_surrogate() -> None:
    payload = PAYLOAD.validate_python({**mapped(finished()), "branch_name": "fé/x"})
    assert '"branch_name":"fé/x"' in payload_json(payload)
    # Jenkins' JSON may carry "\ud800" (valid JSON, no UTF-8): escaped, so the build still goes.
    lone = payload_json({**payload, "branch_name": "a\ud800b"})
    assert '"branch_name":"a\\ud800b"' in lone
    assert lone.encode("utf-8")
