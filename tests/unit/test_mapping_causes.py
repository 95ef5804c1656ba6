"""The mapping of CONTRACT §4/§4a, part two: causes (trigger_chain, the user_id walk), times, and
the strict outbound model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harvester.jenkins.models import Cause
from harvester.sei.mapping import CauseWalk, iso_millis, trigger_of
from harvester.sei.payload import Payload
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
    assert trigger.model_dump(exclude_none=True) == expected


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


def test_payload_model_is_strict() -> None:
    with pytest.raises(ValueError):
        Payload.model_validate({**mapped(finished()), "unexpected": 1})
