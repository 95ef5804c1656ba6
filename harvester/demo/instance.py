"""The small controller ``harvester demo`` runs against: one of each kind of job."""

from __future__ import annotations

from harvester.demo.model import (
    FREESTYLE,
    MULTIBRANCH,
    PIPELINE,
    SimBuild,
    SimJob,
    SimStage,
    branch_job_name,
)
from harvester.demo.simulator import Simulator


def demo_instance(sim: Simulator, now_ms: int) -> None:
    """A small controller with one of each kind of job, for ``harvester demo``."""
    minute = 60_000
    app = sim.add("platform/backend/api", PIPELINE)
    for number in range(1, 4):
        start = now_ms - (10 - number) * 10 * minute
        app.builds.append(
            SimBuild(
                number,
                start,
                duration=4 * minute,
                result="FAILURE" if number == 2 else "SUCCESS",
                causes=[
                    {
                        "_class": "hudson.model.Cause$UserIdCause",
                        "userId": "alice",
                        "userName": "Alice",
                        "shortDescription": "Started by user Alice",
                    }
                ],
                parameters=[
                    {
                        "_class": "hudson.model.StringParameterValue",
                        "name": "TARGET",
                        "value": "eu-1",
                    },
                    {
                        "_class": "hudson.model.BooleanParameterValue",
                        "name": "DRY_RUN",
                        "value": False,
                    },
                    {"_class": "hudson.model.PasswordParameterValue", "name": "DB_PASSWORD"},
                ],
                commits=[f"{number:x}" * 40],
                repo_url="https://git.example.com/platform/api.git",
                branch="main",
                artifacts=["dist/api.tar.gz"],
                stages=[
                    SimStage(
                        "Build",
                        "SUCCESS",
                        start + 1000,
                        60_000,
                        [("Shell Script", "SUCCESS", start + 1100, 59_000)],
                    ),
                    SimStage(
                        "Test",
                        "FAILED" if number == 2 else "SUCCESS",
                        start + 61_000,
                        90_000,
                        [
                            (
                                "Shell Script",
                                "FAILED" if number == 2 else "SUCCESS",
                                start + 61_100,
                                89_000,
                            )
                        ],
                    ),
                    SimStage(
                        "Deploy",
                        "NOT_EXECUTED" if number == 2 else "SUCCESS",
                        0 if number == 2 else start + 151_000,
                        0 if number == 2 else 30_000,
                    ),
                ],
            )
        )
    app.builds.append(
        SimBuild(
            4,
            now_ms - minute,
            in_progress=True,
            result=None,
            stages=[SimStage("Build", "IN_PROGRESS", now_ms - minute, 0)],
        )
    )
    nightly = sim.add("platform/nightly-report", FREESTYLE)
    nightly.builds.append(
        SimBuild(
            17,
            now_ms - 50 * minute,
            duration=2 * minute,
            causes=[
                {
                    "_class": "hudson.triggers.TimerTrigger$TimerTriggerCause",
                    "shortDescription": "Started by timer",
                }
            ],
            artifacts=["reports/summary.html"],
        )
    )
    deploy = sim.add("platform/deploy-prod", FREESTYLE)
    deploy.builds.append(
        SimBuild(
            5,
            now_ms - 30 * minute,
            duration=minute,
            causes=[
                {
                    "_class": "hudson.model.Cause$UpstreamCause",
                    "upstreamBuild": 3,
                    "upstreamProject": "platform/backend/api",
                    "upstreamUrl": "job/platform/job/backend/job/api/",
                    "shortDescription": "Started by upstream project",
                }
            ],
        )
    )
    mbp = sim.add("web", MULTIBRANCH)
    for branch, number in (("main", 12), ("feature/login", 3)):
        job = SimJob(branch_job_name(branch), PIPELINE)
        mbp.children.append(job)
        job.builds.append(
            SimBuild(
                number,
                now_ms - 20 * minute,
                duration=3 * minute,
                causes=[
                    {
                        "_class": "jenkins.branch.BranchEventCause",
                        "shortDescription": "Push event to branch",
                    }
                ],
                commits=["9f" * 20],
                repo_url="https://git.example.com/web.git",
                branch=branch,
                stages=[
                    SimStage(
                        "Build",
                        "SUCCESS",
                        now_ms - 20 * minute,
                        100_000,
                        [
                            ("npm ci", "SUCCESS", now_ms - 20 * minute, 50_000),
                            ("npm test", "SUCCESS", now_ms - 19 * minute, 50_000),
                        ],
                    )
                ],
            )
        )


def demo_new_build(sim: Simulator, now_ms: int) -> None:
    """One more finished build of the demo's Pipeline (``demo --serve`` adds one now and then,
    so that a daemon against it has something to deliver)."""
    with sim.lock:
        app = sim.job("platform/backend/api")
        number = app.builds[-1].number + 1 if app.builds else 1
        app.builds.append(
            SimBuild(
                number,
                now_ms - 60_000,
                duration=50_000,
                causes=[{"_class": "hudson.model.Cause$UserIdCause", "userId": "alice"}],
                commits=[f"{number:x}"[-1] * 40],
                repo_url="https://git.example.com/platform/api.git",
                branch="main",
                stages=[
                    SimStage(
                        "Build",
                        "SUCCESS",
                        now_ms - 59_000,
                        40_000,
                        [("Shell Script", "SUCCESS", now_ms - 58_900, 39_000)],
                    )
                ],
            )
        )
